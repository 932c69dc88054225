// AmdRemapper: the interrupt-remapping half of an AMD IOMMU — per-device interrupt remapping
// tables, the event log entries interrupt remapping produces, and guest virtual APIC ("GA")
// posting with the GA log (AMD IOMMU 2.2.5 "Interrupt Remapping", 2.2.5.2 "Interrupt
// Virtualization", 2.5 "Event Logging").
//
// remap(device_id, msi):
//   1. not an interrupt address (63:32 != 0, 31:20 != 0xFEE): blocked, no event (the DMA path,
//      not modelled, owns such writes);
//   2. no interrupt table for the device (the DTE's IntTabRootPtr/IntTabLen)  -> ILLEGAL_DEV_TABLE_
//      ENTRY (I = 1);
//   3. offset = MSI data[10:0] >= 2^IntTabLen                                -> IO_PAGE_FAULT (I);
//   4. RemapEn = 0                                   -> IO_PAGE_FAULT (I), unless SupIOPF;
//   5. reserved bits / reserved IntType                -> IO_PAGE_FAULT (I, RZ), unless SupIOPF;
//   6. remap (legacy entry, or GuestMode = 0): the interrupt for core to deliver;
//      GuestMode = 1: the vector's IRR bit in the backing page GaSink::page_at(GA root pointer)
//      resolves (none -> IO_PAGE_FAULT (I)); then IsRun -> GaSink::doorbell(Dest); else
//      GALogIntr -> a GA log entry {GATag, DeviceID, GA_GUEST_NR} and the GA log interrupt.
// The GA log is bounded; when full the entry is dropped and GALogOverflow is set (counted). The GA
// log interrupt is raised when an entry is written while no interrupt is pending; drain_ga_log()
// clears the pending state and takes the entries, so no entry is ever left unannounced.
//
// Threads: remap() runs concurrently from any thread; entries are 128-bit atomics so
// set_is_run() (vCPU load/put/block) and compare_exchange() race safely with devices. Tables are
// added and removed under a shared mutex (remap holds it shared). The logs have a leaf mutex. The
// sink is called with no lock held.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <unordered_map>
#include <vector>

#include "apic/counters.hpp"
#include "apic/ioapic.hpp"
#include "iommu/amd_irte.hpp"
#include "iommu/atomic128.hpp"
#include "iommu/msi.hpp"
#include "iommu/stats.hpp"
#include "svm/backing_page.hpp"

namespace hv::iommu {

// What GA mode reaches. Implemented by core over svm::AvicVm (vcpu_at_frame + backing_page,
// doorbell, and the hypervisor's drain_ga_log() + wake by GATag).
class GaSink {
  public:
    virtual ~GaSink() = default;
    virtual svm::BackingPage* page_at(uint64_t ga_root_frame) = 0;  // nullptr = fault
    virtual void doorbell(uint32_t dest) = 0;                       // host APIC ID
    virtual void ga_log_interrupt() = 0;
};

struct AmdConfig {
    bool ga_mode = true;            // 128-bit IRTEs (GAEn); false: legacy 32-bit IRTEs
    bool x2apic = true;             // XTEn: 32-bit destinations (else Dest[7:0], xAPIC)
    std::size_t ga_log_size = 512;  // Linux GA_LOG_ENTRIES
    std::size_t event_log_size = 256;
};

// AMD IOMMU 2.5 "Event Logging", event codes (Linux amd_iommu_types.h EVENT_TYPE_*).
enum class AmdEventCode : uint8_t {
    IllegalDevTableEntry = 0x1,
    IoPageFault = 0x2,
};
// Event flags, bits 27:16 of the entry's second dword (Linux EVENT_FLAGS_SHIFT / EVENT_FLAG_I).
namespace amd_event {
inline constexpr uint16_t kInterrupt = 0x008;        // I: the request was an interrupt
inline constexpr uint16_t kReservedNotZero = 0x080;  // RZ (check: see README)
}  // namespace amd_event

struct AmdEvent {
    AmdEventCode code = AmdEventCode::IoPageFault;
    uint16_t device_id = 0;
    uint16_t flags = 0;
    uint32_t index = 0;  // IRTE offset when known
    MsiMessage msi{};
    bool operator==(const AmdEvent&) const = default;
};

enum class AmdOutcome : uint8_t {
    Remapped,     // `message` for core to deliver
    GuestPosted,  // IRR bit set in the backing page
    Blocked,      // target abort; `event` says what was logged
};

struct AmdRemapResult {
    AmdOutcome outcome = AmdOutcome::Blocked;
    std::optional<AmdEventCode> event;  // Blocked: the event (logged unless suppressed)
    bool logged = false;                // Blocked: an event log entry was written
    uint32_t index = 0;                 // the IRTE offset (MSI data 10:0)
    apic::IoApicMessage message{};      // Remapped
    AmdGaVapicIrte vapic{};             // GuestPosted: the entry used
    bool coalesced = false;             // GuestPosted: the IRR bit was already set
    bool doorbell = false;              // GuestPosted: IsRun, doorbell rung
    bool ga_logged = false;             // GuestPosted: a GA log entry was written
    bool ga_log_overflow = false;       // GuestPosted: the GA log was full; entry dropped
};

class AmdRemapper {
  public:
    AmdRemapper(const AmdConfig& config, GaSink& sink);
    AmdRemapper(const AmdRemapper&) = delete;
    AmdRemapper& operator=(const AmdRemapper&) = delete;

    const AmdConfig& config() const { return cfg_; }

    // The DTE's interrupt table: 2^int_tab_len entries, all zero (RemapEn = 0). Replaces any
    // table the device had. False for int_tab_len > 11 (reserved).
    bool set_table(uint16_t device_id, unsigned int_tab_len);
    void remove_table(uint16_t device_id);
    std::size_t table_size(uint16_t device_id) const;  // 0 = no table

    // Entry access as the hypervisor does it; false without a table, beyond it, or in the other
    // mode (legacy entries in GA mode or the reverse).
    bool set_legacy_entry(uint16_t device_id, std::size_t index, uint32_t raw);
    bool set_entry(uint16_t device_id, std::size_t index, const AmdGaIrte& e);
    std::optional<uint32_t> legacy_entry(uint16_t device_id, std::size_t index) const;
    std::optional<AmdGaIrte> entry(uint16_t device_id, std::size_t index) const;
    // 128-bit compare-exchange of a GA entry; on failure `expected` receives the current entry.
    bool compare_exchange(uint16_t device_id, std::size_t index, AmdGaIrte& expected,
                          const AmdGaIrte& desired);
    // vCPU load/put/block (Linux amd_iommu_update_ga): IsRun and Dest of a GuestMode entry, by
    // compare-exchange. False if there is no such GuestMode entry.
    bool set_is_run(uint16_t device_id, std::size_t index, bool running, uint32_t dest);

    AmdRemapResult remap(uint16_t device_id, const MsiMessage& msi);

    // The hypervisor half: take every GA log entry (oldest first) and re-arm the interrupt.
    std::vector<AmdGaLogEntry> drain_ga_log();
    bool ga_log_overflow() const;  // GALogOverflow status
    void clear_ga_log_overflow();
    uint64_t ga_log_dropped() const;

    std::vector<AmdEvent> events() const;
    std::vector<AmdEvent> take_events();
    uint64_t event_overflows() const;

    uint64_t counter(IommuStat s) const { return stats_.get(s); }
    apic::CounterList counters() const;

  private:
    struct Table {
        std::size_t n = 0;
        std::unique_ptr<Atomic128[]> e;
    };
    Atomic128* slot(uint16_t device_id, std::size_t index) const;  // caller holds tables_mu_
    AmdRemapResult block(AmdRemapResult r, AmdEventCode code, uint16_t flags, uint16_t device_id,
                         const MsiMessage& msi, bool suppress);
    AmdRemapResult remap_legacy(AmdRemapResult r, uint32_t raw, uint16_t device_id,
                                const MsiMessage& msi);
    AmdRemapResult remap_ga(AmdRemapResult r, const AmdGaIrte& e, uint16_t device_id,
                            const MsiMessage& msi);
    AmdRemapResult post_guest(AmdRemapResult r, const AmdGaVapicIrte& v, uint16_t device_id,
                              const MsiMessage& msi);
    void append_ga_log(AmdRemapResult& r, const AmdGaLogEntry& entry);

    AmdConfig cfg_;
    GaSink& sink_;
    mutable std::shared_mutex tables_mu_;
    std::unordered_map<uint16_t, Table> tables_;
    mutable std::mutex log_mu_;  // leaf: guards the two logs and their overflow state
    std::vector<AmdGaLogEntry> ga_log_;
    bool ga_overflow_ = false;
    uint64_t ga_dropped_ = 0;
    std::vector<AmdEvent> events_;
    uint64_t event_overflows_ = 0;
    std::atomic<bool> ga_int_pending_{false};
    IommuCounters stats_{kIommuStatNames};
};

}  // namespace hv::iommu
