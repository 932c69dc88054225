// The NVMe controller's I/O commands (nvme.hpp): Read, Write, Flush, Write Zeroes, Dataset
// Management, on namespace 1 = the image in 512-byte blocks.
#include <algorithm>
#include <cstring>

#include "core/base/error.hpp"
#include "core/devices/nvme.hpp"

namespace hv::dev {

using namespace nvme;

namespace {

constexpr std::uint64_t kMaxTransfer = std::uint64_t{1} << (kPageShift + kMdts);
constexpr std::uint32_t kFua = 1u << 30;

}  // namespace

NvmeController::Result NvmeController::io(const Command& c)
{
    const std::uint32_t nsid = c.dw[1];
    if (c.opcode() == 0x00 && (nsid == 1 || nsid == 0xFFFF'FFFF))
        return flush();
    if (nsid != 1)
        return {c.opcode() <= 0x09 ? status::kInvalidNamespace : status::kInvalidOpcode, 0, true};
    switch (c.opcode()) {
    case 0x01:
        return read_write(c, true);
    case 0x02:
        return read_write(c, false);
    case 0x08:
        return write_zeroes(c);
    case 0x09:
        return dataset_management(c);
    default:
        return {status::kInvalidOpcode, 0, true};
    }
}

NvmeController::Result NvmeController::flush()
{
    try {
        image_->flush();
    } catch (const Error&) {
        return {status::kWriteFault, 0, true};
    }
    return {};
}

// [slba, slba + blocks) inside the namespace.
namespace {
bool in_namespace(std::uint64_t slba, std::uint64_t blocks, std::uint64_t total)
{
    return slba <= total && blocks <= total - slba;
}
}  // namespace

NvmeController::Result NvmeController::read_write(const Command& c, bool write)
{
    const std::uint64_t slba = c.dw[10] | (std::uint64_t{c.dw[11]} << 32);
    const std::uint64_t blocks = (c.dw[12] & 0xFFFF) + 1;
    const std::uint64_t bytes = blocks << kBlockShift;
    if (bytes > kMaxTransfer)
        return {status::kInvalidField, 0, true};
    if (!in_namespace(slba, blocks, blocks_))
        return {status::kLbaOutOfRange, 0, true};
    if (write && opts_.read_only)
        return {status::kWriteToReadOnly, 0, true};
    const PrpWalk w = walk_prps(mem_, c.prp1(), c.prp2(), bytes, kPageShift);
    if (w.status != status::kSuccess)
        return {w.status, 0, true};
    std::vector<std::uint8_t> data(bytes);
    if (write) {
        if (const std::uint16_t st = copy_from_guest(w, data); st != status::kSuccess)
            return {st, 0, true};
        try {
            image_->write(slba << kBlockShift, data);
            if ((c.dw[12] & kFua) || !write_cache_)
                image_->flush();
        } catch (const Error&) {
            return {status::kWriteFault, 0, true};
        }
        counters_.written_bytes += bytes;
        return {};
    }
    try {
        image_->read(slba << kBlockShift, data);
    } catch (const Error&) {
        return {status::kUnrecoveredReadError, 0, true};
    }
    if (const std::uint16_t st = copy_to_guest(w, data); st != status::kSuccess)
        return {st, 0, true};
    counters_.read_bytes += bytes;
    return {};
}

NvmeController::Result NvmeController::write_zeroes(const Command& c)
{
    const std::uint64_t slba = c.dw[10] | (std::uint64_t{c.dw[11]} << 32);
    const std::uint64_t blocks = (c.dw[12] & 0xFFFF) + 1;
    if (!in_namespace(slba, blocks, blocks_))
        return {status::kLbaOutOfRange, 0, true};
    if (opts_.read_only)
        return {status::kWriteToReadOnly, 0, true};
    const std::vector<std::uint8_t> zeros(
        std::min<std::uint64_t>(blocks << kBlockShift, kMaxTransfer), 0);
    std::uint64_t at = slba << kBlockShift;
    const std::uint64_t end = (slba + blocks) << kBlockShift;
    try {
        while (at < end) {
            const std::size_t n =
                static_cast<std::size_t>(std::min<std::uint64_t>(zeros.size(), end - at));
            image_->write(at, std::span(zeros).first(n));
            at += n;
        }
        if ((c.dw[12] & kFua) || !write_cache_)
            image_->flush();
    } catch (const Error&) {
        return {status::kWriteFault, 0, true};
    }
    return {};
}

NvmeController::Result NvmeController::dataset_management(const Command& c)
{
    // 1.4 6.7: up to 256 ranges of 16 bytes (context attributes, length in blocks, SLBA).
    const std::uint64_t ranges = (c.dw[10] & 0xFF) + 1;
    const PrpWalk w = walk_prps(mem_, c.prp1(), c.prp2(), ranges * 16, kPageShift);
    if (w.status != status::kSuccess)
        return {w.status, 0, true};
    std::vector<std::uint8_t> list(ranges * 16);
    if (const std::uint16_t st = copy_from_guest(w, list); st != status::kSuccess)
        return {st, 0, true};
    for (std::uint64_t i = 0; i < ranges; ++i) {
        std::uint32_t len = 0;
        std::uint64_t slba = 0;
        std::memcpy(&len, &list[i * 16 + 4], 4);
        std::memcpy(&slba, &list[i * 16 + 8], 8);
        if (!in_namespace(slba, len, blocks_))
            return {status::kLbaOutOfRange, 0, true};
    }
    // Deallocate (CDW11 bit 2) is a hint: DLFEAT = 0 says deallocated blocks read back
    // unspecified, and they keep their data here.
    return {};
}

}  // namespace hv::dev
