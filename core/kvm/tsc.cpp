#include "core/kvm/tsc.hpp"

#include <linux/kvm.h>
#include <sys/ioctl.h>

#include <cerrno>

#include "core/base/error.hpp"
#include "core/kvm/kvm.hpp"

namespace hv::kvm {

namespace {

constexpr std::uint32_t kMsrTsc = 0x10;  // IA32_TIME_STAMP_COUNTER (SDM Vol4 table 2-2)

bool within(std::uint64_t got, std::uint64_t want, std::uint64_t tolerance)
{
    // Modulo 2^64: the distance either way.
    return got - want <= tolerance || want - got <= tolerance;
}

kvm_device_attr offset_attr(std::uint64_t* value)
{
    kvm_device_attr a{};
    a.group = KVM_VCPU_TSC_CTRL;
    a.attr = KVM_VCPU_TSC_OFFSET;
    a.addr = reinterpret_cast<std::uint64_t>(value);
    return a;
}

}  // namespace

void VcpuTsc::write_msr(std::uint64_t value)
{
    vcpu_.set_msr(kMsrTsc, value);
}

std::uint64_t VcpuTsc::read_msr()
{
    return vcpu_.get_msr(kMsrTsc);
}

std::optional<std::uint64_t> VcpuTsc::offset()
{
    std::uint64_t value = 0;
    kvm_device_attr a = offset_attr(&value);
    if (::ioctl(vcpu_.fd(), KVM_HAS_DEVICE_ATTR, &a) != 0)
        return std::nullopt;
    vcpu_.ioctl_checked(KVM_GET_DEVICE_ATTR, &a, "KVM_GET_DEVICE_ATTR (TSC offset)");
    return value;
}

void VcpuTsc::set_offset(std::uint64_t offset)
{
    kvm_device_attr a = offset_attr(&offset);
    vcpu_.ioctl_checked(KVM_SET_DEVICE_ATTR, &a, "KVM_SET_DEVICE_ATTR (TSC offset)");
}

TscPath set_guest_tsc(TscAccess& tsc, std::uint64_t want, std::uint64_t tolerance, unsigned vcpu)
{
    tsc.write_msr(want);
    std::uint64_t got = tsc.read_msr();
    if (within(got, want, tolerance))
        return TscPath::Msr;
    const std::optional<std::uint64_t> offset = tsc.offset();
    if (!offset)
        fail("vCPU {}: KVM did not take the guest TSC (wrote {:#x}, reads {:#x}) and offers no "
             "TSC offset attribute: the restored guest clock would be wrong",
             vcpu, want, got);
    tsc.set_offset(*offset + (want - got));
    const std::uint64_t again = tsc.read_msr();
    if (!within(again, want, tolerance))
        fail("vCPU {}: KVM took neither the guest TSC nor its offset (wrote {:#x}, reads {:#x}): "
             "the restored guest clock would be wrong",
             vcpu, want, again);
    return TscPath::Offset;
}

}  // namespace hv::kvm
