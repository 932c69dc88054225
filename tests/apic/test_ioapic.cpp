// IOAPIC: registers, edge and level pins, remote IRR, EOI (82093AA datasheet; version 0x20 adds
// the EOI register).
#include <gtest/gtest.h>

#include <vector>

#include "apic/ioapic.hpp"

namespace hv::apic {
namespace {

struct RecordingSink : IoApicSink {
    std::vector<IoApicMessage> got;
    void deliver(const IoApicMessage& m) override { got.push_back(m); }
};

uint32_t read_index(IoApic& io, uint32_t idx)
{
    io.mmio_write(ioapic::kRegSel, 4, idx);
    return io.mmio_read(ioapic::kWindow, 4);
}

void write_index(IoApic& io, uint32_t idx, uint32_t v)
{
    io.mmio_write(ioapic::kRegSel, 4, idx);
    io.mmio_write(ioapic::kWindow, 4, v);
}

void program(IoApic& io, unsigned pin, uint64_t entry)
{
    write_index(io, 0x10 + 2 * pin + 1, static_cast<uint32_t>(entry >> 32));
    write_index(io, 0x10 + 2 * pin, static_cast<uint32_t>(entry));
}

TEST(IoApic, IdVersionArbitrationAndReset)
{
    RecordingSink sink;
    IoApic io(sink, 2);
    EXPECT_EQ(read_index(io, 0x00), 0x02000000u);
    EXPECT_EQ(read_index(io, 0x01), 0x00170020u);
    EXPECT_EQ(read_index(io, 0x02), 0x02000000u);
    write_index(io, 0x00, 0xFF000000u);
    EXPECT_EQ(read_index(io, 0x00), 0x0F000000u);
    write_index(io, 0x01, 0);  // read-only
    EXPECT_EQ(read_index(io, 0x01), 0x00170020u);
    for (unsigned pin = 0; pin < ioapic::kPins; ++pin) {
        EXPECT_EQ(io.redirection(pin), ioapic::kMasked);
    }
    EXPECT_EQ(read_index(io, 0x40), 0u);  // beyond the table
    io.mmio_write(ioapic::kRegSel, 4, 0x1FF);
    EXPECT_EQ(io.mmio_read(ioapic::kRegSel, 4), 0xFFu);
}

TEST(IoApic, RedirectionEntryWritableBits)
{
    RecordingSink sink;
    IoApic io(sink);
    write_index(io, 0x10 + 2 * 7, 0xFFFFFFFFu);
    write_index(io, 0x10 + 2 * 7 + 1, 0xFFFFFFFFu);
    EXPECT_EQ(read_index(io, 0x10 + 2 * 7), 0x1AFFFu);
    EXPECT_EQ(read_index(io, 0x10 + 2 * 7 + 1), 0xFF000000u);
    EXPECT_EQ(io.redirection(7), 0xFF000000'0001AFFFULL);
}

TEST(IoApic, DecodeRedirection)
{
    const IoApicMessage m = decode_redirection(0xAB000000'00008931ULL, 4);
    EXPECT_EQ(m.vector, 0x31);
    EXPECT_EQ(m.mode, DeliveryMode::LowestPriority);
    EXPECT_EQ(m.trigger, Trigger::Level);
    EXPECT_EQ(m.dest, (Destination{0xAB, DestMode::Logical, Shorthand::None, false}));
    EXPECT_EQ(m.pin, 4);
}

TEST(IoApic, EdgePinDeliversOnRisingEdgesOnly)
{
    RecordingSink sink;
    IoApic io(sink);
    program(io, 3, 0x01000000'00000033ULL);
    io.set_irq(3, true);
    io.set_irq(3, true);
    ASSERT_EQ(sink.got.size(), 1u);
    EXPECT_EQ(sink.got[0].vector, 0x33);
    EXPECT_EQ(sink.got[0].dest.dest, 1u);
    EXPECT_EQ(sink.got[0].trigger, Trigger::Edge);
    io.set_irq(3, false);
    io.set_irq(3, true);
    EXPECT_EQ(sink.got.size(), 2u);
    EXPECT_EQ(io.redirection(3) & ioapic::kRemoteIrr, 0u);
}

TEST(IoApic, MaskedEdgeIsLost)
{
    RecordingSink sink;
    IoApic io(sink);
    program(io, 2, ioapic::kMasked | 0x22);
    io.set_irq(2, true);
    EXPECT_TRUE(sink.got.empty());
    program(io, 2, 0x22);  // unmask while high: no new edge
    EXPECT_TRUE(sink.got.empty());
    EXPECT_EQ(io.counters().masked_edges, 1u);
}

TEST(IoApic, LevelPinRemoteIrrAndEoi)
{
    RecordingSink sink;
    IoApic io(sink);
    program(io, 5, ioapic::kLevel | 0x55);
    io.set_irq(5, true);
    ASSERT_EQ(sink.got.size(), 1u);
    EXPECT_EQ(sink.got[0].trigger, Trigger::Level);
    EXPECT_NE(io.redirection(5) & ioapic::kRemoteIrr, 0u);
    io.set_irq(5, true);  // still in service: nothing new
    EXPECT_EQ(sink.got.size(), 1u);
    io.eoi(0x56);  // another vector: no effect
    EXPECT_NE(io.redirection(5) & ioapic::kRemoteIrr, 0u);
    io.eoi(0x55);  // still asserted: delivered again
    EXPECT_EQ(sink.got.size(), 2u);
    EXPECT_NE(io.redirection(5) & ioapic::kRemoteIrr, 0u);
    io.set_irq(5, false);
    io.eoi(0x55);
    EXPECT_EQ(sink.got.size(), 2u);
    EXPECT_EQ(io.redirection(5) & ioapic::kRemoteIrr, 0u);
    const IoApicCounters c = io.counters();
    EXPECT_EQ(c.delivered, 2u);
    EXPECT_EQ(c.eoi, 2u);
    EXPECT_EQ(c.redelivered, 1u);
}

TEST(IoApic, UnmaskingAnAssertedLevelPinDelivers)
{
    RecordingSink sink;
    IoApic io(sink);
    program(io, 9, ioapic::kLevel | ioapic::kMasked | 0x99);
    io.set_irq(9, true);
    EXPECT_TRUE(sink.got.empty());
    program(io, 9, ioapic::kLevel | 0x99);
    ASSERT_EQ(sink.got.size(), 1u);
    EXPECT_EQ(sink.got[0].pin, 9);
}

TEST(IoApic, EoiRegisterIsADirectedEoi)
{
    RecordingSink sink;
    IoApic io(sink);
    program(io, 1, ioapic::kLevel | 0x71);
    io.set_irq(1, true);
    io.set_irq(1, false);
    io.mmio_write(ioapic::kEoi, 4, 0x71);
    EXPECT_EQ(io.redirection(1) & ioapic::kRemoteIrr, 0u);
}

TEST(IoApic, SwitchingToEdgeClearsRemoteIrr)
{
    RecordingSink sink;
    IoApic io(sink);
    program(io, 4, ioapic::kLevel | 0x44);
    io.set_irq(4, true);
    ASSERT_NE(io.redirection(4) & ioapic::kRemoteIrr, 0u);
    program(io, 4, 0x44);
    EXPECT_EQ(io.redirection(4) & ioapic::kRemoteIrr, 0u);
}

TEST(IoApic, BadPinsAndAccessesAreCountedNotFatal)
{
    RecordingSink sink;
    IoApic io(sink);
    io.set_irq(24, true);
    io.set_irq(1000, true);
    EXPECT_EQ(io.mmio_read(ioapic::kWindow, 2), 0u);
    io.mmio_write(ioapic::kRegSel + 1, 4, 1);
    EXPECT_EQ(io.counters().bad_access, 4u);
    EXPECT_TRUE(sink.got.empty());
}

TEST(IoApic, FlattenRestoreAndValidate)
{
    RecordingSink sink;
    IoApic io(sink, 3);
    program(io, 6, ioapic::kLevel | 0x66);
    io.set_irq(6, true);
    const IoApicState s = io.flatten();
    EXPECT_EQ(s.pin_levels, 1u << 6);

    RecordingSink sink2;
    IoApic other(sink2);
    ASSERT_EQ(other.restore(s), std::nullopt);
    EXPECT_EQ(other.flatten(), s);
    EXPECT_TRUE(sink2.got.empty());  // restore does not deliver

    IoApicState bad = s;
    bad.redir[0] = ioapic::kRemoteIrr;  // edge pin with remote IRR
    auto err = other.restore(bad);
    ASSERT_TRUE(err.has_value());
    EXPECT_EQ(err->rfind("redir[0]", 0), 0u) << *err;
    EXPECT_EQ(other.flatten(), s);
    bad = s;
    bad.id = 0x10;
    EXPECT_TRUE(validate(bad).has_value());
    bad = s;
    bad.pin_levels = 1u << 24;
    EXPECT_TRUE(validate(bad).has_value());
    bad = s;
    bad.redir[3] |= 1ULL << 20;
    EXPECT_TRUE(validate(bad).has_value());
}

}  // namespace
}  // namespace hv::apic
