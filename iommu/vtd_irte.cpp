#include "iommu/vtd_irte.hpp"

namespace hv::iommu {

namespace {

uint64_t encode_source(const VtdSource& s)
{
    return uint64_t{s.sid} | ((uint64_t{s.sq} << vtd::kSqShift) & vtd::kSqMask) |
           ((static_cast<uint64_t>(s.svt) << vtd::kSvtShift) & vtd::kSvtMask);
}

VtdSource decode_source(uint64_t hi)
{
    VtdSource s;
    s.sid = static_cast<uint16_t>(hi & vtd::kSidMask);
    s.sq = static_cast<uint8_t>((hi & vtd::kSqMask) >> vtd::kSqShift);
    s.svt = static_cast<VtdSvt>((hi & vtd::kSvtMask) >> vtd::kSvtShift);
    return s;
}

}  // namespace

bool verify_source(const VtdSource& s, uint16_t requester)
{
    switch (s.svt) {
    case VtdSvt::None:
        return true;
    case VtdSvt::SidSq: {
        // SQ 00b: all 16 bits; 01b: ignore bit 2; 10b: ignore bits 2:1; 11b: ignore bits 2:0.
        static constexpr uint16_t kIgnore[4] = {0x0, 0x4, 0x6, 0x7};
        const auto mask = static_cast<uint16_t>(~kIgnore[s.sq & 3u]);
        return (s.sid & mask) == (requester & mask);
    }
    case VtdSvt::Bus: {
        const unsigned bus = requester >> 8;
        return (s.sid >> 8) <= bus && bus <= (s.sid & 0xFFu);
    }
    case VtdSvt::Reserved:
        break;
    }
    return false;
}

VtdIrte VtdRemappedIrte::encode() const
{
    VtdIrte e;
    e.lo = (present ? vtd::kPresent : 0) | (fpd ? vtd::kFpd : 0) |
           (dest_mode == apic::DestMode::Logical ? vtd::kDestLogical : 0) |
           (redirection_hint ? vtd::kRedirectionHint : 0) |
           (trigger == apic::Trigger::Level ? vtd::kTriggerLevel : 0) |
           ((static_cast<uint64_t>(mode) << vtd::kDlmShift) & vtd::kDlmMask) |
           ((uint64_t{avail} << vtd::kAvailShift) & vtd::kAvailMask) |
           (uint64_t{vector} << vtd::kVectorShift) | (uint64_t{dest} << vtd::kDestShift);
    e.hi = encode_source(source);
    return e;
}

Decoded<VtdRemappedIrte, VtdFault> VtdRemappedIrte::decode(const VtdIrte& e, bool x2apic_mode)
{
    Decoded<VtdRemappedIrte, VtdFault> out;
    const uint64_t lo_reserved =
        vtd::kRemappedLoReserved | (x2apic_mode ? 0 : vtd::kRemappedLoReservedXapic);
    const auto mode = static_cast<apic::DeliveryMode>((e.lo & vtd::kDlmMask) >> vtd::kDlmShift);
    const VtdSource src = decode_source(e.hi);
    if ((e.lo & vtd::kPosted) != 0 || (e.lo & lo_reserved) != 0 ||
        (e.hi & vtd::kRemappedHiReserved) != 0 || mode == apic::DeliveryMode::Reserved3 ||
        mode == apic::DeliveryMode::StartUp || src.svt == VtdSvt::Reserved) {
        out.error = VtdFault::IrteReserved;
        return out;
    }
    VtdRemappedIrte& r = out.value;
    r.present = (e.lo & vtd::kPresent) != 0;
    r.fpd = (e.lo & vtd::kFpd) != 0;
    r.dest_mode =
        (e.lo & vtd::kDestLogical) != 0 ? apic::DestMode::Logical : apic::DestMode::Physical;
    r.redirection_hint = (e.lo & vtd::kRedirectionHint) != 0;
    r.trigger = (e.lo & vtd::kTriggerLevel) != 0 ? apic::Trigger::Level : apic::Trigger::Edge;
    r.mode = mode;
    r.avail = static_cast<uint8_t>((e.lo & vtd::kAvailMask) >> vtd::kAvailShift);
    r.vector = static_cast<uint8_t>((e.lo & vtd::kVectorMask) >> vtd::kVectorShift);
    r.dest = static_cast<uint32_t>(e.lo >> vtd::kDestShift);
    r.source = src;
    return out;
}

apic::IoApicMessage to_message(const VtdRemappedIrte& e, bool x2apic_mode)
{
    apic::IoApicMessage m;
    m.vector = e.vector;
    m.mode = e.mode;
    m.trigger = e.trigger;
    m.dest.dest = e.destination(x2apic_mode);
    m.dest.mode = e.dest_mode;
    m.dest.shorthand = apic::Shorthand::None;
    m.dest.x2apic_format = x2apic_mode;
    m.pin = 0;
    return m;
}

VtdIrte VtdPostedIrte::encode() const
{
    VtdIrte e;
    e.lo = (present ? vtd::kPresent : 0) | (fpd ? vtd::kFpd : 0) |
           ((uint64_t{avail} << vtd::kAvailShift) & vtd::kAvailMask) | (urgent ? vtd::kUrgent : 0) |
           vtd::kPosted | (uint64_t{vector} << vtd::kVectorShift) |
           (((pda >> 6) << vtd::kPdaLowShift) & vtd::kPdaLowMask);
    e.hi = encode_source(source) | ((pda >> 32) << vtd::kPdaHighShift);
    return e;
}

Decoded<VtdPostedIrte, VtdFault> VtdPostedIrte::decode(const VtdIrte& e)
{
    Decoded<VtdPostedIrte, VtdFault> out;
    const VtdSource src = decode_source(e.hi);
    if ((e.lo & vtd::kPosted) == 0 || (e.lo & vtd::kPostedLoReserved) != 0 ||
        (e.hi & vtd::kPostedHiReserved) != 0 || src.svt == VtdSvt::Reserved) {
        out.error = VtdFault::IrteReserved;
        return out;
    }
    VtdPostedIrte& p = out.value;
    p.present = (e.lo & vtd::kPresent) != 0;
    p.fpd = (e.lo & vtd::kFpd) != 0;
    p.avail = static_cast<uint8_t>((e.lo & vtd::kAvailMask) >> vtd::kAvailShift);
    p.urgent = (e.lo & vtd::kUrgent) != 0;
    p.vector = static_cast<uint8_t>((e.lo & vtd::kVectorMask) >> vtd::kVectorShift);
    p.pda = (((e.lo & vtd::kPdaLowMask) >> vtd::kPdaLowShift) << 6) |
            ((e.hi >> vtd::kPdaHighShift) << 32);
    p.source = src;
    return out;
}

}  // namespace hv::iommu
