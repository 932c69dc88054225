// NVMe data pointers: the physical region page (PRP) entries of a command, walked into the guest
// memory ranges they describe (NVM Express Base Specification 1.4, 4.3 "Physical Region Page
// Entry and List").
//
// - PRP1 points into the first page, at any dword-aligned offset (bits 1:0 zero).
// - A transfer that ends within the second page has PRP2 as that page's address (offset 0).
// - A longer one has PRP2 as a pointer to a PRP list (qword aligned, may start inside a page):
//   entries fill the rest of that page; when more entries are needed than the page holds, its
//   last entry points to the next list page (a chain). Every data entry has offset 0.
// An entry with a bad offset completes the command with "PRP Offset Invalid"; a list or data
// page outside guest RAM with "Data Transfer Error"; nothing outside guest RAM is ever touched.
// The walk is bounded by the transfer length: at most length / page + 2 entries and as many
// list pages as they need.
#pragma once

#include <cstdint>
#include <vector>

#include "core/bus/memory.hpp"

namespace hv::dev::nvme {

// Status Code Type 0 (Generic Command Status), 1.4 Figure 126, and the other types' codes used.
namespace status {
inline constexpr std::uint16_t kSuccess = 0x00;
inline constexpr std::uint16_t kInvalidOpcode = 0x01;
inline constexpr std::uint16_t kInvalidField = 0x02;
inline constexpr std::uint16_t kDataTransferError = 0x04;
inline constexpr std::uint16_t kInternalError = 0x06;
inline constexpr std::uint16_t kInvalidNamespace = 0x0B;
inline constexpr std::uint16_t kPrpOffsetInvalid = 0x13;
inline constexpr std::uint16_t kLbaOutOfRange = 0x80;
// Command Specific (type 1): the value is (1 << 8) | code.
inline constexpr std::uint16_t kCompletionQueueInvalid = 0x100;
inline constexpr std::uint16_t kInvalidQueueIdentifier = 0x101;
inline constexpr std::uint16_t kInvalidQueueSize = 0x102;
inline constexpr std::uint16_t kAsyncEventLimitExceeded = 0x105;
inline constexpr std::uint16_t kInvalidInterruptVector = 0x108;
inline constexpr std::uint16_t kInvalidLogPage = 0x109;
inline constexpr std::uint16_t kInvalidQueueDeletion = 0x10C;
inline constexpr std::uint16_t kWriteToReadOnly = 0x182;
// Media and Data Integrity Errors (type 2).
inline constexpr std::uint16_t kWriteFault = 0x280;
inline constexpr std::uint16_t kUnrecoveredReadError = 0x281;
}  // namespace status

struct Segment {
    std::uint64_t gpa = 0;
    std::uint64_t len = 0;
    bool operator==(const Segment&) const = default;
};

struct PrpWalk {
    std::vector<Segment> segments;  // adjacent pieces merged
    std::uint16_t status = status::kSuccess;
};

// The guest memory `length` bytes at PRP1/PRP2 occupy, with memory pages of 2^page_shift bytes.
PrpWalk walk_prps(const GuestMemory& mem, std::uint64_t prp1, std::uint64_t prp2,
                  std::uint64_t length, unsigned page_shift);

}  // namespace hv::dev::nvme
