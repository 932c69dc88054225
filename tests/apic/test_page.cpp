// The architectural register page: it must hold what the guest reads, and convert losslessly
// to and from ApicState (the codec shared by the kernel, apicv and avic backends).
#include <gtest/gtest.h>

#include <vector>

#include "apic/apic_page.hpp"
#include "test_helpers.hpp"

namespace hv::apic::test {
namespace {

// Offsets whose page value is exactly what a guest read returns (APR is computed, not stored).
std::vector<uint32_t> readable_offsets()
{
    std::vector<uint32_t> offs = {reg::kId,           reg::kVersion,    reg::kTpr,
                                  reg::kPpr,          reg::kLdr,        reg::kSvr,
                                  reg::kEsr,          reg::kIcrLow,     reg::kTimerInitial,
                                  reg::kTimerCurrent, reg::kTimerDivide};
    for (uint32_t i = 0; i < 8; ++i) {
        offs.push_back(reg::kIsr + 0x10 * i);
        offs.push_back(reg::kTmr + 0x10 * i);
        offs.push_back(reg::kIrr + 0x10 * i);
    }
    for (std::size_t i = 0; i < kLvtCount; ++i) {
        offs.push_back(lvt_offset(static_cast<Lvt>(i)));
    }
    return offs;
}

LocalApic busy(uint32_t id)
{
    LocalApic a = make_apic(id);
    wr(a, reg::kTpr, 0x31);
    wr(a, reg::kLdr, 0x20000000);
    wr(a, reg::kLvtLint1, 0x400);
    wr(a, reg::kLvtTimer, 0x20055);
    wr(a, reg::kTimerDivide, 0x1);
    wr(a, reg::kTimerInitial, 9000, 100);
    wr(a, reg::kIcrHigh, 0x05000000);
    wr(a, reg::kIcrLow, 0x00004061);
    a.accept(0x72, Trigger::Level);
    a.ack();
    a.accept(0x45, Trigger::Edge);
    a.accept(0xC3, Trigger::Level);
    a.accept(0x02, Trigger::Edge);
    wr(a, reg::kEsr, 0);
    return a;
}

TEST(Page, XapicPageHoldsWhatTheGuestReads)
{
    LocalApic a = busy(0x0A);
    wr(a, reg::kDfr, 0x0FFFFFFF);
    const ApicRegisterPage p = to_register_page(a.flatten(at(5000)));
    for (uint32_t off : readable_offsets()) {
        EXPECT_EQ(page_get(p, off), a.mmio_read(off, 4, at(5000)).value) << std::hex << off;
    }
    EXPECT_EQ(page_get(p, reg::kDfr), 0x0FFFFFFFu);
    EXPECT_EQ(page_get(p, reg::kIcrHigh), 0x05000000u);
    EXPECT_EQ(page_get(p, reg::kId), 0x0A000000u);
}

TEST(Page, X2apicPageHoldsWhatTheGuestReads)
{
    LocalApic a = busy(0x1A2B);
    ASSERT_TRUE(to_x2apic(a).is_ok());
    a.msr_write(0x830, 0x0000BEEF'00000462ULL, at(5000));
    const ApicRegisterPage p = to_register_page(a.flatten(at(5000)));
    for (uint32_t off : readable_offsets()) {
        const uint64_t msr_value = a.msr_read(x2apic_msr(off), at(5000)).value;
        EXPECT_EQ(page_get(p, off), static_cast<uint32_t>(msr_value)) << std::hex << off;
    }
    EXPECT_EQ(page_get(p, reg::kId), 0x1A2Bu);
    EXPECT_EQ(page_get(p, reg::kIcrHigh), 0xBEEFu);
    EXPECT_EQ(page_get(p, reg::kLdr), x2apic_ldr(0x1A2B));
}

TEST(Page, RoundTripBothModes)
{
    for (bool x2 : {false, true}) {
        LocalApic a = busy(0x1A2B);
        if (x2) {
            ASSERT_TRUE(to_x2apic(a).is_ok());
        }
        const ApicState s = a.flatten(at(7000));
        ASSERT_EQ(s.esr_pending, 0u);
        PageContext ctx;
        ctx.apic_base = s.apic_base;
        ctx.tsc_deadline = s.tsc_deadline;
        ctx.run_state = s.run_state;
        ctx.x2apic_id = 0x1A00;  // bits 31:8 for the xAPIC case
        const ApicState back = from_register_page(to_register_page(s), ctx);
        EXPECT_EQ(back, s) << "x2apic " << x2;
        EXPECT_EQ(validate(back), std::nullopt);
    }
}

TEST(Page, DeliveryStatusIsDroppedAndBytesAreLittleEndian)
{
    ApicRegisterPage p{};
    page_set(p, reg::kIcrLow, 0x00001030);
    EXPECT_EQ(p[reg::kIcrLow], 0x30);
    EXPECT_EQ(p[reg::kIcrLow + 1], 0x10);
    EXPECT_EQ(from_register_page(p, PageContext{}).icr, 0x30u);
    page_set(p, 0x3FD, 0xFFFFFFFF);  // would overrun: ignored
    EXPECT_EQ(page_get(p, 0x3FD), 0u);
    EXPECT_EQ(page_get(p, 0x3FC), 0u);
}

}  // namespace
}  // namespace hv::apic::test
