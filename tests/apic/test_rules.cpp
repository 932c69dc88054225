// The rules guest/tests/apic_rules.c checks in a guest, held on every model backend without one
// (CI has no /dev/kvm): IA32_APIC_BASE faults, x2APIC MSR faults, no SELF IPI in xAPIC mode,
// LVT masking while software-disabled. SDM Vol3 sections as in the guest.
#include <gtest/gtest.h>

#include "apic/regs.hpp"
#include "tests/apic/model_backends.hpp"

namespace hv::apic::test {
namespace {

constexpr uint64_t kXapic = base::kDefaultAddr | base::kEnable | base::kBsp;
constexpr uint64_t kX2apic = kXapic | base::kExtd;

class ApicRules : public ::testing::TestWithParam<Factory> {
  protected:
    ApicRules() : vm_(GetParam(), 1), a_(*vm_.apics[0])
    {
        EXPECT_TRUE(a_.mmio_write(base::kDefaultAddr + reg::kSvr, 4, 0x1FF).is_ok());
    }
    uint64_t apic_base() { return a_.msr_read(kMsrApicBase).value; }

    ModelVm vm_;
    ApicBackend& a_;
};

TEST_P(ApicRules, ApicBaseReservedBitsAndInvalidStateFault)
{
    // SDM 11.4.4 (bit 9 reserved); 11.12.5 (EN=0 EXTD=1 is invalid).
    EXPECT_TRUE(a_.msr_write(kMsrApicBase, kXapic | (1ULL << 9)).is_gp());
    EXPECT_TRUE(a_.msr_write(kMsrApicBase, (kXapic & ~base::kEnable) | base::kExtd).is_gp());
    EXPECT_EQ(apic_base(), kXapic);
}

TEST_P(ApicRules, X2apicToXapicMustGoThroughDisabled)
{
    // SDM 11.12.5, Figure 11-27.
    ASSERT_TRUE(a_.msr_write(kMsrApicBase, kX2apic).is_ok());
    EXPECT_TRUE(a_.msr_write(kMsrApicBase, kXapic).is_gp());
    EXPECT_EQ(apic_base(), kX2apic);
    EXPECT_TRUE(a_.msr_write(kMsrApicBase, kXapic & ~base::kEnable).is_ok());
    EXPECT_TRUE(a_.msr_write(kMsrApicBase, kXapic).is_ok());
}

TEST_P(ApicRules, X2apicReservedReadOnlyAndWriteOnlyMsrsFault)
{
    // SDM 11.12.1.2 (Table 11-6) and 11.12.1.3 (reserved bits).
    ASSERT_TRUE(a_.msr_write(kMsrApicBase, kX2apic).is_ok());
    EXPECT_TRUE(a_.msr_read(0x831).is_gp());  // no ICR high in x2APIC mode
    EXPECT_TRUE(a_.msr_read(0x804).is_gp());  // reserved
    EXPECT_TRUE(a_.msr_write(0x802, 5).is_gp());
    EXPECT_TRUE(a_.msr_write(0x803, 0).is_gp());
    EXPECT_TRUE(a_.msr_read(0x80B).is_gp());
    EXPECT_TRUE(a_.msr_write(0x80B, 1).is_gp());
    EXPECT_TRUE(a_.msr_write(0x808, 0x100).is_gp());
    EXPECT_TRUE(a_.msr_read(0x83F).is_gp());
}

TEST_P(ApicRules, XapicHasNoSelfIpiRegister)
{
    // SDM 11.12.11: SELF IPI exists only in x2APIC mode.
    const AccessResult r = a_.mmio_write(base::kDefaultAddr + reg::kSelfIpi, 4, 0x48);
    EXPECT_FALSE(r.ipi.has_value());
    EXPECT_EQ(a_.pending_vector(), std::nullopt);
}

TEST_P(ApicRules, SoftwareDisableMasksTheLvt)
{
    // SDM 11.4.7.2.
    const uint64_t lvt_error = base::kDefaultAddr + reg::kLvtError;
    const uint64_t lvt_timer = base::kDefaultAddr + reg::kLvtTimer;
    ASSERT_TRUE(a_.mmio_write(lvt_error, 4, 0x33).is_ok());
    ASSERT_TRUE(a_.mmio_write(base::kDefaultAddr + reg::kSvr, 4, 0xFF).is_ok());
    EXPECT_TRUE(a_.mmio_read(lvt_error, 4).value & lvt::kMasked);
    ASSERT_TRUE(a_.mmio_write(lvt_timer, 4, 0x34).is_ok());
    EXPECT_TRUE(a_.mmio_read(lvt_timer, 4).value & lvt::kMasked);
    ASSERT_TRUE(a_.mmio_write(base::kDefaultAddr + reg::kSvr, 4, 0x1FF).is_ok());
    EXPECT_TRUE(a_.mmio_read(lvt_error, 4).value & lvt::kMasked);
}

INSTANTIATE_TEST_SUITE_P(Backends, ApicRules, ::testing::ValuesIn(factories()),
                         [](const ::testing::TestParamInfo<Factory>& i) { return i.param.name; });

}  // namespace
}  // namespace hv::apic::test
