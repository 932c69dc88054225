#include "iommu/msi.hpp"

namespace hv::iommu {

std::optional<MsiError> check_interrupt_address(uint64_t address)
{
    if ((address & msi::kHighMask) != 0) {
        return MsiError::AddressHigh;
    }
    if ((address & msi::kWindowMask) != msi::kWindow) {
        return MsiError::NotInterruptAddress;
    }
    return std::nullopt;
}

MsiMessage CompatMsi::encode() const
{
    MsiMessage m;
    m.address = msi::kWindow | (uint64_t{dest_id} << msi::kDestShift) |
                ((uint64_t{ext_dest_id} << msi::kExtDestShift) & msi::kExtDestMask) |
                (redirection_hint ? msi::kRedirectionHint : 0) |
                (dest_mode == apic::DestMode::Logical ? msi::kDestLogical : 0);
    m.data = uint32_t{vector} | (static_cast<uint32_t>(mode) << msi::kModeShift) |
             (level_assert ? msi::kLevelAssert : 0) |
             (trigger == apic::Trigger::Level ? msi::kTriggerLevel : 0);
    return m;
}

Decoded<CompatMsi, MsiError> CompatMsi::decode(const MsiMessage& m)
{
    Decoded<CompatMsi, MsiError> out;
    if (auto e = check_interrupt_address(m.address)) {
        out.error = e;
        return out;
    }
    if (is_remappable(m)) {
        out.error = MsiError::WrongFormat;
        return out;
    }
    const auto mode = static_cast<apic::DeliveryMode>((m.data & msi::kModeMask) >> msi::kModeShift);
    // SDM Vol3 11.11.2: delivery modes 011b and 110b are reserved in MSI data.
    if (mode == apic::DeliveryMode::Reserved3 || mode == apic::DeliveryMode::StartUp) {
        out.error = MsiError::ReservedDeliveryMode;
        return out;
    }
    CompatMsi& c = out.value;
    c.dest_id = static_cast<uint8_t>((m.address & msi::kDestMask) >> msi::kDestShift);
    c.ext_dest_id = static_cast<uint8_t>((m.address & msi::kExtDestMask) >> msi::kExtDestShift);
    c.dest_mode =
        (m.address & msi::kDestLogical) != 0 ? apic::DestMode::Logical : apic::DestMode::Physical;
    c.redirection_hint = (m.address & msi::kRedirectionHint) != 0;
    c.vector = static_cast<uint8_t>(m.data & msi::kVectorMask);
    c.mode = mode;
    c.trigger = (m.data & msi::kTriggerLevel) != 0 ? apic::Trigger::Level : apic::Trigger::Edge;
    c.level_assert = (m.data & msi::kLevelAssert) != 0;
    return out;
}

apic::IoApicMessage to_message(const CompatMsi& m, bool extended_dest_id)
{
    apic::IoApicMessage out;
    out.vector = m.vector;
    out.mode = m.mode;
    out.trigger = m.trigger;
    out.dest.dest = extended_dest_id ? (uint32_t{m.ext_dest_id} << 8) | m.dest_id : m.dest_id;
    out.dest.mode = m.dest_mode;
    out.dest.shorthand = apic::Shorthand::None;
    out.dest.x2apic_format = extended_dest_id;
    out.pin = 0;
    return out;
}

MsiMessage RemappableMsi::encode() const
{
    MsiMessage m;
    m.address = msi::kWindow | msi::kRemappable |
                ((uint64_t{handle} << msi::kHandleShift) & msi::kHandleLowMask) |
                ((handle & 0x8000u) != 0 ? msi::kHandle15 : 0) | (shv ? msi::kShv : 0);
    m.data = shv ? subhandle : 0u;
    return m;
}

Decoded<RemappableMsi, MsiError> RemappableMsi::decode(const MsiMessage& m)
{
    Decoded<RemappableMsi, MsiError> out;
    if (auto e = check_interrupt_address(m.address)) {
        out.error = e;
        return out;
    }
    if (!is_remappable(m)) {
        out.error = MsiError::WrongFormat;
        return out;
    }
    if ((m.data & msi::kRemappableDataReserved) != 0) {
        out.error = MsiError::ReservedData;
        return out;
    }
    RemappableMsi& r = out.value;
    r.handle = static_cast<uint16_t>(((m.address & msi::kHandleLowMask) >> msi::kHandleShift) |
                                     ((m.address & msi::kHandle15) != 0 ? 0x8000u : 0u));
    r.shv = (m.address & msi::kShv) != 0;
    r.subhandle = r.shv ? static_cast<uint16_t>(m.data & msi::kSubhandleMask) : 0;
    return out;
}

}  // namespace hv::iommu
