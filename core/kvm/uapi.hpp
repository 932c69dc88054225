// C layouts of the KVM ioctl structures that end in a flexible array.
//
// The uapi headers declare those arrays with __DECLARE_FLEX_ARRAY, which wraps them in an
// anonymous struct holding an empty struct. An empty struct has size 0 in C but 1 in C++, so
// in C++ `sizeof(kvm_cpuid2)` is 12 instead of 8, the entries move to offset 12, and the ioctl
// numbers (which encode the size) change: KVM answers EINVAL. hvaccel therefore declares the
// fixed headers itself, builds the variable part behind them by hand, and derives the ioctl
// numbers from these headers. Each size is checked against the C layout.
#pragma once

#include <linux/kvm.h>

#include <cstdint>

namespace hv::kvm::uapi {

struct CpuidHeader {  // struct kvm_cpuid2 without its entries
    std::uint32_t nent;
    std::uint32_t padding;
};
static_assert(sizeof(CpuidHeader) == 8);

struct MsrsHeader {  // struct kvm_msrs without its entries
    std::uint32_t nmsrs;
    std::uint32_t pad;
};
static_assert(sizeof(MsrsHeader) == 8);

struct IrqRoutingHeader {  // struct kvm_irq_routing without its entries
    std::uint32_t nr;
    std::uint32_t flags;
};
static_assert(sizeof(IrqRoutingHeader) == 8);

struct Xsave {  // struct kvm_xsave without the KVM_CAP_XSAVE2 extension
    std::uint32_t region[1024];
};
static_assert(sizeof(Xsave) == 4096);

inline constexpr unsigned long kGetSupportedCpuid = _IOWR(KVMIO, 0x05, CpuidHeader);
inline constexpr unsigned long kSetCpuid2 = _IOW(KVMIO, 0x90, CpuidHeader);
inline constexpr unsigned long kGetMsrs = _IOWR(KVMIO, 0x88, MsrsHeader);
inline constexpr unsigned long kSetMsrs = _IOW(KVMIO, 0x89, MsrsHeader);
inline constexpr unsigned long kSetGsiRouting = _IOW(KVMIO, 0x6a, IrqRoutingHeader);
inline constexpr unsigned long kGetXsave = _IOR(KVMIO, 0xa4, Xsave);
inline constexpr unsigned long kSetXsave = _IOW(KVMIO, 0xa5, Xsave);

// The entries start right after the 8-byte header in every one of these structures.
inline constexpr std::size_t kEntriesOffset = 8;

}  // namespace hv::kvm::uapi
