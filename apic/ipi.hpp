// Interrupt messages: what an ICR write asks for (Ipi) and what a local APIC receives (Interrupt).
// The model decodes and validates; it never routes. Routing is destination.hpp plus the caller.
#pragma once

#include <cstdint>
#include <optional>

#include "apic/regs.hpp"

namespace hv::apic {

// SDM Vol3 11.6.1 "Interrupt Command Register (ICR)": delivery mode encodings. 011b is reserved;
// 111b is ExtINT in an LVT or IOAPIC entry and reserved in the ICR.
enum class DeliveryMode : uint8_t {
    Fixed = 0,
    LowestPriority = 1,
    Smi = 2,
    Reserved3 = 3,
    Nmi = 4,
    Init = 5,
    StartUp = 6,
    ExtInt = 7,
};
enum class DestMode : uint8_t { Physical = 0, Logical = 1 };
enum class Trigger : uint8_t { Edge = 0, Level = 1 };
enum class Shorthand : uint8_t { None = 0, Self = 1, AllIncludingSelf = 2, AllExcludingSelf = 3 };

// Where a message is going, as every source (ICR, IOAPIC, MSI) expresses it.
struct Destination {
    uint32_t dest = 0;  // xAPIC format: 8-bit ID/bitmap; x2APIC format: 32 bits
    DestMode mode = DestMode::Physical;
    Shorthand shorthand = Shorthand::None;
    bool x2apic_format = false;  // broadcast is 0xFFFFFFFF rather than 0xFF
    bool operator==(const Destination&) const = default;
};

// A decoded ICR (or x2APIC SELF_IPI) write: the request the caller must route.
struct Ipi {
    uint8_t vector = 0;
    DeliveryMode mode = DeliveryMode::Fixed;
    Trigger trigger = Trigger::Edge;
    bool assert_level = true;  // ICR bit 14; only meaningful for INIT (de-assert when clear)
    Destination dest{};

    // SDM Vol3 11.6.1: INIT with level = 0 and trigger = level is "INIT level de-assert", sent to
    // all processors to resynchronise arbitration IDs (not supported by Pentium 4 and later).
    bool is_init_deassert() const
    {
        return mode == DeliveryMode::Init && !assert_level && trigger == Trigger::Level;
    }
    bool operator==(const Ipi&) const = default;
};

// Decodes the normalised 64-bit ICR value. In xAPIC mode the destination is ICR[63:56].
Ipi decode_icr(uint64_t icr, bool x2apic);
// Inverse of decode_icr (delivery status clear), used by tests and by backends that keep an ICR.
uint64_t encode_icr(const Ipi& ipi, bool x2apic);

// What a target local APIC receives after routing.
enum class Source : uint8_t { Ipi, Msi, IoApic, Timer, LocalLvt, Count };

struct Interrupt {
    uint8_t vector = 0;
    DeliveryMode mode = DeliveryMode::Fixed;
    Trigger trigger = Trigger::Edge;
    bool assert_level = true;
    Source source = Source::Ipi;
    bool operator==(const Interrupt&) const = default;
};

// Vectors 0-15 are reserved for exceptions and illegal as interrupt vectors.
// SDM Vol3 11.5.2 "Valid Interrupt Vectors": the APIC reports an illegal vector in the ESR.
constexpr bool is_legal_vector(uint8_t v)
{
    return v >= 16;
}

}  // namespace hv::apic
