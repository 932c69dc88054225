#include "core/vcpu/guest_cpuid.hpp"

#include <bit>

namespace hv {

namespace {

// CPUID bit positions (SDM Vol2A "CPUID—CPU Identification", and KVM's PV leaf documentation).
constexpr std::uint32_t kLeaf1EdxApic = 1u << 9;
constexpr std::uint32_t kLeaf1EdxHtt = 1u << 28;
constexpr std::uint32_t kLeaf1EcxX2apic = 1u << 21;
constexpr std::uint32_t kLeaf1EcxTscDeadline = 1u << 24;
constexpr std::uint32_t kLeaf1EcxHypervisor = 1u << 31;
constexpr std::uint32_t kKvmFeaturesLeaf = 0x40000001;
// KVM_FEATURE_PV_EOI (6), PV_SEND_IPI (11), ASYNC_PF_INT (14), MSI_EXT_DEST_ID (15).
constexpr std::uint32_t kKvmPvInterruptBits = (1u << 6) | (1u << 11) | (1u << 14) | (1u << 15);

unsigned bits_for(unsigned n)
{
    return n <= 1 ? 0 : static_cast<unsigned>(std::bit_width(n - 1));
}

// Leaves 0xB and 0x1F: level 0 = SMT (one thread per core), level 1 = core (all vCPUs).
void topology_leaf(kvm_cpuid_entry2& e, unsigned vcpu_id, unsigned vcpus)
{
    e.edx = vcpu_id;
    switch (e.index) {
    case 0:
        e.eax = 0;
        e.ebx = 1;
        e.ecx = (1u << 8) | 0;
        break;
    case 1:
        e.eax = bits_for(vcpus);
        e.ebx = vcpus;
        e.ecx = (2u << 8) | 1;
        break;
    default:
        e.eax = 0;
        e.ebx = 0;
        e.ecx = e.index;  // level type 0: invalid, terminates enumeration
        break;
    }
}

}  // namespace

std::vector<kvm_cpuid_entry2> guest_cpuid(const std::vector<kvm_cpuid_entry2>& supported,
                                          unsigned vcpu_id, unsigned vcpus,
                                          const CpuidApicFeatures& apic)
{
    std::vector<kvm_cpuid_entry2> out = supported;
    for (auto& e : out) {
        switch (e.function) {
        case 1:
            e.ebx = (e.ebx & 0x0000ffffu) | (vcpu_id << 24) | ((vcpus & 0xffu) << 16);
            e.edx |= kLeaf1EdxApic;
            e.edx = vcpus > 1 ? (e.edx | kLeaf1EdxHtt) : (e.edx & ~kLeaf1EdxHtt);
            e.ecx = apic.x2apic ? (e.ecx | kLeaf1EcxX2apic) : (e.ecx & ~kLeaf1EcxX2apic);
            e.ecx = apic.tsc_deadline ? (e.ecx | kLeaf1EcxTscDeadline)
                                      : (e.ecx & ~kLeaf1EcxTscDeadline);
            e.ecx |= kLeaf1EcxHypervisor;
            break;
        case 4:
            // EAX[31:26] = cores per package - 1; EAX[25:14] = threads sharing the cache - 1:
            // one for L1/L2, all vCPUs for L3.
            if (e.eax & 0x1f) {
                unsigned level = (e.eax >> 5) & 7;
                unsigned sharing = level == 3 ? vcpus - 1u : 0u;
                e.eax =
                    (e.eax & 0x3ffu) | ((sharing & 0xfffu) << 14) | (((vcpus - 1u) & 0x3fu) << 26);
            }
            break;
        case 0xb:
        case 0x1f:
            topology_leaf(e, vcpu_id, vcpus);
            break;
        case kKvmFeaturesLeaf:
            if (!apic.kvm_pv_interrupts)
                e.eax &= ~kKvmPvInterruptBits;
            break;
        default:
            break;
        }
    }
    return out;
}

}  // namespace hv
