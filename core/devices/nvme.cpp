// The NVMe controller: registers, queues, admin commands (nvme.hpp). I/O commands are in
// nvme_io.cpp.
#include "core/devices/nvme.hpp"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "core/base/error.hpp"

namespace hv::dev {

using namespace nvme;

namespace {

constexpr std::uint32_t kCcEnable = 1u << 0;
constexpr std::uint32_t kCcWritable = 0x00FF'FFF1;  // EN, CSS, MPS, AMS, SHN, IOSQES, IOCQES
constexpr std::uint32_t kCstsReady = 1u << 0;
constexpr std::uint32_t kCstsFatal = 1u << 1;
constexpr std::uint32_t kCstsShutdownComplete = 2u << 2;
constexpr std::uint32_t kAqaMask = 0x0FFF'0FFF;
constexpr std::uint64_t kQueueBaseMask = ~std::uint64_t{0xFFF};
constexpr std::size_t kSqEntry = 64, kCqEntry = 16;
constexpr unsigned kMaxHeldAers = 4;  // Identify AERL + 1

void put16(std::vector<std::uint8_t>& d, std::size_t at, std::uint16_t v)
{
    std::memcpy(&d[at], &v, 2);
}
void put32(std::vector<std::uint8_t>& d, std::size_t at, std::uint32_t v)
{
    std::memcpy(&d[at], &v, 4);
}
void put64(std::vector<std::uint8_t>& d, std::size_t at, std::uint64_t v)
{
    std::memcpy(&d[at], &v, 8);
}
// ASCII, space padded (Identify Controller SN/MN/FR).
void put_text(std::vector<std::uint8_t>& d, std::size_t at, std::size_t len, std::string_view s)
{
    for (std::size_t i = 0; i < len; ++i)
        d[at + i] = i < s.size() ? static_cast<std::uint8_t>(s[i]) : ' ';
}

}  // namespace

NvmeController::NvmeController(const GuestMemory& mem, std::unique_ptr<storage::Image> image,
                               Options options, MsixTable::Changed changed, MsixTable::Send send,
                               std::uint32_t bar0, std::uint32_t bar2)
    : PciFunction(kVendor, kDevice, kClass), mem_(mem), image_(std::move(image)),
      opts_(std::move(options)), msix_(kVectors, std::move(changed), std::move(send))
{
    if (image_->size() == 0 || (image_->size() & ((1u << kBlockShift) - 1)) != 0)
        fail("the image's size ({} bytes) is not a whole number of 512-byte blocks",
             image_->size());
    if (!opts_.read_only && !image_->writable())
        opts_.read_only = true;
    blocks_ = image_->size() >> kBlockShift;
    // Identify's SN field: 20 bytes of printable ASCII, space-padded (1.4 figure 247).
    const bool printable = std::all_of(opts_.serial.begin(), opts_.serial.end(),
                                       [](char ch) { return ch >= 0x20 && ch <= 0x7E; });
    if (opts_.serial.empty() || opts_.serial.size() > 20 || !printable)
        fail("the serial number has 1 to 20 printable ASCII characters");
    if (opts_.queues == 0 || opts_.queues >= kMaxQueues)
        fail("queues={} out of range (1 to {})", opts_.queues, kMaxQueues - 1);
    add_memory_bar(0, kBar0Size, &regs_, bar0);
    add_memory_bar(2, kMsixBarSize, &msix_, bar2);
    msix_cap_ = add_msix_capability(kVectors, 2);
}

NvmeController::~NvmeController()
{
    try {
        image_->flush();
    } catch (const Error&) {
        // Nothing to report to: every acknowledged write already reached the file.
    }
}

void NvmeController::config_written(unsigned offset, unsigned size)
{
    update_msix_control(msix_cap_, offset, size, msix_);
}

// --- registers ---

std::uint64_t NvmeController::Regs::read(std::uint64_t offset, unsigned size)
{
    return c.read_reg(offset, size);
}

void NvmeController::Regs::write(std::uint64_t offset, unsigned size, std::uint64_t value)
{
    const std::vector<unsigned> raise = c.write_reg(offset, size, value);
    const bool bus_master = (c.command() & pci::kCommandBusMaster) != 0;
    for (unsigned v : raise)
        c.msix_.raise(v, bus_master);
}

std::uint64_t NvmeController::read_reg(std::uint64_t offset, unsigned size)
{
    std::lock_guard lock(mu_);
    // CAP: MQES, CQR, TO = 10 s, DSTRD 0, CSS = NVM command set, MPSMIN = MPSMAX = 4 KiB.
    const std::uint64_t cap = (kMaxEntries - 1) | (1ull << 16) | (20ull << 24) | (1ull << 37);
    auto reg32 = [&](std::uint64_t off) -> std::uint32_t {
        switch (off) {
        case kCap:
            return static_cast<std::uint32_t>(cap);
        case kCap + 4:
            return static_cast<std::uint32_t>(cap >> 32);
        case kVs:
            return 0x0001'0400;  // 1.4
        case kIntms:
        case kIntmc:
            return intms_;
        case kCc:
            return cc_;
        case kCsts:
            return csts_;
        case kAqa:
            return aqa_;
        case kAsq:
            return static_cast<std::uint32_t>(asq_);
        case kAsq + 4:
            return static_cast<std::uint32_t>(asq_ >> 32);
        case kAcq:
            return static_cast<std::uint32_t>(acq_);
        case kAcq + 4:
            return static_cast<std::uint32_t>(acq_ >> 32);
        default:
            return 0;  // reserved, and doorbells (write-only) read as zero
        }
    };
    if (size == 8)
        return (offset & 7) ? 0 : reg32(offset) | (std::uint64_t{reg32(offset + 4)} << 32);
    const std::uint32_t dword = reg32(offset & ~std::uint64_t{3});
    const unsigned shift = static_cast<unsigned>(offset & 3) * 8;
    const std::uint64_t mask = size >= 4 ? 0xFFFF'FFFFull : (1ull << (size * 8)) - 1;
    return (dword >> shift) & mask;
}

std::vector<unsigned> NvmeController::write_reg(std::uint64_t offset, unsigned size,
                                                std::uint64_t value)
{
    std::lock_guard lock(mu_);
    if (offset >= kDoorbells) {
        if (size != 4 || (offset & 3) != 0) {
            ++counters_.bad_doorbells;
            return {};
        }
        return doorbell(static_cast<unsigned>((offset - kDoorbells) / 4),
                        static_cast<std::uint32_t>(value));
    }
    // 64-bit registers take one 8-byte write or two 4-byte halves; the rest 4-byte writes.
    if (size == 8 && (offset == kAsq || offset == kAcq)) {
        (offset == kAsq ? asq_ : acq_) = value & kQueueBaseMask;
        return {};
    }
    if (size != 4 || (offset & 3) != 0)
        return {};
    const auto v = static_cast<std::uint32_t>(value);
    switch (offset) {
    case kIntms:
        intms_ |= v;
        break;
    case kIntmc:
        intms_ &= ~v;
        break;
    case kCc: {
        const std::uint32_t old = cc_;
        cc_ = v & kCcWritable;
        if (!(old & kCcEnable) && (cc_ & kCcEnable))
            enable();
        else if ((old & kCcEnable) && !(cc_ & kCcEnable))
            reset();
        if (((cc_ >> 14) & 3) != 0 && ((old >> 14) & 3) == 0) {
            // Shutdown notification: what was written is made durable, then reported done.
            try {
                image_->flush();
            } catch (const Error&) {
                ++counters_.errors;
            }
            csts_ = (csts_ & ~(3u << 2)) | kCstsShutdownComplete;
        }
        break;
    }
    case kAqa:
        aqa_ = v & kAqaMask;
        break;
    case kAsq:
        asq_ = (asq_ & ~0xFFFF'FFFFull) | (v & 0xFFFF'F000u);
        break;
    case kAsq + 4:
        asq_ = (asq_ & 0xFFFF'FFFFull) | (std::uint64_t{v} << 32);
        break;
    case kAcq:
        acq_ = (acq_ & ~0xFFFF'FFFFull) | (v & 0xFFFF'F000u);
        break;
    case kAcq + 4:
        acq_ = (acq_ & 0xFFFF'FFFFull) | (std::uint64_t{v} << 32);
        break;
    default:
        break;  // read-only or reserved
    }
    return {};
}

bool NvmeController::queue_memory_ok(std::uint64_t base, std::uint64_t bytes) const
{
    return (base & ((1u << kPageShift) - 1)) == 0 && base != 0 && mem_.contains(base, bytes);
}

void NvmeController::enable()
{
    const std::uint32_t sq_entries = (aqa_ & 0xFFF) + 1, cq_entries = ((aqa_ >> 16) & 0xFFF) + 1;
    const bool mps_ok = ((cc_ >> 7) & 0xF) == 0;  // CAP.MPSMIN = MPSMAX = 0
    const bool css_ok = ((cc_ >> 4) & 7) == 0;    // the NVM command set
    if (sq_entries < 2 || cq_entries < 2 || !mps_ok || !css_ok ||
        !queue_memory_ok(asq_, sq_entries * kSqEntry) ||
        !queue_memory_ok(acq_, cq_entries * kCqEntry)) {
        csts_ |= kCstsFatal;  // 1.4 3.1.6: the host resets the controller to recover
        return;
    }
    sq_[0] = Queue{true, asq_, sq_entries, 0, 0, 0, true, false, 0};
    cq_[0] = Queue{true, acq_, cq_entries, 0, 0, 0, true, true, 0};
    csts_ = kCstsReady;
}

void NvmeController::reset()
{
    // 1.4 7.6.2 "Controller Reset": queues deleted, outstanding commands (the held
    // Asynchronous Event Requests) dropped; AQA, ASQ and ACQ keep their values.
    sq_.fill({});
    cq_.fill({});
    held_aers_.clear();
    std::fill(std::begin(features_), std::end(features_), 0u);
    write_cache_ = true;
    csts_ = 0;
}

std::vector<unsigned> NvmeController::doorbell(unsigned index, std::uint32_t value)
{
    std::vector<unsigned> raise;
    const unsigned qid = index / 2;
    const bool completion = (index & 1) != 0;
    if (!(csts_ & kCstsReady) || qid >= kMaxQueues) {
        ++counters_.bad_doorbells;
        return raise;
    }
    Queue& q = completion ? cq_[qid] : sq_[qid];
    if (!q.live || value >= q.size) {
        ++counters_.bad_doorbells;  // 1.4 4.1: an invalid doorbell write is ignored here
        return raise;
    }
    if (completion) {
        q.head = value;
        // Submissions that waited for room in this completion queue go on.
        for (unsigned s = 0; s < kMaxQueues; ++s)
            if (sq_[s].live && sq_[s].cqid == qid)
                process(static_cast<std::uint16_t>(s), raise);
    } else {
        q.tail = value;
        process(static_cast<std::uint16_t>(qid), raise);
    }
    std::sort(raise.begin(), raise.end());
    raise.erase(std::unique(raise.begin(), raise.end()), raise.end());
    return raise;
}

void NvmeController::process(std::uint16_t sqid, std::vector<unsigned>& raise)
{
    Queue& sq = sq_[sqid];
    while (sq.live && sq.head != sq.tail) {
        const Queue& cq = cq_[sq.cqid];
        if (!cq.live || (cq.tail + 1) % cq.size == cq.head)
            return;  // no room for the completion: wait for the host to consume some
        Command cmd;
        if (!mem_.read(sq.base + std::uint64_t{sq.head} * kSqEntry, cmd.dw.data(), kSqEntry)) {
            csts_ |= kCstsFatal;  // the queue was checked at creation: guest RAM cannot shrink
            return;
        }
        sq.head = (sq.head + 1) % sq.size;
        ++counters_.commands;
        Result r;
        if ((cmd.dw[0] >> 14) & 3)
            r.status = status::kInvalidField;  // PSDT: SGLs are not supported
        else
            r = sqid == 0 ? admin(cmd) : io(cmd);
        if (r.status != status::kSuccess)
            ++counters_.errors;
        if (r.post && post(sqid, cmd, r))
            raise.push_back(cq_[sq_[sqid].cqid].vector);
    }
}

bool NvmeController::post(std::uint16_t sqid, const Command& cmd, const Result& r)
{
    Queue& sq = sq_[sqid];
    Queue& cq = cq_[sq.cqid];
    // 1.4 4.6: DW0 command specific, DW2 SQ head and SQ ID, DW3 CID, phase tag and status
    // (with Do Not Retry for errors: they are not transient).
    const std::uint32_t status_field = (r.status & 0xFF) | (((r.status >> 8) & 7u) << 8) |
                                       (r.status != status::kSuccess ? (1u << 14) : 0u);
    const std::array<std::uint32_t, 4> entry{r.dw0, 0, sq.head | (std::uint32_t{sqid} << 16),
                                             cmd.cid() | (cq.phase ? 1u << 16 : 0u) |
                                                 (status_field << 17)};
    if (!mem_.write(cq.base + std::uint64_t{cq.tail} * kCqEntry, entry.data(), kCqEntry)) {
        csts_ |= kCstsFatal;
        return false;
    }
    cq.tail = (cq.tail + 1) % cq.size;
    if (cq.tail == 0)
        cq.phase = !cq.phase;
    ++counters_.completions;
    if (cq.interrupts)
        ++counters_.interrupts;
    return cq.interrupts;
}

std::uint16_t NvmeController::to_guest(const Command& c, const std::vector<std::uint8_t>& data)
{
    const PrpWalk w = walk_prps(mem_, c.prp1(), c.prp2(), data.size(), kPageShift);
    return w.status != status::kSuccess ? w.status : copy_to_guest(w, data);
}

std::uint16_t NvmeController::copy_to_guest(const PrpWalk& w,
                                            std::span<const std::uint8_t> data) const
{
    std::size_t at = 0;
    for (const Segment& s : w.segments) {
        if (!mem_.write(s.gpa, data.data() + at, s.len))
            return status::kDataTransferError;
        at += s.len;
    }
    return status::kSuccess;
}

std::uint16_t NvmeController::copy_from_guest(const PrpWalk& w, std::span<std::uint8_t> data) const
{
    std::size_t at = 0;
    for (const Segment& s : w.segments) {
        if (!mem_.read(s.gpa, data.data() + at, s.len))
            return status::kDataTransferError;
        at += s.len;
    }
    return status::kSuccess;
}

// --- admin commands ---

NvmeController::Result NvmeController::admin(const Command& c)
{
    switch (c.opcode()) {
    case 0x00:
        return delete_queue(c, false);
    case 0x01:
        return create_sq(c);
    case 0x02:
        return log_page(c);
    case 0x04:
        return delete_queue(c, true);
    case 0x05:
        return create_cq(c);
    case 0x06:
        return identify(c);
    case 0x08:
        return {status::kSuccess, 1, true};  // Abort: DW0 bit 0 = not aborted
    case 0x09:
        return features(c, true);
    case 0x0A:
        return features(c, false);
    case 0x0C:
        if (held_aers_.size() >= kMaxHeldAers)
            return {status::kAsyncEventLimitExceeded, 0, true};
        held_aers_.push_back(c.cid());
        return {status::kSuccess, 0, false};
    default:
        return {status::kInvalidOpcode, 0, true};
    }
}

NvmeController::Result NvmeController::identify(const Command& c)
{
    std::vector<std::uint8_t> d(4096, 0);
    const std::uint32_t nsid = c.dw[1];
    switch (c.dw[10] & 0xFF) {
    case 0:  // namespace
        if (nsid != 1)
            return {status::kInvalidNamespace, 0, true};
        put64(d, 0, blocks_);              // NSZE
        put64(d, 8, blocks_);              // NCAP
        put64(d, 16, blocks_);             // NUSE
        put32(d, 128, kBlockShift << 16);  // LBAF0: LBADS
        break;
    case 1:  // controller
        put16(d, 0, kVendor);
        put16(d, 2, kVendor);
        put_text(d, 4, 20, opts_.serial);
        put_text(d, 24, 40, "hvaccel NVMe");
        put_text(d, 64, 8, "1.0");
        d[72] = 6;      // RAB
        d[77] = kMdts;  // MDTS
        put32(d, 80, 0x0001'0400);
        d[258] = 3;                            // ACL
        d[259] = kMaxHeldAers - 1;             // AERL
        d[260] = 0x03;                         // FRMW: one slot, read-only
        d[512] = 0x66;                         // SQES
        d[513] = 0x44;                         // CQES
        put32(d, 516, 1);                      // NN
        put16(d, 520, (1u << 2) | (1u << 3));  // ONCS: Dataset Management, Write Zeroes
        d[525] = 1;                            // VWC present
        {
            // SUBNQN: NUL-terminated, not padded.
            const std::string nqn = "nqn.2026-12.io.hvaccel:nvme:" + opts_.serial;
            std::memcpy(&d[768], nqn.data(), nqn.size());
        }
        put16(d, 2048, 2500);  // power state 0: 25 W
        break;
    case 2:  // active namespace IDs above NSID
        if (nsid < 1)
            put32(d, 0, 1);
        break;
    case 3:  // namespace identification descriptors: none
        if (nsid != 1)
            return {status::kInvalidNamespace, 0, true};
        break;
    default:
        return {status::kInvalidField, 0, true};
    }
    return {to_guest(c, d), 0, true};
}

NvmeController::Result NvmeController::create_cq(const Command& c)
{
    const std::uint32_t qid = c.dw[10] & 0xFFFF, entries = (c.dw[10] >> 16) + 1;
    const bool contiguous = c.dw[11] & 1, ien = (c.dw[11] >> 1) & 1;
    const std::uint32_t iv = c.dw[11] >> 16;
    if (qid == 0 || qid > opts_.queues || cq_[qid].live)
        return {status::kInvalidQueueIdentifier, 0, true};
    if (entries < 2 || entries > kMaxEntries)
        return {status::kInvalidQueueSize, 0, true};
    if (iv >= kVectors)
        return {status::kInvalidInterruptVector, 0, true};
    if (!contiguous || ((cc_ >> 20) & 0xF) != 4 || !queue_memory_ok(c.prp1(), entries * kCqEntry))
        return {status::kInvalidField, 0, true};
    cq_[qid] = Queue{true, c.prp1(), entries, 0, 0, 0, true, ien, static_cast<std::uint16_t>(iv)};
    return {};
}

NvmeController::Result NvmeController::create_sq(const Command& c)
{
    const std::uint32_t qid = c.dw[10] & 0xFFFF, entries = (c.dw[10] >> 16) + 1;
    const bool contiguous = c.dw[11] & 1;
    const std::uint32_t cqid = c.dw[11] >> 16;
    if (qid == 0 || qid > opts_.queues || sq_[qid].live)
        return {status::kInvalidQueueIdentifier, 0, true};
    if (cqid == 0 || cqid > opts_.queues || !cq_[cqid].live)
        return {status::kCompletionQueueInvalid, 0, true};
    if (entries < 2 || entries > kMaxEntries)
        return {status::kInvalidQueueSize, 0, true};
    if (!contiguous || ((cc_ >> 16) & 0xF) != 6 || !queue_memory_ok(c.prp1(), entries * kSqEntry))
        return {status::kInvalidField, 0, true};
    sq_[qid] =
        Queue{true, c.prp1(), entries, 0, 0, static_cast<std::uint16_t>(cqid), true, false, 0};
    return {};
}

NvmeController::Result NvmeController::delete_queue(const Command& c, bool completion)
{
    const std::uint32_t qid = c.dw[10] & 0xFFFF;
    auto& queues = completion ? cq_ : sq_;
    if (qid == 0 || qid >= kMaxQueues || !queues[qid].live)
        return {status::kInvalidQueueIdentifier, 0, true};
    if (completion)
        for (const Queue& s : sq_)
            if (s.live && s.cqid == qid)
                return {status::kInvalidQueueDeletion, 0, true};
    queues[qid] = {};
    return {};
}

NvmeController::Result NvmeController::features(const Command& c, bool set)
{
    const std::uint32_t fid = c.dw[10] & 0xFF;
    if (fid == 0 || fid >= std::size(features_) || fid == 0x03)
        return {status::kInvalidField, 0, true};       // 0x03 LBA range type: not supported
    const std::uint32_t io_queues = opts_.queues - 1;  // 0's based count of I/O queues
    switch (fid) {
    case 0x06:  // volatile write cache
        if (set)
            write_cache_ = c.dw[11] & 1;
        return {status::kSuccess, write_cache_ ? 1u : 0u, true};
    case 0x07:  // number of queues: what is requested is what is allocated, up to the maximum
        if (set && ((c.dw[11] & 0xFFFF) == 0xFFFF || (c.dw[11] >> 16) == 0xFFFF))
            return {status::kInvalidField, 0, true};
        return {status::kSuccess, io_queues | (io_queues << 16), true};
    default:
        if (set)
            features_[fid] = c.dw[11];
        return {status::kSuccess, features_[fid], true};
    }
}

NvmeController::Result NvmeController::log_page(const Command& c)
{
    const std::uint32_t lid = c.dw[10] & 0xFF;
    const std::uint64_t dwords = ((c.dw[10] >> 16) | (std::uint64_t{c.dw[11] & 0xFFFF} << 16)) + 1;
    const std::uint64_t offset = c.dw[12] | (std::uint64_t{c.dw[13]} << 32);
    std::vector<std::uint8_t> page;
    switch (lid) {
    case 0x01:  // error information: one entry, empty
        page.assign(64, 0);
        break;
    case 0x02: {  // SMART / health information
        page.assign(512, 0);
        put16(page, 1, 313);  // composite temperature, kelvin
        page[3] = 100;        // available spare
        page[4] = 10;         // available spare threshold
        // Data units read/written: thousands of 512-byte units, rounded up.
        put64(page, 32, (counters_.read_bytes / 512 + 999) / 1000);
        put64(page, 48, (counters_.written_bytes / 512 + 999) / 1000);
        put64(page, 112, 1);  // power cycles
        break;
    }
    case 0x03:  // firmware slot information
        page.assign(512, 0);
        page[0] = 1;  // slot 1 active
        put_text(page, 8, 8, "1.0");
        break;
    default:
        return {status::kInvalidLogPage, 0, true};
    }
    const std::uint64_t bytes = dwords * 4;
    if (offset > page.size() || (offset & 3) || bytes > (1u << (kPageShift + kMdts)))
        return {status::kInvalidField, 0, true};
    std::vector<std::uint8_t> out(bytes, 0);
    std::copy(page.begin() + static_cast<std::ptrdiff_t>(offset),
              page.begin() +
                  static_cast<std::ptrdiff_t>(std::min<std::uint64_t>(page.size(), offset + bytes)),
              out.begin());
    return {to_guest(c, out), 0, true};
}

NvmeController::Counters NvmeController::counters() const
{
    std::lock_guard lock(mu_);
    return counters_;
}

std::string NvmeController::stats() const
{
    const Counters k = counters();
    return fmt::format("nvme: {} commands, {} completions, {} interrupts, {} bytes read, {} "
                       "written, {} errors, {} bad doorbells",
                       k.commands, k.completions, k.interrupts, k.read_bytes, k.written_bytes,
                       k.errors, k.bad_doorbells);
}

}  // namespace hv::dev
