// xAPIC MMIO register behaviour: writable bits, read-only and reserved registers, access sizes,
// ICR decoding. SDM Vol3 11.4.1 (register map), 11.5.1 (LVT), 11.6.1 (ICR), 11.5.3 (ESR).
#include <gtest/gtest.h>

#include <vector>

#include "test_helpers.hpp"

namespace hv::apic::test {
namespace {

struct RegCase {
    uint32_t offset;
    uint32_t write;
    uint32_t read_back;
};

TEST(XapicRegs, WritableBitsAndReadOnlyRegisters)
{
    const std::vector<RegCase> cases = {
        {reg::kId, 0xFFFFFFFFu, 0xFF000000u},
        {reg::kVersion, 0x0u, kVersionValue},
        {reg::kTpr, 0xFFFFFFFFu, 0xFFu},
        {reg::kApr, 0xFFFFFFFFu, 0x0u},
        {reg::kPpr, 0xFFFFFFFFu, 0x0u},
        {reg::kEoi, 0x0u, 0x0u},
        {reg::kRrd, 0xFFFFFFFFu, 0x0u},
        {reg::kLdr, 0xFFFFFFFFu, 0xFF000000u},
        {reg::kDfr, 0x0u, 0x0FFFFFFFu},
        {reg::kDfr, 0xFFFFFFFFu, 0xFFFFFFFFu},
        {reg::kSvr, 0xFFFFFFFFu, 0x13FFu},
        {reg::kIsr + 0x10, 0xFFFFFFFFu, 0x0u},
        {reg::kTmr + 0x70, 0xFFFFFFFFu, 0x0u},
        {reg::kIrr + 0x30, 0xFFFFFFFFu, 0x0u},
        {reg::kEsr, 0xFFFFFFFFu, 0x0u},
        {reg::kLvtCmci, 0xFFFFFFFFu, 0x107FFu},
        {reg::kIcrHigh, 0xFFFFFFFFu, 0xFF000000u},
        {reg::kLvtTimer, 0xFFFFFFFFu, 0x100FFu},  // reserved mode 11b falls back to one-shot
        {reg::kLvtTimer, 0x000400FFu, 0x400FFu},
        {reg::kLvtTimer, 0x000200FFu, 0x200FFu},
        {reg::kLvtThermal, 0xFFFFFFFFu, 0x107FFu},
        {reg::kLvtPerf, 0xFFFFFFFFu, 0x107FFu},
        {reg::kLvtLint0, 0xFFFFFFFFu, 0x1A7FFu},
        {reg::kLvtLint1, 0xFFFFFFFFu, 0x1A7FFu},
        {reg::kLvtError, 0xFFFFFFFFu, 0x100FFu},
        {reg::kTimerInitial, 0xFFFFFFFFu, 0xFFFFFFFFu},
        {reg::kTimerCurrent, 0xFFFFFFFFu, 0x0u},
        {reg::kTimerDivide, 0xFFFFFFFFu, 0xBu},
    };
    for (const auto& c : cases) {
        LocalApic a = make_apic();
        const AccessResult w = wr(a, c.offset, c.write);
        EXPECT_TRUE(w.is_ok()) << std::hex << c.offset;
        EXPECT_EQ(rd(a, c.offset), c.read_back) << std::hex << "offset " << c.offset;
        wr(a, reg::kEsr, 0);
        EXPECT_EQ(rd(a, reg::kEsr), 0u) << std::hex << "no ESR error for offset " << c.offset;
    }
}

TEST(XapicRegs, ResetValues)
{
    LocalApicConfig cfg;
    cfg.id = 5;
    cfg.bsp = true;
    LocalApic a(cfg);
    EXPECT_EQ(rd(a, reg::kId), 5u << 24);
    EXPECT_EQ(rd(a, reg::kVersion), 0x01060014u);
    EXPECT_EQ(rd(a, reg::kDfr), 0xFFFFFFFFu);
    EXPECT_EQ(rd(a, reg::kSvr), 0xFFu);
    for (std::size_t i = 0; i < kLvtCount; ++i) {
        EXPECT_EQ(rd(a, lvt_offset(static_cast<Lvt>(i))), lvt::kMasked);
    }
    EXPECT_EQ(a.apic_base(), 0xFEE00000u | base::kEnable | base::kBsp);
    EXPECT_EQ(a.mmio_base(), 0xFEE00000u);
}

// SDM Vol3 11.5.3: "Illegal Register Address" for reserved registers in xAPIC mode.
TEST(XapicRegs, ReservedOffsetsSetIllegalRegisterAddress)
{
    std::vector<uint32_t> reserved = {0x000, 0x010, 0x040, 0x050, 0x060, 0x070, 0x290,
                                      0x2A0, 0x2B0, 0x2C0, 0x2D0, 0x2E0, 0x3A0, 0x3B0,
                                      0x3C0, 0x3D0, 0x3F0, 0x400, 0x800, 0xFF0};
    for (uint32_t off : reserved) {
        LocalApic a = make_apic();
        EXPECT_EQ(rd(a, off), 0u);
        wr(a, reg::kEsr, 0);
        EXPECT_EQ(rd(a, reg::kEsr), esr::kIllegalRegister) << std::hex << off;
        wr(a, reg::kEsr, 0);
        wr(a, off, 0x12345678u);
        wr(a, reg::kEsr, 0);
        EXPECT_EQ(rd(a, reg::kEsr), esr::kIllegalRegister) << std::hex << off;
    }
}

TEST(XapicRegs, AccessSizesAndAlignment)
{
    LocalApic a = make_apic(0xAB);
    wr(a, reg::kTpr, 0x5A);
    EXPECT_EQ(a.mmio_read(reg::kId + 3, 1, at(0)).value, 0xABu);
    EXPECT_EQ(a.mmio_read(reg::kId + 2, 2, at(0)).value, 0xAB00u);
    EXPECT_EQ(a.mmio_read(reg::kTpr, 1, at(0)).value, 0x5Au);
    EXPECT_EQ(a.mmio_read(reg::kTpr + 4, 4, at(0)).value, 0u);  // padding
    EXPECT_EQ(a.counters().mmio_ignored, 0u);
    EXPECT_EQ(a.mmio_read(reg::kTpr, 8, at(0)).value, 0u);
    EXPECT_EQ(a.mmio_read(reg::kTpr + 2, 4, at(0)).value, 0u);  // crosses the dword
    EXPECT_EQ(a.counters().mmio_ignored, 2u);
    a.mmio_write(reg::kTpr, 2, 0x11, at(0));
    a.mmio_write(reg::kTpr + 1, 4, 0x22, at(0));
    EXPECT_EQ(rd(a, reg::kTpr), 0x5Au);
    EXPECT_EQ(a.counters().mmio_ignored, 4u);
    EXPECT_EQ(a.mmio_read(0x1000, 4, at(0)).status, AccessStatus::NotMine);
}

TEST(XapicRegs, MmioIsNotMineOutsideXapicMode)
{
    LocalApic a = make_apic();
    ASSERT_TRUE(to_x2apic(a).is_ok());
    EXPECT_EQ(a.mmio_read(reg::kTpr, 4, at(0)).status, AccessStatus::NotMine);
    EXPECT_EQ(a.mmio_write(reg::kTpr, 4, 1, at(0)).status, AccessStatus::NotMine);
    EXPECT_EQ(a.mmio_base(), std::nullopt);
    LocalApic b = make_apic();
    ASSERT_TRUE(b.msr_write(kMsrApicBase, base::kDefaultAddr, at(0)).is_ok());
    EXPECT_EQ(b.mmio_read(reg::kTpr, 4, at(0)).status, AccessStatus::NotMine);
}

TEST(XapicRegs, X2apicMsrsRaiseGpInXapicMode)
{
    LocalApic a = make_apic();
    for (uint32_t msr : {0x802u, 0x808u, 0x830u, 0x83Fu, 0x8FFu}) {
        EXPECT_TRUE(a.msr_read(msr, at(0)).is_gp()) << std::hex << msr;
        EXPECT_TRUE(a.msr_write(msr, 0, at(0)).is_gp()) << std::hex << msr;
    }
    EXPECT_EQ(a.msr_read(0x10, at(0)).status, AccessStatus::NotMine);
}

struct IcrCase {
    uint32_t low;
    uint32_t high;
    std::optional<Ipi> ipi;
    uint32_t esr;
};

Ipi make_ipi(uint8_t vec, DeliveryMode m, uint32_t dest, DestMode dm = DestMode::Physical,
             Shorthand sh = Shorthand::None, Trigger t = Trigger::Edge, bool assert_level = true)
{
    Ipi i;
    i.vector = vec;
    i.mode = m;
    i.trigger = t;
    i.assert_level = assert_level;
    i.dest = Destination{dest, dm, sh, false};
    return i;
}

// SDM Vol3 11.6.1 "Interrupt Command Register (ICR)" and its table of valid combinations.
TEST(XapicRegs, IcrWritesProduceIpis)
{
    using DM = DeliveryMode;
    const std::vector<IcrCase> cases = {
        {0x00004030, 0x02000000, make_ipi(0x30, DM::Fixed, 2), 0},
        {0x00000830, 0x0F000000, make_ipi(0x30, DM::Fixed, 0x0F, DestMode::Logical, {}, {}, false),
         0},
        {0x00044030, 0, make_ipi(0x30, DM::Fixed, 0, {}, Shorthand::Self), 0},
        {0x00084030, 0, make_ipi(0x30, DM::Fixed, 0, {}, Shorthand::AllIncludingSelf), 0},
        {0x000C4130, 0, make_ipi(0x30, DM::LowestPriority, 0, {}, Shorthand::AllExcludingSelf), 0},
        {0x00044430, 0, std::nullopt, 0},           // NMI to self: invalid combination
        {0x00084500, 0, std::nullopt, 0},           // INIT to all-including-self: invalid
        {0x00004700, 0x01000000, std::nullopt, 0},  // ExtINT is reserved in the ICR
        {0x00004300, 0x01000000, std::nullopt, 0},  // 011b reserved
        {0x00004500, 0x01000000, make_ipi(0, DM::Init, 1), 0},
        {0x00008500, 0x00000000,
         make_ipi(0, DM::Init, 0, {}, Shorthand::None, Trigger::Level, false), 0},
        {0x00004608, 0x03000000, make_ipi(8, DM::StartUp, 3), 0},
        {0x00004400, 0xFF000000, make_ipi(0, DM::Nmi, 0xFF), 0},
        {0x0000440F, 0x01000000, make_ipi(0x0F, DM::Nmi, 1), 0},  // NMI ignores the vector
        {0x00004200, 0x01000000, make_ipi(0, DM::Smi, 1), 0},
        {0x0000400F, 0x01000000, make_ipi(0x0F, DM::Fixed, 1), esr::kSendIllegalVector},
        {0x0000410F, 0x01000000, make_ipi(0x0F, DM::LowestPriority, 1), esr::kSendIllegalVector},
    };
    for (const auto& c : cases) {
        LocalApic a = make_apic();
        wr(a, reg::kIcrHigh, c.high);
        const AccessResult r = wr(a, reg::kIcrLow, c.low);
        EXPECT_EQ(r.ipi, c.ipi) << std::hex << c.low;
        wr(a, reg::kEsr, 0);
        EXPECT_EQ(rd(a, reg::kEsr), c.esr) << std::hex << c.low;
        EXPECT_EQ(rd(a, reg::kIcrLow), c.low);
        EXPECT_EQ(rd(a, reg::kIcrHigh), c.high);
    }
}

TEST(XapicRegs, IcrDeliveryStatusIsNeverStored)
{
    LocalApic a = make_apic();
    wr(a, reg::kIcrLow, 0x00005030 | 0xFFF00000u);
    EXPECT_EQ(rd(a, reg::kIcrLow), 0x00004030u);
    EXPECT_EQ(a.flatten(at(0)).icr & icr::kDeliveryStatus, 0u);
}

TEST(XapicRegs, IdWriteKeepsTheUpperX2apicIdBits)
{
    LocalApic a = make_apic(0x1234);
    EXPECT_EQ(rd(a, reg::kId), 0x34000000u);
    wr(a, reg::kId, 0x56000000u);
    EXPECT_EQ(a.dest_info().id, 0x1256u);
}

}  // namespace
}  // namespace hv::apic::test
