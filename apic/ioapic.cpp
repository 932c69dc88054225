#include "apic/ioapic.hpp"

#include <fmt/format.h>

namespace hv::apic {

using namespace ioapic;

IoApicMessage decode_redirection(uint64_t entry, uint8_t pin)
{
    IoApicMessage m;
    m.vector = static_cast<uint8_t>(entry & kVectorMask);
    m.mode = static_cast<DeliveryMode>((entry & kModeMask) >> kModeShift);
    m.trigger = (entry & kLevel) != 0 ? Trigger::Level : Trigger::Edge;
    m.dest.dest = static_cast<uint32_t>(entry >> kDestShift);
    m.dest.mode = (entry & kLogical) != 0 ? DestMode::Logical : DestMode::Physical;
    m.dest.shorthand = Shorthand::None;
    m.dest.x2apic_format = false;  // 8-bit destination: 0xFF is a broadcast
    m.pin = pin;
    return m;
}

std::optional<std::string> validate(const IoApicState& s)
{
    if (s.id > 0xF) {
        return fmt::format("id: {:#x} wider than 4 bits", s.id);
    }
    if (s.ioregsel > 0xFF) {
        return fmt::format("ioregsel: {:#x} wider than 8 bits", s.ioregsel);
    }
    if ((s.pin_levels >> kPins) != 0) {
        return fmt::format("pin_levels: bits above pin {} set", kPins - 1);
    }
    for (unsigned i = 0; i < kPins; ++i) {
        const uint64_t ok = kLowWritable | kHighWritable | kRemoteIrr;
        if ((s.redir[i] & ~ok) != 0) {
            return fmt::format("redir[{}]: reserved or read-only bits {:#x} set", i,
                               s.redir[i] & ~ok);
        }
        if ((s.redir[i] & kRemoteIrr) != 0 && (s.redir[i] & kLevel) == 0) {
            return fmt::format("redir[{}]: remote IRR set on an edge-triggered pin", i);
        }
    }
    return std::nullopt;
}

IoApic::IoApic(IoApicSink& sink, uint8_t id) : sink_(sink)
{
    s_.id = id & 0xFu;
    s_.redir.fill(kReset);
}

void IoApic::send(unsigned pin, Batch& out)
{
    uint64_t& e = s_.redir[pin];
    if ((e & kLevel) != 0) {
        e |= kRemoteIrr;  // cleared by the EOI for this vector
    }
    out.msgs[out.n++] = decode_redirection(e, static_cast<uint8_t>(pin));
    ++counters_.delivered;
}

void IoApic::service_level(unsigned pin, Batch& out)
{
    const uint64_t e = s_.redir[pin];
    const bool asserted = ((s_.pin_levels >> pin) & 1u) != 0;
    if ((e & kLevel) != 0 && asserted && (e & kMasked) == 0 && (e & kRemoteIrr) == 0) {
        send(pin, out);
    }
}

void IoApic::flush(const Batch& b)
{
    for (unsigned i = 0; i < b.n; ++i) {
        sink_.deliver(b.msgs[i]);
    }
}

void IoApic::set_irq(unsigned pin, bool level)
{
    Batch out;
    {
        std::lock_guard lock(mu_);
        if (pin >= kPins) {
            ++counters_.bad_access;
            return;
        }
        const bool was = ((s_.pin_levels >> pin) & 1u) != 0;
        s_.pin_levels = level ? (s_.pin_levels | (1u << pin)) : (s_.pin_levels & ~(1u << pin));
        const uint64_t e = s_.redir[pin];
        if ((e & kLevel) != 0) {
            service_level(pin, out);
        } else if (level && !was) {
            if ((e & kMasked) != 0) {
                ++counters_.masked_edges;
            } else {
                send(pin, out);
            }
        }
    }
    flush(out);
}

void IoApic::eoi(uint8_t vector)
{
    Batch out;
    {
        std::lock_guard lock(mu_);
        for (unsigned pin = 0; pin < kPins; ++pin) {
            uint64_t& e = s_.redir[pin];
            if ((e & kVectorMask) != vector || (e & kLevel) == 0 || (e & kRemoteIrr) == 0) {
                continue;
            }
            e &= ~kRemoteIrr;
            ++counters_.eoi;
            const unsigned before = out.n;
            service_level(pin, out);
            counters_.redelivered += out.n - before;
        }
    }
    flush(out);
}

uint32_t IoApic::read_window() const
{
    const uint32_t idx = s_.ioregsel;
    switch (idx) {
    case kIndexId:
        return static_cast<uint32_t>(s_.id) << 24;
    case kIndexVersion:
        return kVersion;
    case kIndexArb:
        return static_cast<uint32_t>(s_.id) << 24;  // arbitration ID = ID after reset
    default:
        break;
    }
    if (idx >= kIndexRedir && idx < kIndexRedir + 2 * kPins) {
        const uint64_t e = s_.redir[(idx - kIndexRedir) / 2];
        return (idx & 1u) != 0 ? static_cast<uint32_t>(e >> 32) : static_cast<uint32_t>(e);
    }
    return 0;
}

void IoApic::write_window(uint32_t value, Batch& out)
{
    const uint32_t idx = s_.ioregsel;
    if (idx == kIndexId) {
        s_.id = static_cast<uint8_t>((value >> 24) & 0xFu);
        return;
    }
    if (idx < kIndexRedir || idx >= kIndexRedir + 2 * kPins) {
        return;  // version, arbitration and unimplemented indices are read-only
    }
    const unsigned pin = (idx - kIndexRedir) / 2;
    uint64_t& e = s_.redir[pin];
    if ((idx & 1u) != 0) {
        e = (e & ~kHighWritable) | ((static_cast<uint64_t>(value) << 32) & kHighWritable);
        return;
    }
    const uint64_t low_ro = kRemoteIrr;
    e = (e & ~(kLowWritable | low_ro | kDeliveryStatus)) | (value & kLowWritable) | (e & low_ro);
    if ((e & kLevel) == 0) {
        e &= ~kRemoteIrr;
    }
    service_level(pin, out);  // unmasking an asserted level pin delivers it
}

uint32_t IoApic::mmio_read(uint64_t offset, unsigned size)
{
    std::lock_guard lock(mu_);
    if (size != 4 || (offset & 3u) != 0) {
        ++counters_.bad_access;
        return 0;
    }
    if (offset == kRegSel) {
        return s_.ioregsel;
    }
    if (offset == kWindow) {
        return read_window();
    }
    return 0;  // the EOI register is write-only
}

void IoApic::mmio_write(uint64_t offset, unsigned size, uint32_t value)
{
    if (offset == kEoi && size == 4) {
        eoi(static_cast<uint8_t>(value & 0xFFu));  // directed EOI (IOAPIC version 0x20)
        return;
    }
    Batch out;
    {
        std::lock_guard lock(mu_);
        if (size != 4 || (offset & 3u) != 0) {
            ++counters_.bad_access;
            return;
        }
        if (offset == kRegSel) {
            s_.ioregsel = value & 0xFFu;
        } else if (offset == kWindow) {
            write_window(value, out);
        }
    }
    flush(out);
}

uint64_t IoApic::redirection(unsigned pin) const
{
    std::lock_guard lock(mu_);
    return pin < kPins ? s_.redir[pin] : 0;
}

IoApicState IoApic::flatten() const
{
    std::lock_guard lock(mu_);
    return s_;
}

std::optional<std::string> IoApic::restore(const IoApicState& s)
{
    if (auto e = validate(s)) {
        return e;
    }
    std::lock_guard lock(mu_);
    s_ = s;
    return std::nullopt;
}

IoApicCounters IoApic::counters() const
{
    std::lock_guard lock(mu_);
    return counters_;
}

}  // namespace hv::apic
