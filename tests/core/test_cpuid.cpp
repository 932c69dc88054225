#include <gtest/gtest.h>

#include "core/vcpu/guest_cpuid.hpp"

namespace {
kvm_cpuid_entry2 leaf(std::uint32_t fn, std::uint32_t index = 0)
{
    kvm_cpuid_entry2 e{};
    e.function = fn;
    e.index = index;
    return e;
}
const kvm_cpuid_entry2& find(const std::vector<kvm_cpuid_entry2>& v, std::uint32_t fn,
                             std::uint32_t index = 0)
{
    for (const auto& e : v)
        if (e.function == fn && e.index == index)
            return e;
    throw std::runtime_error("leaf missing");
}
}  // namespace

TEST(Cpuid, ApicIdsAndCountsFollowTheVcpu)
{
    std::vector<kvm_cpuid_entry2> sup = {leaf(1), leaf(0xb, 0), leaf(0xb, 1), leaf(0xb, 2)};
    sup[0].ebx = 0xff00'0800;  // host APIC ID 0xff, CLFLUSH size 8
    sup[0].edx = 1u << 28;
    auto c = hv::guest_cpuid(sup, 3, 4, {});
    EXPECT_EQ(find(c, 1).ebx >> 24, 3u);
    EXPECT_EQ((find(c, 1).ebx >> 16) & 0xff, 4u);
    EXPECT_EQ(find(c, 1).ebx & 0xffff, 0x0800u);
    EXPECT_TRUE(find(c, 1).edx & (1u << 9));   // APIC
    EXPECT_TRUE(find(c, 1).edx & (1u << 28));  // HTT with several vCPUs
    EXPECT_TRUE(find(c, 1).ecx & (1u << 21));  // x2APIC
    EXPECT_TRUE(find(c, 1).ecx & (1u << 24));  // TSC deadline
    EXPECT_EQ(find(c, 0xb, 0).edx, 3u);
    EXPECT_EQ(find(c, 0xb, 1).ebx, 4u);
    EXPECT_EQ(find(c, 0xb, 1).eax, 2u);  // 2 bits of core ID
    EXPECT_EQ((find(c, 0xb, 2).ecx >> 8) & 0xff, 0u);

    auto one = hv::guest_cpuid(sup, 0, 1, {.x2apic = false, .tsc_deadline = false});
    EXPECT_FALSE(find(one, 1).edx & (1u << 28));
    EXPECT_FALSE(find(one, 1).ecx & (1u << 21));
    EXPECT_FALSE(find(one, 1).ecx & (1u << 24));
}

TEST(Cpuid, KvmPvInterruptFeaturesAreHiddenFromUserspaceApics)
{
    std::vector<kvm_cpuid_entry2> sup = {leaf(0x40000001)};
    sup[0].eax = 0xffffffff;
    auto c = hv::guest_cpuid(sup, 0, 1, {});
    EXPECT_FALSE(find(c, 0x40000001).eax & (1u << 6));   // PV EOI
    EXPECT_FALSE(find(c, 0x40000001).eax & (1u << 11));  // PV send IPI
    EXPECT_TRUE(find(c, 0x40000001).eax & (1u << 3));    // others kept
    auto k = hv::guest_cpuid(sup, 0, 1, {.kvm_pv_interrupts = true});
    EXPECT_TRUE(find(k, 0x40000001).eax & (1u << 6));
}
