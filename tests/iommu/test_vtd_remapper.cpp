// VtdRemapper: VT-d 5.1.4 request processing, every fault reason, FPD, the fault log, and the
// posted path against real posted-interrupt descriptors.
#include <gtest/gtest.h>

#include "fakes.hpp"
#include "iommu/vtd_remapper.hpp"

namespace hv::iommu {
namespace {

using test::FakePostingSink;

MsiMessage handle_msi(uint16_t handle)
{
    return RemappableMsi{handle, false, 0}.encode();
}

VtdRemappedIrte remapped(uint8_t vector, uint32_t dest)
{
    VtdRemappedIrte r;
    r.present = true;
    r.vector = vector;
    r.dest = dest;
    return r;
}

class VtdRemapperTest : public ::testing::Test {
  protected:
    VtdConfig cfg() const
    {
        VtdConfig c;
        c.size_log2 = 4;  // 16 entries
        return c;
    }
    VtdPostedIrte posted(uint8_t vector, std::size_t pid = 0) const
    {
        VtdPostedIrte p;
        p.present = true;
        p.vector = vector;
        p.pda = sink.pda(pid);
        return p;
    }
    FakePostingSink sink;
    VtdRemapper unit{cfg(), sink};
};

TEST_F(VtdRemapperTest, RemappedEntryGivesTheHostInterrupt)
{
    ASSERT_TRUE(unit.set_entry(5, remapped(0x45, 0x1234).encode()));
    const auto r = unit.remap(0x0010, handle_msi(5));
    ASSERT_EQ(r.outcome, VtdOutcome::Remapped);
    EXPECT_EQ(r.index, 5u);
    EXPECT_EQ(r.remapped.vector, 0x45);
    EXPECT_EQ(r.message.vector, 0x45);
    EXPECT_EQ(r.message.dest.dest, 0x1234u);
    EXPECT_TRUE(r.message.dest.x2apic_format);
    EXPECT_EQ(unit.counter(IommuStat::Remapped), 1u);
    EXPECT_TRUE(unit.faults().empty());
}

TEST_F(VtdRemapperTest, SubhandleIsAddedToHandle)
{
    unit.set_entry(7, remapped(0x50, 1).encode());
    const auto r = unit.remap(0, RemappableMsi{4, true, 3}.encode());
    ASSERT_EQ(r.outcome, VtdOutcome::Remapped);
    EXPECT_EQ(r.index, 7u);
    EXPECT_EQ(r.message.vector, 0x50);
}

// One case per fault reason: the code, and the record's source ID / index / request.
TEST_F(VtdRemapperTest, EveryFaultReasonIsRecorded)
{
    // 20h: not an interrupt address, and reserved data bits in a remappable request.
    const MsiMessage high{0x1'FEE0'0010ULL, 0};
    EXPECT_EQ(unit.remap(1, high).fault, VtdFault::RequestReserved);
    const MsiMessage rsvd{0xFEE0'0010ULL, 0x0001'0000u};
    EXPECT_EQ(unit.remap(1, rsvd).fault, VtdFault::RequestReserved);
    // 21h: handle 16 in a 16-entry table.
    EXPECT_EQ(unit.remap(2, handle_msi(16)).fault, VtdFault::IndexBeyond);
    // 22h: not present.
    EXPECT_EQ(unit.remap(3, handle_msi(1)).fault, VtdFault::NotPresent);
    // 24h: reserved bit 12.
    unit.set_entry(2, VtdIrte{remapped(0x40, 0).encode().lo | (1ULL << 12), 0});
    EXPECT_EQ(unit.remap(4, handle_msi(2)).fault, VtdFault::IrteReserved);
    // 25h: compatibility format while CFIS = 0.
    const MsiMessage compat = CompatMsi{}.encode();
    EXPECT_EQ(unit.remap(5, compat).fault, VtdFault::CompatBlocked);
    // 26h: SID 0x0100 required, 0x0101 asked.
    auto sid = remapped(0x41, 0);
    sid.source = {0x0100, 0, VtdSvt::SidSq};
    unit.set_entry(3, sid.encode());
    EXPECT_EQ(unit.remap(0x0101, handle_msi(3)).fault, VtdFault::SidMismatch);
    // 27h: a PDA that is no descriptor.
    auto bad = posted(0x42);
    bad.pda = 0x1000;
    unit.set_entry(4, bad.encode());
    EXPECT_EQ(unit.remap(6, handle_msi(4)).fault, VtdFault::PidAccess);

    const std::vector<VtdFaultRecord> expect = {
        {VtdFault::RequestReserved, 1, 0, high},
        {VtdFault::RequestReserved, 1, 0, rsvd},
        {VtdFault::IndexBeyond, 2, 16, handle_msi(16)},
        {VtdFault::NotPresent, 3, 1, handle_msi(1)},
        {VtdFault::IrteReserved, 4, 2, handle_msi(2)},
        {VtdFault::CompatBlocked, 5, 0, compat},
        {VtdFault::SidMismatch, 0x0101, 3, handle_msi(3)},
        {VtdFault::PidAccess, 6, 4, handle_msi(4)},
    };
    EXPECT_EQ(unit.faults(), expect);
    EXPECT_EQ(unit.counter(IommuStat::Faulted), expect.size());
    EXPECT_EQ(unit.counter(IommuStat::Remapped), 0u);
    EXPECT_EQ(unit.take_faults().size(), expect.size());
    EXPECT_TRUE(unit.faults().empty());
}

TEST_F(VtdRemapperTest, FpdSuppressesOnlyQualifiedFaultRecords)
{
    // Not present, FPD set: blocked, not recorded.
    unit.set_entry(1, VtdIrte{vtd::kFpd, 0});
    auto r = unit.remap(0, handle_msi(1));
    EXPECT_EQ(r.outcome, VtdOutcome::Blocked);
    EXPECT_EQ(r.fault, VtdFault::NotPresent);
    EXPECT_FALSE(r.recorded);
    // SID mismatch with FPD: blocked, not recorded.
    auto sid = remapped(0x41, 0);
    sid.fpd = true;
    sid.source = {0x0100, 0, VtdSvt::SidSq};
    unit.set_entry(2, sid.encode());
    r = unit.remap(0x0200, handle_msi(2));
    EXPECT_EQ(r.fault, VtdFault::SidMismatch);
    EXPECT_FALSE(r.recorded);
    // Reserved bits with FPD.
    unit.set_entry(3, VtdIrte{vtd::kPresent | vtd::kFpd | (1ULL << 13), 0});
    EXPECT_FALSE(unit.remap(0, handle_msi(3)).recorded);
    EXPECT_TRUE(unit.faults().empty());
    EXPECT_EQ(unit.counter(IommuStat::Faulted), 3u);
}

TEST_F(VtdRemapperTest, FaultLogOverflowIsCounted)
{
    VtdConfig c = cfg();
    c.fault_log_size = 4;
    VtdRemapper small{c, sink};
    for (int i = 0; i < 6; ++i) {
        small.remap(static_cast<uint16_t>(i), handle_msi(0));
    }
    EXPECT_EQ(small.faults().size(), 4u);
    EXPECT_EQ(small.fault_overflows(), 2u);
    EXPECT_EQ(small.faults().back().source_id, 3);
    small.take_faults();
    EXPECT_TRUE(small.remap(9, handle_msi(0)).recorded);
}

TEST_F(VtdRemapperTest, CompatibilityPassThroughWhenCfis)
{
    VtdConfig c = cfg();
    c.compat_passthrough = true;
    VtdRemapper pass{c, sink};
    CompatMsi m;
    m.dest_id = 3;
    m.vector = 0x61;
    const auto r = pass.remap(0, m.encode());
    ASSERT_EQ(r.outcome, VtdOutcome::Compat);
    EXPECT_EQ(r.message, to_message(m));
    // A reserved delivery mode is refused without a VT-d fault.
    const auto bad = pass.remap(0, MsiMessage{0xFEE0'0000ULL, 0x361});
    EXPECT_EQ(bad.outcome, VtdOutcome::Blocked);
    EXPECT_FALSE(bad.fault.has_value());
}

TEST_F(VtdRemapperTest, XapicModeDestinationAndReservedBits)
{
    VtdConfig c = cfg();
    c.x2apic_mode = false;
    VtdRemapper x{c, sink};
    x.set_entry(0, remapped(0x70, 0x0000'3400).encode());
    const auto r = x.remap(0, handle_msi(0));
    ASSERT_EQ(r.outcome, VtdOutcome::Remapped);
    EXPECT_EQ(r.message.dest.dest, 0x34u);
    x.set_entry(1, remapped(0x70, 0x0001'3400).encode());  // DST bit 16 = IRTE bit 48
    EXPECT_EQ(x.remap(0, handle_msi(1)).fault, VtdFault::IrteReserved);
}

TEST_F(VtdRemapperTest, PostedSetsPirAndOnAndNotifiesOnce)
{
    auto& pid = sink.pid(0);
    vmx::update_control(pid, {.nv = 0xF2, .ndst = 0x7, .sn = false});
    unit.set_entry(0, posted(0x31).encode());
    unit.set_entry(1, posted(0x95).encode());

    auto r = unit.remap(0, handle_msi(0));
    ASSERT_EQ(r.outcome, VtdOutcome::Posted);
    EXPECT_TRUE(r.post.notify);
    EXPECT_TRUE(r.notified);
    EXPECT_EQ(r.post.nv, 0xF2);
    EXPECT_EQ(r.post.ndst, 0x7u);
    EXPECT_TRUE(pid.on());
    EXPECT_NE(pid.pir[0].load() & (1ULL << 0x31), 0u);
    EXPECT_EQ(sink.notifications.load(), 1u);
    EXPECT_EQ(sink.last_pid(), &pid);

    // ON already set: no second notification, for the same or another vector.
    r = unit.remap(0, handle_msi(1));
    EXPECT_TRUE(r.post.on_was_set);
    EXPECT_FALSE(r.notified);
    r = unit.remap(0, handle_msi(0));
    EXPECT_TRUE(r.post.coalesced);
    EXPECT_EQ(sink.notifications.load(), 1u);
    EXPECT_EQ(unit.counter(IommuStat::Coalesced), 1u);

    // The CPU takes PIR (clearing ON): the next post notifies again.
    const auto words = vmx::take_pir(pid);
    EXPECT_EQ(words[1], 1u << (0x31 - 32));
    EXPECT_EQ(words[4], 1u << (0x95 - 128));
    r = unit.remap(0, handle_msi(1));
    EXPECT_TRUE(r.notified);
    EXPECT_EQ(sink.notifications.load(), 2u);
    EXPECT_EQ(unit.counter(IommuStat::Posted), 4u);
    EXPECT_EQ(unit.counter(IommuStat::Notified), 2u);
}

TEST_F(VtdRemapperTest, SuppressNotificationAndUrgent)
{
    auto& pid = sink.pid(1);
    vmx::update_control(pid, {.nv = 0xF1, .ndst = 0x9, .sn = true});
    unit.set_entry(0, posted(0x40, 1).encode());
    auto r = unit.remap(0, handle_msi(0));
    ASSERT_EQ(r.outcome, VtdOutcome::Posted);
    EXPECT_TRUE(r.post.suppressed);
    EXPECT_FALSE(r.notified);
    EXPECT_FALSE(pid.on());
    EXPECT_NE(pid.pir[1].load() & 1ULL, 0u);  // vector 0x40
    EXPECT_EQ(unit.counter(IommuStat::Suppressed), 1u);

    // URG overrides SN (VT-d 9.12): ON set and one notification.
    auto urgent = posted(0x41, 1);
    urgent.urgent = true;
    unit.set_entry(2, urgent.encode());
    r = unit.remap(0, handle_msi(2));
    EXPECT_TRUE(r.notified);
    EXPECT_EQ(r.post.nv, 0xF1);
    EXPECT_EQ(r.post.ndst, 0x9u);
    EXPECT_TRUE(pid.on());
    r = unit.remap(0, handle_msi(2));
    EXPECT_FALSE(r.notified);
    EXPECT_EQ(sink.notifications.load(), 1u);
}

TEST_F(VtdRemapperTest, PostedEntryWithoutPostingCapabilityIsReserved)
{
    VtdConfig c = cfg();
    c.posting = false;
    VtdRemapper nopi{c, sink};
    nopi.set_entry(0, posted(0x40).encode());
    EXPECT_EQ(nopi.remap(0, handle_msi(0)).fault, VtdFault::IrteReserved);
    EXPECT_TRUE(sink.pid(0).pir_empty());
}

TEST_F(VtdRemapperTest, PostedEntrySourceValidation)
{
    auto p = posted(0x40);
    p.source = {0x0300, 0, VtdSvt::Bus};  // bus 3..0
    unit.set_entry(0, p.encode());
    EXPECT_EQ(unit.remap(0x0300, handle_msi(0)).fault, VtdFault::SidMismatch);
    p.source = {0x0203, 0, VtdSvt::Bus};  // bus 2..3
    unit.set_entry(0, p.encode());
    EXPECT_EQ(unit.remap(0x0300, handle_msi(0)).outcome, VtdOutcome::Posted);
}

TEST_F(VtdRemapperTest, CompareExchangeAndBounds)
{
    const VtdIrte a = remapped(0x40, 1).encode();
    const VtdIrte b = posted(0x41).encode();
    EXPECT_TRUE(unit.set_entry(3, a));
    VtdIrte expected{};
    EXPECT_FALSE(unit.compare_exchange(3, expected, b));
    EXPECT_EQ(expected, a);
    EXPECT_TRUE(unit.compare_exchange(3, expected, b));
    EXPECT_EQ(unit.entry(3), b);
    EXPECT_FALSE(unit.set_entry(16, a));
    EXPECT_EQ(unit.entry(16), VtdIrte{});
    EXPECT_THROW((VtdRemapper{test::vtd_config(0), sink}), std::invalid_argument);
    EXPECT_THROW((VtdRemapper{test::vtd_config(17), sink}), std::invalid_argument);
}

TEST_F(VtdRemapperTest, CountersAsList)
{
    const apic::CounterList list = unit.counters();
    ASSERT_EQ(list.size(), static_cast<std::size_t>(IommuStat::Count));
    EXPECT_EQ(list[0].name, "remapped");
    unit.remap(0, handle_msi(0));
    EXPECT_EQ(apic::counter_value(unit.counters(), "faulted"), 1u);
}

}  // namespace
}  // namespace hv::iommu
