#include "iommu/amd_irte.hpp"

namespace hv::iommu {

namespace {

uint64_t encode_dest_lo(uint32_t dest)
{
    return (uint64_t{dest} << amd::kDestShift) & amd::kDestLowMask;
}
uint64_t encode_dest_hi(uint32_t dest)
{
    return uint64_t{dest >> 24} << amd::kDestHighShift;
}
uint32_t decode_dest(const AmdGaIrte& e)
{
    return static_cast<uint32_t>((e.lo & amd::kDestLowMask) >> amd::kDestShift) |
           (static_cast<uint32_t>(e.hi >> amd::kDestHighShift) << 24);
}
uint64_t encode_remap_bits(AmdIntType t, bool rq_eoi, apic::DestMode dm)
{
    return (static_cast<uint64_t>(t) << amd::kIntTypeShift) | (rq_eoi ? amd::kRqEoi : 0) |
           (dm == apic::DestMode::Logical ? amd::kDestLogical : 0);
}
// IntType 000b fixed and 001b arbitrated are the only encodings (QEMU amdvi_int_remap_* refuses
// the rest as reserved too).
bool int_type_reserved(uint64_t lo)
{
    return ((lo & amd::kIntTypeMask) >> amd::kIntTypeShift) > 1;
}
AmdIntType int_type_of(uint64_t lo)
{
    return static_cast<AmdIntType>((lo & amd::kIntTypeMask) >> amd::kIntTypeShift);
}
apic::DestMode dest_mode_of(uint64_t lo)
{
    return (lo & amd::kDestLogical) != 0 ? apic::DestMode::Logical : apic::DestMode::Physical;
}
apic::DeliveryMode delivery_of(AmdIntType t)
{
    return t == AmdIntType::Arbitrated ? apic::DeliveryMode::LowestPriority
                                       : apic::DeliveryMode::Fixed;
}

}  // namespace

uint32_t AmdLegacyIrte::encode() const
{
    return static_cast<uint32_t>((remap_en ? amd::kRemapEn : 0) | (sup_iopf ? amd::kSupIopf : 0) |
                                 encode_remap_bits(int_type, rq_eoi, dest_mode)) |
           (uint32_t{dest} << amd::kLegacyDestShift) |
           (uint32_t{vector} << amd::kLegacyVectorShift);
}

Decoded<AmdLegacyIrte, AmdIrteError> AmdLegacyIrte::decode(uint32_t raw)
{
    Decoded<AmdLegacyIrte, AmdIrteError> out;
    if ((raw & amd::kLegacyReserved) != 0 || int_type_reserved(raw)) {
        out.error = AmdIrteError::Reserved;
        return out;
    }
    AmdLegacyIrte& e = out.value;
    e.remap_en = (raw & amd::kRemapEn) != 0;
    e.sup_iopf = (raw & amd::kSupIopf) != 0;
    e.int_type = int_type_of(raw);
    e.rq_eoi = (raw & amd::kRqEoi) != 0;
    e.dest_mode = dest_mode_of(raw);
    e.dest = static_cast<uint8_t>(raw >> amd::kLegacyDestShift);
    e.vector = static_cast<uint8_t>(raw >> amd::kLegacyVectorShift);
    return out;
}

AmdGaIrte AmdGaRemapIrte::encode() const
{
    AmdGaIrte e;
    e.lo = (remap_en ? amd::kRemapEn : 0) | (sup_iopf ? amd::kSupIopf : 0) |
           encode_remap_bits(int_type, rq_eoi, dest_mode) | encode_dest_lo(dest) |
           (uint64_t{ga_tag} << amd::kGaTagShift);
    e.hi = uint64_t{vector} | encode_dest_hi(dest);
    return e;
}

Decoded<AmdGaRemapIrte, AmdIrteError> AmdGaRemapIrte::decode(const AmdGaIrte& e)
{
    Decoded<AmdGaRemapIrte, AmdIrteError> out;
    if (is_guest_mode(e)) {
        out.error = AmdIrteError::WrongMode;
        return out;
    }
    if ((e.hi & amd::kHiReserved) != 0 || int_type_reserved(e.lo)) {
        out.error = AmdIrteError::Reserved;
        return out;
    }
    AmdGaRemapIrte& r = out.value;
    r.remap_en = (e.lo & amd::kRemapEn) != 0;
    r.sup_iopf = (e.lo & amd::kSupIopf) != 0;
    r.int_type = int_type_of(e.lo);
    r.rq_eoi = (e.lo & amd::kRqEoi) != 0;
    r.dest_mode = dest_mode_of(e.lo);
    r.dest = decode_dest(e);
    r.ga_tag = static_cast<uint32_t>(e.lo >> amd::kGaTagShift);
    r.vector = static_cast<uint8_t>(e.hi & amd::kVectorMask);
    return out;
}

AmdGaIrte AmdGaVapicIrte::encode() const
{
    AmdGaIrte e;
    e.lo = (remap_en ? amd::kRemapEn : 0) | (sup_iopf ? amd::kSupIopf : 0) |
           (ga_log_intr ? amd::kGaLogIntr : 0) | (is_run ? amd::kIsRun : 0) | amd::kGuestMode |
           encode_dest_lo(dest) | (uint64_t{ga_tag} << amd::kGaTagShift);
    e.hi = uint64_t{vector} | ((ga_root_ptr << amd::kRootShift) & amd::kRootMask) |
           encode_dest_hi(dest);
    return e;
}

Decoded<AmdGaVapicIrte, AmdIrteError> AmdGaVapicIrte::decode(const AmdGaIrte& e)
{
    Decoded<AmdGaVapicIrte, AmdIrteError> out;
    if (!is_guest_mode(e)) {
        out.error = AmdIrteError::WrongMode;
        return out;
    }
    if ((e.lo & amd::kVapicLoReserved) != 0 || (e.hi & amd::kHiReserved) != 0) {
        out.error = AmdIrteError::Reserved;
        return out;
    }
    AmdGaVapicIrte& v = out.value;
    v.remap_en = (e.lo & amd::kRemapEn) != 0;
    v.sup_iopf = (e.lo & amd::kSupIopf) != 0;
    v.ga_log_intr = (e.lo & amd::kGaLogIntr) != 0;
    v.is_run = (e.lo & amd::kIsRun) != 0;
    v.dest = decode_dest(e);
    v.ga_tag = static_cast<uint32_t>(e.lo >> amd::kGaTagShift);
    v.vector = static_cast<uint8_t>(e.hi & amd::kVectorMask);
    v.ga_root_ptr = (e.hi & amd::kRootMask) >> amd::kRootShift;
    return out;
}

AmdGaIrte with_is_run(const AmdGaIrte& e, bool running, uint32_t dest)
{
    AmdGaIrte n = e;
    n.lo = (n.lo & ~(amd::kIsRun | amd::kDestLowMask)) | (running ? amd::kIsRun : 0) |
           encode_dest_lo(dest);
    n.hi = (n.hi & ~(0xFFULL << amd::kDestHighShift)) | encode_dest_hi(dest);
    return n;
}

uint64_t AmdGaLogEntry::encode() const
{
    return uint64_t{ga_tag} | (uint64_t{device_id} << amd::kLogDeviceShift) |
           (uint64_t{type & 0xFu} << amd::kLogTypeShift);
}

AmdGaLogEntry AmdGaLogEntry::decode(uint64_t raw)
{
    AmdGaLogEntry e;
    e.ga_tag = static_cast<uint32_t>(raw);
    e.device_id = static_cast<uint16_t>(raw >> amd::kLogDeviceShift);
    e.type = static_cast<uint8_t>(raw >> amd::kLogTypeShift);
    return e;
}

apic::IoApicMessage to_message(const AmdLegacyIrte& e)
{
    apic::IoApicMessage m;
    m.vector = e.vector;
    m.mode = delivery_of(e.int_type);
    m.trigger = apic::Trigger::Edge;
    m.dest.dest = e.dest;
    m.dest.mode = e.dest_mode;
    m.dest.x2apic_format = false;
    return m;
}

apic::IoApicMessage to_message(const AmdGaRemapIrte& e, bool x2apic)
{
    apic::IoApicMessage m;
    m.vector = e.vector;
    m.mode = delivery_of(e.int_type);
    m.trigger = apic::Trigger::Edge;
    m.dest.dest = x2apic ? e.dest : (e.dest & 0xFFu);
    m.dest.mode = e.dest_mode;
    m.dest.x2apic_format = x2apic;
    return m;
}

}  // namespace hv::iommu
