// The AVIC structures against values worked out from the APM layouts, and the table maintenance
// the hypervisor half does when the guest changes its APIC ID, LDR, DFR or mode.
#include <tuple>

#include "tests/svm/avic_fixture.hpp"

namespace hv::svm::test {
namespace {

using apic::reg::kDfr;
using apic::reg::kId;
using apic::reg::kLdr;

TEST(AvicStructures, PhysicalEntryEncodeDecode)
{
    struct Case {
        PhysicalEntry e;
        uint64_t raw;
    };
    // APM Vol2 15.29.3.1: 11:0 host APIC ID, 51:12 page, 62 IsRunning, 63 Valid.
    const Case cases[] = {
        {{0, 0, false, false}, 0},
        {{0xFFF, 0, false, false}, 0xFFF},
        {{0, 0xFFFFFFFFFF, false, false}, 0x000FFFFFFFFFF000ULL},
        {{0, 0, true, false}, 1ULL << 62},
        {{0, 0, false, true}, 1ULL << 63},
        {{3, kBackingFrameBase + 2, true, true}, 0xC000000100002003ULL},
    };
    for (const auto& c : cases) {
        EXPECT_EQ(encode(c.e), c.raw);
        EXPECT_EQ(decode_physical(c.raw), c.e);
    }
    // Reserved bits 61:52 are ignored on decode.
    EXPECT_EQ(decode_physical(0x3FF0000000000000ULL), PhysicalEntry{});
}

TEST(AvicStructures, LogicalIndexFlatAndCluster)
{
    struct Case {
        uint32_t ldr, dfr;
        std::optional<uint32_t> index;
    };
    // APM Vol2 15.29.3.2: flat = bit position in LDR[31:24]; cluster = (cluster << 2) + bit.
    const Case cases[] = {
        {0x01000000, 0xFFFFFFFF, 0},
        {0x80000000, 0xFFFFFFFF, 7},
        {0x00000000, 0xFFFFFFFF, std::nullopt},
        {0x06000000, 0xFFFFFFFF, 1},  // several bits: the lowest (Linux uses ffs)
        {0x01000000, 0x0FFFFFFF, 0},
        {0x12000000, 0x0FFFFFFF, 5},
        {0xE8000000, 0x0FFFFFFF, 59},
        {0xF1000000, 0x0FFFFFFF, std::nullopt},  // cluster 0xF
        {0x13000000, 0x0FFFFFFF, std::nullopt},  // two bits
        {0x10000000, 0x0FFFFFFF, std::nullopt},  // no bit
        {0x01000000, 0x5FFFFFFF, std::nullopt},  // bad model
    };
    for (const auto& c : cases) {
        EXPECT_EQ(logical_index_of(c.ldr, c.dfr), c.index) << std::hex << c.ldr << " " << c.dfr;
    }
    EXPECT_EQ(encode_logical(7, true), 0x80000007u);
}

TEST(AvicStructures, PostToBackingPage)
{
    auto page = std::make_unique<BackingPage>();
    EXPECT_EQ(reinterpret_cast<uintptr_t>(page.get()) % 4096, 0u);
    EXPECT_TRUE(post_to_backing_page(*page, 0x41));
    EXPECT_FALSE(post_to_backing_page(*page, 0x41));  // coalesced
    EXPECT_FALSE(post_to_backing_page(*page, 15));    // illegal vector: not posted
    EXPECT_EQ(page->load(0x220), 0x2u);               // IRR word 2, bit 1
    EXPECT_TRUE(page->test_irr(0x41));
    page->clear_irr(0x41);
    EXPECT_FALSE(page->test_irr(0x41));
}

TEST(AvicStructures, VmcbImage)
{
    AvicFixture vm(2);
    const VmcbControl c = vm[1].vmcb();
    EXPECT_EQ(c.int_ctl & int_ctl::kAvicEnable, int_ctl::kAvicEnable);
    EXPECT_EQ(c.int_ctl & int_ctl::kX2apicMode, 0u);
    EXPECT_EQ(c.avic_apic_bar, 0xFEE00000u);
    EXPECT_EQ(c.avic_backing_page, (kBackingFrameBase + 1) << 12);
    EXPECT_EQ(c.avic_physical_id, (kTableFrameBase << 12) | 0xFE);
    EXPECT_EQ(c.avic_logical_id, (kTableFrameBase + 1) << 12);
    AvicFixture x2(1, AvicOptions{true, false});
    EXPECT_EQ(x2[0].vmcb().avic_physical_id & kPhysMaxIndexMask, 0x1FFu);
    x2.to_x2apic(0);
    EXPECT_NE(x2[0].vmcb().int_ctl & int_ctl::kX2apicMode, 0u);
    EXPECT_EQ(x2[0].vmcb().clean & kCleanAvic, 0u);  // the AVIC fields changed
    x2[0].enter_guest();
    EXPECT_EQ(x2[0].vmcb().clean & kCleanAvic, kCleanAvic);
}

TEST(AvicStructures, InitialPhysicalTable)
{
    AvicFixture vm(3);
    for (uint32_t i = 0; i < 3; ++i) {
        EXPECT_EQ(vm.vm.physical_entry(i), (PhysicalEntry{i, kBackingFrameBase + i, false, true}));
    }
    EXPECT_FALSE(vm.vm.physical_entry(3).valid);
    for (uint32_t i = 0; i < logical::kEntries; ++i) {
        EXPECT_EQ(vm.vm.logical_entry(i), 0u) << i;  // LDR 0 names no logical slot
    }
}

TEST(AvicStructures, IsRunningFollowsEnterLeaveBlock)
{
    AvicFixture vm(2);
    vm[1].enter_guest();
    EXPECT_TRUE(vm.vm.physical_entry(1).is_running);
    EXPECT_TRUE(vm.vm.is_running(1));
    EXPECT_TRUE(vm.vm.in_guest(1));
    vm[1].leave_guest();
    EXPECT_FALSE(vm.vm.physical_entry(1).is_running);
    vm[1].enter_guest();
    vm[1].leave_guest();
    EXPECT_TRUE(vm[1].block());
    EXPECT_FALSE(vm.vm.physical_entry(1).is_running);
    EXPECT_EQ(vm.vm.sched(1), Sched::Blocked);
    vm[1].unblock();
    vm.vm.set_host_apic_id(1, 0x123);
    vm[1].enter_guest();
    EXPECT_EQ(vm.vm.physical_entry(1), (PhysicalEntry{0x123, kBackingFrameBase + 1, true, true}));
}

TEST(AvicStructures, Erratum1235NeverSetsIsRunning)
{
    AvicFixture vm(2, AvicOptions{false, true});
    vm[1].enter_guest();
    EXPECT_FALSE(vm.vm.physical_entry(1).is_running);
    EXPECT_TRUE(vm.vm.physical_entry(1).valid);
    EXPECT_TRUE(vm.vm.in_guest(1));  // what an IOMMU IRTE's IsRun follows
}

TEST(AvicStructures, LdrWriteMovesLogicalEntry)
{
    AvicFixture vm(3);
    vm.enable_all();
    vm.wr(1, kLdr, 0x02000000);                         // flat, bit 1
    EXPECT_EQ(vm.exits(1), 1u);                         // AVIC_NOACCEL trap
    EXPECT_EQ(vm[1].exits(AvicExit::NoaccelTrap), 2u);  // + the SVR write of enable_all
    EXPECT_EQ(vm[1].vmcb().exit_code, 0x402u);
    EXPECT_EQ(vm[1].vmcb().exit_info_1, 0x1000000D0ULL);
    EXPECT_EQ(vm.vm.logical_entry(1), 0x80000001u);
    vm.wr(1, kLdr, 0x04000000);
    EXPECT_EQ(vm.vm.logical_entry(1), 0u);
    EXPECT_EQ(vm.vm.logical_entry(2), 0x80000001u);
    vm.wr(2, kLdr, 0x01000000);
    EXPECT_EQ(vm.vm.logical_entry(0), 0x80000002u);
}

TEST(AvicStructures, DfrWriteSwitchesToClusterIndex)
{
    AvicFixture vm(3);
    vm.enable_all();
    vm.wr(2, kLdr, 0x21000000);  // flat: bit 0 and bit 5 -> lowest, index 0
    EXPECT_EQ(vm.vm.logical_entry(0), 0x80000002u);
    vm.wr(2, kDfr, 0x0FFFFFFF);  // cluster 2, bit 0 -> index 8
    EXPECT_EQ(vm.exits(2), 2u);
    EXPECT_EQ(vm.vm.logical_entry(0), 0u);
    EXPECT_EQ(vm.vm.logical_entry(8), 0x80000002u);
    vm.wr(2, kDfr, 0x5FFFFFFF);  // undefined model: no entry
    EXPECT_EQ(vm.vm.logical_entry(8), 0u);
}

TEST(AvicStructures, IdWriteMovesPhysicalEntry)
{
    AvicFixture vm(2);
    vm.enable_all();
    vm[1].enter_guest();
    vm.wr(1, kId, 0x05000000);
    EXPECT_EQ(vm.exits(1), 1u);
    EXPECT_EQ(vm[1].vmcb().exit_info_1, 0x100000020ULL);
    EXPECT_FALSE(vm.vm.physical_entry(1).valid);
    EXPECT_EQ(vm.vm.physical_entry(5), (PhysicalEntry{1, kBackingFrameBase + 1, true, true}));
    // The logical entry names the new physical ID.
    vm.wr(1, kLdr, 0x01000000);
    EXPECT_EQ(vm.vm.logical_entry(0), 0x80000005u);
    // 0xFF is the broadcast ID: no entry at all.
    vm.wr(1, kId, 0xFF000000);
    EXPECT_FALSE(vm.vm.physical_entry(5).valid);
    EXPECT_EQ(vm.vm.logical_entry(0), 0u);
}

TEST(AvicStructures, DisabledApicHasNoEntry)
{
    AvicFixture vm(2);
    vm[1].msr_write(apic::kMsrApicBase, kApicBase);  // EN = 0
    EXPECT_FALSE(vm.vm.physical_entry(1).valid);
    EXPECT_EQ(vm[1].exits(AvicExit::Msr), 1u);
    vm[1].msr_write(apic::kMsrApicBase, kApicBase | apic::base::kEnable);
    EXPECT_TRUE(vm.vm.physical_entry(1).valid);
}

TEST(AvicStructures, X2avicIdsUpTo0x1FF)
{
    AvicOptions x2{true, false};
    AvicVm vm(2, x2);
    FakeClock clock;
    RecordingNotifier n0, n1;
    RoutingPlatform p;
    apic::LocalApicConfig c0, c1;
    c0.bsp = true;
    c1.id = 0x1FF;
    auto b0 = vm.make_backend(0, c0, clock, p, n0);
    auto b1 = vm.make_backend(1, c1, clock, p, n1);
    // In xAPIC mode vCPU 1 is addressed by ID[7:0] = 0xFF (broadcast): no entry.
    EXPECT_FALSE(vm.physical_entry(0xFF).valid);
    b1->msr_write(apic::kMsrApicBase, kApicBase | apic::base::kEnable | apic::base::kExtd);
    EXPECT_EQ(vm.physical_entry(0x1FF), (PhysicalEntry{1, kBackingFrameBase + 1, false, true}));
    // Without x2AVIC the same ID is beyond the table (max index 0xFE).
    AvicVm plain(2, AvicOptions{});
    auto q0 = plain.make_backend(0, c0, clock, p, n0);
    auto q1 = plain.make_backend(1, c1, clock, p, n1);
    q1->msr_write(apic::kMsrApicBase, kApicBase | apic::base::kEnable | apic::base::kExtd);
    for (uint32_t i = 1; i <= 0xFE; ++i) {
        EXPECT_FALSE(plain.physical_entry(i).valid) << i;
    }
}

}  // namespace
}  // namespace hv::svm::test

namespace hv::svm::test {
namespace {

// What the AMD IOMMU's GA mode (iommu/) uses: the page from the IRTE's GA root pointer, the
// posting primitive, IsRun/Dest from the load/put hook, the doorbell.
TEST(AvicStructures, IommuFacingHooks)
{
    AvicFixture vm(2);
    vm.enable_all();
    std::vector<std::tuple<std::size_t, bool, uint32_t>> seen;
    vm.vm.on_running_change([&](std::size_t v, bool r, uint32_t h) { seen.emplace_back(v, r, h); });
    vm.vm.set_host_apic_id(1, 0x44);
    vm[1].enter_guest();
    vm[1].leave_guest();
    ASSERT_EQ(seen.size(), 2u);
    EXPECT_EQ(seen[0], std::make_tuple(std::size_t{1}, true, 0x44u));
    EXPECT_EQ(seen[1], std::make_tuple(std::size_t{1}, false, 0x44u));
    EXPECT_EQ(vm.vm.physical_index(1), 1u);
    EXPECT_EQ(vm.vm.host_apic_id(1), 0x44u);
    const auto v = vm.vm.vcpu_at_frame(AvicVm::backing_frame(1));
    ASSERT_EQ(v, 1u);
    EXPECT_TRUE(post_to_backing_page(vm.vm.backing_page(*v), 0x77));
    vm.vm.doorbell(*v);
    EXPECT_EQ(vm.notifiers[1].kicks.load(), 1);
    EXPECT_EQ(vm[1].pending_vector(), 0x77);
    EXPECT_FALSE(vm.vm.vcpu_at_frame(AvicVm::backing_frame(2)).has_value());
}

}  // namespace
}  // namespace hv::svm::test

namespace hv::svm::test {
namespace {

TEST(AvicStructures, SetupErrorsNameTheProblem)
{
    EXPECT_THROW(AvicVm(0, AvicOptions{}), std::invalid_argument);
    EXPECT_THROW(AvicVm(513, AvicOptions{}), std::invalid_argument);
    AvicVm vm(1, AvicOptions{});
    FakeClock c;
    RecordingNotifier n;
    RoutingPlatform p;
    EXPECT_THROW(vm.make_backend(1, apic::LocalApicConfig{}, c, p, n), std::out_of_range);
}

}  // namespace
}  // namespace hv::svm::test
