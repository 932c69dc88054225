// PCI configuration mechanism #1, BAR placement, MSI-X masking and pending bits, and the irq
// device's registers, without a VM (PCI Local Bus 3.0 3.2.2.3.2, 6.2.5, 6.8.2, 6.8.3.5).
#include <gtest/gtest.h>

#include <mutex>
#include <thread>
#include <vector>

#include "core/bus/bus.hpp"
#include "core/bus/memory.hpp"
#include "core/devices/irq_device.hpp"
#include "core/devices/msix.hpp"
#include "core/devices/pci.hpp"

using namespace hv;
using namespace hv::dev;

namespace {

struct Rig {
    Bus pio{"pio"}, mmio{"mmio"};
    PciHost host;
    GuestMemory mem{16u << 20};
    std::mutex mu;
    std::vector<std::pair<unsigned, MsixEntry>> sent;
    std::vector<unsigned> changed;
    IrqDevice dev{mem, 0,
                  [this](unsigned e) {
                      std::lock_guard lk(mu);
                      changed.push_back(e);
                  },
                  [this](unsigned e, const MsixEntry& m) {
                      std::lock_guard lk(mu);
                      sent.emplace_back(e, m);
                  }};
    Rig()
    {
        host.attach(pio, mmio);
        host.add(1, &dev);
    }
    std::uint32_t cfg_read(unsigned slot, unsigned reg, unsigned size = 4)
    {
        pio.write(pci::kConfigAddress, 4, pci::config_address(0, slot, 0, reg));
        std::uint64_t v = 0;
        pio.read(pci::kConfigData + (reg & 3), size, v);
        return static_cast<std::uint32_t>(v);
    }
    void cfg_write(unsigned slot, unsigned reg, std::uint32_t v, unsigned size = 4)
    {
        pio.write(pci::kConfigAddress, 4, pci::config_address(0, slot, 0, reg));
        pio.write(pci::kConfigData + (reg & 3), size, v);
    }
    std::uint64_t rd(std::uint64_t a, unsigned size = 4)
    {
        std::uint64_t v = 0;
        mmio.read(a, size, v);
        return v;
    }
    void wr(std::uint64_t a, std::uint64_t v, unsigned size = 4) { mmio.write(a, size, v); }
    std::size_t sent_count()
    {
        std::lock_guard lk(mu);
        return sent.size();
    }
    void enable()
    {
        cfg_write(1, pci::kCommand, pci::kCommandMemory | pci::kCommandBusMaster, 2);
        cfg_write(1, dev.msix_capability() + 2, 0x8000, 2);  // MSI-X enable
    }
};

constexpr std::uint64_t kRegs = irqdev::kBar0Default, kTable = irqdev::kBar1Default;

TEST(Pci, ConfigMechanismOne)
{
    Rig r;
    EXPECT_EQ(r.cfg_read(0, 0), 0x1237'8086u);  // the host bridge
    EXPECT_EQ(r.cfg_read(1, 0), 0x0001'6876u);
    EXPECT_EQ(r.cfg_read(7, 0), 0xFFFF'FFFFu);  // absent: master abort
    EXPECT_EQ(r.host.counters().config_absent.load(), 1u);
    EXPECT_EQ(r.cfg_read(1, 2, 2), 0x0001u);  // a word at CONFIG_DATA + 2
    // Bits 30:24 of CONFIG_ADDRESS are reserved and 1:0 read as zero.
    r.pio.write(pci::kConfigAddress, 4, 0xFFFF'FFFFu);
    std::uint64_t a = 0;
    r.pio.read(pci::kConfigAddress, 4, a);
    EXPECT_EQ(a, 0x80FF'FFFCu);
    // The vendor ID is read-only.
    r.cfg_write(1, 0, 0);
    EXPECT_EQ(r.cfg_read(1, 0), 0x0001'6876u);
}

TEST(Pci, BarSizingAndDecoding)
{
    Rig r;
    r.cfg_write(1, pci::kBar0, 0xFFFF'FFFFu);
    EXPECT_EQ(r.cfg_read(1, pci::kBar0), 0xFFFF'F000u);  // 4 KiB, memory, 32-bit
    r.cfg_write(1, pci::kBar0, static_cast<std::uint32_t>(kRegs));
    EXPECT_EQ(r.rd(kRegs + irqdev::kId), 0xFFFF'FFFFu) << "no decoding before Memory Space";
    r.cfg_write(1, pci::kCommand, pci::kCommandMemory, 2);
    EXPECT_EQ(r.rd(kRegs + irqdev::kId), irqdev::kIdValue);
    // Moved: the registers follow; the old place reads all-ones.
    r.cfg_write(1, pci::kBar0, 0xD000'0000u);
    EXPECT_EQ(r.rd(0xD000'0000u + irqdev::kId), irqdev::kIdValue);
    EXPECT_EQ(r.rd(kRegs + irqdev::kId), 0xFFFF'FFFFu);
    // Over the LAPIC or in RAM: kept in the register, never decoded.
    std::uint64_t refused = r.host.counters().bar_refused.load();
    for (std::uint32_t bad : {0xFEE0'0000u, 0x0010'0000u}) {
        r.cfg_write(1, pci::kBar0, bad);
        EXPECT_EQ(r.cfg_read(1, pci::kBar0), bad);
        EXPECT_EQ(r.host.decoded_address(&r.dev, 0), 0u) << std::hex << bad;
    }
    // On top of BAR1: only one of the two decodes (the lower-numbered BAR wins).
    r.cfg_write(1, pci::kBar0, static_cast<std::uint32_t>(kTable));
    EXPECT_EQ(r.host.decoded_address(&r.dev, 0), kTable);
    EXPECT_EQ(r.host.decoded_address(&r.dev, 1), 0u);
    EXPECT_EQ(r.host.counters().bar_refused.load(), refused + 3);
}

TEST(Msix, EntriesMaskedAtResetAndAccessSizes)
{
    Rig r;
    r.enable();
    for (unsigned n = 0; n < irqdev::kEntries; ++n)
        EXPECT_EQ(r.rd(kTable + 16 * n + 12), 1u);
    r.wr(kTable, 0xFEE0'1003u);  // bits 1:0 read as zero
    EXPECT_EQ(r.rd(kTable), 0xFEE0'1000u);
    r.wr(kTable + 12, 0xFFFF'FFFEu);  // reserved vector-control bits, mask clear
    EXPECT_EQ(r.rd(kTable + 12), 0u);
    r.wr(kTable + 8, 0x0000'0041'FEE0'2000ull, 8);  // QWORD: data and vector control
    EXPECT_EQ(r.rd(kTable + 8), 0xFEE0'2000u);
    EXPECT_EQ(r.rd(kTable + 12), 0x41u & 1u);
    EXPECT_EQ(r.rd(kTable + 2, 2), 0xFFFFu) << "word accesses are undefined: all-ones";
    r.wr(kTable + MsixTable::kPbaOffset, 0xFFFF'FFFFu);  // the PBA is read-only
    EXPECT_EQ(r.rd(kTable + MsixTable::kPbaOffset), 0u);
}

TEST(Msix, MaskedRaiseSetsPendingAndUnmaskSendsOnce)
{
    Rig r;
    r.enable();
    r.wr(kTable + 16 * 2, 0xFEE0'0000u);
    r.wr(kTable + 16 * 2 + 8, 0x45);
    r.wr(kRegs + irqdev::kRaiseNow, 2);
    r.wr(kRegs + irqdev::kRaiseNow, 2);  // coalesces with the pending one
    EXPECT_EQ(r.sent_count(), 0u);
    EXPECT_EQ(r.rd(kTable + MsixTable::kPbaOffset), 1u << 2);
    EXPECT_EQ(r.dev.msix().counters().coalesced.load(), 1u);
    r.wr(kTable + 16 * 2 + 12, 0);  // unmask
    ASSERT_EQ(r.sent_count(), 1u);
    EXPECT_EQ(r.sent[0].first, 2u);
    EXPECT_EQ(r.sent[0].second.data, 0x45u);
    EXPECT_EQ(r.rd(kTable + MsixTable::kPbaOffset), 0u);
    // Function mask: pending again, sent when the function is unmasked.
    r.cfg_write(1, r.dev.msix_capability() + 2, 0xC000, 2);
    r.wr(kRegs + irqdev::kRaiseNow, 2);
    EXPECT_EQ(r.sent_count(), 1u);
    EXPECT_EQ(r.rd(kTable + MsixTable::kPbaOffset), 1u << 2);
    r.cfg_write(1, r.dev.msix_capability() + 2, 0x8000, 2);
    EXPECT_EQ(r.sent_count(), 2u);
}

TEST(Msix, DisabledOrNoBusMasterDropsEverything)
{
    Rig r;
    r.cfg_write(1, pci::kCommand, pci::kCommandMemory | pci::kCommandBusMaster, 2);
    r.wr(kTable + 12, 0);
    r.wr(kRegs + irqdev::kRaiseNow, 0);  // MSI-X not enabled
    r.cfg_write(1, r.dev.msix_capability() + 2, 0x8000, 2);
    r.cfg_write(1, pci::kCommand, pci::kCommandMemory, 2);
    r.wr(kRegs + irqdev::kRaiseNow, 0);  // bus mastering off
    EXPECT_EQ(r.sent_count(), 0u);
    EXPECT_EQ(r.rd(kTable + MsixTable::kPbaOffset), 0u);
    EXPECT_EQ(r.dev.msix().counters().dropped.load(), 2u);
}

TEST(IrqDevice, PacedBurstLogsIntoGuestRamAndRefusesOutside)
{
    Rig r;
    r.enable();
    r.wr(kTable + 12, 0);
    r.wr(kRegs + irqdev::kLogLo, 0x1000);
    r.wr(kRegs + irqdev::kLogSlots, 4);
    r.wr(kRegs + irqdev::kCount, 6);
    r.wr(kRegs + irqdev::kControl, irqdev::kControlStart | irqdev::kControlPaced);
    for (unsigned acked = 0; acked < 6;) {
        if (r.sent_count() > acked) {
            r.wr(kRegs + irqdev::kAck, 1);
            ++acked;
        }
        std::this_thread::yield();
    }
    EXPECT_EQ(r.rd(kRegs + irqdev::kRaised), 6u);
    EXPECT_EQ(r.sent_count(), 6u);
    std::uint64_t log[4] = {};
    ASSERT_TRUE(r.mem.read(0x1000, log, sizeof log));
    for (auto t : log)
        EXPECT_NE(t, 0u);
    EXPECT_EQ(r.rd(kRegs + irqdev::kLogRefused), 0u);
    // A log beyond guest RAM (and one straddling its end) is refused, never written.
    r.wr(kRegs + irqdev::kLogLo, 0xFFFF'F000u);
    r.wr(kRegs + irqdev::kLogHi, 0x7F);
    r.wr(kRegs + irqdev::kRaiseNow, 0);
    r.wr(kRegs + irqdev::kLogLo, (16u << 20) - 4);
    r.wr(kRegs + irqdev::kLogHi, 0);
    r.wr(kRegs + irqdev::kLogSlots, 1);
    r.wr(kRegs + irqdev::kRaiseNow, 0);
    EXPECT_EQ(r.rd(kRegs + irqdev::kLogRefused), 2u);
}

}  // namespace
