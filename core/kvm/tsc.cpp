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
    if (const std::optional<std::uint64_t> offset = tsc.offset()) {
        tsc.set_offset(*offset + (want - got));
        got = tsc.read_msr();
        if (within(got, want, tolerance))
            return TscPath::Offset;
    }
    // Modulo 2^64, as the TSC itself: ahead means less than half the range ahead.
    if (static_cast<std::int64_t>(got - want) > 0)
        return TscPath::Ahead;
    fail(
        "vCPU {}: KVM keeps the guest TSC at {:#x}, behind the snapshot's {:#x}, and takes neither "
        "a TSC write nor an offset: the restored guest clock would run backwards",
        vcpu, got, want);
}

}  // namespace hv::kvm
