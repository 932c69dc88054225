// MSI compatibility and remappable formats (SDM Vol3 11.11; VT-d 5.1.2.2). The raw values are
// worked out by hand from the bit tables in iommu/msi.hpp.
#include <gtest/gtest.h>

#include "iommu/msi.hpp"

namespace hv::iommu {
namespace {

TEST(MsiCompat, DecodesEveryField)
{
    // address: 0xFEE | dest 0x03 in 19:12 | RH (bit 3) | DM logical (bit 2);
    // data: vector 0x31 | mode 001b (lowest priority) in 10:8 | level assert (14) | level (15).
    const auto d = CompatMsi::decode({0xFEE0300CULL, 0xC131u});
    ASSERT_TRUE(d);
    EXPECT_EQ(d.value.dest_id, 0x03);
    EXPECT_EQ(d.value.ext_dest_id, 0);
    EXPECT_EQ(d.value.dest_mode, apic::DestMode::Logical);
    EXPECT_TRUE(d.value.redirection_hint);
    EXPECT_EQ(d.value.vector, 0x31);
    EXPECT_EQ(d.value.mode, apic::DeliveryMode::LowestPriority);
    EXPECT_EQ(d.value.trigger, apic::Trigger::Level);
    EXPECT_TRUE(d.value.level_assert);
    EXPECT_EQ(d.value.encode(), (MsiMessage{0xFEE0300CULL, 0xC131u}));
}

TEST(MsiCompat, PhysicalFixedEdge)
{
    const auto d = CompatMsi::decode({0xFEEFF000ULL, 0x0000'00FFu});
    ASSERT_TRUE(d);
    EXPECT_EQ(d.value.dest_id, 0xFF);
    EXPECT_EQ(d.value.dest_mode, apic::DestMode::Physical);
    EXPECT_FALSE(d.value.redirection_hint);
    EXPECT_EQ(d.value.mode, apic::DeliveryMode::Fixed);
    EXPECT_EQ(d.value.trigger, apic::Trigger::Edge);
    const apic::IoApicMessage m = to_message(d.value);
    EXPECT_EQ(m.vector, 0xFF);
    EXPECT_EQ(m.dest.dest, 0xFFu);  // the xAPIC broadcast
    EXPECT_FALSE(m.dest.x2apic_format);
    EXPECT_EQ(m.pin, 0);
}

TEST(MsiCompat, ExtendedDestinationIdOnlyWhenAsked)
{
    // bits 11:5 = 0x7F (0xFE0), dest_id 0x12.
    const auto d = CompatMsi::decode({0xFEE12FE0ULL, 0x40u});
    ASSERT_TRUE(d);
    EXPECT_EQ(d.value.ext_dest_id, 0x7F);
    EXPECT_EQ(to_message(d.value).dest.dest, 0x12u);
    const apic::IoApicMessage ext = to_message(d.value, true);
    EXPECT_EQ(ext.dest.dest, 0x7F12u);
    EXPECT_TRUE(ext.dest.x2apic_format);
}

TEST(MsiCompat, DeliveryModes)
{
    struct Case {
        uint32_t bits;
        std::optional<apic::DeliveryMode> mode;  // none: reserved
    };
    const Case cases[] = {{0, apic::DeliveryMode::Fixed},
                          {1, apic::DeliveryMode::LowestPriority},
                          {2, apic::DeliveryMode::Smi},
                          {3, std::nullopt},
                          {4, apic::DeliveryMode::Nmi},
                          {5, apic::DeliveryMode::Init},
                          {6, std::nullopt},
                          {7, apic::DeliveryMode::ExtInt}};
    for (const auto& c : cases) {
        const auto d = CompatMsi::decode({0xFEE00000ULL, 0x30u | (c.bits << 8)});
        if (c.mode) {
            ASSERT_TRUE(d) << c.bits;
            EXPECT_EQ(d.value.mode, *c.mode);
        } else {
            ASSERT_FALSE(d) << c.bits;
            EXPECT_EQ(d.error, MsiError::ReservedDeliveryMode);
        }
    }
}

TEST(MsiCompat, BadAddresses)
{
    EXPECT_EQ(CompatMsi::decode({0x1'FEE0'0000ULL, 0x30}).error, MsiError::AddressHigh);
    EXPECT_EQ(CompatMsi::decode({0xFED0'0000ULL, 0x30}).error, MsiError::NotInterruptAddress);
    EXPECT_EQ(CompatMsi::decode({0xFEF0'0000ULL, 0x30}).error, MsiError::NotInterruptAddress);
    EXPECT_EQ(CompatMsi::decode({0xFEE0'0010ULL, 0x30}).error, MsiError::WrongFormat);
    EXPECT_EQ(check_interrupt_address(0xFEE0'0000ULL), std::nullopt);
    EXPECT_EQ(check_interrupt_address(0x8000'0000'FEE0'0000ULL), MsiError::AddressHigh);
}

TEST(MsiRemappable, HandleSubhandleAndIndex)
{
    // handle 0x8123: [14:0] = 0x123 in 19:5 (0x2460), [15] in bit 2; IF bit 4; SHV bit 3.
    const auto d = RemappableMsi::decode({0xFEE0247CULL, 5u});
    ASSERT_TRUE(d);
    EXPECT_EQ(d.value.handle, 0x8123);
    EXPECT_TRUE(d.value.shv);
    EXPECT_EQ(d.value.subhandle, 5);
    EXPECT_EQ(d.value.interrupt_index(), 0x8128u);
    EXPECT_EQ(d.value.encode(), (MsiMessage{0xFEE0247CULL, 5u}));
}

TEST(MsiRemappable, SubhandleIgnoredWithoutShv)
{
    // handle 0x7FFF: 0x7FFF << 5 = 0xFFFE0; IF. The data's subhandle is ignored (SHV = 0).
    const auto d = RemappableMsi::decode({0xFEEFFFF0ULL, 0x1234u});
    ASSERT_TRUE(d);
    EXPECT_EQ(d.value.handle, 0x7FFF);
    EXPECT_FALSE(d.value.shv);
    EXPECT_EQ(d.value.interrupt_index(), 0x7FFFu);
    EXPECT_TRUE(is_remappable({0xFEEFFFF0ULL, 0}));
}

TEST(MsiRemappable, IndexCanExceedSixteenBits)
{
    RemappableMsi r{0xFFFF, true, 0xFFFF};
    EXPECT_EQ(r.interrupt_index(), 0x1FFFEu);
}

TEST(MsiRemappable, Errors)
{
    EXPECT_EQ(RemappableMsi::decode({0xFEE0'0010ULL, 0x1'0000u}).error, MsiError::ReservedData);
    EXPECT_EQ(RemappableMsi::decode({0xFEE0'0000ULL, 0}).error, MsiError::WrongFormat);
    EXPECT_EQ(RemappableMsi::decode({0x1'FEE0'0010ULL, 0}).error, MsiError::AddressHigh);
    EXPECT_EQ(RemappableMsi::decode({0xFEC0'0010ULL, 0}).error, MsiError::NotInterruptAddress);
}

}  // namespace
}  // namespace hv::iommu
