// The snapshot container and its sections: a file written and read back is equal; every kind
// of damage is refused with a one-line reason naming what is wrong, without a crash.
#include <glob.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <random>

#include "core/base/error.hpp"
#include "core/snapshot/crc32.hpp"
#include "core/snapshot/file.hpp"
#include "core/snapshot/state.hpp"

using namespace hv::snapshot;

namespace {

// A minimal, valid machine: one vCPU in its reset-like state, one memory run.
VmState sample_state()
{
    VmState s;
    s.machine.vcpus = 1;
    s.machine.memory_mib = 16;
    s.machine.image = "test.elf";
    s.machine.apic_backend = "emulated";
    s.machine.tsc_khz = 2'700'000;
    s.machine.cpuid_features = {{"1.ecx", 0x80000000u}};
    VcpuRecord v;
    v.regs.rflags = 2;
    v.regs.rip = 0x100000;
    v.sregs.cr0 = 0x11;
    v.msrs = {{kMsrTsc, 123456789}};
    v.xsave.assign(4096, 0);
    v.apic.version = 0x01050014;  // no CMCI, directed EOI
    v.apic.irr[2] = 0x10;
    s.vcpus.push_back(v);
    s.ioapic.redir.fill(1ull << 16);  // masked
    s.pm_timer = 42;
    s.memory.push_back({0x1000, 0x2000, 0});
    return s;
}

std::vector<std::uint8_t> write_bytes(const VmState& s, const nlohmann::json* replace = nullptr)
{
    static std::vector<std::uint8_t> pages(0x2000, 0xab);
    Writer w;
    std::uint64_t mem = w.add_blob(pages.data(), pages.size());
    std::uint64_t xs = w.add_blob(s.vcpus[0].xsave.data(), s.vcpus[0].xsave.size());
    VmState copy = s;
    copy.memory[0].blob = mem;
    char path[] = "/tmp/hvaccel-snaptest-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    w.commit(path, replace ? *replace : to_json(copy, {xs}));
    std::ifstream f(path, std::ios::binary);
    std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(f)), {});
    unlink(path);
    return bytes;
}

std::string refusal(std::vector<std::uint8_t> bytes)
{
    try {
        Reader r(std::move(bytes), "t.snap");
        from_json(r);
    } catch (const hv::Error& e) {
        return e.what();
    }
    return "";
}

// The file `bytes` with its JSON document replaced by `text` (any bytes), the blob area kept, the
// sizes and the CRC made right: only the document's own checks can refuse it.
std::vector<std::uint8_t> with_document(const std::vector<std::uint8_t>& bytes,
                                        const std::string& text)
{
    std::uint64_t blob_off = 0;
    std::memcpy(&blob_off, &bytes[32], 8);
    const std::uint64_t new_off = (kHeaderSize + text.size() + 4095) & ~std::uint64_t{4095};
    std::vector<std::uint8_t> out(bytes.begin(), bytes.begin() + kHeaderSize);
    out.resize(new_off, 0);
    std::memcpy(&out[kHeaderSize], text.data(), text.size());
    out.insert(out.end(), bytes.begin() + static_cast<std::ptrdiff_t>(blob_off), bytes.end());
    const std::uint64_t json_len = text.size(), blob_len = bytes.size() - blob_off;
    std::memcpy(&out[24], &json_len, 8);
    std::memcpy(&out[32], &new_off, 8);
    std::memcpy(&out[40], &blob_len, 8);
    std::uint32_t crc = crc32(&out[24], out.size() - 24);
    std::memcpy(&out[16], &crc, 4);
    return out;
}

}  // namespace

TEST(Crc32, MatchesTheIeeeCheckValue)
{
    EXPECT_EQ(crc32("123456789", 9), 0xcbf43926u);
    EXPECT_EQ(crc32("6789", 4, crc32("12345", 5)), 0xcbf43926u);  // streamable
    EXPECT_EQ(crc32("", 0), 0u);
}

TEST(SnapshotFile, RoundTripKeepsEverything)
{
    VmState s = sample_state();
    auto bytes = write_bytes(s);
    Reader r(bytes, "t.snap");
    VmState back = from_json(r);
    EXPECT_EQ(back.machine.vcpus, 1u);
    EXPECT_EQ(back.machine.tsc_khz, 2'700'000u);
    EXPECT_EQ(back.vcpus[0].regs.rip, 0x100000u);
    EXPECT_EQ(back.vcpus[0].msrs, s.vcpus[0].msrs);
    EXPECT_EQ(back.vcpus[0].apic, s.vcpus[0].apic);
    EXPECT_EQ(back.ioapic, s.ioapic);
    EXPECT_EQ(back.pm_timer, 42u);
    ASSERT_EQ(back.memory.size(), 1u);
    auto page = r.blob(back.memory[0].blob, back.memory[0].len, "memory");
    EXPECT_EQ(page[0], 0xab);
    EXPECT_EQ(page.size(), 0x2000u);
}

TEST(SnapshotFile, EveryTruncationIsRefused)
{
    auto bytes = write_bytes(sample_state());
    for (std::size_t cut = 0; cut < bytes.size(); cut += (cut < 200 ? 1 : 97)) {
        std::vector<std::uint8_t> t(bytes.begin(),
                                    bytes.begin() + static_cast<std::ptrdiff_t>(cut));
        std::string why = refusal(t);
        EXPECT_FALSE(why.empty()) << "cut at " << cut;
        EXPECT_EQ(why.find('\n'), std::string::npos) << why;
    }
}

TEST(SnapshotFile, BitFlipsAreCaughtByTheCrc)
{
    auto bytes = write_bytes(sample_state());
    std::mt19937 rng(7);
    for (int i = 0; i < 500; ++i) {
        auto b = bytes;
        std::size_t at = 24 + rng() % (b.size() - 24);  // past the CRC field itself
        b[at] ^= static_cast<std::uint8_t>(1u << (rng() % 8));
        std::string why = refusal(b);
        // A flip in the size fields (24..47) is caught by the size checks, anything else by the
        // CRC.
        const char* expect = at < kHeaderSize ? "" : "CRC mismatch";
        EXPECT_FALSE(why.empty()) << "flip at " << at;
        EXPECT_NE(why.find(expect), std::string::npos) << "flip at " << at << ": " << why;
    }
}

TEST(SnapshotFile, HeaderDamage)
{
    auto bytes = write_bytes(sample_state());
    auto magic = bytes;
    magic[0] = 'X';
    EXPECT_NE(refusal(magic).find("bad magic"), std::string::npos);
    auto newer = bytes;
    newer[8] = 2;  // major version 2
    EXPECT_NE(refusal(newer).find("format version 2.0 is not readable"), std::string::npos);
    auto sizes = bytes;
    sizes[40] ^= 0x01;  // blob length
    EXPECT_NE(refusal(sizes).find("inconsistent sizes"), std::string::npos) << refusal(sizes);
}

TEST(SnapshotFile, BadDocumentsNameTheSectionAndField)
{
    VmState s = sample_state();
    nlohmann::json doc = to_json(s, {0x2000});
    auto with = [&](const std::function<void(nlohmann::json&)>& edit) {
        nlohmann::json d = doc;
        d["sections"]["memory"]["data"]["runs"][0]["blob"] = 0;
        edit(d);
        return refusal(write_bytes(s, &d));
    };
    EXPECT_NE(
        with([](auto& d) { d["sections"].erase("ioapic"); }).find("section 'ioapic' is missing"),
        std::string::npos);
    EXPECT_NE(with([](auto& d) {
                  d["sections"]["vcpu/0"]["data"]["regs"]["rflags"] = "0x0";
              }).find("field 'rflags'"),
              std::string::npos);
    EXPECT_NE(with([](auto& d) {
                  d["sections"]["apic/0"]["data"]["irr"][0] = "0x20";
              }).find("section 'apic/0'"),
              std::string::npos);  // vector 5 pending: illegal
    EXPECT_NE(with([](auto& d) {
                  d["sections"]["machine"]["data"]["vcpus"] = 0;
              }).find("field 'vcpus': 0x0 out of range"),
              std::string::npos);
    EXPECT_NE(with([](auto& d) {
                  d["sections"]["memory"]["data"]["runs"][0]["gpa"] = "0x40000000";
              }).find("outside the machine's 16 MiB"),
              std::string::npos);
    EXPECT_NE(with([](auto& d) {
                  d["sections"]["uart"]["min_version"] = 9;
              }).find("needs a reader of version 9"),
              std::string::npos);
    EXPECT_NE(with([](auto& d) {
                  d["sections"]["gpu"] = {{"version", 1}, {"min_version", 1}, {"data", {}}};
              }).find("section 'gpu' is required but unknown"),
              std::string::npos);
    EXPECT_EQ(with([](auto& d) {
                  d["sections"]["gpu"] = {{"version", 1},
                                          {"min_version", 1},
                                          {"optional", true},
                                          {"data", nlohmann::json::object()}};
              }),
              "");  // optional unknown sections are ignored
    EXPECT_NE(with([](auto& d) {
                  d["sections"]["vcpu/0"]["data"]["xsave"]["blob"] = 1 << 30;
              }).find("outside the blob area"),
              std::string::npos);
}

TEST(SnapshotFile, ReservedHeaderFieldMustBeZero)
{
    auto bytes = write_bytes(sample_state());
    EXPECT_EQ(refusal(bytes), "");
    bytes[21] = 1;
    std::uint32_t crc = crc32(&bytes[24], bytes.size() - 24);  // the field is outside the CRC
    std::memcpy(&bytes[16], &crc, 4);
    EXPECT_NE(refusal(bytes).find("reserved header field is 0x100, not 0"), std::string::npos)
        << refusal(bytes);
}

TEST(SnapshotFile, CraftedDocumentsAreRefusedInOneLine)
{
    VmState s = sample_state();
    const auto bytes = write_bytes(s);
    const Reader good(bytes, "t.snap");
    const std::string text = good.doc().dump();
    ASSERT_EQ(refusal(with_document(bytes, text)), "");

    // Nesting far deeper than any section has, in an optional section no reader looks into.
    nlohmann::json doc = good.doc();
    doc["sections"]["extra"] = {
        {"version", 1}, {"min_version", 1}, {"optional", true}, {"data", nlohmann::json::object()}};
    std::string deep = doc.dump();
    const std::string hole = R"("data":{})";
    deep.replace(deep.find(hole), hole.size(),
                 "\"data\":{\"x\":" + std::string(200000, '[') + std::string(200000, ']') + "}");
    EXPECT_NE(refusal(with_document(bytes, deep)).find("nested deeper than 32 levels"),
              std::string::npos);

    // Bytes after a NUL: the JSON library alone would stop reading at the NUL.
    EXPECT_NE(
        refusal(with_document(bytes, text + std::string("\0{\"junk\":1}", 12))).find("NUL byte"),
        std::string::npos);

    // Numbers as strings: only the "0x..." form the writer produces.
    for (const char* bad : {"010", " 0x2", "-1", "0x", "0x1 ", "0X2", "0x10000000000000000", "2"}) {
        nlohmann::json d = good.doc();
        d["sections"]["vcpu/0"]["data"]["regs"]["rflags"] = bad;
        EXPECT_NE(refusal(with_document(bytes, d.dump()))
                      .find("field 'rflags': expected an "
                            "unsigned integer"),
                  std::string::npos)
            << bad;
    }

    // A missing key is named in hvaccel's words, not the JSON library's.
    nlohmann::json no_format = good.doc();
    no_format["hvaccel"].erase("format");
    const std::string why = refusal(with_document(bytes, no_format.dump()));
    EXPECT_NE(why.find("field 'format': missing"), std::string::npos) << why;
    EXPECT_EQ(why.find("json.exception"), std::string::npos) << why;
}

TEST(SnapshotFile, MemoryRunsCannotShareTheirBytes)
{
    // Two runs of guest memory backed by the same bytes of the file: a small file could then
    // fill all of guest RAM.
    VmState s = sample_state();
    s.memory = {{0x1000, 0x1000, 0}, {0x4000, 0x1000, 0}};
    Writer w;
    static std::vector<std::uint8_t> page(0x1000, 0xab);
    w.add_blob(page.data(), page.size());
    std::uint64_t xs = w.add_blob(s.vcpus[0].xsave.data(), s.vcpus[0].xsave.size());
    nlohmann::json doc = to_json(s, {xs});
    auto bytes = write_bytes(sample_state());
    EXPECT_NE(refusal(with_document(bytes, doc.dump())).find("overlap"), std::string::npos)
        << refusal(with_document(bytes, doc.dump()));
    doc["sections"]["memory"]["data"]["runs"][1]["blob"] = 0x1000;
    EXPECT_EQ(refusal(with_document(bytes, doc.dump())), "");
}

TEST(SnapshotFile, TheBootstrapProcessorNeverWaitsForASipi)
{
    VmState s = sample_state();
    s.vcpus[0].apic.run_state = hv::apic::RunState::WaitForSipi;
    EXPECT_NE(refusal(write_bytes(s)).find("vCPU 0 is the bootstrap processor"), std::string::npos)
        << refusal(write_bytes(s));
}

TEST(SnapshotFile, JsonSyntaxErrorIsRefused)
{
    auto bytes = write_bytes(sample_state());
    // Break the JSON, then make the CRC right again: only the JSON parser can catch it.
    std::size_t json_start = kHeaderSize;
    bytes[json_start] = '#';
    std::uint32_t crc = crc32(&bytes[24], bytes.size() - 24);
    std::memcpy(&bytes[16], &crc, 4);
    EXPECT_NE(refusal(bytes).find("not valid JSON"), std::string::npos) << refusal(bytes);
}

TEST(SnapshotFile, WriterReplacesAtomicallyAndReportsErrors)
{
    EXPECT_THROW(Writer().commit("/nonexistent/dir/x.snap", nlohmann::json::object()), hv::Error);
    char path[] = "/tmp/hvaccel-snapatomic-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    Writer().commit(path,
                    {{"hvaccel", {{"format", "1.0"}}}, {"sections", nlohmann::json::object()}});
    Reader r(path);
    EXPECT_TRUE(r.doc().contains("sections"));
    glob_t g{};
    EXPECT_EQ(glob((std::string(path) + ".tmp.*").c_str(), 0, nullptr, &g), GLOB_NOMATCH)
        << "a temporary file was left behind";
    globfree(&g);
    unlink(path);
}

// Another local user plants things beside a snapshot's target in a shared directory: a symlink
// at the temporary name the writer once used (FILE.tmp.PID), pointing at a file of the victim's,
// and a FIFO at the same name. The writer follows, reuses and waits on none of them; the
// snapshot is readable by its owner only.
TEST(SnapshotFile, WriterIgnoresFilesPlantedBesideTheTarget)
{
    char dir[] = "/tmp/hvaccel-snapplant-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    const std::string target = std::string(dir) + "/vm.snap";
    const std::string victim = std::string(dir) + "/victim";
    const std::string planted = target + ".tmp." + std::to_string(getpid());
    {
        std::ofstream(victim) << "precious";
    }
    ASSERT_EQ(symlink(victim.c_str(), planted.c_str()), 0);
    const nlohmann::json doc = {{"hvaccel", {{"format", "1.0"}}},
                                {"sections", nlohmann::json::object()}};
    Writer().commit(target, doc);
    std::string text;
    std::getline(std::ifstream(victim), text);
    EXPECT_EQ(text, "precious");
    struct stat st {};
    ASSERT_EQ(lstat(target.c_str(), &st), 0);
    EXPECT_TRUE(S_ISREG(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0600u);

    // A FIFO planted at the old name is never opened (opening it would block for a reader).
    unlink(planted.c_str());
    ASSERT_EQ(mkfifo(planted.c_str(), 0666), 0);
    Writer().commit(target, doc);
    EXPECT_TRUE(Reader(target).doc().contains("sections"));

    // The target itself a symlink to the victim: the rename replaces the link, not the victim.
    unlink(target.c_str());
    ASSERT_EQ(symlink(victim.c_str(), target.c_str()), 0);
    Writer().commit(target, doc);
    text.clear();
    std::getline(std::ifstream(victim), text);
    EXPECT_EQ(text, "precious");
    ASSERT_EQ(lstat(target.c_str(), &st), 0);
    EXPECT_TRUE(S_ISREG(st.st_mode));

    for (const auto& f : {target, victim, planted})
        unlink(f.c_str());
    EXPECT_EQ(rmdir(dir), 0) << "the writer left a file behind";
}
