// Disk images (core/storage): every image here is made by qemu-img / qemu-io, and what hvaccel
// reads from it is compared with what `qemu-img convert -O raw` makes of the same image — the
// differential check. Hostile headers are built by damaging a good image's header field by field.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <random>
#include <vector>

#include "core/base/error.hpp"
#include "core/storage/image.hpp"
#include "core/storage/qcow2_format.hpp"
#include "tests/core/disk_writes.hpp"
#include "tests/core/helpers.hpp"
#include "tests/support/process.hpp"

namespace {

using hv::storage::Format;
using hv::storage::open_image;
using hvtest::message_of;
using hvtest::TempDir;

bool have_qemu_img()
{
    return hv::support::run_process({"sh", "-c", "command -v qemu-img && command -v qemu-io"}, 10)
               .status == 0;
}

#define REQUIRE_QEMU_IMG()                                                                         \
    do {                                                                                           \
        if (!have_qemu_img())                                                                      \
            GTEST_SKIP() << "qemu-img/qemu-io are not installed (Debian: qemu-utils)";             \
    } while (0)

void sh(const std::vector<std::string>& argv)
{
    auto r = hv::support::run_process(argv, 60);
    ASSERT_EQ(r.status, 0) << argv[0] << " " << (argv.size() > 1 ? argv[1] : "") << ": " << r.err
                           << r.out;
}

std::vector<std::uint8_t> slurp(const std::string& path)
{
    std::ifstream f(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

void spit(const std::string& path, const std::vector<std::uint8_t>& bytes)
{
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

// A disk of `size` bytes: patterned runs at scattered offsets, zeros elsewhere.
std::vector<std::uint8_t> pattern_disk(std::size_t size)
{
    std::vector<std::uint8_t> d(size, 0);
    std::mt19937 rng(7);
    for (std::size_t at : {std::size_t{0}, size / 3 + 123, size / 2 - 700, size - 4096}) {
        for (std::size_t i = 0; i < 3000 && at + i < size; ++i)
            d[at + i] = static_cast<std::uint8_t>(rng());
    }
    return d;
}

// Everything hvaccel reads from `img`, in uneven pieces that straddle clusters.
std::vector<std::uint8_t> read_all(hv::storage::Image& img)
{
    std::vector<std::uint8_t> out(img.size());
    std::size_t at = 0, step = 1000;
    while (at < out.size()) {
        const std::size_t n = std::min(step, out.size() - at);
        img.read(at, std::span(out).subspan(at, n));
        at += n;
        step = step * 3 % 70001 + 1;
    }
    return out;
}

// hvaccel's view of `path` equals qemu-img's.
void expect_same_as_qemu(const TempDir& dir, const std::string& path, std::optional<Format> fmt)
{
    sh({"qemu-img", "convert", "-O", "raw", path, dir / "qemu-view.raw"});
    auto img = open_image(path, fmt);
    EXPECT_EQ(read_all(*img), slurp(dir / "qemu-view.raw")) << img->describe();
}

TEST(Storage, RawImageReadsTheFile)
{
    TempDir dir;
    auto disk = pattern_disk(256 * 1024);
    spit(dir / "d.raw", disk);
    auto img = open_image(dir / "d.raw");
    EXPECT_EQ(img->format(), Format::Raw);
    EXPECT_EQ(img->size(), disk.size());
    EXPECT_EQ(read_all(*img), disk);
    std::vector<std::uint8_t> one(1);
    EXPECT_NE(message_of([&] { img->read(disk.size(), one); }).find("past the disk's end"),
              std::string::npos);
}

TEST(Storage, Qcow2ReadsWhatQemuWroteAtEveryClusterSize)
{
    REQUIRE_QEMU_IMG();
    TempDir dir;
    auto disk = pattern_disk(3 * 1024 * 1024 + 4096);
    spit(dir / "d.raw", disk);
    for (const char* cs : {"512", "4096", "65536", "2097152"}) {
        for (const char* compat : {"0.10", "1.1"}) {
            SCOPED_TRACE(std::string("cluster_size=") + cs + " compat=" + compat);
            sh({"qemu-img", "convert", "-f", "raw", "-O", "qcow2", "-o",
                std::string("cluster_size=") + cs + ",compat=" + compat, dir / "d.raw",
                dir / "d.qcow2"});
            auto img = open_image(dir / "d.qcow2");
            EXPECT_EQ(img->format(), Format::Qcow2);
            EXPECT_EQ(img->size(), disk.size());
            EXPECT_EQ(read_all(*img), disk);
            // The data clusters are in the file; the zeros were never written.
            EXPECT_GT(img->allocated_bytes(), 0u);
            EXPECT_LE(img->allocated_bytes(), slurp(dir / "d.qcow2").size());
        }
    }
}

TEST(Storage, Qcow2CompressedClusters)
{
    REQUIRE_QEMU_IMG();
    TempDir dir;
    auto disk = pattern_disk(1024 * 1024);
    for (std::size_t i = 200000; i < 400000; ++i)
        disk[i] = static_cast<std::uint8_t>(i / 512);  // compresses well
    spit(dir / "d.raw", disk);
    for (const char* cs : {"4096", "65536"}) {
        sh({"qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", "-o",
            std::string("cluster_size=") + cs, dir / "d.raw", dir / "c.qcow2"});
        auto img = open_image(dir / "c.qcow2");
        EXPECT_EQ(read_all(*img), disk) << cs;
    }
}

TEST(Storage, Qcow2BackingFilesAndZeroClusters)
{
    REQUIRE_QEMU_IMG();
    TempDir dir;
    spit(dir / "base.raw", pattern_disk(1024 * 1024));
    sh({"qemu-img", "convert", "-f", "raw", "-O", "qcow2", dir / "base.raw", dir / "base.qcow2"});
    sh({"qemu-img", "create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", dir / "top.qcow2"});
    // Data over part of the base, a zero cluster hiding base data, and a write past the base's
    // data in an otherwise unallocated cluster.
    sh({"qemu-io", "-f", "qcow2", "-c", "write -P 0xaa 4096 8192", "-c", "write -z 65536 65536",
        "-c", "write -P 0x55 900000 1000", dir / "top.qcow2"});
    expect_same_as_qemu(dir, dir / "top.qcow2", Format::Qcow2);
    auto img = open_image(dir / "top.qcow2", Format::Qcow2);
    ASSERT_NE(img->backing(), nullptr);
    EXPECT_EQ(img->backing()->format(), Format::Qcow2);
    // The same chain with a raw base named without a format: probed, and raw.
    sh({"qemu-img", "create", "-f", "qcow2", "-b", "base.raw", "-F", "raw", dir / "top2.qcow2"});
    sh({"qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 512", dir / "top2.qcow2"});
    expect_same_as_qemu(dir, dir / "top2.qcow2", Format::Qcow2);
}

TEST(Storage, GuessedQcow2NeverOpensABackingFile)
{
    REQUIRE_QEMU_IMG();
    TempDir dir;
    spit(dir / "base.raw", pattern_disk(65536));
    sh({"qemu-img", "create", "-f", "qcow2", "-b", "base.raw", "-F", "raw", dir / "top.qcow2"});
    EXPECT_NE(message_of([&] { open_image(dir / "top.qcow2"); }).find("given as qcow2"),
              std::string::npos);
    EXPECT_NO_THROW(open_image(dir / "top.qcow2", Format::Qcow2));
    // And a raw file is never taken for QCOW2 when the format says raw.
    EXPECT_EQ(open_image(dir / "top.qcow2", Format::Raw)->format(), Format::Raw);
}

TEST(Storage, BackingChainThatLoopsIsRefused)
{
    REQUIRE_QEMU_IMG();
    TempDir dir;
    sh({"qemu-img", "create", "-f", "qcow2", dir / "a.qcow2", "1M"});
    sh({"qemu-img", "create", "-f", "qcow2", "-b", "a.qcow2", "-F", "qcow2", dir / "b.qcow2"});
    // Point a at b: a loop qemu-img would not make; the header edit is done by hand.
    sh({"qemu-img", "rebase", "-u", "-f", "qcow2", "-b", "b.qcow2", "-F", "qcow2",
        dir / "a.qcow2"});
    EXPECT_NE(message_of([&] { open_image(dir / "a.qcow2", Format::Qcow2); }).find("deeper than"),
              std::string::npos);
}

// --- hostile headers: a good image with one field damaged ---

void put_be32(std::vector<std::uint8_t>& b, std::size_t at, std::uint32_t v)
{
    for (int i = 0; i < 4; ++i)
        b[at + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v >> (24 - 8 * i));
}

void put_be64(std::vector<std::uint8_t>& b, std::size_t at, std::uint64_t v)
{
    put_be32(b, at, static_cast<std::uint32_t>(v >> 32));
    put_be32(b, at + 4, static_cast<std::uint32_t>(v));
}

TEST(Storage, HostileQcow2HeadersAreRefusedInOneLine)
{
    REQUIRE_QEMU_IMG();
    TempDir dir;
    spit(dir / "d.raw", pattern_disk(256 * 1024));
    sh({"qemu-img", "convert", "-f", "raw", "-O", "qcow2", dir / "d.raw", dir / "good.qcow2"});
    const auto good = slurp(dir / "good.qcow2");
    struct Case {
        const char* name;
        std::function<void(std::vector<std::uint8_t>&)> damage;
        const char* expect;
    };
    const Case cases[] = {
        {"version", [](auto& b) { put_be32(b, 4, 4); }, "version 4"},
        {"cluster bits", [](auto& b) { put_be32(b, 20, 31); }, "cluster size"},
        {"encryption", [](auto& b) { put_be32(b, 32, 1); }, "encrypted"},
        {"huge L1", [](auto& b) { put_be32(b, 36, 0x7fffffff); }, "too large"},
        {"small L1", [](auto& b) { put_be64(b, 24, 1ull << 50); }, "too small"},
        {"L1 past the end", [](auto& b) { put_be64(b, 40, 1ull << 40); }, "L1 table offset"},
        {"L1 misaligned", [](auto& b) { put_be64(b, 40, 0x10008); }, "L1 table offset"},
        {"no refcount table", [](auto& b) { put_be32(b, 56, 0); }, "refcount table"},
        {"refcount table past the end", [](auto& b) { put_be64(b, 48, 1ull << 40); },
         "refcount table offset"},
        {"unknown incompatible feature", [](auto& b) { put_be64(b, 72, 1ull << 40); },
         "unknown incompatible"},
        {"extended L2", [](auto& b) { put_be64(b, 72, 1u << 4); }, "extended L2"},
        {"refcount order", [](auto& b) { put_be32(b, 96, 9); }, "refcount order"},
        {"header length", [](auto& b) { put_be32(b, 100, 12); }, "header length"},
        {"snapshots", [](auto& b) { put_be32(b, 60, 1u << 30); }, "internal snapshots"},
        {"backing name outside",
         [](auto& b) {
             put_be64(b, 8, 0xfff0);
             put_be32(b, 16, 500);
         },
         "backing file name"},
        {"virtual size", [](auto& b) { put_be64(b, 24, ~0ull); }, "too large"},
    };
    for (const auto& c : cases) {
        auto bad = good;
        c.damage(bad);
        spit(dir / "bad.qcow2", bad);
        const std::string msg = message_of([&] { open_image(dir / "bad.qcow2", Format::Qcow2); });
        EXPECT_NE(msg.find(c.expect), std::string::npos) << c.name << ": " << msg;
        EXPECT_EQ(msg.find('\n'), std::string::npos) << c.name;
    }
    // Truncated anywhere inside the header: refused, never read past.
    for (std::size_t n : {0u, 3u, 50u, 80u}) {
        spit(dir / "short.qcow2", {good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n)});
        EXPECT_NE(message_of([&] { open_image(dir / "short.qcow2", Format::Qcow2); }), "") << n;
    }
}

TEST(Storage, DamagedTablesFailTheReadNotTheProcess)
{
    REQUIRE_QEMU_IMG();
    TempDir dir;
    spit(dir / "d.raw", pattern_disk(256 * 1024));
    sh({"qemu-img", "convert", "-f", "raw", "-O", "qcow2", dir / "d.raw", dir / "good.qcow2"});
    auto bytes = slurp(dir / "good.qcow2");
    auto v = hv::storage::qcow2::validate_header(bytes, bytes.size());
    ASSERT_TRUE(std::holds_alternative<hv::storage::qcow2::Header>(v));
    const auto h = std::get<hv::storage::qcow2::Header>(v);
    // L1[0] now points far past the end of the file.
    put_be64(bytes, h.l1_table_offset, (1ull << 40) | hv::storage::qcow2::kCopied);
    spit(dir / "bad.qcow2", bytes);
    auto img = open_image(dir / "bad.qcow2", Format::Qcow2);
    std::vector<std::uint8_t> buf(512);
    EXPECT_NE(message_of([&] { img->read(0, buf); }).find("damaged image at disk offset 0x0"),
              std::string::npos);
    // Reserved bits in an L1 entry.
    put_be64(bytes, h.l1_table_offset, 0x2);
    spit(dir / "bad2.qcow2", bytes);
    auto img2 = open_image(dir / "bad2.qcow2", Format::Qcow2);
    EXPECT_NE(message_of([&] { img2->read(0, buf); }).find("reserved bits"), std::string::npos);
}

// --- writing ---

// `qemu-img check`'s verdict: 0 clean, 3 leaked clusters only, 2 corruption, 1 not checked.
int qemu_check(const std::string& path)
{
    return hv::support::run_process({"qemu-img", "check", "-f", "qcow2", path}, 120).status;
}

// The disk as qemu-img reads it.
std::vector<std::uint8_t> qemu_view(const TempDir& dir, const std::string& path)
{
    auto r = hv::support::run_process(
        {"qemu-img", "convert", "-O", "raw", path, dir / "qemu-view.raw"}, 120);
    EXPECT_EQ(r.status, 0) << r.err;
    return slurp(dir / "qemu-view.raw");
}

// Writes through hvaccel, mirrored in `model`; every tenth write a range is read back.
void write_all(const std::string& path, std::vector<std::uint8_t>& model,
               const std::vector<hvtest::DiskWrite>& writes)
{
    auto img = open_image(path, Format::Qcow2, true);
    ASSERT_TRUE(img->writable());
    for (std::size_t i = 0; i < writes.size(); ++i) {
        img->write(writes[i].offset, writes[i].bytes);
        hvtest::apply(model, writes[i]);
        if (i % 10 == 9) {
            const auto& w = writes[i / 2];
            std::vector<std::uint8_t> back(w.bytes.size());
            img->read(w.offset, back);
            ASSERT_TRUE(std::equal(back.begin(), back.end(),
                                   model.begin() + static_cast<std::ptrdiff_t>(w.offset)));
        }
    }
    img->flush();
}

TEST(Storage, Qcow2WritesMatchQemusViewAndCheckClean)
{
    REQUIRE_QEMU_IMG();
    TempDir dir;
    constexpr std::uint64_t kSize = 8 << 20;
    for (const char* cs : {"512", "65536", "2097152"}) {
        for (const char* compat : {"0.10", "1.1"}) {
            SCOPED_TRACE(std::string("cluster_size=") + cs + " compat=" + compat);
            const std::string img = dir / "w.qcow2";
            sh({"qemu-img", "create", "-q", "-f", "qcow2", "-o",
                std::string("cluster_size=") + cs + ",compat=" + compat, img, "8M"});
            std::vector<std::uint8_t> model(kSize, 0);
            write_all(img, model, hvtest::disk_writes(kSize, 11, 60, 100000));
            EXPECT_EQ(qemu_check(img), 0);
            EXPECT_EQ(qemu_view(dir, img), model);
            EXPECT_EQ(read_all(*open_image(img, Format::Qcow2)), model);
        }
    }
}

TEST(Storage, Qcow2WritesOverCompressedZeroAndBackingClusters)
{
    REQUIRE_QEMU_IMG();
    TempDir dir;
    auto base = pattern_disk(4 << 20);
    spit(dir / "base.raw", base);
    // The compressed image itself: every write copies a compressed cluster.
    sh({"qemu-img", "convert", "-q", "-c", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=4096",
        dir / "base.raw", dir / "c.qcow2"});
    auto model = base;
    write_all(dir / "c.qcow2", model, hvtest::disk_writes(base.size(), 12, 40, 20000));
    EXPECT_EQ(qemu_check(dir / "c.qcow2"), 0);
    EXPECT_EQ(qemu_view(dir, dir / "c.qcow2"), model);
    // An overlay with zero clusters over backing data; the backing file stays as it was.
    sh({"qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw",
        dir / "top.qcow2"});
    sh({"qemu-io", "-f", "qcow2", "-c", "write -z 65536 131072", dir / "top.qcow2"});
    model = qemu_view(dir, dir / "top.qcow2");
    write_all(dir / "top.qcow2", model, hvtest::disk_writes(base.size(), 13, 40, 100000));
    EXPECT_EQ(qemu_check(dir / "top.qcow2"), 0);
    EXPECT_EQ(qemu_view(dir, dir / "top.qcow2"), model);
    EXPECT_EQ(slurp(dir / "base.raw"), base);
}

TEST(Storage, Qcow2RefcountTableGrowsAsTheFileDoes)
{
    REQUIRE_QEMU_IMG();
    TempDir dir;
    // 512-byte clusters: the first refcount table covers 8 MiB of file.
    const std::string img = dir / "g.qcow2";
    sh({"qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=512", img, "32M"});
    std::vector<std::uint8_t> model(32 << 20, 0);
    std::vector<hvtest::DiskWrite> writes;
    for (std::uint64_t at = 0; at < (20u << 20); at += 65536)
        writes.push_back(
            {at, std::vector<std::uint8_t>(65536, static_cast<std::uint8_t>(at >> 16))});
    write_all(img, model, writes);
    EXPECT_EQ(qemu_check(img), 0);
    EXPECT_EQ(qemu_view(dir, img), model);
    auto bytes = slurp(img);
    auto h = std::get<hv::storage::qcow2::Header>(
        hv::storage::qcow2::validate_header(bytes, bytes.size()));
    EXPECT_GT(h.refcount_table_clusters, 1u);
}

TEST(Storage, Qcow2WritesLeaveInternalSnapshotsIntact)
{
    REQUIRE_QEMU_IMG();
    TempDir dir;
    const std::string img = dir / "s.qcow2";
    sh({"qemu-img", "create", "-q", "-f", "qcow2", img, "4M"});
    sh({"qemu-io", "-f", "qcow2", "-c", "write -P 0x61 0 1M", "-c", "write -P 0x62 3M 512k", img});
    sh({"qemu-img", "snapshot", "-c", "before", img});
    const auto before = qemu_view(dir, img);
    auto model = before;
    write_all(img, model, hvtest::disk_writes(before.size(), 14, 50, 300000));
    EXPECT_EQ(qemu_check(img), 0);
    EXPECT_EQ(qemu_view(dir, img), model);
    sh({"qemu-img", "snapshot", "-a", "before", img});
    EXPECT_EQ(qemu_view(dir, img), before);
    EXPECT_EQ(qemu_check(img), 0);
}

TEST(Storage, Qcow2KilledBetweenAnyTwoWritesLosesNothingAcknowledged)
{
    REQUIRE_QEMU_IMG();
    TempDir dir;
    // 512-byte clusters, the first refcount table nearly full: the writes below allocate L2
    // tables, refcount blocks and a larger refcount table, and the child is stopped before each
    // pwrite() of theirs in turn.
    const std::string pristine = dir / "pristine.qcow2", work = dir / "work.qcow2";
    sh({"qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=512", pristine, "16M"});
    // 8024 KiB of data leave the file ten clusters short of the 8 MiB the table covers.
    sh({"qemu-io", "-f", "qcow2", "-c", "write -P 0x41 0 8024k", pristine});
    const auto start = qemu_view(dir, pristine);
    constexpr unsigned long kSeed = 5, kCount = 8, kMaxLen = 3000;
    const auto writes = hvtest::disk_writes(start.size(), kSeed, kCount, kMaxLen);
    bool finished = false;
    for (int k = 1; k < 3000 && !finished; ++k) {
        SCOPED_TRACE("stopped before image write " + std::to_string(k));
        std::filesystem::copy_file(pristine, work,
                                   std::filesystem::copy_options::overwrite_existing);
        hv::support::ProcessOptions o;
        o.timeout_s = 60;
        o.env = {"HV_FAULT_INJECT=disk_exit_after=" + std::to_string(k)};
        auto r = hv::support::run_process({HV_DISK_WRITER, work, "qcow2", std::to_string(kSeed),
                                           std::to_string(kCount), std::to_string(kMaxLen)},
                                          o);
        ASSERT_TRUE(r.status == 0 || r.status == 137) << r.err;
        finished = r.status == 0;
        std::size_t acked = 0;
        for (std::size_t at = 0; (at = r.out.find("acked ", at)) != std::string::npos; at += 6)
            ++acked;
        const int check = qemu_check(work);
        ASSERT_TRUE(check == 0 || check == 3) << "qemu-img check: " << check;
        // Every acknowledged write is there; only the one in flight may be half done.
        auto expect = start;
        for (std::size_t i = 0; i < acked; ++i)
            hvtest::apply(expect, writes[i]);
        auto view = qemu_view(dir, work);
        ASSERT_EQ(view.size(), expect.size());
        if (acked < writes.size()) {
            const auto& w = writes[acked];
            std::copy(view.begin() + static_cast<std::ptrdiff_t>(w.offset),
                      view.begin() + static_cast<std::ptrdiff_t>(w.offset + w.bytes.size()),
                      expect.begin() + static_cast<std::ptrdiff_t>(w.offset));
        }
        const auto diff = std::mismatch(view.begin(), view.end(), expect.begin());
        ASSERT_TRUE(diff.first == view.end())
            << acked << " writes acknowledged; first difference at " << (diff.first - view.begin())
            << " (in flight: " << (acked < writes.size() ? writes[acked].offset : 0) << "+"
            << (acked < writes.size() ? writes[acked].bytes.size() : 0) << ")";
    }
    EXPECT_TRUE(finished);
    auto bytes = slurp(work);
    auto h = std::get<hv::storage::qcow2::Header>(
        hv::storage::qcow2::validate_header(bytes, bytes.size()));
    EXPECT_GT(h.refcount_table_clusters, 1u) << "the sequence should have grown the refcount table";
}

TEST(Storage, ReadOnlyAndUnwritableImagesRefuseWrites)
{
    REQUIRE_QEMU_IMG();
    TempDir dir;
    sh({"qemu-img", "create", "-q", "-f", "qcow2", dir / "r.qcow2", "1M"});
    std::vector<std::uint8_t> one(1, 1);
    auto ro = open_image(dir / "r.qcow2", Format::Qcow2);
    EXPECT_NE(message_of([&] { ro->write(0, one); }).find("read-only"), std::string::npos);
    ro.reset();  // its read lock would keep the writer out
    auto rw = open_image(dir / "r.qcow2", Format::Qcow2, true);
    EXPECT_NE(message_of([&] { rw->write(1 << 20, one); }).find("past the disk's end"),
              std::string::npos);
    // A dirty image (lazy refcounts not yet repaired) is not written.
    auto bytes = slurp(dir / "r.qcow2");
    put_be64(bytes, 72, hv::storage::qcow2::incompat::kDirty);
    spit(dir / "dirty.qcow2", bytes);
    EXPECT_NE(message_of([&] {
                  open_image(dir / "dirty.qcow2", Format::Qcow2, true);
              }).find("qemu-img check -r all"),
              std::string::npos);
    EXPECT_NO_THROW(open_image(dir / "dirty.qcow2", Format::Qcow2));
    // 64-bit refcounts are read, not written.
    sh({"qemu-img", "create", "-q", "-f", "qcow2", "-o", "refcount_bits=64", dir / "r64.qcow2",
        "1M"});
    EXPECT_NE(message_of([&] {
                  open_image(dir / "r64.qcow2", Format::Qcow2, true);
              }).find("16-bit refcounts"),
              std::string::npos);
}

// One writer or any number of readers per image file; QEMU's own locks meet hvaccel's.
TEST(Storage, AnImageHasOneWriterOrManyReaders)
{
    REQUIRE_QEMU_IMG();
    TempDir dir;
    sh({"qemu-img", "create", "-q", "-f", "qcow2", dir / "l.qcow2", "1M"});
    {
        auto a = open_image(dir / "l.qcow2", Format::Qcow2);
        auto b = open_image(dir / "l.qcow2", Format::Qcow2);
        EXPECT_NE(
            message_of([&] { open_image(dir / "l.qcow2", Format::Qcow2, true); }).find("in use"),
            std::string::npos);
    }
    auto w = open_image(dir / "l.qcow2", Format::Qcow2, true);
    EXPECT_NE(message_of([&] { open_image(dir / "l.qcow2", Format::Qcow2); }).find("in use"),
              std::string::npos);
    EXPECT_NE(message_of([&] { open_image(dir / "l.qcow2", std::nullopt, true); }).find("in use"),
              std::string::npos);
    // qemu-img refuses the image hvaccel writes (its check takes a shared lock).
    auto q = hv::support::run_process({"qemu-img", "check", dir / "l.qcow2"}, 30);
    EXPECT_NE(q.status, 0);
    EXPECT_NE(q.err.find("lock"), std::string::npos) << q.err;
    w.reset();
    EXPECT_NO_THROW(open_image(dir / "l.qcow2", Format::Qcow2, true));
}

// A damaged or hostile image cannot turn a guest write into a metadata overwrite.
TEST(Storage, WritesNeverLandOnTheImagesMetadata)
{
    REQUIRE_QEMU_IMG();
    TempDir dir;
    sh({"qemu-img", "create", "-q", "-f", "qcow2", dir / "m.qcow2", "1G"});  // 2 L1 entries
    sh({"qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 64k", dir / "m.qcow2"});
    auto bytes = slurp(dir / "m.qcow2");
    const auto h = std::get<hv::storage::qcow2::Header>(
        hv::storage::qcow2::validate_header(bytes, bytes.size()));
    const std::uint64_t l2 =
        hv::storage::qcow2::be64(&bytes[h.l1_table_offset]) & hv::storage::qcow2::kOffsetMask;
    // The first data cluster's L2 entry now points at the refcount table.
    auto bad = bytes;
    put_be64(bad, l2, h.refcount_table_offset | hv::storage::qcow2::kCopied);
    spit(dir / "alias.qcow2", bad);
    auto img = open_image(dir / "alias.qcow2", Format::Qcow2, true);
    std::vector<std::uint8_t> data(512, 0xee);
    EXPECT_NE(message_of([&] { img->write(0, data); }).find("also the image's metadata"),
              std::string::npos);
    EXPECT_EQ(slurp(dir / "alias.qcow2"), bad);  // nothing was written
    // Two L1 entries sharing one L2 table: opened read-only only.
    auto twice = bytes;
    put_be64(twice, h.l1_table_offset + 8, l2 | hv::storage::qcow2::kCopied);
    spit(dir / "twice.qcow2", twice);
    EXPECT_NE(message_of([&] {
                  open_image(dir / "twice.qcow2", Format::Qcow2, true);
              }).find("metadata overlaps itself"),
              std::string::npos);
    EXPECT_NO_THROW(open_image(dir / "twice.qcow2", Format::Qcow2));
}

// Internal snapshots made, applied and deleted by hvaccel and by qemu-img, in every mix, over
// data written by both; qemu-img check stays clean throughout.
TEST(Storage, InternalSnapshotsInteroperateWithQemuImg)
{
    REQUIRE_QEMU_IMG();
    TempDir dir;
    for (const char* opts :
         {"cluster_size=65536", "cluster_size=512", "cluster_size=4096,compat=0.10"}) {
        SCOPED_TRACE(opts);
        const std::string img = dir / "snap.qcow2";
        sh({"qemu-img", "create", "-q", "-f", "qcow2", "-o", opts, img, "4M"});
        sh({"qemu-io", "-f", "qcow2", "-c", "write -P 0x61 0 1M", img});
        const auto v1 = qemu_view(dir, img);
        hv::storage::create_disk_snapshot(img, "one");  // ours
        EXPECT_EQ(qemu_check(img), 0);
        auto model = v1;
        write_all(img, model, hvtest::disk_writes(v1.size(), 21, 30, 200000));
        EXPECT_EQ(qemu_check(img), 0);
        sh({"qemu-img", "snapshot", "-c", "two", img});  // theirs
        const auto v2 = qemu_view(dir, img);
        EXPECT_EQ(v2, model);
        write_all(img, model, hvtest::disk_writes(v1.size(), 22, 30, 200000));
        // Both tools list both snapshots.
        auto list = hv::storage::list_disk_snapshots(img);
        ASSERT_EQ(list.size(), 2u);
        EXPECT_EQ(list[0].name, "one");
        EXPECT_EQ(list[1].name, "two");
        auto ql = hv::support::run_process({"qemu-img", "snapshot", "-l", img}, 60);
        EXPECT_NE(ql.out.find("one"), std::string::npos);
        EXPECT_NE(ql.out.find("two"), std::string::npos);
        // Apply ours, then theirs; each gives back what the disk held when it was taken.
        hv::storage::apply_disk_snapshot(img, "one");
        EXPECT_EQ(qemu_check(img), 0);
        EXPECT_EQ(qemu_view(dir, img), v1);
        EXPECT_EQ(read_all(*open_image(img, Format::Qcow2)), v1);
        sh({"qemu-img", "snapshot", "-a", "two", img});
        EXPECT_EQ(qemu_view(dir, img), v2);
        hv::storage::apply_disk_snapshot(img, "two");
        EXPECT_EQ(qemu_view(dir, img), v2);
        // Delete ours by name and theirs by ID; the data stays, nothing leaks.
        hv::storage::delete_disk_snapshot(img, "one");
        EXPECT_EQ(qemu_check(img), 0);
        hv::storage::delete_disk_snapshot(img, "2");
        EXPECT_EQ(qemu_check(img), 0);
        EXPECT_TRUE(hv::storage::list_disk_snapshots(img).empty());
        EXPECT_EQ(qemu_view(dir, img), v2);
        // Errors name what is wrong.
        EXPECT_NE(message_of([&] {
                      hv::storage::apply_disk_snapshot(img, "nope");
                  }).find("no snapshot named 'nope'"),
                  std::string::npos);
        hv::storage::create_disk_snapshot(img, "dup");
        EXPECT_NE(message_of([&] {
                      hv::storage::create_disk_snapshot(img, "dup");
                  }).find("exists already"),
                  std::string::npos);
        EXPECT_EQ(qemu_check(img), 0);
    }
}

TEST(Storage, FormatNames)
{
    EXPECT_EQ(hv::storage::parse_format("raw"), Format::Raw);
    EXPECT_EQ(hv::storage::parse_format("qcow2"), Format::Qcow2);
    EXPECT_NE(message_of([] { hv::storage::parse_format("vmdk"); }).find("raw or qcow2"),
              std::string::npos);
}

}  // namespace
