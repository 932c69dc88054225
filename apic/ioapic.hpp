// IoApic: an 82093AA-style I/O APIC (version 0x20, with the EOI register) — 24 pins at 0xFEC00000.
//
// LOCKING RULE (the IOAPIC <-> LAPIC EOI deadlock class):
//   The IoApic never calls out while holding its own lock. Every operation (set_irq, eoi, MMIO
//   write) updates the redirection table and remote-IRR state under `mu_`, collects the messages
//   to deliver into a local batch, releases `mu_`, and only then calls IoApicSink::deliver().
//   Callers follow the mirror rule: a LAPIC backend calls IoApic::eoi() after releasing its own
//   lock (EmulatedApic does). So no thread ever holds an IOAPIC lock while waiting for a LAPIC
//   lock or the other way round, and "vCPU EOIs while a device asserts a pin" cannot cycle.
//   Consequence: two deliveries from different threads may reach the sink in either order, and a
//   message may arrive after a concurrent EOI; both are what a real bus allows.
//
// Model choices:
// - set_irq(pin, level) takes the logical state of the line (asserted or not); the polarity bit
//   is stored for the guest but not applied, as KVM and QEMU do.
// - Edge pins deliver on a rising edge of an unmasked pin; an edge while masked is lost
//   (82093AA datasheet 3.2.4 "Mask"). Level pins deliver while asserted, unmasked and remote IRR
//   clear, and set remote IRR; eoi(vector) clears it and re-delivers a still-asserted pin.
// - Switching an entry to edge trigger clears its remote IRR. Delivery status always reads idle.
// - Registers are accessed with aligned 32-bit MMIO at 0x00 (IOREGSEL), 0x10 (IOWIN) and
//   0x40 (EOI); other accesses read 0 and are ignored (counted).
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#include "apic/ipi.hpp"

namespace hv::apic {

namespace ioapic {
inline constexpr uint64_t kDefaultBase = 0xFEC00000ULL;
inline constexpr uint64_t kMmioSize = 0x1000;
inline constexpr unsigned kPins = 24;
inline constexpr uint32_t kRegSel = 0x00;
inline constexpr uint32_t kWindow = 0x10;
inline constexpr uint32_t kEoi = 0x40;
inline constexpr uint32_t kIndexId = 0x00;
inline constexpr uint32_t kIndexVersion = 0x01;
inline constexpr uint32_t kIndexArb = 0x02;
inline constexpr uint32_t kIndexRedir = 0x10;
inline constexpr uint32_t kVersion = 0x20u | ((kPins - 1) << 16);
static_assert(kVersion == 0x00170020u);
// Redirection entry bits (82093AA datasheet 3.2.4 "I/O Redirection Table Registers").
inline constexpr uint64_t kVectorMask = 0xFF;
inline constexpr uint64_t kModeShift = 8;
inline constexpr uint64_t kModeMask = 0x7ULL << kModeShift;
inline constexpr uint64_t kLogical = 1ULL << 11;
inline constexpr uint64_t kDeliveryStatus = 1ULL << 12;
inline constexpr uint64_t kPolarityLow = 1ULL << 13;
inline constexpr uint64_t kRemoteIrr = 1ULL << 14;
inline constexpr uint64_t kLevel = 1ULL << 15;
inline constexpr uint64_t kMasked = 1ULL << 16;
inline constexpr uint64_t kDestShift = 56;
inline constexpr uint64_t kLowWritable =
    kVectorMask | kModeMask | kLogical | kPolarityLow | kLevel | kMasked;
inline constexpr uint64_t kHighWritable = 0xFFULL << kDestShift;
inline constexpr uint64_t kReset = kMasked;
static_assert(kLowWritable == 0x1AFFFULL);
}  // namespace ioapic

struct IoApicMessage {
    uint8_t vector = 0;
    DeliveryMode mode = DeliveryMode::Fixed;
    Trigger trigger = Trigger::Edge;
    Destination dest{};
    uint8_t pin = 0;
    bool operator==(const IoApicMessage&) const = default;
};

// Decodes a redirection entry into the message it sends.
IoApicMessage decode_redirection(uint64_t entry, uint8_t pin);

// Where messages go. Called with no IoApic lock held, possibly from several threads at once.
class IoApicSink {
  public:
    virtual ~IoApicSink() = default;
    virtual void deliver(const IoApicMessage& msg) = 0;
};

struct IoApicState {
    uint8_t id = 0;
    uint32_t ioregsel = 0;
    std::array<uint64_t, ioapic::kPins> redir{};
    uint32_t pin_levels = 0;  // bit n: line n asserted
    bool operator==(const IoApicState&) const = default;
};
std::optional<std::string> validate(const IoApicState& s);

struct IoApicCounters {
    uint64_t delivered = 0;
    uint64_t masked_edges = 0;  // edges lost while masked
    uint64_t eoi = 0;           // EOIs that cleared a remote IRR
    uint64_t redelivered = 0;   // level pins re-sent after EOI
    uint64_t bad_access = 0;    // unsupported MMIO size/offset, bad pin numbers
    bool operator==(const IoApicCounters&) const = default;
};

class IoApic {
  public:
    explicit IoApic(IoApicSink& sink, uint8_t id = 0);
    IoApic(const IoApic&) = delete;
    IoApic& operator=(const IoApic&) = delete;

    uint32_t mmio_read(uint64_t offset, unsigned size);
    void mmio_write(uint64_t offset, unsigned size, uint32_t value);
    void set_irq(unsigned pin, bool level);
    void eoi(uint8_t vector);  // broadcast EOI from a LAPIC, or the EOI register

    uint64_t redirection(unsigned pin) const;
    IoApicState flatten() const;
    std::optional<std::string> restore(const IoApicState& s);  // no deliveries; remote IRR kept
    IoApicCounters counters() const;

  private:
    struct Batch {
        std::array<IoApicMessage, ioapic::kPins> msgs{};
        unsigned n = 0;
    };
    void service_level(unsigned pin, Batch& out);
    void send(unsigned pin, Batch& out);
    void write_window(uint32_t value, Batch& out);
    uint32_t read_window() const;
    void flush(const Batch& b);

    IoApicSink& sink_;
    mutable std::mutex mu_;
    IoApicState s_;
    IoApicCounters counters_;
};

}  // namespace hv::apic
