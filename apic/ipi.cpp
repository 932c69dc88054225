#include "apic/ipi.hpp"

namespace hv::apic {

Ipi decode_icr(uint64_t icr, bool x2apic)
{
    Ipi ipi;
    ipi.vector = static_cast<uint8_t>(icr & icr::kVectorMask);
    ipi.mode = static_cast<DeliveryMode>((icr & icr::kModeMask) >> icr::kModeShift);
    ipi.trigger = (icr & icr::kLevel) != 0 ? Trigger::Level : Trigger::Edge;
    ipi.assert_level = (icr & icr::kAssert) != 0;
    ipi.dest.mode = (icr & icr::kLogical) != 0 ? DestMode::Logical : DestMode::Physical;
    ipi.dest.shorthand =
        static_cast<Shorthand>((icr & icr::kShorthandMask) >> icr::kShorthandShift);
    ipi.dest.x2apic_format = x2apic;
    // SDM Vol3 11.6.1 "Interrupt Command Register (ICR)": xAPIC destination is ICR[63:56];
    // SDM Vol3 11.12.9 "ICR Operation in x2APIC Mode": x2APIC destination is ICR[63:32].
    const auto high = static_cast<uint32_t>(icr >> icr::kDestShift);
    ipi.dest.dest = x2apic ? high : (high >> 24);
    return ipi;
}

uint64_t encode_icr(const Ipi& ipi, bool x2apic)
{
    uint64_t v = ipi.vector;
    v |= static_cast<uint64_t>(ipi.mode) << icr::kModeShift;
    v |= ipi.dest.mode == DestMode::Logical ? icr::kLogical : 0;
    v |= ipi.assert_level ? icr::kAssert : 0;
    v |= ipi.trigger == Trigger::Level ? icr::kLevel : 0;
    v |= static_cast<uint64_t>(ipi.dest.shorthand) << icr::kShorthandShift;
    const uint64_t dest =
        x2apic ? ipi.dest.dest : (static_cast<uint64_t>(ipi.dest.dest & 0xFF) << 24);
    return v | (dest << icr::kDestShift);
}

}  // namespace hv::apic
