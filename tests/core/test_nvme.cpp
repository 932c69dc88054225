// The NVMe controller (core/devices/nvme.hpp) driven as a guest driver would — registers through
// BAR0, queues and data in guest RAM, MSI-X through its table — without KVM; and the PRP walker
// on well-formed and hostile lists.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <vector>

#include "core/devices/nvme.hpp"
#include "tests/core/helpers.hpp"
#include "tests/support/process.hpp"

namespace {

using namespace hv;
using namespace hv::dev;
namespace st = hv::dev::nvme::status;

constexpr std::uint64_t kPage = 4096;

// --- PRP walker ---

struct PrpFixture : ::testing::Test {
    GuestMemory mem{16 << 20};
    void put(std::uint64_t gpa, std::uint64_t v) { mem.write_checked(gpa, &v, 8); }
};

TEST_F(PrpFixture, FirstPageWithOffsetSecondPageAndLists)
{
    // Within the first page, from an offset.
    auto w = nvme::walk_prps(mem, 0x10100, 0, 0x200, 12);
    EXPECT_EQ(w.status, st::kSuccess);
    EXPECT_EQ(w.segments, (std::vector<nvme::Segment>{{0x10100, 0x200}}));
    // Two pages: PRP2 is the second page.
    w = nvme::walk_prps(mem, 0x10800, 0x30000, 0x1000, 12);
    EXPECT_EQ(w.segments, (std::vector<nvme::Segment>{{0x10800, 0x800}, {0x30000, 0x800}}));
    // A list starting inside a page; adjacent pages merge.
    put(0x50010, 0x61000);
    put(0x50018, 0x62000);
    put(0x50020, 0x70000);
    w = nvme::walk_prps(mem, 0x60000, 0x50010, 4 * kPage, 12);
    EXPECT_EQ(w.status, st::kSuccess);
    EXPECT_EQ(w.segments, (std::vector<nvme::Segment>{{0x60000, 0x3000}, {0x70000, 0x1000}}));
    // A list whose page ends after one entry: the last slot chains to the next list page.
    put(0x80FF0, 0x91000);
    put(0x80FF8, 0xA0000);  // chain
    put(0xA0000, 0x92000);
    put(0xA0008, 0x93000);
    w = nvme::walk_prps(mem, 0x90000, 0x80FF0, 4 * kPage, 12);
    EXPECT_EQ(w.status, st::kSuccess);
    EXPECT_EQ(w.segments, (std::vector<nvme::Segment>{{0x90000, 0x4000}}));
}

TEST_F(PrpFixture, BadOffsetsOutsideRamAndLoopsFailCleanly)
{
    EXPECT_EQ(nvme::walk_prps(mem, 0x10002, 0, 16, 12).status, st::kPrpOffsetInvalid);
    EXPECT_EQ(nvme::walk_prps(mem, 0x10000, 0x30010, 0x2000, 12).status, st::kPrpOffsetInvalid);
    EXPECT_EQ(nvme::walk_prps(mem, 0x10000, 0x50004, 0x3000, 12).status, st::kPrpOffsetInvalid);
    put(0x50000, 0x61008);  // a data entry with an offset
    EXPECT_EQ(nvme::walk_prps(mem, 0x10000, 0x50000, 0x3000, 12).status, st::kPrpOffsetInvalid);
    // Outside guest RAM: the first page, the second, the list, a listed page.
    EXPECT_EQ(nvme::walk_prps(mem, 1ull << 40, 0, 16, 12).status, st::kDataTransferError);
    EXPECT_EQ(nvme::walk_prps(mem, 0x10000, 1ull << 40, 0x2000, 12).status, st::kDataTransferError);
    EXPECT_EQ(nvme::walk_prps(mem, 0x10000, 1ull << 40, 0x3000, 12).status, st::kDataTransferError);
    put(0x50000, 1ull << 40);
    EXPECT_EQ(nvme::walk_prps(mem, 0x10000, 0x50000, 0x3000, 12).status, st::kDataTransferError);
    // A list page whose chain points at itself: refused, not followed forever.
    put(0x70FF8, 0x70FF8);
    const auto w = nvme::walk_prps(mem, 0x10000, 0x70FF8, 64 * kPage, 12);
    EXPECT_EQ(w.status, st::kDataTransferError);
    EXPECT_TRUE(w.segments.empty());
}

// --- the controller ---

std::vector<std::uint8_t> slurp(const std::string& path)
{
    std::ifstream f(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

// A guest driver's view: admin queue at 0x10000/0x11000, I/O queue 1 at 0x12000/0x13000.
class Nvme : public ::testing::Test {
  protected:
    static constexpr std::uint64_t kAsq = 0x10000, kAcq = 0x11000, kIoSq = 0x12000, kIoCq = 0x13000,
                                   kBuf = 0x100000, kLists = 0x200000;
    static constexpr std::uint32_t kAdminEntries = 8, kIoEntries = 4;
    static constexpr std::size_t kDiskBytes = 1 << 20;

    Nvme() { make(false); }

    void make(bool read_only)
    {
        ctl.reset();
        {
            std::vector<std::uint8_t> d(kDiskBytes);
            for (std::size_t i = 0; i < d.size(); ++i)
                d[i] = static_cast<std::uint8_t>(i * 7 + i / 512);
            std::ofstream(disk, std::ios::binary | std::ios::trunc)
                .write(reinterpret_cast<const char*>(d.data()),
                       static_cast<std::streamsize>(d.size()));
        }
        auto image = storage::open_image(disk, storage::Format::Raw, !read_only);
        ctl = std::make_unique<NvmeController>(
            mem, std::move(image), NvmeController::Options{"SN-TEST", read_only}, [](unsigned) {},
            [this](unsigned e, const MsixEntry& m) {
                sent.push_back({e, m.data});
            },
            0xC000'0000, 0xC000'4000);
        ctl->config_write(pci::kCommand, 2, pci::kCommandMemory | pci::kCommandBusMaster);
        sq_tail.fill(0);
        cq_head.fill(0);
        phase.fill(true);
    }

    void reg32(std::uint32_t off, std::uint32_t v) { ctl->bar_device(0)->write(off, 4, v); }
    std::uint32_t reg32(std::uint32_t off)
    {
        return static_cast<std::uint32_t>(ctl->bar_device(0)->read(off, 4));
    }

    void enable()
    {
        reg32(nvme::kAqa, ((kAdminEntries - 1) << 16) | (kAdminEntries - 1));
        ctl->bar_device(0)->write(nvme::kAsq, 8, kAsq);
        ctl->bar_device(0)->write(nvme::kAcq, 8, kAcq);
        reg32(nvme::kCc, 1 | (6u << 16) | (4u << 20));
        ASSERT_EQ(reg32(nvme::kCsts) & 3u, 1u);
    }

    struct Cqe {
        std::uint32_t dw0 = 0;
        std::uint16_t status = 0xFFFF;  // the code as nvme::status has it (type << 8 | code)
        std::uint16_t cid = 0;
        std::uint16_t sqhd = 0;
        bool dnr = false;
    };

    void submit(unsigned qid, std::array<std::uint32_t, 16> dw)
    {
        const std::uint64_t base = qid == 0 ? kAsq : kIoSq;
        const std::uint32_t entries = qid == 0 ? kAdminEntries : kIoEntries;
        dw[0] |= std::uint32_t{next_cid++} << 16;
        mem.write_checked(base + sq_tail[qid] * 64, dw.data(), 64);
        sq_tail[qid] = (sq_tail[qid] + 1) % entries;
        reg32(0x1000 + qid * 8, sq_tail[qid]);
    }

    // The next completion of queue `qid`, if the controller posted one.
    std::optional<Cqe> reap(unsigned qid)
    {
        const std::uint64_t base = qid == 0 ? kAcq : kIoCq;
        const std::uint32_t entries = qid == 0 ? kAdminEntries : kIoEntries;
        std::array<std::uint32_t, 4> e{};
        mem.read(base + cq_head[qid] * 16, e.data(), 16);
        if (((e[3] >> 16) & 1) != (phase[qid] ? 1u : 0u))
            return std::nullopt;
        Cqe c;
        c.dw0 = e[0];
        c.sqhd = static_cast<std::uint16_t>(e[2]);
        c.cid = static_cast<std::uint16_t>(e[3]);
        const std::uint32_t sf = e[3] >> 17;
        c.status = static_cast<std::uint16_t>((sf & 0xFF) | (((sf >> 8) & 7) << 8));
        c.dnr = (sf >> 14) & 1;
        cq_head[qid] = (cq_head[qid] + 1) % entries;
        if (cq_head[qid] == 0)
            phase[qid] = !phase[qid];
        reg32(0x1000 + qid * 8 + 4, cq_head[qid]);
        return c;
    }

    // Submits and returns the completion's status.
    std::uint16_t run(unsigned qid, std::array<std::uint32_t, 16> dw, std::uint32_t* dw0 = nullptr)
    {
        submit(qid, dw);
        auto c = reap(qid);
        EXPECT_TRUE(c.has_value());
        if (!c)
            return 0xFFFF;
        if (dw0)
            *dw0 = c->dw0;
        return c->status;
    }

    void io_queues(bool interrupts = true, std::uint32_t vector = 1)
    {
        ASSERT_EQ(
            run(0, {0x05, 0, 0, 0, 0, 0, static_cast<std::uint32_t>(kIoCq), 0, 0, 0,
                    1u | ((kIoEntries - 1) << 16), 1u | (interrupts ? 2u : 0u) | (vector << 16)}),
            st::kSuccess);
        ASSERT_EQ(run(0, {0x01, 0, 0, 0, 0, 0, static_cast<std::uint32_t>(kIoSq), 0, 0, 0,
                          1u | ((kIoEntries - 1) << 16), 1u | (1u << 16)}),
                  st::kSuccess);
    }

    static std::array<std::uint32_t, 16> rw(std::uint8_t op, std::uint64_t slba,
                                            std::uint32_t blocks, std::uint64_t prp1,
                                            std::uint64_t prp2 = 0)
    {
        return {op,
                1,
                0,
                0,
                0,
                0,
                static_cast<std::uint32_t>(prp1),
                static_cast<std::uint32_t>(prp1 >> 32),
                static_cast<std::uint32_t>(prp2),
                static_cast<std::uint32_t>(prp2 >> 32),
                static_cast<std::uint32_t>(slba),
                static_cast<std::uint32_t>(slba >> 32),
                blocks - 1};
    }

    hvtest::TempDir dir;
    std::string disk = dir / "disk.raw";
    GuestMemory mem{64 << 20};
    std::unique_ptr<NvmeController> ctl;
    std::vector<std::pair<unsigned, std::uint32_t>> sent;
    std::array<std::uint32_t, 2> sq_tail{}, cq_head{};
    std::array<bool, 2> phase{};
    std::uint16_t next_cid = 1;
};

TEST_F(Nvme, RegistersAndBarSizes)
{
    const std::uint64_t cap = ctl->bar_device(0)->read(nvme::kCap, 8);
    EXPECT_EQ(cap & 0xFFFF, nvme::kMaxEntries - 1);  // MQES
    EXPECT_TRUE(cap & (1ull << 16));                 // CQR
    EXPECT_EQ((cap >> 32) & 0xF, 0u);                // DSTRD: 4-byte doorbell stride
    EXPECT_TRUE(cap & (1ull << 37));                 // CSS: NVM command set
    EXPECT_EQ(reg32(nvme::kVs), 0x00010400u);
    // BAR0 is 16 KiB: all-ones written, the size bits read back as zero.
    ctl->config_write(pci::kBar0, 4, 0xFFFF'FFFF);
    EXPECT_EQ(ctl->config_read(pci::kBar0, 4) & ~0xFu, ~(nvme::kBar0Size - 1));
    EXPECT_EQ(ctl->config_read(pci::kVendorId, 2), nvme::kVendor);
    EXPECT_EQ(ctl->config_read(0x08, 4) >> 8, nvme::kClass);
}

TEST_F(Nvme, EnableFailsOnABadAdminQueueAndResetRecovers)
{
    reg32(nvme::kAqa, 0);  // one-entry queues
    ctl->bar_device(0)->write(nvme::kAsq, 8, kAsq);
    ctl->bar_device(0)->write(nvme::kAcq, 8, kAcq);
    reg32(nvme::kCc, 1 | (6u << 16) | (4u << 20));
    EXPECT_EQ(reg32(nvme::kCsts) & 3u, 2u);  // CFS, not ready
    reg32(nvme::kCc, 0);
    EXPECT_EQ(reg32(nvme::kCsts), 0u);
    enable();
}

TEST_F(Nvme, IdentifyControllerAndNamespace)
{
    enable();
    // Identify controller into a buffer that starts mid-page: PRP1 with an offset, PRP2 next page.
    ASSERT_EQ(run(0, {0x06, 0, 0, 0, 0, 0, static_cast<std::uint32_t>(kBuf + 0x800), 0,
                      static_cast<std::uint32_t>(kBuf + 0x1000), 0, 1}),
              st::kSuccess);
    std::vector<std::uint8_t> id(4096);
    mem.read(kBuf + 0x800, id.data(), id.size());
    EXPECT_EQ(id[0] | (id[1] << 8), nvme::kVendor);
    EXPECT_EQ(std::string(reinterpret_cast<char*>(&id[4]), 7), "SN-TEST");
    EXPECT_EQ(id[77], nvme::kMdts);
    EXPECT_EQ(id[512], 0x66);
    EXPECT_EQ(id[513], 0x44);
    EXPECT_EQ(id[516], 1);            // NN
    EXPECT_EQ(id[520] & 0x0C, 0x0C);  // ONCS: DSM, Write Zeroes
    // Identify namespace 1: its size in 512-byte blocks, LBA format 0 = 512 bytes.
    ASSERT_EQ(run(0, {0x06, 1, 0, 0, 0, 0, static_cast<std::uint32_t>(kBuf), 0, 0, 0, 0}),
              st::kSuccess);
    std::uint64_t nsze = 0;
    std::uint32_t lbaf0 = 0;
    mem.read(kBuf, &nsze, 8);
    mem.read(kBuf + 128, &lbaf0, 4);
    EXPECT_EQ(nsze, kDiskBytes / 512);
    EXPECT_EQ((lbaf0 >> 16) & 0xFF, 9u);
    EXPECT_EQ(run(0, {0x06, 2, 0, 0, 0, 0, static_cast<std::uint32_t>(kBuf), 0, 0, 0, 0}),
              st::kInvalidNamespace);
    EXPECT_EQ(run(0, {0x06, 0, 0, 0, 0, 0, static_cast<std::uint32_t>(kBuf), 0, 0, 0, 0x77}),
              st::kInvalidField);
}

TEST_F(Nvme, WritesAndReadsThroughEveryPrpShape)
{
    enable();
    io_queues();
    struct Shape {
        std::uint64_t slba;
        std::uint32_t blocks;
        std::uint64_t prp1, prp2;
    };
    // One page; two pages; a list from inside a page; a list that chains.
    std::uint64_t l = kLists;
    for (std::uint64_t i = 0; i < 16; ++i) {
        const std::uint64_t v = kBuf + 0x40000 + (i + 1) * kPage;
        mem.write_checked(l + 0x10 + i * 8, &v, 8);
    }
    const std::uint64_t chain_page = kLists + 0x10000;
    const std::uint64_t d1 = kBuf + 0x80000 + kPage, chain_target = kLists + 0x20000;
    mem.write_checked(chain_page + 0xFF0, &d1, 8);
    mem.write_checked(chain_page + 0xFF8, &chain_target, 8);
    for (std::uint64_t i = 0; i < 14; ++i) {
        const std::uint64_t v = kBuf + 0x80000 + (i + 2) * kPage;
        mem.write_checked(chain_target + i * 8, &v, 8);
    }
    const Shape shapes[] = {{0, 8, kBuf, 0},
                            {100, 8, kBuf + 0x20200, kBuf + 0x30000},
                            {300, 64, kBuf + 0x40000, l + 0x10},
                            {700, 128, kBuf + 0x80000, chain_page + 0xFF0}};
    for (const auto& s : shapes) {
        SCOPED_TRACE(s.slba);
        const std::uint64_t bytes = std::uint64_t{s.blocks} * 512;
        // The guest's buffer, as the PRPs lay it out.
        std::vector<std::uint8_t> pattern(bytes);
        for (std::size_t i = 0; i < pattern.size(); ++i)
            pattern[i] = static_cast<std::uint8_t>(i * 13 + s.slba);
        auto walk = nvme::walk_prps(mem, s.prp1, s.prp2, bytes, 12);
        ASSERT_EQ(walk.status, st::kSuccess);
        std::size_t at = 0;
        for (auto& seg : walk.segments) {
            mem.write_checked(seg.gpa, pattern.data() + at, seg.len);
            at += seg.len;
        }
        ASSERT_EQ(run(1, rw(0x01, s.slba, s.blocks, s.prp1, s.prp2)), st::kSuccess);
        // In the image...
        auto file = slurp(disk);
        EXPECT_TRUE(std::equal(pattern.begin(), pattern.end(),
                               file.begin() + static_cast<std::ptrdiff_t>(s.slba * 512)));
        // ... and back, into a cleared buffer.
        for (auto& seg : walk.segments)
            mem.write_checked(seg.gpa, std::vector<std::uint8_t>(seg.len, 0).data(), seg.len);
        ASSERT_EQ(run(1, rw(0x02, s.slba, s.blocks, s.prp1, s.prp2)), st::kSuccess);
        std::vector<std::uint8_t> back(bytes);
        at = 0;
        for (auto& seg : walk.segments) {
            mem.read(seg.gpa, back.data() + at, seg.len);
            at += seg.len;
        }
        EXPECT_EQ(back, pattern);
    }
    EXPECT_EQ(ctl->counters().written_bytes, (8u + 8 + 64 + 128) * 512);
}

TEST_F(Nvme, CommandErrorsCompleteWithTheSpecStatus)
{
    enable();
    io_queues();
    const std::uint64_t blocks = kDiskBytes / 512;
    EXPECT_EQ(run(1, rw(0x02, blocks - 1, 2, kBuf)), st::kLbaOutOfRange);
    EXPECT_EQ(run(1, rw(0x02, ~0ull, 1, kBuf)), st::kLbaOutOfRange);
    EXPECT_EQ(run(1, rw(0x02, 0, 8, kBuf + 2)), st::kPrpOffsetInvalid);
    EXPECT_EQ(run(1, rw(0x02, 0, 16, kBuf, kBuf + 0x1010)), st::kPrpOffsetInvalid);
    EXPECT_EQ(run(1, rw(0x02, 0, 8, 1ull << 40)), st::kDataTransferError);
    EXPECT_EQ(run(1, rw(0x02, 0, 512, kBuf)), st::kInvalidField);  // beyond MDTS
    EXPECT_EQ(run(1, rw(0x7F, 0, 1, kBuf)), st::kInvalidOpcode);
    auto bad_ns = rw(0x02, 0, 1, kBuf);
    bad_ns[1] = 2;
    EXPECT_EQ(run(1, bad_ns), st::kInvalidNamespace);
    auto sgl = rw(0x02, 0, 1, kBuf);
    sgl[0] |= 1u << 14;  // PSDT: SGL
    EXPECT_EQ(run(1, sgl), st::kInvalidField);
    // Admin: queue creation and deletion rules.
    EXPECT_EQ(run(0, {0x05, 0, 0, 0, 0, 0, static_cast<std::uint32_t>(kIoCq), 0, 0, 0,
                      1u | (3u << 16), 1}),
              st::kInvalidQueueIdentifier);  // queue 1 exists
    EXPECT_EQ(run(0, {0x05, 0, 0, 0, 0, 0, 0x14000, 0, 0, 0, 2u | (4095u << 16), 1}),
              st::kInvalidQueueSize);
    EXPECT_EQ(run(0, {0x05, 0, 0, 0, 0, 0, 0x14000, 0, 0, 0, 2u | (3u << 16), 3u | (99u << 16)}),
              st::kInvalidInterruptVector);
    EXPECT_EQ(run(0, {0x05, 0, 0, 0, 0, 0, 0x14008, 0, 0, 0, 2u | (3u << 16), 1}),
              st::kInvalidField);  // not page aligned
    EXPECT_EQ(run(0, {0x01, 0, 0, 0, 0, 0, 0x14000, 0, 0, 0, 2u | (3u << 16), 1u | (9u << 16)}),
              st::kCompletionQueueInvalid);
    EXPECT_EQ(run(0, {0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}), st::kInvalidQueueDeletion);
    EXPECT_EQ(run(0, {0x02, 0, 0, 0, 0, 0, static_cast<std::uint32_t>(kBuf), 0, 0, 0,
                      0x55u | (127u << 16)}),
              st::kInvalidLogPage);
    EXPECT_EQ(run(0, {0x7E}), st::kInvalidOpcode);
    // Errors carry Do Not Retry.
    submit(0, {0x7E});
    auto c = reap(0);
    ASSERT_TRUE(c);
    EXPECT_TRUE(c->dnr);
}

TEST_F(Nvme, ReadOnlyDiskRefusesWrites)
{
    make(true);
    enable();
    io_queues();
    EXPECT_EQ(run(1, rw(0x01, 0, 1, kBuf)), st::kWriteToReadOnly);
    EXPECT_EQ(run(1, rw(0x08, 0, 1, 0)), st::kWriteToReadOnly);
    EXPECT_EQ(run(1, rw(0x02, 0, 1, kBuf)), st::kSuccess);
}

TEST_F(Nvme, FlushWriteZeroesDatasetManagementFeaturesAndLogs)
{
    enable();
    io_queues();
    EXPECT_EQ(run(1, {0x00, 1}), st::kSuccess);
    EXPECT_EQ(run(1, {0x00, 0xFFFF'FFFF}), st::kSuccess);
    ASSERT_EQ(run(1, rw(0x08, 10, 20, 0)), st::kSuccess);
    auto file = slurp(disk);
    EXPECT_TRUE(std::all_of(file.begin() + 10 * 512, file.begin() + 30 * 512,
                            [](std::uint8_t b) { return b == 0; }));
    EXPECT_NE(file[30 * 512], 0);
    // Dataset Management: one range inside, then one past the end.
    std::array<std::uint32_t, 4> range{0, 16, 100, 0};
    mem.write_checked(kBuf, range.data(), 16);
    EXPECT_EQ(run(1, {0x09, 1, 0, 0, 0, 0, static_cast<std::uint32_t>(kBuf), 0, 0, 0, 0, 4}),
              st::kSuccess);
    range = {0, 16, static_cast<std::uint32_t>(kDiskBytes / 512 - 8), 0};
    mem.write_checked(kBuf, range.data(), 16);
    EXPECT_EQ(run(1, {0x09, 1, 0, 0, 0, 0, static_cast<std::uint32_t>(kBuf), 0, 0, 0, 0, 4}),
              st::kLbaOutOfRange);
    // Number of queues; volatile write cache off then read back.
    std::uint32_t dw0 = 0;
    EXPECT_EQ(run(0, {0x09, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x07, 3u | (3u << 16)}, &dw0), st::kSuccess);
    EXPECT_EQ(dw0 & 0xFFFF, nvme::kMaxQueues - 2);
    EXPECT_EQ(run(0, {0x09, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x06, 0}), st::kSuccess);
    EXPECT_EQ(run(0, {0x0A, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x06}, &dw0), st::kSuccess);
    EXPECT_EQ(dw0, 0u);
    EXPECT_EQ(run(0, {0x0A, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x03}), st::kInvalidField);
    // SMART log: 512 bytes, counting the writes.
    ASSERT_EQ(run(0, {0x02, 0xFFFF'FFFF, 0, 0, 0, 0, static_cast<std::uint32_t>(kBuf), 0, 0, 0,
                      0x02u | (127u << 16)}),
              st::kSuccess);
    std::uint8_t spare = 0;
    mem.read(kBuf + 3, &spare, 1);
    EXPECT_EQ(spare, 100);
    // Abort answers "not aborted"; AERs are held, up to the limit.
    EXPECT_EQ(run(0, {0x08, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1u | (5u << 16)}, &dw0), st::kSuccess);
    EXPECT_EQ(dw0 & 1, 1u);
    for (int i = 0; i < 4; ++i)
        submit(0, {0x0C});
    EXPECT_FALSE(reap(0).has_value());
    EXPECT_EQ(run(0, {0x0C}), st::kAsyncEventLimitExceeded);
}

TEST_F(Nvme, FullCompletionQueueHoldsSubmissionsAndPhaseFlips)
{
    enable();
    io_queues();
    // Three fit in the 4-entry completion queue (one slot stays empty); the next three wait.
    for (int i = 0; i < 3; ++i)
        submit(1, rw(0x02, static_cast<std::uint64_t>(i), 1, kBuf));
    EXPECT_EQ(ctl->counters().completions, 2u + 3);  // 2 admin (queue creation) + 3
    for (int i = 0; i < 3; ++i)
        submit(1, rw(0x02, static_cast<std::uint64_t>(i), 1, kBuf));
    EXPECT_EQ(ctl->counters().completions, 5u);
    // Reaping frees room: the held ones complete, wrapping the queue (phase flips).
    std::vector<std::uint16_t> cids;
    for (int i = 0; i < 6; ++i) {
        auto c = reap(1);
        ASSERT_TRUE(c.has_value()) << i;
        EXPECT_EQ(c->status, st::kSuccess);
        cids.push_back(c->cid);
    }
    EXPECT_TRUE(std::is_sorted(cids.begin(), cids.end()));
    EXPECT_FALSE(reap(1).has_value());
}

TEST_F(Nvme, CompletionsRaiseTheQueuesMsixVector)
{
    // MSI-X enabled, entry 1 programmed and unmasked.
    const unsigned ctl_off = ctl->msix_capability() + 2;
    ctl->config_write(ctl_off, 2, 1u << 15);
    ctl->msix().write(16 + 0, 4, 0xFEE0'0000);
    ctl->msix().write(16 + 8, 4, 0x4055);
    ctl->msix().write(16 + 12, 4, 0);
    enable();
    io_queues(true, 1);
    sent.clear();
    ASSERT_EQ(run(1, rw(0x02, 0, 1, kBuf)), st::kSuccess);
    ASSERT_EQ(sent.size(), 1u);
    EXPECT_EQ(sent[0], (std::pair<unsigned, std::uint32_t>{1, 0x4055}));
}

TEST_F(Nvme, HostileDoorbellsAndShutdown)
{
    // Before enable, and past a queue's size: ignored and counted, never processed.
    reg32(0x1000, 3);
    enable();
    reg32(0x1000, kAdminEntries + 5);
    reg32(0x1000 + 16 * 8, 1);                // a queue that does not exist
    reg32(0x1000 + 200 * 8, 1);               // beyond the last queue
    ctl->bar_device(0)->write(0x1000, 2, 1);  // not a dword write
    EXPECT_EQ(ctl->counters().bad_doorbells, 5u);
    EXPECT_EQ(ctl->counters().commands, 0u);
    // Shutdown notification: done once the image is flushed.
    reg32(nvme::kCc, reg32(nvme::kCc) | (1u << 14));
    EXPECT_EQ((reg32(nvme::kCsts) >> 2) & 3, 2u);
}

// The same controller over a QCOW2 image: what the guest wrote is what qemu-img reads, and the
// image checks clean.
TEST_F(Nvme, QcowImageBehindTheController)
{
    if (hv::support::run_process({"sh", "-c", "command -v qemu-img"}, 10).status != 0)
        GTEST_SKIP() << "qemu-img is not installed (Debian: qemu-utils)";
    const std::string q = dir / "disk.qcow2";
    ASSERT_EQ(
        hv::support::run_process({"qemu-img", "create", "-q", "-f", "qcow2", q, "1M"}, 30).status,
        0);
    ctl = std::make_unique<NvmeController>(
        mem, storage::open_image(q, storage::Format::Qcow2, true), NvmeController::Options{},
        [](unsigned) {}, [](unsigned, const MsixEntry&) {}, 0xC000'0000, 0xC000'4000);
    ctl->config_write(pci::kCommand, 2, pci::kCommandMemory | pci::kCommandBusMaster);
    enable();
    io_queues();
    std::vector<std::uint8_t> pattern(8 * 512);
    for (std::size_t i = 0; i < pattern.size(); ++i)
        pattern[i] = static_cast<std::uint8_t>(i ^ 0x5A);
    mem.write_checked(kBuf, pattern.data(), pattern.size());
    ASSERT_EQ(run(1, rw(0x01, 1000, 8, kBuf)), st::kSuccess);
    ASSERT_EQ(run(1, {0x00, 1}), st::kSuccess);
    ctl.reset();  // closes the image
    EXPECT_EQ(hv::support::run_process({"qemu-img", "check", "-q", q}, 30).status, 0);
    ASSERT_EQ(
        hv::support::run_process({"qemu-img", "convert", "-O", "raw", q, dir / "view.raw"}, 30)
            .status,
        0);
    auto view = slurp(dir / "view.raw");
    EXPECT_TRUE(std::equal(pattern.begin(), pattern.end(), view.begin() + 1000 * 512));
}

TEST_F(Nvme, ImagesThatAreNotWholeBlocksAreRefused)
{
    std::ofstream(dir / "odd.raw") << std::string(1000, 'x');
    EXPECT_NE(hvtest::message_of([&] {
                  NvmeController c(mem, storage::open_image(dir / "odd.raw"), {}, {}, {},
                                   0xC000'0000, 0xC000'4000);
              }).find("512-byte blocks"),
              std::string::npos);
}

}  // namespace
