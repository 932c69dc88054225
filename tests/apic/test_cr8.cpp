// CR8 and the TPR are one register on every model backend (SDM Vol3 11.8.6.1 "Interaction of
// Task Priorities between CR8 and APIC"): CR8[3:0] is TPR[7:4]; a MOV to CR8 makes the TPR
// CR8 << 4, a TPR write shows in CR8, in xAPIC and x2APIC mode, across an APIC reset through
// IA32_APIC_BASE and across flatten/restore. The vCPU loop carries CR8 between KVM and the
// backend (core/vcpu/cr8_sync.hpp); these tests hold the backend half.
#include <gtest/gtest.h>

#include "apic/regs.hpp"
#include "tests/apic/model_backends.hpp"

namespace hv::apic::test {
namespace {

constexpr uint64_t kXapicBase = base::kDefaultAddr | base::kEnable | base::kBsp;

class Cr8Tpr : public ::testing::TestWithParam<Factory> {
  protected:
    Cr8Tpr() : vm_(GetParam(), 1), a_(*vm_.apics[0])
    {
        EXPECT_TRUE(a_.mmio_write(base::kDefaultAddr + reg::kSvr, 4, 0x1FF).is_ok());
    }
    uint64_t xapic_tpr() { return a_.mmio_read(base::kDefaultAddr + reg::kTpr, 4).value; }

    ModelVm vm_;
    ApicBackend& a_;
};

TEST_P(Cr8Tpr, MovToCr8SetsTprBits7To4)
{
    EXPECT_EQ(a_.cr8(), 0);
    a_.write_cr8(0x5);
    EXPECT_EQ(xapic_tpr(), 0x50u);
    EXPECT_EQ(a_.cr8(), 0x5);
    EXPECT_EQ(a_.flatten().tpr, 0x50u);
    a_.write_cr8(0xF);
    EXPECT_EQ(xapic_tpr(), 0xF0u);
    a_.write_cr8(0);
    EXPECT_EQ(xapic_tpr(), 0u);
}

TEST_P(Cr8Tpr, TprWriteShowsInCr8AndKeepsItsLowBits)
{
    ASSERT_TRUE(a_.mmio_write(base::kDefaultAddr + reg::kTpr, 4, 0x7A).is_ok());
    EXPECT_EQ(a_.cr8(), 0x7);
    EXPECT_EQ(xapic_tpr(), 0x7Au);  // reading CR8 does not write the TPR
    // A MOV to CR8 clears TPR[3:0].
    a_.write_cr8(0x7);
    EXPECT_EQ(xapic_tpr(), 0x70u);
}

TEST_P(Cr8Tpr, Cr8MasksAndUnmasksLikeTheTpr)
{
    // SDM Vol3 11.8.3.1: a fixed interrupt is taken only when its priority class is above
    // PPR[7:4], here the TPR's.
    a_.write_cr8(0x4);
    a_.deliver(Interrupt{.vector = 0x45});
    EXPECT_EQ(a_.pending_vector(), std::nullopt);
    a_.write_cr8(0x3);
    EXPECT_EQ(a_.pending_vector(), std::optional<uint8_t>(0x45));
    a_.write_cr8(0xE);
    EXPECT_EQ(a_.pending_vector(), std::nullopt);
    a_.write_cr8(0x0);
    const AckResult r = a_.ack();
    EXPECT_EQ(r.vector, 0x45);
    EXPECT_FALSE(r.spurious);
}

TEST_P(Cr8Tpr, AgreeAfterTheApicIsDisabledAndEnabledAgain)
{
    a_.write_cr8(0x6);
    ASSERT_TRUE(a_.msr_write(kMsrApicBase, kXapicBase & ~base::kEnable).is_ok());
    ASSERT_TRUE(a_.msr_write(kMsrApicBase, kXapicBase).is_ok());
    // Whatever the reset left in the TPR, CR8 reads its bits 7:4.
    EXPECT_EQ(a_.cr8(), static_cast<uint8_t>(xapic_tpr() >> 4));
    a_.write_cr8(0x9);
    EXPECT_EQ(xapic_tpr(), 0x90u);
    ASSERT_TRUE(a_.mmio_write(base::kDefaultAddr + reg::kTpr, 4, 0x20).is_ok());
    EXPECT_EQ(a_.cr8(), 0x2);
}

TEST_P(Cr8Tpr, X2apicModeTprMsrIsTheSameRegister)
{
    ASSERT_TRUE(a_.msr_write(kMsrApicBase, kXapicBase | base::kExtd).is_ok());
    a_.write_cr8(0xC);
    EXPECT_EQ(a_.msr_read(x2apic_msr(reg::kTpr)).value, 0xC0u);
    ASSERT_TRUE(a_.msr_write(x2apic_msr(reg::kTpr), 0x31).is_ok());
    EXPECT_EQ(a_.cr8(), 0x3);
}

TEST_P(Cr8Tpr, RestoredTprIsCr8)
{
    ApicState s = a_.flatten();
    s.tpr = 0xB7;
    ASSERT_EQ(a_.restore(s), std::nullopt);
    EXPECT_EQ(a_.cr8(), 0xB);
    EXPECT_EQ(xapic_tpr(), 0xB7u);
}

INSTANTIATE_TEST_SUITE_P(Backends, Cr8Tpr, ::testing::ValuesIn(factories()),
                         [](const ::testing::TestParamInfo<Factory>& i) { return i.param.name; });

}  // namespace
}  // namespace hv::apic::test
