// NVMe disks end to end (--disk): the guest driver's checks (guest/tests/nvme_disk.c) on every
// APIC backend over raw and QCOW2 images, the image read back through qemu-img afterwards (what
// the guest wrote, zeroed and left alone, and `qemu-img check` clean), the same image and checks
// under QEMU's NVMe controller, read-only disks, and bad --disk options.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "process.hpp"
#include "tests/core/helpers.hpp"

using hvtest::guest;
using hvtest::guest_status;
using hvtest::hvaccel;

namespace {

constexpr std::uint64_t kHostLba = 2048, kHostBlocks = 128;

// guest/tests/nvme_disk.c's pattern().
std::uint8_t pattern(std::uint64_t o)
{
    return static_cast<std::uint8_t>((o >> 9) * 31 + (o & 511) * 7 + 1);
}

std::string file_bytes(const std::string& path)
{
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

// A disk of `mib` MiB with 0x5a over the blocks the guest expects the host to have written.
void make_disk(const std::string& path, const std::string& format, unsigned mib)
{
    auto c =
        hvtest::run({"qemu-img", "create", "-q", "-f", format, path, std::to_string(mib) + "M"});
    ASSERT_EQ(c.status, 0) << c.err;
    auto w = hvtest::run({"qemu-io", "-f", format, "-c",
                          "write -q -P 0x5a " + std::to_string(kHostLba * 512) + " " +
                              std::to_string(kHostBlocks * 512),
                          path});
    ASSERT_EQ(w.status, 0) << w.err;
}

// The disk as qemu-img reads it, after `qemu-img check` passed.
std::string contents(const std::string& path, const std::string& format, const std::string& dir)
{
    if (format == "qcow2") {
        auto check = hvtest::run({"qemu-img", "check", "-q", path});
        EXPECT_EQ(check.status, 0) << check.out << check.err;
    }
    const std::string raw = dir + "/contents.raw";
    auto conv = hvtest::run({"qemu-img", "convert", "-f", format, "-O", "raw", path, raw});
    EXPECT_EQ(conv.status, 0) << conv.err;
    return file_bytes(raw);
}

// Every range the guest said it wrote holds the pattern, the zeroed range zeros, the rest of the
// host's range 0x5a, and nothing else was touched (zeros). Returns how many ranges were checked.
unsigned expect_disk(const std::string& disk, const std::string& guest_out)
{
    std::vector<bool> expected_set(disk.size() / 512, false);
    unsigned ranges = 0;
    std::istringstream lines(guest_out);
    for (std::string line; std::getline(lines, line);) {
        char what[8] = {};
        unsigned long long lba = 0, blocks = 0;
        if (std::sscanf(line.c_str(), "nvme: %7s LBA %llu +%llu", what, &lba, &blocks) != 3)
            continue;
        const bool zero = std::string(what) == "zeroed";
        ++ranges;
        for (std::uint64_t o = lba * 512; o < (lba + blocks) * 512 && o < disk.size(); ++o) {
            const auto want = zero ? 0 : pattern(o);
            if (static_cast<std::uint8_t>(disk[o]) != want) {
                ADD_FAILURE() << "byte " << o << " (LBA " << o / 512
                              << "): " << int(static_cast<std::uint8_t>(disk[o])) << ", want "
                              << int(want);
                return ranges;
            }
        }
        for (std::uint64_t b = lba; b < lba + blocks && b < expected_set.size(); ++b)
            expected_set[b] = true;
    }
    for (std::uint64_t b = 0; b < expected_set.size(); ++b) {
        if (expected_set[b])
            continue;
        const char want = b >= kHostLba && b < kHostLba + kHostBlocks ? '\x5a' : '\0';
        if (disk.compare(b * 512, 512, std::string(512, want)) != 0) {
            ADD_FAILURE() << "block " << b << " changed";
            break;
        }
    }
    return ranges;
}

const char* const kBackends[] = {
    "kernel", "emulated",    "apicv",           "apicv,noipiv,nopi", "apicv,noipiv,nopi,novid",
    "avic",   "avic,x2avic", "avic,erratum1235"};

void run_on(const std::string& backend, const std::string& format)
{
    hvtest::TempDir dir;
    const std::string disk = dir / ("d." + format);
    make_disk(disk, format, format == "raw" ? 8 : 16);
    auto r =
        hvtest::run({hvaccel(), "run", guest("nvme_disk"), "--apic", backend, "--disk",
                     "path=" + disk + ",format=" + format + ",serial=SN-" + format, "--stats"});
    EXPECT_EQ(r.status, guest_status(0)) << backend << ": " << r.out << r.err;
    EXPECT_EQ(r.out.find("not ok"), std::string::npos) << backend << ": " << r.out;
    EXPECT_NE(r.out.find("nvme: serial=SN-" + format +
                         " blocks=" + std::to_string((format == "raw" ? 8u : 16u) << 11)),
              std::string::npos)
        << r.out;
    // Every completion was an interrupt through the backend's remapping path.
    EXPECT_NE(r.err.find("disk 0 (" + disk + "): nvme:"), std::string::npos) << r.err;
    EXPECT_EQ(expect_disk(contents(disk, format, dir.path()), r.out), 9u) << backend;
}

}  // namespace

TEST(NvmeDisk, RawOnEveryBackend)
{
    REQUIRE_KVM();
    for (const char* b : kBackends)
        run_on(b, "raw");
}

TEST(NvmeDisk, Qcow2OnEveryBackend)
{
    REQUIRE_KVM();
    for (const char* b : kBackends)
        run_on(b, "qcow2");
}

// The paths a completion takes: posted on apicv, GA mode on avic (the guest waits halted, so
// each lands in the GA log), remapped on emulated, irqfd on kernel.
TEST(NvmeDisk, CompletionsTakeTheBackendsRemappingPath)
{
    REQUIRE_KVM();
    const std::pair<const char*, const char*> paths[] = {{"kernel", "irqfd_signalled"},
                                                         {"emulated", "remapped"},
                                                         {"apicv", "posted"},
                                                         {"avic", "posted"}};
    for (const auto& [backend, counter] : paths) {
        hvtest::TempDir dir;
        make_disk(dir / "d.raw", "raw", 8);
        auto r = hvtest::run({hvaccel(), "run", guest("nvme_disk"), "--apic", backend, "--disk",
                              "path=" + (dir / "d.raw"), "--stats"});
        EXPECT_EQ(r.status, guest_status(0)) << backend << ": " << r.out << r.err;
        const std::size_t at = r.err.find("nvme: ");
        ASSERT_NE(at, std::string::npos) << r.err;
        unsigned long long commands = 0, completions = 0, interrupts = 0, via_path = 0;
        ASSERT_EQ(std::sscanf(r.err.c_str() + at, "nvme: %llu commands, %llu completions, %llu",
                              &commands, &completions, &interrupts),
                  3)
            << r.err;
        EXPECT_EQ(completions, interrupts) << "one interrupt per completion on " << backend;
        const std::string key = "iommu " + std::string(counter);
        const std::size_t c = r.err.find(key);
        ASSERT_NE(c, std::string::npos) << backend << ": " << r.err;
        ASSERT_EQ(std::sscanf(r.err.c_str() + c + key.size(), " %llu", &via_path), 1) << r.err;
        EXPECT_GT(via_path, 0u) << backend << ": " << r.err;
    }
}

// Each device has GSIs, IRTEs and an interrupt table of its own: the irq device and two disks
// side by side each deliver where their guest programmed them.
TEST(NvmeDisk, TwoDisksBesideTheIrqDevice)
{
    REQUIRE_KVM();
    for (const char* backend : {"kernel", "apicv", "avic"}) {
        hvtest::TempDir dir;
        make_disk(dir / "a.raw", "raw", 8);
        make_disk(dir / "b.qcow2", "qcow2", 16);
        const std::vector<std::string> disks = {"--irqdev", "--disk", "path=" + (dir / "a.raw"),
                                                "--disk", "path=" + (dir / "b.qcow2")};
        std::vector<std::string> nvme = {hvaccel(), "run", guest("nvme_disk"), "--apic", backend};
        nvme.insert(nvme.end(), disks.begin(), disks.end());
        auto r = hvtest::run(nvme);
        EXPECT_EQ(r.status, guest_status(0)) << backend << ": " << r.out << r.err;
        std::vector<std::string> msix = {hvaccel(), "run",  guest("msix_device"), "--vcpus", "2",
                                         "--apic",  backend};
        msix.insert(msix.end(), disks.begin(), disks.end());
        auto m = hvtest::run(msix);
        EXPECT_EQ(m.status, guest_status(0)) << backend << ": " << m.out << m.err;
    }
}

TEST(NvmeDisk, ReadOnlyDiskRefusesWritesAndStaysTheSame)
{
    REQUIRE_KVM();
    hvtest::TempDir dir;
    const std::string disk = dir / "d.qcow2";
    make_disk(disk, "qcow2", 16);
    const std::string before = file_bytes(disk);
    auto r = hvtest::run({hvaccel(), "run", guest("nvme_disk"), "--cmdline", "ro", "--disk",
                          "path=" + disk + ",readonly=on"});
    EXPECT_EQ(r.status, guest_status(0)) << r.out << r.err;
    EXPECT_NE(r.out.find("a write to a read-only disk fails"), std::string::npos) << r.out;
    EXPECT_EQ(file_bytes(disk), before);
}

// The same image and guest under QEMU's NVMe controller: the same verdicts (QEMU completes a
// PRP outside guest RAM without an error, dropping the data) and the same bytes on the disk.
TEST(NvmeDisk, SameAsQemusController)
{
    REQUIRE_KVM();
    if (hvtest::run({"sh", "-c", "command -v qemu-system-x86_64"}, 10).status != 0)
        GTEST_SKIP() << "qemu-system-x86_64 is not installed";
    hvtest::TempDir dir;
    const std::string ours = dir / "ours.raw", theirs = dir / "theirs.raw";
    make_disk(ours, "raw", 8);
    make_disk(theirs, "raw", 8);
    auto r = hvtest::run({hvaccel(), "run", guest("nvme_disk"), "--disk", "path=" + ours});
    auto q = hvtest::run({"qemu-system-x86_64",
                          "-machine",
                          "q35",
                          "-accel",
                          "kvm",
                          "-cpu",
                          "host",
                          "-m",
                          "128",
                          "-nodefaults",
                          "-kernel",
                          guest("nvme_disk"),
                          "-device",
                          "isa-debug-exit,iobase=0xf4,iosize=4",
                          "-serial",
                          "stdio",
                          "-display",
                          "none",
                          "-drive",
                          "file=" + theirs + ",if=none,id=d0,format=raw",
                          "-device",
                          "nvme,drive=d0,serial=HVACCEL0001"},
                         180);
    ASSERT_FALSE(q.timed_out);
    auto verdicts = [](const std::string& out) {
        std::istringstream in(out);
        std::string line, v;
        while (std::getline(in, line))
            if ((line.rfind("ok ", 0) == 0 || line.rfind("not ok ", 0) == 0) &&
                line.find("outside guest RAM") == std::string::npos)
                v += line.substr(0, line.find(" - ")) + "\n";
        return v;
    };
    EXPECT_EQ(r.out.find("not ok"), std::string::npos) << r.out;
    EXPECT_EQ(verdicts(r.out), verdicts(q.out)) << "qemu: " << q.out;
    EXPECT_EQ(file_bytes(ours), file_bytes(theirs)) << "the two disks differ";
}

TEST(BadInput, DiskOptions)
{
    hvtest::TempDir dir;
    const std::string disk = dir / "d.raw", odd = dir / "odd.raw";
    std::ofstream(disk) << std::string(1 << 20, '\0');
    std::ofstream(odd) << std::string(1000, '\0');
    auto run = [&](const std::vector<std::string>& disks) {
        std::vector<std::string> argv = {hvaccel(), "run", guest("hello")};
        for (const auto& d : disks) {
            argv.push_back("--disk");
            argv.push_back(d);
        }
        return hvtest::run(argv);
    };
    auto one_line = [](const hvtest::Result& r, const std::string& what) {
        EXPECT_EQ(r.status, 2) << r.err;
        EXPECT_EQ(r.err.rfind("hvaccel: ", 0), 0u) << r.err;
        EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
        EXPECT_NE(r.err.find(what), std::string::npos) << r.err;
    };
    one_line(run({disk}), "is not KEY=VALUE");
    one_line(run({"format=raw"}), "needs path=FILE");
    one_line(run({"path=" + disk + ",format=vmdk"}), "raw or qcow2");
    one_line(run({"path=" + disk + ",readonly=yes"}), "on or off");
    one_line(run({"path=" + disk + ",queues=0"}), "out of range");
    one_line(run({"path=" + disk + ",queues=17"}), "out of range");
    one_line(run({"path=" + disk + ",cache=none"}), "unknown key 'cache'");
    one_line(run({"path=" + dir.path() + "/missing.raw"}), "cannot open");
    one_line(run({"path=" + disk + ",format=qcow2"}), "QCOW2");
    one_line(run({"path=" + disk, "path=" + disk}), "in use");
    one_line(run(std::vector<std::string>(9, "path=" + disk + ",readonly=on")), "at most 8");
    if (hvtest::kvm_unavailable().empty()) {
        one_line(run({"path=" + odd}), "512-byte blocks");
        one_line(run({"path=" + disk + ",serial=ABCDEFGHIJKLMNOPQRSTU"}), "1 to 20");
    }
}

// The controller's queues are not in the snapshot format yet: a snapshot is refused with a
// reason, no file is left, and the VM goes on.
TEST(NvmeDisk, SnapshotOfAVmWithADiskIsRefused)
{
    REQUIRE_KVM();
    hvtest::TempDir t;
    make_disk(t / "d.raw", "raw", 8);
    auto bg = hvtest::spawn({hvaccel(), "run", guest("idle"), "--disk", "path=" + (t / "d.raw"),
                             "--control", t / "ctl", "--serial", t / "out"},
                            t / "o", t / "e");
    ASSERT_TRUE(hvtest::wait_for_text(t / "out", "idle")) << hvtest::slurp(t / "e");
    const std::string reply =
        hvtest::control(t / "ctl", "{\"cmd\":\"snapshot\",\"path\":\"" + (t / "s.snap") + "\"}");
    EXPECT_NE(reply.find("a VM with a --disk cannot be snapshotted yet"), std::string::npos)
        << reply;
    EXPECT_FALSE(std::filesystem::exists(t / "s.snap"));
    EXPECT_EQ(hvtest::control(t / "ctl", "{\"cmd\":\"quit\"}"), "{\"ok\":true}");
    EXPECT_EQ(bg.wait(), 0) << hvtest::slurp(t / "e");
}
