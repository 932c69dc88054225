// ApicState: validation names the field at fault, restore changes nothing when invalid, and
// flatten/restore round-trips both the registers and the behaviour.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "apic/vector_bits.hpp"
#include "test_helpers.hpp"

namespace hv::apic::test {
namespace {

struct BadCase {
    std::string field;
    std::function<void(ApicState&)> mutate;
    ApicCaps caps{};
};

ApicState valid_xapic()
{
    ApicState s;
    s.id = 1;
    s.svr = 0x1FF;
    return s;
}

TEST(State, DefaultAndResetStatesAreValid)
{
    EXPECT_EQ(validate(ApicState{}), std::nullopt);
    EXPECT_EQ(validate(valid_xapic()), std::nullopt);
    ApicState x2 = valid_xapic();
    x2.apic_base |= base::kExtd;
    x2.ldr = x2apic_ldr(x2.id);
    EXPECT_EQ(validate(x2), std::nullopt);
    ApicState off;
    off.apic_base = base::kDefaultAddr;
    EXPECT_EQ(validate(off), std::nullopt);
}

TEST(State, InvalidStatesNameTheField)
{
    ApicCaps no_x2;
    no_x2.x2apic = false;
    ApicCaps no_tsc;
    no_tsc.tsc_deadline = false;
    const std::vector<BadCase> cases = {
        {"apic_base", [](ApicState& s) { s.apic_base |= 1; }},
        {"apic_base", [](ApicState& s) { s.apic_base |= 1ULL << 9; }},
        {"apic_base", [](ApicState& s) { s.apic_base |= 1ULL << 50; }},
        {"apic_base", [](ApicState& s) { s.apic_base = base::kDefaultAddr | base::kExtd; }},
        {"apic_base", [](ApicState& s) { s.apic_base |= base::kExtd; }, no_x2},
        {"version", [](ApicState& s) { s.version = 0x15; }},
        {"tpr", [](ApicState& s) { s.tpr = 0x100; }},
        {"ldr", [](ApicState& s) { s.ldr = 0x01000001; }},
        {"ldr",
         [](ApicState& s) {
             s.apic_base |= base::kExtd;
             s.ldr = 0x10;
         }},
        {"dfr", [](ApicState& s) { s.dfr = 0xF0000000; }},
        {"svr", [](ApicState& s) { s.svr = 0x41FF; }},
        {"irr", [](ApicState& s) { set_vector(s.irr, 3); }},
        {"isr", [](ApicState& s) { set_vector(s.isr, 15); }},
        {"tmr", [](ApicState& s) { set_vector(s.tmr, 0); }},
        {"esr", [](ApicState& s) { s.esr = 0x100; }},
        {"esr", [](ApicState& s) { s.esr_pending = 0x1000; }},
        {"lvt_timer", [](ApicState& s) { s.lvt[1] = 0x60040; }},
        {"lvt_timer", [](ApicState& s) { s.lvt[1] = 0x40040; }, no_tsc},
        {"lvt_lint0", [](ApicState& s) { s.lvt[4] = 0x1000; }},
        {"lvt_error", [](ApicState& s) { s.lvt[6] = 0x8000 | 0x10000; }},
        {"lvt_cmci",
         [](ApicState& s) {
             s.svr = 0xFF;
             s.lvt[0] = 0x30;
         }},
        {"icr", [](ApicState& s) { s.icr = icr::kDeliveryStatus; }},
        {"icr", [](ApicState& s) { s.icr = 0x00100000'00000000ULL; }},
        {"timer_divide", [](ApicState& s) { s.timer_divide = 0x4; }},
        {"timer_remaining",
         [](ApicState& s) {
             s.timer_initial = 5;
             s.timer_remaining = 6;
         }},
        {"timer_initial",
         [](ApicState& s) {
             s.lvt[1] = 0x40040;
             s.timer_initial = 5;
         }},
        {"tsc_deadline", [](ApicState& s) { s.tsc_deadline = 99; }},
        {"run_state", [](ApicState& s) { s.run_state = static_cast<RunState>(7); }},
        {"irr/isr/tmr",
         [](ApicState& s) {
             s.apic_base = base::kDefaultAddr;
             set_vector(s.irr, 0x40);
         }},
    };
    for (const auto& c : cases) {
        ApicState s = valid_xapic();
        c.mutate(s);
        const auto err = validate(s, c.caps);
        ASSERT_TRUE(err.has_value()) << c.field;
        EXPECT_EQ(err->rfind(c.field, 0), 0u) << "expected field " << c.field << ", got: " << *err;
    }
}

// A busy APIC: x2APIC mode, nested interrupts, level vector, timer running, errors latched.
LocalApic busy_apic(uint64_t now)
{
    LocalApic a = make_apic(0x42, false);
    a.sipi(0x10);
    wr(a, reg::kDfr, 0x0FFFFFFF);
    EXPECT_TRUE(to_x2apic(a).is_ok());
    a.msr_write(0x808, 0x21, at(now));
    a.msr_write(0x80F, 0x11F0, at(now));
    a.msr_write(0x835, 0xA730, at(now));
    a.msr_write(0x837, 0xEE, at(now));
    a.msr_write(0x830, 0x00000003'00004051ULL, at(now));
    a.accept(0x80, Trigger::Edge);
    a.ack();
    a.accept(0x91, Trigger::Level);
    a.ack();
    a.accept(0x60, Trigger::Edge);
    a.accept(0xA5, Trigger::Level);
    a.accept(0x04, Trigger::Edge);  // latched error -> 0xEE in IRR
    a.msr_write(0x832, 0x20077, at(now));
    a.msr_write(0x83E, 0x3, at(now));
    a.msr_write(0x838, 5000, at(now));
    return a;
}

TEST(State, FlattenRestoreRoundTripsRegistersAndBehaviour)
{
    LocalApic a = busy_apic(1000);
    const ApicState s = a.flatten(at(21'000));
    EXPECT_EQ(validate(s), std::nullopt);
    EXPECT_EQ(s.timer_remaining, 5000u - 20'000u / 16u);
    EXPECT_EQ(s.run_state, RunState::Running);

    LocalApicConfig cfg;
    cfg.id = 0x42;
    LocalApic b(cfg);
    ASSERT_EQ(b.restore(s, at(21'000)), std::nullopt);
    EXPECT_EQ(b.flatten(at(21'000)), s);
    EXPECT_EQ(b.mode(), ApicMode::X2Apic);
    EXPECT_EQ(b.next_timer_deadline(), a.next_timer_deadline());
    EXPECT_EQ(b.msr_read(0x839, at(30'000)).value, a.msr_read(0x839, at(30'000)).value);
    for (int i = 0; i < 4; ++i) {
        EXPECT_EQ(b.highest_pending(), a.highest_pending());
        EXPECT_EQ(b.ack().vector, a.ack().vector);
        EXPECT_EQ(b.eoi(), a.eoi());
    }
    EXPECT_EQ(b.flatten(at(40'000)), a.flatten(at(40'000)));
}

TEST(State, InvalidRestoreChangesNothing)
{
    LocalApic a = busy_apic(0);
    const ApicState before = a.flatten(at(100));
    const auto deadline = a.next_timer_deadline();
    ApicState bad = before;
    bad.tpr = 0x1FF;
    bad.id = 7;
    const auto err = a.restore(bad, at(100));
    ASSERT_TRUE(err.has_value());
    EXPECT_EQ(a.flatten(at(100)), before);
    EXPECT_EQ(a.next_timer_deadline(), deadline);
}

TEST(State, RestoreOfTscDeadlineRearmsFromGuestTsc)
{
    LocalApicConfig cfg;
    cfg.tsc_hz = 1'000'000'000;
    LocalApic a(cfg);
    ApicState s = valid_xapic();
    s.lvt[1] = 0x40040;
    s.tsc_deadline = 50'000;
    ASSERT_EQ(a.restore(s, at(7, 10'000)), std::nullopt);
    EXPECT_EQ(a.next_timer_deadline(), 7u + 40'000u);
}

TEST(State, DescribeDifferenceNamesEveryDifferingField)
{
    ApicState a = valid_xapic();
    ApicState b = a;
    EXPECT_EQ(describe_difference(a, b), "");
    b.tpr = 0x20;
    set_vector(b.irr, 0x41);
    b.run_state = RunState::Halted;
    EXPECT_EQ(describe_difference(a, b),
              "tpr: 0x0 != 0x20; irr[2]: 0x0 != 0x2; run_state: 0x0 != 0x1");
}

TEST(State, ResetRegistersKeepsIdentity)
{
    ApicState s = valid_xapic();
    s.apic_base |= base::kExtd;
    s.id = 0x31;
    s.tpr = 9;
    s.run_state = RunState::Halted;
    const ApicState r = reset_registers(s);
    EXPECT_EQ(r.apic_base, s.apic_base);
    EXPECT_EQ(r.id, 0x31u);
    EXPECT_EQ(r.ldr, x2apic_ldr(0x31));
    EXPECT_EQ(r.tpr, 0u);
    EXPECT_EQ(r.svr, svr::kReset);
    EXPECT_EQ(r.run_state, RunState::Halted);
}

}  // namespace
}  // namespace hv::apic::test
