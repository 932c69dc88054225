// A passthrough-style PCI device whose interrupts come from a host thread, as a physical device's
// would: the guest programs its MSI-X table and starts a burst of N interrupts at a given rate on
// one or several MSI-X entries; the device thread raises them, recording the TSC of each raise
// (host TSC for the VMM, guest TSC written into a guest buffer for the guest) so that latency is
// measured from the raise to the guest's handler.
//
// PCI identity: vendor 0x6876 ("hv", not a PCI-SIG assigned ID: a test device only), device
// 0x0001, class 0xFF0000 (unassigned). BAR0: 4 KiB of registers. BAR1: 4 KiB holding the MSI-X
// table (8 entries) at 0 and the PBA at 0x800. MSI-X capability at 0x40.
//
// BAR0 registers (32-bit, little endian; unknown offsets read 0, writes are ignored):
//   0x00 ID           RO  0x68766972 ("hvir")
//   0x04 STATUS       RO  bit 0: a burst is running
//   0x08 COUNT        RW  interrupts in the next burst
//   0x0C ENTRIES      RW  bit n: raise on MSI-X entry n (round robin over the set bits; 0 = entry
//   0) 0x10 INTERVAL_NS  RW  time between raises (0: back to back) 0x14 CONTROL      W   1: start a
//   burst, 2: stop; bit 8 with start: paced (each raise waits
//                         until the guest has acknowledged the previous one through ACK)
//   0x18 RAISED       RO  raises in the current or last burst
//   0x1C ACK          RW  write: acknowledge one interrupt; read: acknowledgements so far
//   0x20 LOG_LO/0x24 LOG_HI RW  guest-physical address of the raise log: the device writes the
//                         guest TSC of raise i as a u64 at LOG + 8 * (i % LOG_SLOTS)
//   0x28 LOG_SLOTS    RW  slots in the log (0: no log)
//   0x2C LOG_REFUSED  RO  log writes refused (outside guest RAM, or bus mastering off)
//   0x30 RAISE_NOW    W   raise MSI-X entry `value` now, from the writing vCPU
//   0x38 LAST_TSC_LO/0x3C LAST_TSC_HI RO  guest TSC of the last raise
// The log is DMA: every write is bounds-checked against guest RAM (GuestMemory::write) and
// refused otherwise; nothing a guest programs makes the device touch memory outside the guest.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/bus/memory.hpp"
#include "core/devices/msix.hpp"
#include "core/devices/pci.hpp"

namespace hv::dev {

namespace irqdev {
inline constexpr std::uint16_t kVendor = 0x6876;
inline constexpr std::uint16_t kDevice = 0x0001;
inline constexpr std::uint32_t kIdValue = 0x6876'6972;
inline constexpr unsigned kEntries = 8;
inline constexpr std::uint32_t kBarSize = 0x1000;
// Where hvaccel places the BARs before the guest runs (the guest may move them).
inline constexpr std::uint32_t kBar0Default = 0xC000'0000;
inline constexpr std::uint32_t kBar1Default = 0xC000'1000;
enum Reg : std::uint32_t {
    kId = 0x00,
    kStatus = 0x04,
    kCount = 0x08,
    kEntryMask = 0x0C,
    kIntervalNs = 0x10,
    kControl = 0x14,
    kRaised = 0x18,
    kAck = 0x1C,
    kLogLo = 0x20,
    kLogHi = 0x24,
    kLogSlots = 0x28,
    kLogRefused = 0x2C,
    kRaiseNow = 0x30,
    kLastTscLo = 0x38,
    kLastTscHi = 0x3C,
};
inline constexpr std::uint32_t kControlStart = 1;
inline constexpr std::uint32_t kControlStop = 2;
inline constexpr std::uint32_t kControlPaced = 1u << 8;
}  // namespace irqdev

class IrqDevice final : public PciFunction {
  public:
    // `send(entry, msg)`: the device's memory write of an MSI-X message, which the VM carries
    // through its interrupt-remapping path; `changed(entry)`: re-program the route of an entry.
    // `guest_tsc_offset`: guest TSC = host TSC + offset.
    IrqDevice(const GuestMemory& mem, std::uint64_t guest_tsc_offset, MsixTable::Changed changed,
              MsixTable::Send send);
    ~IrqDevice() override;

    MsixTable& msix() { return msix_; }
    unsigned msix_capability() const { return msix_cap_; }

    // Stop raising (VM pause, snapshot) and go on; a burst resumes where it stopped.
    void quiesce();
    void resume();

    // Host TSC of every raise in the current or last burst (benchmarks).
    std::vector<std::uint64_t> raise_tscs() const;
    std::string stats() const;

  private:
    struct Registers : IoDevice {
        IrqDevice& dev;
        explicit Registers(IrqDevice& d) : dev(d) {}
        std::uint64_t read(std::uint64_t offset, unsigned size) override;
        void write(std::uint64_t offset, unsigned size, std::uint64_t value) override;
    };
    void config_written(unsigned offset, unsigned size) override;
    void start_burst(bool paced);
    void raise_one(unsigned entry);
    unsigned entry_for(std::uint64_t i) const;
    void burst_loop();
    bool bus_master() const { return (command() & pci::kCommandBusMaster) != 0; }

    const GuestMemory& mem_;
    std::uint64_t tsc_offset_;
    Registers regs_{*this};
    MsixTable msix_;
    unsigned msix_cap_ = 0;

    mutable std::mutex mu_;  // guards the burst parameters and the raise log
    std::condition_variable cv_;
    std::uint32_t count_ = 0, entry_mask_ = 0, interval_ns_ = 0, log_slots_ = 0;
    std::uint64_t log_base_ = 0;
    bool running_ = false, paced_ = false, quiesced_ = false, exit_ = false;
    std::uint64_t burst_id_ = 0;
    std::vector<std::uint64_t> raise_tsc_;  // host TSC per raise of this burst
    std::atomic<std::uint32_t> raised_{0};
    std::atomic<std::uint32_t> acks_{0};
    std::atomic<std::uint64_t> last_guest_tsc_{0};
    std::atomic<std::uint64_t> log_refused_{0};
    std::atomic<std::uint64_t> bursts_{0};
    std::thread thread_;
};

}  // namespace hv::dev
