// fuzz_devices: sequences of guest port I/O and MMIO against the platform devices (core/devices/)
// on the port and MMIO buses (core/bus/bus.hpp), wired as core/vm/vm.cpp wires them: 16550 UART at
// 0x3f8, debug-exit at 0xf4, fw_cfg at 0x510, the two 8259 PICs, the PM timer at 0x608, the
// pc-testdev IRQ lines at 0x2000 driving an IOAPIC whose registers are on the MMIO bus at
// 0xfec00000 — plus "probe" devices the input attaches at ranges of its choosing.
//
// Input: a sequence of operations (see step()). Checked after every operation, beside the
// sanitizers:
// - Bus: attach() succeeds exactly for non-empty, non-wrapping ranges that overlap no claim; an
//   access reaches the device whose range wholly contains it, at the right offset and size (the
//   probes record what they receive), anything else is unclaimed, reads all-ones and is counted;
// - fw_cfg: the selector reads back; the data port streams exactly the bytes of the selected
//   item as QEMU's key table defines it (signature, ID, RAM size, CPU counts, the file directory
//   and a file), then zeros;
// - UART: LSR always says "transmitter empty", IIR "no interrupt", at most one byte is emitted per
//   write, the divisor is DLL/DLM, and regs() -> set_regs() is the identity (snapshot path);
// - PIC: the command port reads 0, the data port reads mask(), the vector base is 8-aligned;
// - PM timer: never goes backwards (mod 2^32), also across set_ticks() (restore path);
// - debug-exit: status = (value << 1) | 1, as QEMU's isa-debug-exit;
// - IOAPIC: the flattened state validates and restores onto a fresh IOAPIC unchanged.
//
// - PCI (core/devices/pci.hpp): the host bridge at 0xCF8-0xCFF and its BAR window on the MMIO
//   bus, with the i440FX bridge, a test function whose BARs are probes, and the passthrough-style
//   IrqDevice (MSI-X table in BAR1, RAISE_NOW with DMA of its raise log into a small guest RAM):
//   CONFIG_ADDRESS reads back what was written (bits 30:24 and 1:0 zero); a CONFIG_DATA read
//   returns the selected function's bytes, or all-ones for an absent one; the low bits of every
//   memory BAR read as zero (the guest learns its size); every BAR that decodes lies wholly inside
//   the window, with memory decoding on, at the address its register holds, and no two overlap;
//   an access inside a decoding BAR of the test function reaches its probe at the right offset.
#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "apic/ioapic.hpp"
#include "core/base/error.hpp"
#include "core/bus/bus.hpp"
#include "core/bus/memory.hpp"
#include "core/devices/debug_exit.hpp"
#include "core/devices/fw_cfg.hpp"
#include "core/devices/irq_device.hpp"
#include "core/devices/irq_testdev.hpp"
#include "core/devices/pci.hpp"
#include "core/devices/pic.hpp"
#include "core/devices/pm_timer.hpp"
#include "core/devices/uart.hpp"
#include "tests/fuzz/fuzz_target.hpp"

namespace {

using hv::fuzz::failed;
constexpr const char* kName = "devices";

__extension__ typedef unsigned __int128 u128;  // range ends up to 2^64

constexpr std::uint64_t kRam = 64ull << 20;
constexpr std::uint16_t kCpus = 2, kMaxCpus = 4;
const std::string kFileName = "opt/hvaccel/fuzz";

// Records the accesses it receives; reads return a value derived from the offset.
struct Probe : hv::IoDevice {
    std::uint64_t read(std::uint64_t offset, unsigned size) override
    {
        last = {offset, size, false, 0};
        ++hits;
        return value_at(offset);
    }
    void write(std::uint64_t offset, unsigned size, std::uint64_t value) override
    {
        last = {offset, size, true, value};
        ++hits;
    }
    static std::uint64_t value_at(std::uint64_t offset) { return 0x1122334455667788ull ^ offset; }
    struct Access {
        std::uint64_t offset = 0;
        unsigned size = 0;
        bool write = false;
        std::uint64_t value = 0;
    } last;
    std::uint64_t hits = 0;
};

struct IoApicMmio : hv::IoDevice {
    explicit IoApicMmio(hv::apic::IoApic& a) : io(a) {}
    std::uint64_t read(std::uint64_t off, unsigned size) override
    {
        return io.mmio_read(off, size);
    }
    void write(std::uint64_t off, unsigned size, std::uint64_t v) override
    {
        io.mmio_write(off, size, static_cast<std::uint32_t>(v));
    }
    hv::apic::IoApic& io;
};

struct CountingSink : hv::apic::IoApicSink {
    void deliver(const hv::apic::IoApicMessage&) override { ++messages; }
    std::uint64_t messages = 0;
};

// A PCI function whose two memory BARs are probes, with a capability in its list.
class TestFunction final : public hv::dev::PciFunction {
  public:
    static constexpr std::uint32_t kBar0Size = 0x1000, kBar1Size = 0x100;
    TestFunction() : PciFunction(0x6876, 0xF022, 0xFF0000)
    {
        add_memory_bar(0, kBar0Size, &bar0, 0xC001'0000);
        add_memory_bar(1, kBar1Size, &bar1, 0xC002'0000);
        add_capability(hv::dev::pci::kCapMsix, 12);
    }
    Probe bar0, bar1;
};

struct Claim {
    std::uint64_t base, len;
    Probe* probe;  // nullptr: a platform device (not recorded)
};

// The platform of one run, and the expected state of what the checks follow.
struct Platform {
    Platform()
        : null_fd(::open("/dev/null", O_WRONLY | O_CLOEXEC)), uart(null_fd),
          debug_exit([this](int status) { exits.push_back(status); }),
          fw_cfg(kRam, kCpus, kMaxCpus), ioapic(sink), ioapic_mmio(ioapic),
          testdev([this](unsigned pin, bool level) { ioapic.set_irq(pin, level); }),
          irq_device(
              ram(), 0, [](unsigned) {},
              [this](unsigned, const hv::dev::MsixEntry&) { ++msix_sent; })
    {
        file_data = {'h', 'v', 'a', 'c', 'c', 'e', 'l', '\n', 0, 1, 2, 3};
        file_key = fw_cfg.add_file(kFileName, file_data);
        attach(pio, hv::dev::Uart16550::kCom1, hv::dev::Uart16550::kPorts, &uart, "COM1");
        attach(pio, hv::dev::DebugExit::kPort, hv::dev::DebugExit::kPorts, &debug_exit, "exit");
        attach(pio, hv::dev::FwCfg::kPort, hv::dev::FwCfg::kPorts, &fw_cfg, "fw_cfg");
        attach(pio, hv::dev::Pic8259::kMaster, hv::dev::Pic8259::kPorts, &pic_master, "PIC1");
        attach(pio, hv::dev::Pic8259::kSlave, hv::dev::Pic8259::kPorts, &pic_slave, "PIC2");
        attach(pio, hv::dev::PmTimer::kPort, hv::dev::PmTimer::kPorts, &pm_timer, "PM timer");
        attach(pio, hv::dev::IrqTestDev::kPort, hv::dev::IrqTestDev::kLines, &testdev, "testdev");
        attach(mmio, hv::apic::ioapic::kDefaultBase, hv::apic::ioapic::kMmioSize, &ioapic_mmio,
               "IOAPIC");
        pci.attach(pio, mmio);
        pio_claims.push_back({hv::dev::pci::kConfigAddress, hv::dev::pci::kPorts, nullptr});
        mmio_claims.push_back(
            {hv::dev::pci::kMmioBase, hv::dev::pci::kMmioEnd - hv::dev::pci::kMmioBase, nullptr});
        pci.add(1, &test_fn);
        pci.add(2, &irq_device);
        items = expected_items();
    }
    // The IrqDevice's DMA target (its raise log): a small guest RAM shared by every run.
    static const hv::GuestMemory& ram()
    {
        static const hv::GuestMemory mem(2ull << 20);
        return mem;
    }

    ~Platform()
    {
        uart.flush();
        ::close(null_fd);
    }

    void attach(hv::Bus& bus, std::uint64_t base, std::uint64_t len, hv::IoDevice* dev,
                const char* name, Probe* probe = nullptr)
    {
        bus.attach(base, len, dev, name);
        (&bus == &pio ? pio_claims : mmio_claims).push_back({base, len, probe});
    }

    // QEMU's fw_cfg key table (docs/specs/fw_cfg.rst) for this machine, worked out here
    // independently of FwCfg.
    std::map<std::uint16_t, std::vector<std::uint8_t>> expected_items() const
    {
        auto le = [](std::uint64_t v, unsigned n) {
            std::vector<std::uint8_t> b;
            for (unsigned i = 0; i < n; ++i)
                b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
            return b;
        };
        std::map<std::uint16_t, std::vector<std::uint8_t>> m;
        m[0x00] = {'Q', 'E', 'M', 'U'};
        m[0x01] = le(1, 4);
        m[0x02] = std::vector<std::uint8_t>(16, 0);
        m[0x03] = le(kRam, 8);
        m[0x04] = le(1, 2);
        m[0x05] = le(kCpus, 2);
        m[0x0f] = le(kMaxCpus, 2);
        std::vector<std::uint8_t> dir = {0, 0, 0, 1};  // big-endian count
        const std::uint32_t sz = static_cast<std::uint32_t>(file_data.size());
        dir.insert(dir.end(),
                   {static_cast<std::uint8_t>(sz >> 24), static_cast<std::uint8_t>(sz >> 16),
                    static_cast<std::uint8_t>(sz >> 8), static_cast<std::uint8_t>(sz),
                    static_cast<std::uint8_t>(file_key >> 8), static_cast<std::uint8_t>(file_key),
                    0, 0});
        std::vector<std::uint8_t> name(hv::dev::FwCfg::kFileNameMax, 0);
        std::memcpy(name.data(), kFileName.data(), kFileName.size());
        dir.insert(dir.end(), name.begin(), name.end());
        m[0x19] = dir;
        m[file_key] = file_data;
        return m;
    }

    int null_fd;
    hv::Bus pio{"pio"}, mmio{"mmio"};
    hv::dev::Uart16550 uart;
    hv::dev::DebugExit debug_exit;
    hv::dev::FwCfg fw_cfg;
    hv::dev::Pic8259 pic_master, pic_slave;
    hv::dev::PmTimer pm_timer;
    CountingSink sink;
    hv::apic::IoApic ioapic;
    IoApicMmio ioapic_mmio;
    hv::dev::IrqTestDev testdev;
    hv::dev::PciHost pci;
    TestFunction test_fn;
    hv::dev::IrqDevice irq_device;
    std::uint64_t msix_sent = 0;
    std::uint32_t config_address = 0;  // CONFIG_ADDRESS, as the checks expect it
    std::vector<std::unique_ptr<Probe>> probes;
    std::vector<Claim> pio_claims, mmio_claims;

    std::vector<std::uint8_t> file_data;
    std::uint16_t file_key = 0;
    std::map<std::uint16_t, std::vector<std::uint8_t>> items;
    std::uint16_t selector = 0;  // fw_cfg, as the checks expect it
    std::size_t position = 0;
    std::vector<int> exits;
    std::uint32_t pm_last = 0;
};

const Claim* claim_for(const std::vector<Claim>& claims, std::uint64_t addr, unsigned size)
{
    for (const auto& c : claims)
        if (addr >= c.base && u128{addr} + size <= u128{c.base} + c.len)
            return &c;
    return nullptr;
}

// What the bus must do with an access, checked against the claims the test made.
void check_dispatch(hv::Bus& bus, const std::vector<Claim>& claims, std::uint64_t addr,
                    unsigned size, bool claimed, std::uint64_t before_unclaimed,
                    std::uint64_t after_unclaimed, std::uint64_t probe_hits_before)
{
    const Claim* c = claim_for(claims, addr, size);
    if (!c) {
        HV_FUZZ_CHECK(kName, !claimed && after_unclaimed == before_unclaimed + 1);
        return;
    }
    HV_FUZZ_CHECK(kName, claimed && after_unclaimed == before_unclaimed);
    if (c->probe) {
        HV_FUZZ_CHECK(kName, c->probe->hits == probe_hits_before + 1);
        HV_FUZZ_CHECK(kName,
                      c->probe->last.offset == addr - c->base && c->probe->last.size == size);
    }
    (void)bus;
}

std::uint64_t total_probe_hits(const Platform& p)
{
    std::uint64_t n = 0;
    for (const auto& pr : p.probes)
        n += pr->hits;
    return n;
}

void port_write(Platform& p, std::uint16_t port, unsigned size, std::uint64_t value)
{
    value &= hv::all_ones(size);
    const std::uint64_t u = p.pio.unclaimed_writes(), hits = total_probe_hits(p);
    const std::uint64_t uart_out = p.uart.bytes_out();
    const std::size_t exits = p.exits.size();
    const bool claimed = p.pio.write(port, size, value);
    HV_FUZZ_CHECK(kName, claimed == (claim_for(p.pio_claims, port, size) != nullptr));
    HV_FUZZ_CHECK(kName, claimed || p.pio.unclaimed_writes() == u + 1);
    (void)hits;
    if (!claimed)
        return;
    if (port == hv::dev::FwCfg::kPort) {
        p.selector = static_cast<std::uint16_t>(value);
        p.position = 0;
    }
    if (port == hv::dev::pci::kConfigAddress && size == 4)
        p.config_address = static_cast<std::uint32_t>(value) & 0x80FF'FFFCu;
    if (port >= hv::dev::DebugExit::kPort && port < hv::dev::DebugExit::kPort + 4) {
        HV_FUZZ_CHECK(kName, p.exits.size() == exits + 1);
        HV_FUZZ_CHECK(kName, p.exits.back() == static_cast<int>(((value << 1) | 1) & 0xff));
    }
    HV_FUZZ_CHECK(kName, p.uart.bytes_out() <= uart_out + 1);
}

void fw_cfg_data(Platform& p, unsigned size, std::uint64_t got)
{
    const auto it = p.items.find(p.selector);
    std::uint64_t want = 0;
    for (unsigned i = 0; i < size; ++i) {
        std::uint8_t b = 0;
        if (it != p.items.end() && p.position < it->second.size())
            b = it->second[p.position++];
        want |= std::uint64_t{b} << (8 * i);
    }
    if (got != want)
        failed(kName, "fw_cfg data port streamed a wrong byte");
}

void port_read(Platform& p, std::uint16_t port, unsigned size)
{
    std::uint64_t v = 0;
    const std::uint64_t u = p.pio.unclaimed_reads();
    const bool claimed = p.pio.read(port, size, v);
    HV_FUZZ_CHECK(kName, claimed == (claim_for(p.pio_claims, port, size) != nullptr));
    HV_FUZZ_CHECK(kName, v <= hv::all_ones(size));
    if (!claimed) {
        HV_FUZZ_CHECK(kName, v == hv::all_ones(size) && p.pio.unclaimed_reads() == u + 1);
        return;
    }
    using hv::dev::Uart16550;
    switch (port) {
    case hv::dev::FwCfg::kPort:
        HV_FUZZ_CHECK(kName, v == (p.selector & hv::all_ones(size)));
        break;
    case hv::dev::FwCfg::kPort + 1:
        fw_cfg_data(p, size, v);
        break;
    case Uart16550::kCom1 + 5:  // LSR: THRE | TEMT
        HV_FUZZ_CHECK(kName, v == 0x60);
        break;
    case Uart16550::kCom1 + 2:  // IIR: no interrupt pending, FIFO bits per FCR
        HV_FUZZ_CHECK(kName, v == 0x01 || v == 0xc1);
        break;
    case hv::dev::Pic8259::kMaster:
    case hv::dev::Pic8259::kSlave:
        HV_FUZZ_CHECK(kName, v == 0);
        break;
    case hv::dev::Pic8259::kMaster + 1:
        HV_FUZZ_CHECK(kName, v == p.pic_master.mask());
        break;
    case hv::dev::Pic8259::kSlave + 1:
        HV_FUZZ_CHECK(kName, v == p.pic_slave.mask());
        break;
    case hv::dev::pci::kConfigAddress:
        HV_FUZZ_CHECK(kName, v == (size == 4 ? p.config_address : hv::all_ones(size)));
        break;
    case hv::dev::pci::kConfigData:
    case hv::dev::pci::kConfigData + 1:
    case hv::dev::pci::kConfigData + 2:
    case hv::dev::pci::kConfigData + 3: {
        // Configuration mechanism #1 worked out here: enable, bus 0, function 0, a present slot.
        const std::uint32_t a = p.config_address;
        const unsigned slot = (a >> 11) & 0x1F;
        hv::dev::PciFunction* fn = p.pci.function(slot);
        const bool present =
            (a & 0x8000'0000u) && ((a >> 16) & 0xFF) == 0 && ((a >> 8) & 7) == 0 && fn;
        const unsigned reg = (a & 0xFC) + (port - hv::dev::pci::kConfigData);
        HV_FUZZ_CHECK(kName, v == (present ? fn->config_read(reg, size) : hv::all_ones(size)));
        break;
    }
    case hv::dev::PmTimer::kPort:
        if (size == 4) {
            const auto now = static_cast<std::uint32_t>(v);
            if (static_cast<std::uint32_t>(now - p.pm_last) > 0x8000'0000u)
                failed(kName, "PM timer went backwards");
            p.pm_last = now;
        }
        break;
    default:
        break;
    }
}

// The test function's BAR (0 or 1) holding [addr, addr + size), as the host decodes it.
Probe* test_bar_probe(Platform& p, std::uint64_t addr, unsigned size, std::uint64_t& offset)
{
    for (unsigned bar = 0; bar < 2; ++bar) {
        const std::uint64_t base = p.pci.decoded_address(&p.test_fn, bar);
        const std::uint64_t len = bar == 0 ? TestFunction::kBar0Size : TestFunction::kBar1Size;
        if (base && addr >= base && u128{addr} + size <= u128{base} + len) {
            offset = addr - base;
            return bar == 0 ? &p.test_fn.bar0 : &p.test_fn.bar1;
        }
    }
    return nullptr;
}

void mmio_access(Platform& p, std::uint64_t addr, unsigned size, bool write, std::uint64_t value)
{
    value &= hv::all_ones(size);
    // The IrqDevice's bursts run on its own thread at a host-timed pace: not for a deterministic
    // target. Its CONTROL register is left alone; RAISE_NOW (synchronous) is fuzzed.
    const std::uint64_t regs = p.pci.decoded_address(&p.irq_device, 0);
    if (write && regs && addr < regs + hv::dev::irqdev::kControl + 4 &&
        addr + size > regs + hv::dev::irqdev::kControl)
        return;
    std::uint64_t bar_offset = 0;
    Probe* bar = test_bar_probe(p, addr, size, bar_offset);
    const std::uint64_t bar_hits = bar ? bar->hits : 0;
    const std::uint64_t uw = p.mmio.unclaimed_writes(), ur = p.mmio.unclaimed_reads();
    const Claim* c = claim_for(p.mmio_claims, addr, size);
    const std::uint64_t hits = c && c->probe ? c->probe->hits : 0;
    std::uint64_t v = 0;
    const bool claimed = write ? p.mmio.write(addr, size, value) : p.mmio.read(addr, size, v);
    check_dispatch(p.mmio, p.mmio_claims, addr, size, claimed, write ? uw : ur,
                   write ? p.mmio.unclaimed_writes() : p.mmio.unclaimed_reads(), hits);
    if (!write) {
        HV_FUZZ_CHECK(kName, v <= hv::all_ones(size));
        if (!claimed)
            HV_FUZZ_CHECK(kName, v == hv::all_ones(size));
        else if (c->probe)
            HV_FUZZ_CHECK(kName, v == (Probe::value_at(addr - c->base) & hv::all_ones(size)));
    } else if (c && c->probe) {
        HV_FUZZ_CHECK(kName, c->probe->last.write && c->probe->last.value == value);
    }
    if (bar) {
        HV_FUZZ_CHECK(kName, bar->hits == bar_hits + 1);
        HV_FUZZ_CHECK(kName, bar->last.offset == bar_offset && bar->last.size == size &&
                                 bar->last.write == write);
        if (!write)
            HV_FUZZ_CHECK(kName, v == (Probe::value_at(bar_offset) & hv::all_ones(size)));
    }
}

// What the PCI host promises whatever the guest wrote (pci.hpp): BAR sizing bits read as zero,
// and a BAR decodes only inside the window, with memory decoding on, where its register says,
// overlapping no other decoding BAR.
void check_pci(Platform& p)
{
    struct Decoded {
        std::uint64_t base, size;
    };
    std::vector<Decoded> decoded;
    for (unsigned slot = 0; slot < 3; ++slot) {
        const hv::dev::PciFunction* fn = p.pci.function(slot);
        for (unsigned bar = 0; bar < hv::dev::pci::kBars; ++bar) {
            const std::uint32_t size = fn->bar_size(bar);
            if (!size)
                continue;
            HV_FUZZ_CHECK(kName,
                          (fn->config_read(hv::dev::pci::kBar0 + 4 * bar, 4) & (size - 1)) == 0);
            const std::uint64_t at = p.pci.decoded_address(fn, bar);
            if (!at)
                continue;
            HV_FUZZ_CHECK(kName,
                          at >= hv::dev::pci::kMmioBase && at + size <= hv::dev::pci::kMmioEnd);
            HV_FUZZ_CHECK(kName, (fn->command() & hv::dev::pci::kCommandMemory) != 0);
            HV_FUZZ_CHECK(kName, at == fn->bar_address(bar));
            for (const Decoded& d : decoded)
                HV_FUZZ_CHECK(kName, at + size <= d.base || d.base + d.size <= at);
            decoded.push_back({at, size});
        }
    }
}

// A new claim on the MMIO bus: refused exactly when it is empty, wraps or overlaps.
void attach_probe(Platform& p, std::uint64_t base, std::uint64_t len)
{
    if (p.probes.size() >= 6)
        return;
    bool ok = len != 0 && u128{base} + len < (u128{1} << 64);
    for (const auto& c : p.mmio_claims)
        ok &= !(u128{base} < u128{c.base} + c.len && u128{c.base} < u128{base} + len);
    auto probe = std::make_unique<Probe>();
    bool attached = false;
    try {
        p.attach(p.mmio, base, len, probe.get(), "probe", probe.get());
        attached = true;
    } catch (const hv::Error&) {
    }
    if (attached != ok)
        failed(kName, "Bus::attach accepted an overlapping range or refused a free one");
    if (attached)
        p.probes.push_back(std::move(probe));
}

unsigned port_size(std::uint8_t b)
{
    static constexpr unsigned kSizes[] = {1, 2, 4};
    return kSizes[b % 3];
}

void step(hv::fuzz::Input& in, Platform& p)
{
    static constexpr std::uint16_t kPortBases[] = {
        hv::dev::Uart16550::kCom1,  hv::dev::DebugExit::kPort,    hv::dev::FwCfg::kPort,
        hv::dev::Pic8259::kMaster,  hv::dev::Pic8259::kSlave,     hv::dev::PmTimer::kPort,
        hv::dev::IrqTestDev::kPort, hv::dev::pci::kConfigAddress,
    };
    auto port = [&]() -> std::uint16_t {
        const std::uint8_t sel = in.byte();
        if (sel >= 0xf0)
            return static_cast<std::uint16_t>(in.take(2));
        return static_cast<std::uint16_t>(kPortBases[sel % std::size(kPortBases)] +
                                          (sel >> 3) % 0x1a);
    };
    auto mmio_addr = [&]() -> std::uint64_t {
        const std::uint8_t sel = in.byte();
        if (sel < 0xc0)
            return hv::apic::ioapic::kDefaultBase + (in.take(2) & 0xfff);
        if (sel < 0xe0 && !p.probes.empty()) {
            const Claim& c = p.mmio_claims[2 + sel % p.probes.size()];  // after IOAPIC, PCI window
            return c.base + in.take(2) % (c.len + 8);
        }
        return in.take(8);
    };
    switch (in.byte() % 12) {
    case 0: {
        const std::uint16_t at = port();
        const unsigned size = port_size(in.byte());
        port_write(p, at, size, in.u32());
        break;
    }
    case 1: {
        const std::uint16_t at = port();
        port_read(p, at, port_size(in.byte()));
        break;
    }
    case 2:
    case 3: {
        const std::uint64_t at = mmio_addr();
        const unsigned size = 1u << (in.byte() % 4);
        mmio_access(p, at, size, (in.byte() & 1) != 0, in.take(8));
        break;
    }
    case 4: {  // select an fw_cfg item and stream some of it, as firmware does
        const std::uint8_t k = in.byte();
        const std::uint16_t key = k < 0x20   ? k
                                  : k < 0x40 ? p.file_key
                                             : static_cast<std::uint16_t>(in.take(2));
        port_write(p, hv::dev::FwCfg::kPort, 2, key);
        for (unsigned n = in.byte() % 80; n > 0; --n)
            port_read(p, hv::dev::FwCfg::kPort + 1, 1);
        break;
    }
    case 5: {  // restore path: the PM timer continues from a saved value
        const std::uint32_t t = in.u32();
        p.pm_timer.set_ticks(t);
        p.pm_last = t;
        port_read(p, hv::dev::PmTimer::kPort, 4);
        break;
    }
    case 6: {  // an EOI broadcast from a LAPIC
        p.ioapic.eoi(in.byte());
        break;
    }
    case 7: {  // snapshot of the UART: regs() -> set_regs() changes nothing
        const hv::dev::Uart16550::Regs r = p.uart.regs();
        p.uart.set_regs(r);
        const hv::dev::Uart16550::Regs s = p.uart.regs();
        HV_FUZZ_CHECK(kName, std::memcmp(&r, &s, sizeof r) == 0);
        HV_FUZZ_CHECK(kName, p.uart.divisor() == (r.dll | (r.dlm << 8)));
        break;
    }
    case 10: {  // PCI configuration cycle: CONFIG_ADDRESS, then CONFIG_DATA (as guests do)
        const std::uint8_t b = in.byte();
        const unsigned slot = b & 0x80 ? in.byte() & 0x1F : b % 4;
        std::uint32_t address = hv::dev::pci::config_address(0, slot, 0, in.byte());
        if (b & 0x40)
            address ^= static_cast<std::uint32_t>(in.take(4));  // other buses, functions, bits
        port_write(p, hv::dev::pci::kConfigAddress, 4, address);
        const unsigned size = port_size(in.byte());
        const std::uint16_t data =
            static_cast<std::uint16_t>(hv::dev::pci::kConfigData + (b >> 4) % 4);
        if (b & 0x20)
            port_write(p, data, size, in.u32());
        else
            port_read(p, data, size);
        break;
    }
    case 11: {  // a BAR moved (all-ones sizing, then an address), memory decoding toggled
        const std::uint8_t b = in.byte();
        const unsigned slot = 1 + b % 2, bar = (b >> 1) % 2;
        port_write(p, hv::dev::pci::kConfigAddress, 4,
                   hv::dev::pci::config_address(0, slot, 0, hv::dev::pci::kBar0 + 4 * bar));
        port_write(p, hv::dev::pci::kConfigData, 4, 0xFFFF'FFFFu);
        port_read(p, hv::dev::pci::kConfigData, 4);
        port_write(p, hv::dev::pci::kConfigData, 4,
                   (b & 0x80) ? in.u32()
                              : 0xC000'0000u + (static_cast<std::uint32_t>(in.take(2)) << 8));
        port_write(p, hv::dev::pci::kConfigAddress, 4,
                   hv::dev::pci::config_address(0, slot, 0, hv::dev::pci::kCommand));
        port_write(p, hv::dev::pci::kConfigData, 2, (b & 0x40) ? 0x6 : 0x0);
        break;
    }
    case 8: {  // restore path: a programmed PIC
        const std::uint8_t mask = in.byte(), base = in.byte();
        hv::dev::Pic8259& pic = (base & 1) ? p.pic_slave : p.pic_master;
        pic.set_state(mask, base);
        HV_FUZZ_CHECK(kName, pic.mask() == mask && pic.vector_base() == (base & 0xf8));
        break;
    }
    default: {
        const std::uint64_t base =
            (in.byte() & 1) ? in.take(8) : 0xfed0'0000ull + (in.take(2) << 4);
        attach_probe(p, base, in.take(2) + (in.byte() % 4 == 0 ? 0 : 1));
        break;
    }
    }
    check_pci(p);
    HV_FUZZ_CHECK(kName, (p.pic_master.vector_base() & 7) == 0);
    HV_FUZZ_CHECK(kName, (p.pic_slave.vector_base() & 7) == 0);
    const hv::apic::IoApicState io = p.ioapic.flatten();
    HV_FUZZ_CHECK(kName, !hv::apic::validate(io).has_value());
    CountingSink quiet;
    hv::apic::IoApic copy(quiet);
    HV_FUZZ_CHECK(kName, !copy.restore(io).has_value());
    HV_FUZZ_CHECK(kName, copy.flatten() == io);
}

}  // namespace

HV_FUZZ_TARGET(devices)
{
    hv::fuzz::Input in(data, size);
    Platform p;
    for (unsigned ops = 0; !in.empty() && ops < 4096; ++ops)
        step(in, p);
    return 0;
}
