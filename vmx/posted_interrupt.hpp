// The posted-interrupt descriptor (PID), the posting protocol and the PID-pointer table.
//
// SDM Vol3 30.6 "Posted-Interrupt Processing" (table "Format of Posted-Interrupt Descriptor"):
//   bits 255:0 PIR, 256 ON, 257 SN, 279:272 NV, 319:288 NDST; 64 bytes, 64-byte aligned.
// The same descriptor is written by CPUs (IPI virtualization, software posting) and by the
// VT-d remapping unit (VT-d 9.11 "Posted Interrupt Descriptor"), so post() is the one
// implementation both vmx/ and iommu/ use.
//
// Protocol (lock-free; every step is one atomic instruction):
//   post:     PIR[v] |= 1 (atomic OR of the 64-bit word); then, unless SN, test-and-set ON; the
//             poster sends NV to NDST only if it changed ON from 0 to 1. Later posts coalesce.
//   receive:  clear ON, then take PIR (atomic exchange per word) into VIRR.
//   control:  NV, NDST and SN change with a 64-bit compare-exchange of the control word, so a
//             concurrent ON update is never lost.
// All operations are sequentially consistent: a blocking vCPU switches NV and then looks at PIR;
// a poster sets PIR and then reads NV with ON. One of the two sees the other (SDM Vol3 30.6: the
// CPU's own processing clears ON before reading PIR for the same reason).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "apic/vector_bits.hpp"

namespace hv::vmx {

// The control qword (bits 319:256 of the descriptor), bit positions relative to bit 256.
namespace pid {
inline constexpr uint64_t kOn = 1ULL << 0;  // bit 256: outstanding notification
inline constexpr uint64_t kSn = 1ULL << 1;  // bit 257: suppress notification
inline constexpr unsigned kNvShift = 16;    // bits 279:272
inline constexpr uint64_t kNvMask = 0xFFULL << kNvShift;
inline constexpr unsigned kNdstShift = 32;  // bits 319:288
inline constexpr uint64_t kNdstMask = 0xFFFFFFFFULL << kNdstShift;
inline constexpr uint64_t kReserved = ~(kOn | kSn | kNvMask | kNdstMask);  // 271:258, 287:280
static_assert(kReserved == 0x0000'0000'FF00'FFFCULL);

constexpr uint64_t with_nv(uint64_t control, uint8_t nv)
{
    return (control & ~kNvMask) | (static_cast<uint64_t>(nv) << kNvShift);
}
constexpr uint64_t with_ndst(uint64_t control, uint32_t ndst)
{
    return (control & ~kNdstMask) | (static_cast<uint64_t>(ndst) << kNdstShift);
}
constexpr uint8_t nv_of(uint64_t control)
{
    return static_cast<uint8_t>((control & kNvMask) >> kNvShift);
}
constexpr uint32_t ndst_of(uint64_t control)
{
    return static_cast<uint32_t>(control >> kNdstShift);
}
// SDM Vol3 30.6 (NDST): x2APIC mode uses the 32-bit APIC ID; xAPIC mode puts the 8-bit ID in
// bits 15:8 of the field (bits 303:296 of the descriptor).
constexpr uint32_t ndst_for(uint32_t host_apic_id, bool host_x2apic)
{
    return host_x2apic ? host_apic_id : (host_apic_id & 0xFFu) << 8;
}
static_assert(ndst_for(0x12, false) == 0x1200 && ndst_for(0x1234, true) == 0x1234);
static_assert(nv_of(with_nv(0, 0xF2)) == 0xF2 && ndst_of(with_ndst(kOn, 7)) == 7);
}  // namespace pid

struct alignas(64) PostedInterruptDescriptor {
    std::array<std::atomic<uint64_t>, 4> pir{};  // bits 255:0, word i = vectors 64i..64i+63
    std::atomic<uint64_t> control{0};            // bits 319:256
    std::array<uint64_t, 3> reserved{};          // bits 511:320

    uint64_t load_control() const { return control.load(std::memory_order_seq_cst); }
    bool on() const { return (load_control() & pid::kOn) != 0; }
    bool sn() const { return (load_control() & pid::kSn) != 0; }
    bool pir_empty() const;
    // PIR as the APIC's 8 x 32-bit words, without consuming it (flatten()).
    apic::VectorWords peek_pir() const;
};
static_assert(sizeof(PostedInterruptDescriptor) == 64 && alignof(PostedInterruptDescriptor) == 64);
static_assert(offsetof(PostedInterruptDescriptor, pir) == 0);
static_assert(offsetof(PostedInterruptDescriptor, control) == 32);
static_assert(std::atomic<uint64_t>::is_always_lock_free);
static_assert(sizeof(std::atomic<uint64_t>) == 8);

struct PostResult {
    bool coalesced = false;   // PIR bit was already set: the vector was already pending
    bool suppressed = false;  // SN was set: no notification
    bool on_was_set = false;  // ON was already set: an earlier notification covers this one
    bool notify = false;      // this post changed ON 0 -> 1: send NV to NDST
    uint8_t nv = 0;           // valid when notify
    uint32_t ndst = 0;        // valid when notify
};

// Post `vector` (SDM Vol3 30.6; VT-d 9.12 "Interrupt-Posting Hardware Operation").
PostResult post(PostedInterruptDescriptor& d, uint8_t vector);

// The receiving side (SDM Vol3 30.6 step "ON cleared, PIR -> VIRR"): clears ON, then takes every
// non-zero PIR word with an atomic exchange. Returns the vectors taken as APIC words.
apic::VectorWords take_pir(PostedInterruptDescriptor& d);

// Atomically replace the control word's NV / NDST / SN (compare-exchange loop keeping ON).
// Returns the new control word.
struct ControlUpdate {
    std::optional<uint8_t> nv;
    std::optional<uint32_t> ndst;
    std::optional<bool> sn;
};
uint64_t update_control(PostedInterruptDescriptor& d, const ControlUpdate& u);
// Set ON (KVM's "PIR not empty after clearing SN" step); true if it was clear.
bool set_on(PostedInterruptDescriptor& d);
// Clear PIR and ON (INIT, restore): what it held is discarded.
void clear_pid(PostedInterruptDescriptor& d);

// SDM Vol3 30.1.6 / 24.6.8 (PID-pointer table, IPI virtualization): an array of 8-byte entries,
// indexed by the destination APIC ID, each the PID's address | 1 (valid, bit 0). Entries change
// while other vCPUs read them, so they are atomics.
namespace pidptr {
inline constexpr uint64_t kValid = 1ULL << 0;
inline constexpr uint64_t kAddressMask = ~0x3FULL;  // PIDs are 64-byte aligned
}  // namespace pidptr

class PidPointerTable {
  public:
    explicit PidPointerTable(std::size_t entries);
    std::size_t size() const { return n_; }
    // The "last PID-pointer index" VMCS field (0x0008).
    uint16_t last_index() const { return static_cast<uint16_t>(n_ - 1); }
    uint64_t entry(std::size_t index) const;
    void set(std::size_t index, const PostedInterruptDescriptor* pid);
    void clear(std::size_t index);
    // The descriptor at `index`, none when out of range or not valid (the CPU then exits).
    PostedInterruptDescriptor* lookup(std::size_t index) const;
    uint64_t address() const { return reinterpret_cast<uintptr_t>(entries_.get()); }

  private:
    std::size_t n_;
    std::unique_ptr<std::atomic<uint64_t>[]> entries_;
};

constexpr uint64_t pid_pointer_entry(uint64_t pid_address)
{
    return (pid_address & pidptr::kAddressMask) | pidptr::kValid;
}
static_assert(pid_pointer_entry(0x1234'5640) == 0x1234'5641);

}  // namespace hv::vmx
