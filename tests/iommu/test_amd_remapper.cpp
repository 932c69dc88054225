// AmdRemapper: per-device tables, events, legacy and GA remapping, and GA mode against real
// backing pages (IRR bit, doorbell, GA log and its interrupt, overflow).
#include <gtest/gtest.h>

#include "fakes.hpp"
#include "iommu/amd_remapper.hpp"

namespace hv::iommu {
namespace {

using test::FakeGaSink;

MsiMessage msi_index(uint32_t data)
{
    return MsiMessage{0xFEE0'0000ULL, data};
}

AmdGaVapicIrte vapic(uint8_t vector, std::size_t page, bool is_run, bool ga_log_intr)
{
    AmdGaVapicIrte v;
    v.remap_en = true;
    v.vector = vector;
    v.ga_root_ptr = FakeGaSink::frame(page);
    v.is_run = is_run;
    v.ga_log_intr = ga_log_intr;
    v.dest = 0x17;
    v.ga_tag = 0xA000 + static_cast<uint32_t>(page);
    return v;
}

TEST(AmdRemapperLegacy, RemapsThroughTheDeviceTable)
{
    FakeGaSink sink;
    AmdRemapper unit{test::amd_config(false), sink};
    ASSERT_TRUE(unit.set_table(0x0010, 3));  // 8 entries
    EXPECT_EQ(unit.table_size(0x0010), 8u);
    AmdLegacyIrte e{true, false, AmdIntType::Fixed, false, apic::DestMode::Physical, 0x05, 0x61};
    ASSERT_TRUE(unit.set_legacy_entry(0x0010, 5, e.encode()));
    EXPECT_EQ(unit.legacy_entry(0x0010, 5), e.encode());
    EXPECT_FALSE(unit.set_entry(0x0010, 5, AmdGaIrte{}));  // GA entries in legacy mode

    // Offset = MSI data 10:0; bit 15 (level) is the request's trigger mode.
    const auto r = unit.remap(0x0010, msi_index(0x8005));
    ASSERT_EQ(r.outcome, AmdOutcome::Remapped);
    EXPECT_EQ(r.index, 5u);
    EXPECT_EQ(r.message.vector, 0x61);
    EXPECT_EQ(r.message.dest.dest, 0x05u);
    EXPECT_EQ(r.message.trigger, apic::Trigger::Level);
    EXPECT_EQ(unit.remap(0x0010, msi_index(0x0805)).index, 5u);  // bit 11 is not the offset
    EXPECT_EQ(unit.counter(IommuStat::Remapped), 2u);
}

TEST(AmdRemapperLegacy, EventsForEveryFault)
{
    FakeGaSink sink;
    AmdRemapper unit{test::amd_config(false), sink};
    unit.set_table(1, 3);
    // No table: ILLEGAL_DEV_TABLE_ENTRY.
    auto r = unit.remap(2, msi_index(0));
    EXPECT_EQ(r.event, AmdEventCode::IllegalDevTableEntry);
    EXPECT_TRUE(r.logged);
    // Offset beyond 2^IntTabLen: IO_PAGE_FAULT.
    r = unit.remap(1, msi_index(0x7FF));
    EXPECT_EQ(r.event, AmdEventCode::IoPageFault);
    EXPECT_EQ(r.index, 0x7FFu);
    // RemapEn = 0.
    r = unit.remap(1, msi_index(1));
    EXPECT_EQ(r.event, AmdEventCode::IoPageFault);
    // RemapEn = 0 with SupIOPF: blocked, no event.
    unit.set_legacy_entry(1, 2, amd::kSupIopf);
    r = unit.remap(1, msi_index(2));
    EXPECT_EQ(r.outcome, AmdOutcome::Blocked);
    EXPECT_FALSE(r.logged);
    // Reserved IntType: IO_PAGE_FAULT with RZ.
    unit.set_legacy_entry(1, 3, 0x1u | (2u << 2));
    r = unit.remap(1, msi_index(3));
    EXPECT_EQ(r.event, AmdEventCode::IoPageFault);
    // Not an interrupt address: blocked without an event.
    r = unit.remap(1, MsiMessage{0xFED0'0000ULL, 0});
    EXPECT_EQ(r.outcome, AmdOutcome::Blocked);
    EXPECT_FALSE(r.event.has_value());

    EXPECT_EQ(static_cast<uint8_t>(AmdEventCode::IllegalDevTableEntry), 0x1);
    EXPECT_EQ(static_cast<uint8_t>(AmdEventCode::IoPageFault), 0x2);
    const uint16_t i = amd_event::kInterrupt;
    const std::vector<AmdEvent> expect = {
        {AmdEventCode::IllegalDevTableEntry, 2, i, 0, msi_index(0)},
        {AmdEventCode::IoPageFault, 1, i, 0x7FF, msi_index(0x7FF)},
        {AmdEventCode::IoPageFault, 1, i, 1, msi_index(1)},
        {AmdEventCode::IoPageFault, 1, i | amd_event::kReservedNotZero, 3, msi_index(3)},
    };
    EXPECT_EQ(unit.events(), expect);
    EXPECT_EQ(unit.counter(IommuStat::Faulted), 6u);
    EXPECT_EQ(unit.take_events().size(), 4u);
    EXPECT_TRUE(unit.events().empty());
    EXPECT_FALSE(unit.set_table(1, 12));
}

TEST(AmdRemapperLegacy, EventLogOverflow)
{
    FakeGaSink sink;
    AmdRemapper unit{test::amd_config(false, true, 512, 2), sink};
    for (int i = 0; i < 5; ++i) {
        unit.remap(9, msi_index(0));
    }
    EXPECT_EQ(unit.events().size(), 2u);
    EXPECT_EQ(unit.event_overflows(), 3u);
}

TEST(AmdRemapperGa, RemapVariantUsesThe32BitDestination)
{
    FakeGaSink sink;
    AmdRemapper unit{AmdConfig{}, sink};
    unit.set_table(4, 2);
    AmdGaRemapIrte e;
    e.remap_en = true;
    e.int_type = AmdIntType::Arbitrated;
    e.dest = 0x0100'0002;
    e.vector = 0x33;
    ASSERT_TRUE(unit.set_entry(4, 1, e.encode()));
    auto r = unit.remap(4, msi_index(1));
    ASSERT_EQ(r.outcome, AmdOutcome::Remapped);
    EXPECT_EQ(r.message.dest.dest, 0x0100'0002u);
    EXPECT_EQ(r.message.mode, apic::DeliveryMode::LowestPriority);
    EXPECT_TRUE(r.message.dest.x2apic_format);

    AmdRemapper xapic{test::amd_config(true, false), sink};
    xapic.set_table(4, 2);
    xapic.set_entry(4, 1, e.encode());
    EXPECT_EQ(xapic.remap(4, msi_index(1)).message.dest.dest, 0x02u);
}

TEST(AmdRemapperGa, GuestModeRunningRingsTheDoorbell)
{
    FakeGaSink sink;
    AmdRemapper unit{AmdConfig{}, sink};
    unit.set_table(7, 4);
    unit.set_entry(7, 3, vapic(0x51, 2, true, true).encode());
    auto r = unit.remap(7, msi_index(3));
    ASSERT_EQ(r.outcome, AmdOutcome::GuestPosted);
    EXPECT_FALSE(r.coalesced);
    EXPECT_TRUE(r.doorbell);
    EXPECT_FALSE(r.ga_logged);
    EXPECT_TRUE(sink.page(2).test_irr(0x51));
    EXPECT_EQ(sink.doorbells.load(), 1u);
    EXPECT_EQ(sink.last_doorbell.load(), 0x17u);
    EXPECT_EQ(sink.ga_interrupts.load(), 0u);
    r = unit.remap(7, msi_index(3));
    EXPECT_TRUE(r.coalesced);
    EXPECT_EQ(unit.counter(IommuStat::Coalesced), 1u);
    EXPECT_EQ(unit.counter(IommuStat::Doorbells), 2u);
}

TEST(AmdRemapperGa, GuestModeNotRunningWritesTheGaLog)
{
    FakeGaSink sink;
    AmdRemapper unit{AmdConfig{}, sink};
    unit.set_table(7, 4);
    unit.set_entry(7, 0, vapic(0x52, 1, false, true).encode());
    unit.set_entry(7, 1, vapic(0x53, 1, false, false).encode());
    auto r = unit.remap(7, msi_index(0));
    ASSERT_EQ(r.outcome, AmdOutcome::GuestPosted);
    EXPECT_TRUE(r.ga_logged);
    EXPECT_FALSE(r.doorbell);
    EXPECT_TRUE(sink.page(1).test_irr(0x52));
    EXPECT_EQ(sink.ga_interrupts.load(), 1u);
    // A second entry while the interrupt is pending: logged, no second interrupt.
    unit.remap(7, msi_index(0));
    EXPECT_EQ(sink.ga_interrupts.load(), 1u);
    // GALogIntr clear: the IRR bit only.
    r = unit.remap(7, msi_index(1));
    EXPECT_FALSE(r.ga_logged);
    EXPECT_TRUE(sink.page(1).test_irr(0x53));

    const std::vector<AmdGaLogEntry> expect(2, AmdGaLogEntry{0xA001, 7, amd::kGaGuestNr});
    EXPECT_EQ(unit.drain_ga_log(), expect);
    EXPECT_TRUE(unit.drain_ga_log().empty());
    unit.remap(7, msi_index(0));
    EXPECT_EQ(sink.ga_interrupts.load(), 2u);  // re-armed by the drain
    EXPECT_EQ(unit.counter(IommuStat::GaLogged), 3u);
    EXPECT_EQ(unit.counter(IommuStat::Posted), 4u);
}

TEST(AmdRemapperGa, GaLogOverflow)
{
    FakeGaSink sink;
    AmdRemapper unit{test::amd_config(true, true, 2), sink};
    unit.set_table(7, 1);
    unit.set_entry(7, 0, vapic(0x52, 0, false, true).encode());
    bool overflowed = false;
    for (int i = 0; i < 3; ++i) {
        overflowed = unit.remap(7, msi_index(0)).ga_log_overflow;
    }
    EXPECT_TRUE(overflowed);
    EXPECT_TRUE(unit.ga_log_overflow());
    EXPECT_EQ(unit.ga_log_dropped(), 1u);
    EXPECT_EQ(unit.drain_ga_log().size(), 2u);
    EXPECT_TRUE(unit.ga_log_overflow());  // sticky until software clears it
    unit.clear_ga_log_overflow();
    EXPECT_FALSE(unit.ga_log_overflow());
    EXPECT_TRUE(sink.page(0).test_irr(0x52));  // the interrupt itself is never lost
}

TEST(AmdRemapperGa, GuestModeFaults)
{
    FakeGaSink sink;
    AmdRemapper unit{AmdConfig{}, sink};
    unit.set_table(7, 2);
    auto bad_page = vapic(0x52, 0, true, false);
    bad_page.ga_root_ptr = 0x1234;
    unit.set_entry(7, 0, bad_page.encode());
    EXPECT_EQ(unit.remap(7, msi_index(0)).event, AmdEventCode::IoPageFault);
    AmdGaIrte reserved = vapic(0x52, 0, true, false).encode();
    reserved.lo |= 1ULL << 4;
    unit.set_entry(7, 1, reserved);
    const auto r = unit.remap(7, msi_index(1));
    EXPECT_EQ(r.event, AmdEventCode::IoPageFault);
    EXPECT_EQ(unit.events().back().flags, amd_event::kInterrupt | amd_event::kReservedNotZero);
    unit.set_entry(7, 2, vapic(0x05, 0, true, false).encode());           // vector 5: not postable
    EXPECT_EQ(unit.remap(7, msi_index(2)).outcome, AmdOutcome::Blocked);  // illegal vector
    EXPECT_EQ(sink.doorbells.load(), 0u);
}

TEST(AmdRemapperGa, SetIsRunByCompareExchange)
{
    FakeGaSink sink;
    AmdRemapper unit{AmdConfig{}, sink};
    unit.set_table(7, 2);
    unit.set_entry(7, 0, vapic(0x52, 0, false, true).encode());
    ASSERT_TRUE(unit.set_is_run(7, 0, true, 0x0200'0003));
    const auto d = AmdGaVapicIrte::decode(*unit.entry(7, 0));
    ASSERT_TRUE(d);
    EXPECT_TRUE(d.value.is_run);
    EXPECT_EQ(d.value.dest, 0x0200'0003u);
    EXPECT_EQ(d.value.vector, 0x52);
    EXPECT_EQ(d.value.ga_tag, 0xA000u);
    EXPECT_TRUE(unit.remap(7, msi_index(0)).doorbell);
    EXPECT_EQ(sink.last_doorbell.load(), 0x0200'0003u);

    AmdGaRemapIrte plain;
    plain.vector = 0x40;
    unit.set_entry(7, 1, plain.encode());
    EXPECT_FALSE(unit.set_is_run(7, 1, true, 1));  // not a GuestMode entry
    EXPECT_FALSE(unit.set_is_run(7, 9, true, 1));  // beyond the table
    EXPECT_FALSE(unit.set_is_run(8, 0, true, 1));  // no table

    AmdGaIrte expected{};
    EXPECT_FALSE(unit.compare_exchange(7, 1, expected, AmdGaIrte{1, 0}));
    EXPECT_EQ(expected, plain.encode());
    EXPECT_TRUE(unit.compare_exchange(7, 1, expected, AmdGaIrte{1, 0}));
    unit.remove_table(7);
    EXPECT_EQ(unit.remap(7, msi_index(0)).event, AmdEventCode::IllegalDevTableEntry);
}

}  // namespace
}  // namespace hv::iommu
