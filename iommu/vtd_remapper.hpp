// VtdRemapper: the interrupt-remapping half of a VT-d unit — the remapping table, the request
// checks of VT-d 5.1.4 "Interrupt-Remapping Hardware Operation", the fault log, and interrupt
// posting (VT-d 5.2 "Interrupt Posting", 9.12 "Interrupt-Posting Hardware Operation").
//
// remap(source_id, msi), in the order the hardware checks:
//   1. not an interrupt address (63:32 != 0, 31:20 != 0xFEE)     -> fault 20h
//   2. compatibility format: passed through if `compat_passthrough` (GSTS.CFIS), else 25h
//   3. remappable format with reserved data bits 31:16           -> 20h
//   4. interrupt_index (handle [+ subhandle]) >= table size       -> 21h
//   5. entry not present                                         -> 22h (qualified)
//   6. reserved bits / reserved encodings in the entry           -> 24h (qualified)
//   7. source-ID verification (SVT/SQ/SID)                       -> 26h (qualified)
//   8. IM = 0: the remapped interrupt, returned for core to deliver to the host vector;
//      IM = 1: the descriptor at PDA (PostingSink::pid_at; none -> 27h, qualified) gets the
//      vector via vmx::post() — PIR bit, then ON unless SN — and if that changed ON 0 -> 1 (or
//      URG overrides SN) the sink's notify() sends NV to NDST.
// Faults are logged as fault records (reason, source ID, index, the request) in a bounded log;
// when it is full further faults are dropped and counted (the hardware's PFO, "primary fault
// overflow"). An entry's FPD bit keeps qualified faults out of the log; the request is blocked
// all the same (VT-d 7.1.1).
//
// Threads: remap() runs concurrently from any number of device threads; entries are 128-bit
// atomics (atomic128.hpp), so software may switch an entry between remapped and posted, or move
// its PDA, with compare_exchange() while devices raise interrupts. The fault log has a leaf
// mutex. The sink is called without any lock held.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "apic/counters.hpp"
#include "apic/ioapic.hpp"
#include "iommu/atomic128.hpp"
#include "iommu/msi.hpp"
#include "iommu/stats.hpp"
#include "iommu/vtd_irte.hpp"
#include "vmx/posted_interrupt.hpp"

namespace hv::iommu {

// Where posted interrupts go. Implemented by core over vmx::ApicvVm (pid_at, notify).
class PostingSink {
  public:
    virtual ~PostingSink() = default;
    // The descriptor at a PDA; nullptr = the access fails (fault 27h).
    virtual vmx::PostedInterruptDescriptor* pid_at(uint64_t pda) = 0;
    // Send the notification event r.nv to r.ndst (called once per ON 0 -> 1 transition).
    virtual void notify(vmx::PostedInterruptDescriptor& pid, const vmx::PostResult& r) = 0;
};

struct VtdConfig {
    unsigned size_log2 = 8;           // 2^size_log2 entries = 2^(IRTA.S + 1); 1..16
    bool x2apic_mode = true;          // IRTA.EIME: 32-bit DST (else xAPIC, DST[15:8])
    bool compat_passthrough = false;  // GSTS.CFIS: compatibility-format requests pass through
    bool posting = true;              // CAP.PI: IM = 1 entries are legal
    std::size_t fault_log_size = 256;
};

enum class VtdOutcome : uint8_t {
    Remapped,  // `message` is the remapped interrupt; core delivers it
    Compat,    // compatibility format passed through; `message` is the original interrupt
    Posted,    // posted to the descriptor at `posted.pda`
    Blocked,   // a fault (see `fault`, `recorded`)
};

struct VtdFaultRecord {
    VtdFault reason = VtdFault::RequestReserved;
    uint16_t source_id = 0;
    uint32_t index = 0;  // interrupt_index when known (faults 21h..27h), else 0
    MsiMessage msi{};
    bool operator==(const VtdFaultRecord&) const = default;
};

struct VtdRemapResult {
    VtdOutcome outcome = VtdOutcome::Blocked;
    std::optional<VtdFault> fault;  // Blocked: why (none: a compatibility request the APIC bus
                                    // cannot carry, see README)
    bool recorded = false;          // Blocked: a fault record was written
    uint32_t index = 0;             // remappable requests: the interrupt_index
    apic::IoApicMessage message{};  // Remapped, Compat
    VtdRemappedIrte remapped{};     // Remapped
    VtdPostedIrte posted{};         // Posted
    vmx::PostResult post{};         // Posted: what vmx::post() reported
    bool notified = false;          // Posted: PostingSink::notify() was called
};

class VtdRemapper {
  public:
    // Throws std::invalid_argument for a size outside 1..16 or an empty fault log.
    VtdRemapper(const VtdConfig& config, PostingSink& sink);
    VtdRemapper(const VtdRemapper&) = delete;
    VtdRemapper& operator=(const VtdRemapper&) = delete;

    const VtdConfig& config() const { return cfg_; }
    std::size_t size() const { return n_; }

    // Table access as software does it; false for an index beyond the table.
    bool set_entry(std::size_t index, const VtdIrte& e);
    VtdIrte entry(std::size_t index) const;  // zero (not present) beyond the table
    // 128-bit compare-exchange (the required way to update a posted entry). On failure
    // `expected` receives the current entry.
    bool compare_exchange(std::size_t index, VtdIrte& expected, const VtdIrte& desired);

    VtdRemapResult remap(uint16_t source_id, const MsiMessage& msi);

    std::vector<VtdFaultRecord> faults() const;  // snapshot, oldest first
    std::vector<VtdFaultRecord> take_faults();   // drain (software clearing the F bits / PFO)
    uint64_t fault_overflows() const;            // faults dropped because the log was full

    uint64_t counter(IommuStat s) const { return stats_.get(s); }
    apic::CounterList counters() const;

  private:
    VtdRemapResult block(VtdRemapResult r, VtdFault f, uint16_t sid, const MsiMessage& msi,
                         bool fpd);
    VtdRemapResult deliver_posted(VtdRemapResult r, const VtdPostedIrte& p, uint16_t sid,
                                  const MsiMessage& msi);

    VtdConfig cfg_;
    PostingSink& sink_;
    std::size_t n_;
    std::unique_ptr<Atomic128[]> table_;
    mutable std::mutex log_mu_;  // leaf: guards log_ and overflows_
    std::vector<VtdFaultRecord> log_;
    uint64_t overflows_ = 0;
    IommuCounters stats_{kIommuStatNames};
};

}  // namespace hv::iommu
