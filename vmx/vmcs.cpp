#include "vmx/vmcs.hpp"

namespace hv::vmx {

uint64_t& VmcsImage::eoi_exit(unsigned i)
{
    switch (i & 3u) {
    case 0:
        return eoi_exit0.value;
    case 1:
        return eoi_exit1.value;
    case 2:
        return eoi_exit2.value;
    default:
        return eoi_exit3.value;
    }
}

uint64_t VmcsImage::eoi_exit(unsigned i) const
{
    return const_cast<VmcsImage*>(this)->eoi_exit(i);
}

std::optional<uint64_t> VmcsImage::read(uint32_t encoding) const
{
    switch (encoding) {
    case field::kPostedInterruptNotificationVector:
        return pi_notification_vector.value;
    case field::kLastPidPointerIndex:
        return last_pid_pointer_index.value;
    case field::kGuestInterruptStatus:
        return guest_interrupt_status.value;
    case field::kVirtualApicPageAddress:
        return virtual_apic_page.value;
    case field::kApicAccessAddress:
        return apic_access_page.value;
    case field::kPostedInterruptDescriptorAddress:
        return pid_address.value;
    case field::kEoiExitBitmap0:
        return eoi_exit0.value;
    case field::kEoiExitBitmap1:
        return eoi_exit1.value;
    case field::kEoiExitBitmap2:
        return eoi_exit2.value;
    case field::kEoiExitBitmap3:
        return eoi_exit3.value;
    case field::kTertiaryControls:
        return tertiary_controls.value;
    case field::kPidPointerTableAddress:
        return pid_pointer_table.value;
    case field::kPinBasedControls:
        return pin_controls.value;
    case field::kPrimaryControls:
        return primary_controls.value;
    case field::kTprThreshold:
        return tpr_threshold.value;
    case field::kSecondaryControls:
        return secondary_controls.value;
    default:
        return std::nullopt;
    }
}

}  // namespace hv::vmx
