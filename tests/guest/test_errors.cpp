// Bad input and broken guests: a clear one-line error and a distinct non-zero exit, never a
// crash or a hang.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "process.hpp"

using hvtest::guest;
using hvtest::guest_status;
using hvtest::hvaccel;

namespace {

constexpr int kUsage = 2, kCrash = 4;

// One line on stderr, starting "hvaccel: ", containing `what` (host-erratum warnings, printed
// on affected hosts before anything else, aside).
void expect_one_line_error(const hvtest::Result& r, int status, const std::string& what)
{
    std::string err = r.err;
    while (err.rfind("hvaccel: warning: ", 0) == 0)
        err.erase(0, err.find('\n') + 1);
    EXPECT_FALSE(r.timed_out);
    EXPECT_EQ(r.status, status) << r.err;
    EXPECT_EQ(err.rfind("hvaccel: ", 0), 0u) << r.err;
    EXPECT_EQ(err.find('\n'), err.size() - 1) << r.err;
    EXPECT_NE(err.find(what), std::string::npos) << r.err;
}

// Writes a flat a.out-kludge multiboot image of `size` bytes loaded at `load`.
std::string write_aout(std::uint32_t load, std::uint32_t size)
{
    char path[] = "/tmp/hvaccel-img-XXXXXX";
    int fd = mkstemp(path);
    std::vector<std::uint32_t> img(size / 4, 0x90909090u);
    std::uint32_t flags = 0x10003;
    std::uint32_t hdr[8] = {0x1BADB002, flags,    static_cast<std::uint32_t>(-(0x1BADB002 + flags)),
                            load,       load,     0,
                            0,          load + 32};
    std::memcpy(img.data(), hdr, sizeof hdr);
    EXPECT_EQ(write(fd, img.data(), size), static_cast<ssize_t>(size));
    close(fd);
    return path;
}

}  // namespace

TEST(GuestErrors, UnhandledExceptionExitsWithItsVector)
{
    REQUIRE_KVM();
    auto r = hvtest::run({hvaccel(), "run", guest("crash_ud")});
    EXPECT_EQ(r.status, guest_status(0x40 + 6));
    EXPECT_NE(r.out.find("unexpected exception #UD (vector 6)"), std::string::npos) << r.out;
}

TEST(GuestErrors, TripleFaultNamesTheVcpuAndRip)
{
    REQUIRE_KVM();
    auto r = hvtest::run({hvaccel(), "run", guest("triple_fault")});
    expect_one_line_error(r, kCrash, "vCPU 0: triple fault (shutdown) at RIP 0x");
}

TEST(GuestErrors, HaltWithInterruptsOffEndsInsteadOfHanging)
{
    REQUIRE_KVM();
    for (const char* apic : {"emulated", "kernel"}) {
        auto r =
            hvtest::run({hvaccel(), "run", guest("dead_halt"), "--vcpus", "2", "--apic", apic}, 30);
        expect_one_line_error(r, kCrash, "guest halted with interrupts disabled on every vCPU");
        EXPECT_NE(r.err.find("(vCPU 0 at RIP 0x"), std::string::npos) << apic << ": " << r.err;
    }
}

TEST(GuestErrors, APendingInterruptDoesNotEndAHaltWithInterruptsOff)
{
    // SDM Vol2 HLT: with IF clear only NMI, INIT, SMI or reset resume the processor. Every
    // backend must agree that this guest can never run again.
    REQUIRE_KVM();
    for (const char* apic : {"kernel", "emulated", "apicv", "avic"}) {
        auto r = hvtest::run({hvaccel(), "run", guest("dead_halt_pending"), "--apic", apic}, 60);
        expect_one_line_error(r, kCrash, "guest halted with interrupts disabled on every vCPU");
        EXPECT_EQ(r.out.find("woke up"), std::string::npos) << apic << ": " << r.out;
        EXPECT_NE(r.out.find("interrupt pending"), std::string::npos) << apic << ": " << r.out;
    }
}

TEST(BadInput, MissingUnreadableOrNonMultibootImage)
{
    expect_one_line_error(hvtest::run({hvaccel(), "run", "/nonexistent.elf"}), kUsage,
                          "/nonexistent.elf: cannot open");
    expect_one_line_error(hvtest::run({hvaccel(), "run", "/tmp"}), kUsage, "not a regular file");
    REQUIRE_KVM();
    expect_one_line_error(hvtest::run({hvaccel(), "run", "/etc/hostname"}), kUsage,
                          "not a multiboot image");
}

// `disk info` opens an image as a VM's disk would: a good one is described, anything else is
// refused in one line (docs/storage.md).
TEST(BadInput, DiskImagesThatCannotBeOpened)
{
    char dir[] = "/tmp/hvaccel-disk-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    const std::string raw = std::string(dir) + "/d.raw", bad = std::string(dir) + "/bad.qcow2";
    std::ofstream(raw) << std::string(4096, 'x');
    std::ofstream(bad) << "QFI\xfb" << std::string(100, '\0');
    auto ok = hvtest::run({hvaccel(), "disk", "info", raw});
    EXPECT_EQ(ok.status, 0) << ok.err;
    EXPECT_NE(ok.out.find("raw, 4096 bytes"), std::string::npos) << ok.out;
    expect_one_line_error(hvtest::run({hvaccel(), "disk", "info", bad, "--format", "qcow2"}),
                          kUsage, "not a usable QCOW2 image");
    expect_one_line_error(hvtest::run({hvaccel(), "disk", "info", raw, "--format", "vmdk"}), kUsage,
                          "raw or qcow2");
    expect_one_line_error(hvtest::run({hvaccel(), "disk", "info", "/dev/zero"}), kUsage,
                          "not a regular file");
    expect_one_line_error(hvtest::run({hvaccel(), "disk", "info"}), kUsage, "exactly one FILE");
    expect_one_line_error(hvtest::run({hvaccel(), "disk", "check", raw}), kUsage,
                          "unknown disk subcommand");
    std::filesystem::remove_all(dir);
}

TEST(BadInput, ImageTooLargeOrInTheHole)
{
    REQUIRE_KVM();
    auto big = write_aout(0x100000, 3 << 20);
    expect_one_line_error(hvtest::run({hvaccel(), "run", big, "--memory", "2"}), kUsage,
                          "larger than guest memory");
    expect_one_line_error(hvtest::run({hvaccel(), "run", big, "--memory", "3"}), kUsage,
                          "does not fit in guest memory");
    unlink(big.c_str());
    auto hole = write_aout(0xbffff000, 0x2000);
    expect_one_line_error(hvtest::run({hvaccel(), "run", hole, "--memory", "4096"}), kUsage,
                          "overlaps the PCI/APIC hole");
    unlink(hole.c_str());
}

TEST(BadInput, OptionsOutOfRange)
{
    auto img = guest("hello");
    expect_one_line_error(hvtest::run({hvaccel(), "run", img, "--vcpus", "0"}), kUsage,
                          "--vcpus 0 out of range");
    expect_one_line_error(hvtest::run({hvaccel(), "run", img, "--vcpus", "256"}), kUsage,
                          "--vcpus 256 out of range");
    expect_one_line_error(hvtest::run({hvaccel(), "run", img, "--memory", "1"}), kUsage,
                          "--memory 1 out of range");
    expect_one_line_error(hvtest::run({hvaccel(), "run", img, "--memory", "999999"}), kUsage,
                          "out of range");
    expect_one_line_error(hvtest::run({hvaccel(), "run", img, "--memory", "lots"}), kUsage,
                          "is not a number");
    expect_one_line_error(hvtest::run({hvaccel(), "run", img, "--frobnicate"}), kUsage,
                          "unknown option '--frobnicate'");
    expect_one_line_error(hvtest::run({hvaccel(), "run", img, "--apic", "magic"}), kUsage,
                          "unknown APIC backend");
    expect_one_line_error(hvtest::run({hvaccel(), "run"}), kUsage, "exactly one IMAGE");
    expect_one_line_error(hvtest::run({hvaccel(), "launch"}), kUsage, "unknown command 'launch'");
    expect_one_line_error(hvtest::run({hvaccel(), "run", img, "--serial", "/nonexistent/dir/f"}),
                          kUsage, "--serial /nonexistent/dir/f");
    expect_one_line_error(hvtest::run({hvaccel(), "run", img, "--pin", "0-"}), kUsage, "--pin");
}

TEST(BadInput, EmptyOrLoneControlAndSnapshotOptions)
{
    auto img = guest("hello");
    expect_one_line_error(hvtest::run({hvaccel(), "run", img, "--control", ""}), kUsage,
                          "--control needs a socket path");
    expect_one_line_error(hvtest::run({hvaccel(), "run", img, "--snapshot-on", "USR2", ""}), kUsage,
                          "--snapshot-on USR2 needs a file path");
    expect_one_line_error(hvtest::run({hvaccel(), "run", img, "--control-allow-uid", "1000"}),
                          kUsage, "--control-allow-uid needs --control");
    expect_one_line_error(
        hvtest::run({hvaccel(), "run", img, "--control", "/tmp/s", "--control-allow-uid", "me"}),
        kUsage, "is not a number");
    expect_one_line_error(hvtest::run({hvaccel(), "run", img, "--serial", ""}), kUsage,
                          "empty path");
}

TEST(BadInput, FifosAreRefusedNotWaitedOn)
{
    // Every place a file is read by name: a FIFO nobody writes to would block open() for ever.
    char dir[] = "/tmp/hvaccel-fifo-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    const std::string fifo = std::string(dir) + "/fifo";
    ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
    expect_one_line_error(hvtest::run({hvaccel(), "run", fifo}, 60), kUsage,
                          fifo + ": not a regular file");
    expect_one_line_error(hvtest::run({hvaccel(), "run", guest("hello"), "--module", fifo}, 60),
                          kUsage, fifo + ": not a regular file");
    expect_one_line_error(hvtest::run({hvaccel(), "restore", fifo}, 60), kUsage,
                          "snapshot " + fifo + ": not a regular file");
    expect_one_line_error(hvtest::run({hvaccel(), "snapshot", "inspect", fifo}, 60), kUsage,
                          "snapshot " + fifo + ": not a regular file");
    unlink(fifo.c_str());
    rmdir(dir);
}

TEST(BadInput, PinToCpusThatDoNotExist)
{
    REQUIRE_KVM();
    auto img = guest("hello");
    expect_one_line_error(hvtest::run({hvaccel(), "run", img, "--pin", "4095"}), kUsage,
                          "--pin: host CPU 4095 is not online");
    expect_one_line_error(hvtest::run({hvaccel(), "run", img, "--vcpus", "2", "--pin", "0"}),
                          kUsage, "--pin");
}

TEST(BadInput, KvmDeviceMissingOrNotKvm)
{
    auto img = guest("hello");
    expect_one_line_error(
        hvtest::run({hvaccel(), "run", img}, 30, {"HVACCEL_KVM_DEVICE=/nonexistent/kvm"}), kUsage,
        "open /nonexistent/kvm: No such file or directory");
    expect_one_line_error(
        hvtest::run({hvaccel(), "run", img}, 30, {"HVACCEL_KVM_DEVICE=/dev/null"}), kUsage,
        "KVM API version");
}
