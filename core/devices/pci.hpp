// A PCI host bridge with configuration mechanism #1 (ports 0xCF8/0xCFC) and one bus, the
// functions on it, and the MMIO window their memory BARs are placed in.
//
// PCI Local Bus 3.0 3.2.2.3.2 "Configuration Mechanism #1": a 32-bit write to CONFIG_ADDRESS
// (0xCF8) latches bit 31 enable, bus 23:16, device 15:11, function 10:8, register 7:2; accesses
// to CONFIG_DATA (0xCFC-0xCFF) then reach that dword of the function's configuration space.
// An absent function reads as all-ones (the master abort the host bridge turns into 0xFFFF...).
//
// BARs (PCI 3.0 6.2.5.1): a 32-bit memory BAR of size S (a power of two) has its bits below S
// read-only zero, so a guest that writes all-ones reads back ~(S-1) | type and learns the size.
// A BAR decodes only while the command register's Memory Space bit is set, and only if it lies
// wholly inside the window [kMmioBase, kMmioEnd) without overlapping another decoding BAR:
// anything else a guest writes is kept in the register (as hardware keeps it) but not mapped,
// and counted — no guest value makes hvaccel route an access outside the window.
//
// Threads: configuration accesses come from vCPU threads; BAR accesses from vCPU threads.
// `mu_` (shared) guards the decode table; a BAR's device is called without it held only after
// the lookup (devices outlive the host).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "core/bus/bus.hpp"

namespace hv::dev {

namespace pci {
inline constexpr std::uint16_t kConfigAddress = 0xCF8;
inline constexpr std::uint16_t kConfigData = 0xCFC;
inline constexpr unsigned kPorts = 8;  // 0xCF8-0xCFF
// The MMIO hole between RAM (below kLowRamTop, 3 GiB) and the IOAPIC at 0xFEC00000.
inline constexpr std::uint64_t kMmioBase = 0xC000'0000;
inline constexpr std::uint64_t kMmioEnd = 0xFEC0'0000;
inline constexpr unsigned kSlots = 32;

// Type 0 configuration header (PCI 3.0 6.1).
inline constexpr unsigned kVendorId = 0x00;
inline constexpr unsigned kDeviceId = 0x02;
inline constexpr unsigned kCommand = 0x04;
inline constexpr unsigned kStatus = 0x06;
inline constexpr unsigned kRevision = 0x08;
inline constexpr unsigned kHeaderType = 0x0E;
inline constexpr unsigned kBar0 = 0x10;
inline constexpr unsigned kBars = 6;
inline constexpr unsigned kSubsystemVendor = 0x2C;
inline constexpr unsigned kCapabilities = 0x34;
inline constexpr unsigned kInterruptLine = 0x3C;
inline constexpr unsigned kInterruptPin = 0x3D;
inline constexpr unsigned kConfigSize = 256;

inline constexpr std::uint16_t kCommandIo = 1u << 0;
inline constexpr std::uint16_t kCommandMemory = 1u << 1;
inline constexpr std::uint16_t kCommandBusMaster = 1u << 2;
inline constexpr std::uint16_t kCommandIntxDisable = 1u << 10;
inline constexpr std::uint16_t kStatusCapList = 1u << 4;

inline constexpr std::uint8_t kCapMsix = 0x11;

// CONFIG_ADDRESS fields.
inline constexpr std::uint32_t config_address(unsigned bus, unsigned slot, unsigned fn,
                                              unsigned reg)
{
    return 0x8000'0000u | (bus << 16) | (slot << 11) | (fn << 8) | (reg & 0xFCu);
}
}  // namespace pci

class PciHost;

// One function's 256-byte configuration space with a per-byte write mask, its BARs and its
// capability list. Devices derive from it.
class PciFunction {
  public:
    virtual ~PciFunction() = default;
    PciFunction(const PciFunction&) = delete;
    PciFunction& operator=(const PciFunction&) = delete;

    std::uint32_t config_read(unsigned offset, unsigned size) const;
    void config_write(unsigned offset, unsigned size, std::uint32_t value);

    std::uint16_t command() const;
    // The address a memory BAR holds now (whether or not it decodes).
    std::uint32_t bar_address(unsigned bar) const;
    std::uint32_t bar_size(unsigned bar) const { return bars_.at(bar).size; }
    IoDevice* bar_device(unsigned bar) const { return bars_.at(bar).dev; }

    // The whole configuration space (snapshots) and its restore; restore keeps read-only bytes.
    std::array<std::uint8_t, pci::kConfigSize> config_bytes() const;
    void restore_config(const std::array<std::uint8_t, pci::kConfigSize>& bytes);

  protected:
    PciFunction(std::uint16_t vendor, std::uint16_t device, std::uint32_t class_code);

    // A 32-bit non-prefetchable memory BAR of `size` bytes (a power of two, at least 16) served
    // by `dev` with offsets relative to the BAR; `initial` is where firmware would place it.
    void add_memory_bar(unsigned bar, std::uint32_t size, IoDevice* dev, std::uint32_t initial);
    // Appends a capability of `length` bytes to the list; returns its offset. `writable` bytes
    // at `offset + i` are guest-writable where mask[i] says.
    unsigned add_capability(std::uint8_t id, unsigned length);
    // An MSI-X capability (PCI 3.0 6.8.2) for a table of `entries` at offset 0 of memory BAR
    // `bar` and its PBA at MsixTable::kPbaOffset in the same BAR; returns its offset.
    unsigned add_msix_capability(unsigned entries, unsigned bar);
    // After a configuration write: if it touched the MSI-X Message Control at `cap`, hands the
    // enable and function-mask bits to `table`.
    void update_msix_control(unsigned cap, unsigned offset, unsigned size, class MsixTable& table);
    void set_writable(unsigned offset, unsigned size, std::uint32_t mask);
    void set_bytes(unsigned offset, unsigned size, std::uint32_t value);
    std::uint32_t get_bytes(unsigned offset, unsigned size) const;

    // Called after a guest configuration write landed (the bytes already hold the new value),
    // without the function's lock; the command/BAR handling has been done.
    virtual void config_written(unsigned /*offset*/, unsigned /*size*/) {}

  private:
    friend class PciHost;
    struct Bar {
        std::uint32_t size = 0;
        IoDevice* dev = nullptr;
    };
    mutable std::mutex mu_;  // guards cfg_
    std::array<std::uint8_t, pci::kConfigSize> cfg_{};
    std::array<std::uint8_t, pci::kConfigSize> wmask_{};
    std::array<Bar, pci::kBars> bars_{};
    unsigned next_cap_ = 0x40;
    unsigned last_cap_ = 0;
    PciHost* host_ = nullptr;
};

// The host bridge: CONFIG_ADDRESS/CONFIG_DATA on the port bus, the BAR window on the MMIO bus.
class PciHost {
  public:
    struct Counters {
        std::atomic<std::uint64_t> config_absent{0};     // accesses to absent functions
        std::atomic<std::uint64_t> bar_refused{0};       // BAR placements not decoded
        std::atomic<std::uint64_t> window_unclaimed{0};  // window accesses outside any BAR
    };

    PciHost();
    ~PciHost();
    PciHost(const PciHost&) = delete;
    PciHost& operator=(const PciHost&) = delete;

    // Claims the configuration ports and the MMIO window.
    void attach(Bus& pio, Bus& mmio);
    // Puts `fn` at bus 0, `slot`, function 0 (the host bridge itself is slot 0).
    void add(unsigned slot, PciFunction* fn);
    PciFunction* function(unsigned slot) const { return slots_.at(slot); }

    // Recomputes which BARs decode (after a command or BAR write, or a restore).
    void update_decoding();
    // Where BAR `bar` of `fn` decodes now, or 0.
    std::uint64_t decoded_address(const PciFunction* fn, unsigned bar) const;

    const Counters& counters() const { return counters_; }
    std::string stats() const;

  private:
    struct ConfigPorts : IoDevice {
        PciHost& host;
        explicit ConfigPorts(PciHost& h) : host(h) {}
        std::uint64_t read(std::uint64_t offset, unsigned size) override;
        void write(std::uint64_t offset, unsigned size, std::uint64_t value) override;
    };
    struct Window : IoDevice {
        PciHost& host;
        explicit Window(PciHost& h) : host(h) {}
        std::uint64_t read(std::uint64_t offset, unsigned size) override;
        void write(std::uint64_t offset, unsigned size, std::uint64_t value) override;
    };
    struct Mapping {
        std::uint64_t base, size;
        const PciFunction* fn;
        unsigned bar;
        IoDevice* dev;
    };
    // The BAR holding [addr, addr+size), with the offset into it; false if none.
    bool find(std::uint64_t addr, unsigned size, IoDevice*& dev, std::uint64_t& offset) const;
    PciFunction* selected(unsigned& reg) const;

    class Bridge;
    std::unique_ptr<Bridge> bridge_;
    std::array<PciFunction*, pci::kSlots> slots_{};
    std::atomic<std::uint32_t> address_{0};
    ConfigPorts ports_{*this};
    Window window_{*this};
    mutable std::shared_mutex mu_;  // guards maps_
    std::vector<Mapping> maps_;
    std::vector<Mapping> refused_;  // placements refused at the last update
    Counters counters_;
};

}  // namespace hv::dev
