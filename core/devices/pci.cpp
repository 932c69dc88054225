#include "core/devices/pci.hpp"

#include "core/devices/msix.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "core/base/error.hpp"

namespace hv::dev {

namespace {

constexpr unsigned kMsixCapLength = 12;
constexpr std::uint16_t kMsixEnable = 1u << 15;
constexpr std::uint16_t kMsixFunctionMask = 1u << 14;

bool valid_access(unsigned offset, unsigned size)
{
    return (size == 1 || size == 2 || size == 4) && offset + size <= pci::kConfigSize &&
           (offset & (size - 1)) == 0;
}

}  // namespace

// ---- PciFunction ----

PciFunction::PciFunction(std::uint16_t vendor, std::uint16_t device, std::uint32_t class_code)
{
    set_bytes(pci::kVendorId, 2, vendor);
    set_bytes(pci::kDeviceId, 2, device);
    // Revision 1 in 7:0, class code in 31:8 (PCI 3.0 6.2.1).
    set_bytes(pci::kRevision, 4, (class_code << 8) | 1u);
    set_writable(pci::kCommand, 2,
                 pci::kCommandIo | pci::kCommandMemory | pci::kCommandBusMaster |
                     pci::kCommandIntxDisable);
    set_writable(pci::kInterruptLine, 1, 0xFF);
}

std::uint32_t PciFunction::get_bytes(unsigned offset, unsigned size) const
{
    std::uint32_t v = 0;
    for (unsigned i = 0; i < size; ++i)
        v |= static_cast<std::uint32_t>(cfg_[offset + i]) << (8 * i);
    return v;
}

void PciFunction::set_bytes(unsigned offset, unsigned size, std::uint32_t value)
{
    for (unsigned i = 0; i < size; ++i)
        cfg_[offset + i] = static_cast<std::uint8_t>(value >> (8 * i));
}

void PciFunction::set_writable(unsigned offset, unsigned size, std::uint32_t mask)
{
    for (unsigned i = 0; i < size; ++i)
        wmask_[offset + i] = static_cast<std::uint8_t>(mask >> (8 * i));
}

std::uint32_t PciFunction::config_read(unsigned offset, unsigned size) const
{
    if (!valid_access(offset, size))
        return static_cast<std::uint32_t>(all_ones(size));
    std::lock_guard lk(mu_);
    return get_bytes(offset, size);
}

void PciFunction::config_write(unsigned offset, unsigned size, std::uint32_t value)
{
    if (!valid_access(offset, size))
        return;
    bool decode_changed = false;
    {
        std::lock_guard lk(mu_);
        for (unsigned i = 0; i < size; ++i) {
            unsigned o = offset + i;
            auto b = static_cast<std::uint8_t>(value >> (8 * i));
            cfg_[o] = static_cast<std::uint8_t>((cfg_[o] & ~wmask_[o]) | (b & wmask_[o]));
        }
        bool touches_command = offset < pci::kCommand + 2 && offset + size > pci::kCommand;
        bool touches_bars = offset < pci::kBar0 + 4 * pci::kBars && offset + size > pci::kBar0;
        decode_changed = touches_command || touches_bars;
    }
    if (decode_changed && host_)
        host_->update_decoding();
    config_written(offset, size);
}

std::uint16_t PciFunction::command() const
{
    std::lock_guard lk(mu_);
    return static_cast<std::uint16_t>(get_bytes(pci::kCommand, 2));
}

std::uint32_t PciFunction::bar_address(unsigned bar) const
{
    std::lock_guard lk(mu_);
    return get_bytes(pci::kBar0 + 4 * bar, 4) & ~0xFu;
}

void PciFunction::add_memory_bar(unsigned bar, std::uint32_t size, IoDevice* dev,
                                 std::uint32_t initial)
{
    if (bar >= pci::kBars || size < 16 || (size & (size - 1)) != 0 || (initial & (size - 1)))
        throw Error(
            fmt::format("PCI BAR{}: bad size {:#x} or placement {:#x}", bar, size, initial));
    bars_[bar] = {size, dev};
    // Bits 3:0: memory space, 32-bit, not prefetchable (all zero); bits below the size read 0.
    set_bytes(pci::kBar0 + 4 * bar, 4, initial);
    set_writable(pci::kBar0 + 4 * bar, 4, ~(size - 1) & ~0xFu);
}

unsigned PciFunction::add_capability(std::uint8_t id, unsigned length)
{
    unsigned off = next_cap_;
    if (off + length > pci::kConfigSize)
        throw Error(fmt::format("PCI capability {:#x} does not fit", id));
    set_bytes(off, 1, id);
    set_bytes(off + 1, 1, 0);
    if (last_cap_ == 0) {
        set_bytes(pci::kCapabilities, 1, off);
        set_bytes(pci::kStatus, 2, get_bytes(pci::kStatus, 2) | pci::kStatusCapList);
    } else {
        set_bytes(last_cap_ + 1, 1, off);
    }
    last_cap_ = off;
    next_cap_ = (off + length + 3) & ~3u;
    return off;
}

unsigned PciFunction::add_msix_capability(unsigned entries, unsigned bar)
{
    // Message Control (+2): table size - 1 in bits 10:0 (read-only), function mask (14) and
    // enable (15) writable; Table (+4) and PBA (+8) offset/BIR.
    const unsigned cap = add_capability(pci::kCapMsix, kMsixCapLength);
    set_bytes(cap + 2, 2, entries - 1);
    set_writable(cap + 2, 2, kMsixEnable | kMsixFunctionMask);
    set_bytes(cap + 4, 4, bar);
    set_bytes(cap + 8, 4, static_cast<std::uint32_t>(MsixTable::kPbaOffset) | bar);
    return cap;
}

void PciFunction::update_msix_control(unsigned cap, unsigned offset, unsigned size,
                                      MsixTable& table)
{
    const unsigned ctl = cap + 2;
    if (offset + size <= ctl || offset >= ctl + 2)
        return;
    const auto v = static_cast<std::uint16_t>(config_read(ctl, 2));
    table.set_control((v & kMsixEnable) != 0, (v & kMsixFunctionMask) != 0);
}

std::array<std::uint8_t, pci::kConfigSize> PciFunction::config_bytes() const
{
    std::lock_guard lk(mu_);
    return cfg_;
}

void PciFunction::restore_config(const std::array<std::uint8_t, pci::kConfigSize>& bytes)
{
    {
        std::lock_guard lk(mu_);
        for (unsigned o = 0; o < pci::kConfigSize; ++o)
            cfg_[o] = static_cast<std::uint8_t>((cfg_[o] & ~wmask_[o]) | (bytes[o] & wmask_[o]));
    }
    if (host_)
        host_->update_decoding();
    config_written(0, pci::kConfigSize);
}

// ---- PciHost ----

// Slot 0: a host bridge (class 06/00/00) with nothing but its header, as on a PC.
class PciHost::Bridge : public PciFunction {
  public:
    // 8086:1237 is the i440FX host bridge QEMU's pc machine shows; guests expect a bridge there.
    Bridge() : PciFunction(0x8086, 0x1237, 0x060000) {}
};

PciHost::PciHost() : bridge_(std::make_unique<Bridge>())
{
    add(0, bridge_.get());
}

PciHost::~PciHost() = default;

void PciHost::attach(Bus& pio, Bus& mmio)
{
    pio.attach(pci::kConfigAddress, pci::kPorts, &ports_, "PCI config");
    mmio.attach(pci::kMmioBase, pci::kMmioEnd - pci::kMmioBase, &window_, "PCI MMIO window");
}

void PciHost::add(unsigned slot, PciFunction* fn)
{
    if (slot >= pci::kSlots || slots_[slot])
        throw Error(fmt::format("PCI slot {} is taken or does not exist", slot));
    slots_[slot] = fn;
    fn->host_ = this;
    update_decoding();
}

void PciHost::update_decoding()
{
    std::vector<Mapping> maps, refused;
    for (const PciFunction* fn : slots_) {
        if (!fn || !(fn->command() & pci::kCommandMemory))
            continue;
        for (unsigned b = 0; b < pci::kBars; ++b) {
            std::uint64_t size = fn->bar_size(b);
            if (!size)
                continue;
            std::uint64_t base = fn->bar_address(b);
            bool inside = base >= pci::kMmioBase && base + size <= pci::kMmioEnd;
            bool overlaps = std::any_of(maps.begin(), maps.end(), [&](const Mapping& m) {
                return base < m.base + m.size && m.base < base + size;
            });
            if (!inside || overlaps) {
                refused.push_back({base, size, fn, b, nullptr});
                continue;
            }
            maps.push_back({base, size, fn, b, fn->bar_device(b)});
        }
    }
    std::unique_lock lk(mu_);
    // Count each refused placement once, not on every later recomputation.
    for (const Mapping& r : refused) {
        bool known = std::any_of(refused_.begin(), refused_.end(), [&](const Mapping& o) {
            return o.fn == r.fn && o.bar == r.bar && o.base == r.base;
        });
        if (!known)
            counters_.bar_refused.fetch_add(1, std::memory_order_relaxed);
    }
    maps_ = std::move(maps);
    refused_ = std::move(refused);
}

std::uint64_t PciHost::decoded_address(const PciFunction* fn, unsigned bar) const
{
    std::shared_lock lk(mu_);
    for (const Mapping& m : maps_)
        if (m.fn == fn && m.bar == bar)
            return m.base;
    return 0;
}

bool PciHost::find(std::uint64_t addr, unsigned size, IoDevice*& dev, std::uint64_t& offset) const
{
    std::shared_lock lk(mu_);
    for (const Mapping& m : maps_) {
        if (addr >= m.base && addr + size <= m.base + m.size) {
            dev = m.dev;
            offset = addr - m.base;
            return true;
        }
    }
    return false;
}

PciFunction* PciHost::selected(unsigned& reg) const
{
    std::uint32_t a = address_.load(std::memory_order_relaxed);
    unsigned bus = (a >> 16) & 0xFF, slot = (a >> 11) & 0x1F, fn = (a >> 8) & 7;
    reg = a & 0xFC;
    if (!(a & 0x8000'0000u) || bus != 0 || fn != 0)
        return nullptr;
    return slots_[slot];
}

std::uint64_t PciHost::ConfigPorts::read(std::uint64_t offset, unsigned size)
{
    if (offset == 0 && size == 4)
        return host.address_.load(std::memory_order_relaxed);
    if (offset < 4)
        return all_ones(size);  // only dword accesses reach CONFIG_ADDRESS
    unsigned reg = 0;
    PciFunction* fn = host.selected(reg);
    if (!fn) {
        host.counters_.config_absent.fetch_add(1, std::memory_order_relaxed);
        return all_ones(size);
    }
    return fn->config_read(reg + static_cast<unsigned>(offset - 4), size);
}

void PciHost::ConfigPorts::write(std::uint64_t offset, unsigned size, std::uint64_t value)
{
    if (offset == 0 && size == 4) {
        // Bits 30:24 are reserved and bits 1:0 read as zero (PCI 3.0 3.2.2.3.2).
        host.address_.store(static_cast<std::uint32_t>(value) & 0x80FF'FFFCu,
                            std::memory_order_relaxed);
        return;
    }
    if (offset < 4)
        return;
    unsigned reg = 0;
    PciFunction* fn = host.selected(reg);
    if (!fn) {
        host.counters_.config_absent.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    fn->config_write(reg + static_cast<unsigned>(offset - 4), size,
                     static_cast<std::uint32_t>(value));
}

std::uint64_t PciHost::Window::read(std::uint64_t offset, unsigned size)
{
    IoDevice* dev = nullptr;
    std::uint64_t off = 0;
    if (!host.find(pci::kMmioBase + offset, size, dev, off)) {
        host.counters_.window_unclaimed.fetch_add(1, std::memory_order_relaxed);
        return all_ones(size);
    }
    return dev->read(off, size);
}

void PciHost::Window::write(std::uint64_t offset, unsigned size, std::uint64_t value)
{
    IoDevice* dev = nullptr;
    std::uint64_t off = 0;
    if (!host.find(pci::kMmioBase + offset, size, dev, off)) {
        host.counters_.window_unclaimed.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    dev->write(off, size, value);
}

std::string PciHost::stats() const
{
    return fmt::format("pci: config-absent {}, bar-refused {}, window-unclaimed {}",
                       counters_.config_absent.load(), counters_.bar_refused.load(),
                       counters_.window_unclaimed.load());
}

}  // namespace hv::dev
