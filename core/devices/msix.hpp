// MSI-X (PCI Local Bus 3.0 6.8.2): the capability's Message Control (enable, function mask) and
// the table and pending-bit array (PBA) that live in a memory BAR.
//
// Table entry (16 bytes, 6.8.2.6-6.8.2.9): +0 message address (bits 1:0 read as zero),
// +4 upper address, +8 data, +12 vector control (bit 0 mask; the rest reserved, read as zero).
// Every entry is masked at reset. The PBA (6.8.2.10) is read-only: bit n set = entry n has a
// message pending because it was masked when the function wanted to send it.
// 6.8.3.5 "Per-vector Masking and Function Masking": a function that would signal a masked
// entry sets its pending bit instead; once the entry (and the function) is unmasked with the
// pending bit set, the function sends the message and clears the bit.
// Table and PBA accept aligned DWORD and QWORD accesses (6.8.2: other sizes are undefined;
// here they read as all-ones and writes are dropped).
//
// Threads: the guest's table accesses come from vCPU threads, raise() from the device's thread.
// `mu_` guards the table; the callbacks run without it.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "core/bus/bus.hpp"

namespace hv::dev {

struct MsixEntry {
    std::uint64_t address = 0;
    std::uint32_t data = 0;
    bool masked = true;
    bool operator==(const MsixEntry&) const = default;
};

class MsixTable : public IoDevice {
  public:
    static constexpr unsigned kMaxEntries = 2048;
    static constexpr std::uint64_t kPbaOffset = 0x800;  // in the same BAR as the table
    static constexpr unsigned kEntryBytes = 16;
    static constexpr std::uint32_t kVectorMasked = 1u << 0;

    struct Counters {
        std::atomic<std::uint64_t> raised{0};     // the function wanted to signal
        std::atomic<std::uint64_t> sent{0};       // messages sent (immediately or on unmask)
        std::atomic<std::uint64_t> pended{0};     // raises that set a pending bit
        std::atomic<std::uint64_t> coalesced{0};  // raises whose pending bit was already set
        std::atomic<std::uint64_t> dropped{0};    // MSI-X disabled or bus mastering off
    };

    // `changed(entry)`: the entry's address, data or effective mask changed — the hypervisor
    // re-programs what carries it (IRTE, KVM route). `send(entry, msg)`: the function writes the
    // message (delivered through the interrupt-remapping path).
    using Changed = std::function<void(unsigned entry)>;
    using Send = std::function<void(unsigned entry, const MsixEntry& msg)>;
    MsixTable(unsigned entries, Changed changed, Send send);

    unsigned size() const { return static_cast<unsigned>(table_.size()); }

    // Device side: signal entry `n`. `may_send` is false while bus mastering is off.
    void raise(unsigned n, bool may_send = true);

    // Capability side: Message Control bits 15 (enable) and 14 (function mask).
    void set_control(bool enable, bool function_mask);
    bool enabled() const;
    bool function_masked() const;
    // The entry as the guest programmed it, and its pending bit.
    MsixEntry entry(unsigned n) const;
    bool pending(unsigned n) const;

    // IoDevice: the table at offset 0, the PBA at kPbaOffset.
    std::uint64_t read(std::uint64_t offset, unsigned size) override;
    void write(std::uint64_t offset, unsigned size, std::uint64_t value) override;

    // Snapshots: entries, pending bits and control; restore re-programs every entry.
    struct State {
        std::vector<MsixEntry> entries;
        std::vector<bool> pending;
        bool enabled = false;
        bool function_masked = false;
    };
    State state() const;
    void restore(const State& s);

    const Counters& counters() const { return counters_; }
    std::string stats() const;

  private:
    std::uint32_t read_dword(std::uint64_t offset) const;
    // Writes one table dword; returns true when the entry's routing changed.
    bool write_dword(std::uint64_t offset, std::uint32_t value);
    // Entries that are pending and deliverable now: their bits are cleared, the caller sends.
    std::vector<unsigned> take_releasable();
    void send_released(const std::vector<unsigned>& entries);
    void notify_all_changed();

    Changed changed_;
    Send send_;
    mutable std::mutex mu_;
    std::vector<MsixEntry> table_;
    std::vector<bool> pending_;
    bool enabled_ = false;
    bool function_masked_ = false;
    Counters counters_;
};

}  // namespace hv::dev
