// Cr8Sync (core/vcpu/cr8_sync.hpp): which CR8 values KVM reports after KVM_RUN are the guest's
// MOV to CR8, and which are KVM's older copy after a run it left before loading run->cr8.
#include <gtest/gtest.h>

#include "core/vcpu/cr8_sync.hpp"

namespace hv {
namespace {

TEST(Cr8Sync, HandsInTheApicsTprClass)
{
    Cr8Sync s(0);
    EXPECT_EQ(s.before_entry(0x7), 0x7u);
    EXPECT_EQ(s.before_entry(0x1F), 0xFu);  // only bits 3:0 exist
}

TEST(Cr8Sync, UnchangedCr8IsNoWrite)
{
    Cr8Sync s(0);
    s.before_entry(0x3);
    EXPECT_EQ(s.after_run(0x3, true), std::nullopt);
    s.before_entry(0x3);
    EXPECT_EQ(s.after_run(0x3, false), std::nullopt);
}

TEST(Cr8Sync, ChangedCr8AfterAnExitIsTheGuestsWrite)
{
    Cr8Sync s(0);
    s.before_entry(0x0);
    EXPECT_EQ(s.after_run(0x9, true), std::optional<std::uint8_t>(0x9));
    // And lowering it back to the value KVM reported before is a write too after a real exit.
    s.before_entry(0x9);
    EXPECT_EQ(s.after_run(0x0, true), std::optional<std::uint8_t>(0x0));
}

TEST(Cr8Sync, KickBeforeTheLoadKeepsTheApicsValue)
{
    // KVM held 2; the APIC's TPR became 0x50 through an MMIO write; the run is kicked before KVM
    // loaded run->cr8, so it reports its old 2: not a guest write.
    Cr8Sync s(0x2);
    s.before_entry(0x5);
    EXPECT_EQ(s.after_run(0x2, false), std::nullopt);
    // The next run loads it.
    s.before_entry(0x5);
    EXPECT_EQ(s.after_run(0x5, true), std::nullopt);
}

TEST(Cr8Sync, KickAfterAGuestWriteIsStillAWrite)
{
    // Interrupted by a signal after the guest ran: a value that is neither the one handed in
    // nor KVM's previous report can only be the guest's.
    Cr8Sync s(0x2);
    s.before_entry(0x5);
    EXPECT_EQ(s.after_run(0xA, false), std::optional<std::uint8_t>(0xA));
    s.before_entry(0xA);
    EXPECT_EQ(s.after_run(0xA, true), std::nullopt);
}

TEST(Cr8Sync, ReportedValueIsMaskedToBits3To0)
{
    Cr8Sync s(0);
    s.before_entry(0x1);
    EXPECT_EQ(s.after_run(0xF1, true), std::nullopt);
}

}  // namespace
}  // namespace hv
