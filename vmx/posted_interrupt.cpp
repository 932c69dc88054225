#include "vmx/posted_interrupt.hpp"

namespace hv::vmx {

bool PostedInterruptDescriptor::pir_empty() const
{
    for (const auto& w : pir) {
        if (w.load(std::memory_order_seq_cst) != 0) {
            return false;
        }
    }
    return true;
}

apic::VectorWords PostedInterruptDescriptor::peek_pir() const
{
    apic::VectorWords out{};
    for (std::size_t i = 0; i < 4; ++i) {
        const uint64_t w = pir[i].load(std::memory_order_seq_cst);
        out[2 * i] = static_cast<uint32_t>(w);
        out[2 * i + 1] = static_cast<uint32_t>(w >> 32);
    }
    return out;
}

PostResult post(PostedInterruptDescriptor& d, uint8_t vector)
{
    PostResult r;
    const uint64_t bit = 1ULL << (vector & 63u);
    // SDM Vol3 30.6: the PIR bit is set first; ON tells the receiver to look at PIR, so it must
    // never become visible before the bit it announces.
    const uint64_t old = d.pir[vector >> 6].fetch_or(bit, std::memory_order_seq_cst);
    r.coalesced = (old & bit) != 0;
    // Test-and-set ON unless SN. A plain load first: when ON is already set (the common case
    // under load) the post costs one locked instruction.
    uint64_t c = d.control.load(std::memory_order_seq_cst);
    for (;;) {
        if ((c & pid::kSn) != 0) {
            r.suppressed = true;
            return r;
        }
        if ((c & pid::kOn) != 0) {
            r.on_was_set = true;
            return r;
        }
        if (d.control.compare_exchange_weak(c, c | pid::kOn, std::memory_order_seq_cst)) {
            r.notify = true;
            r.nv = pid::nv_of(c);
            r.ndst = pid::ndst_of(c);
            return r;
        }
    }
}

apic::VectorWords take_pir(PostedInterruptDescriptor& d)
{
    // SDM Vol3 30.6: "the logical processor clears ON ... then ORs PIR into VIRR and clears
    // PIR". Clearing ON first means a post that lands after the exchange sets ON again and
    // notifies again: nothing is left in PIR unannounced.
    d.control.fetch_and(~pid::kOn, std::memory_order_seq_cst);
    apic::VectorWords out{};
    for (std::size_t i = 0; i < 4; ++i) {
        if (d.pir[i].load(std::memory_order_seq_cst) == 0) {
            continue;
        }
        const uint64_t w = d.pir[i].exchange(0, std::memory_order_seq_cst);
        out[2 * i] = static_cast<uint32_t>(w);
        out[2 * i + 1] = static_cast<uint32_t>(w >> 32);
    }
    return out;
}

uint64_t update_control(PostedInterruptDescriptor& d, const ControlUpdate& u)
{
    uint64_t c = d.control.load(std::memory_order_seq_cst);
    uint64_t n = 0;
    do {
        n = c;
        if (u.nv) {
            n = pid::with_nv(n, *u.nv);
        }
        if (u.ndst) {
            n = pid::with_ndst(n, *u.ndst);
        }
        if (u.sn) {
            n = *u.sn ? (n | pid::kSn) : (n & ~pid::kSn);
        }
    } while (!d.control.compare_exchange_weak(c, n, std::memory_order_seq_cst));
    return n;
}

bool set_on(PostedInterruptDescriptor& d)
{
    return (d.control.fetch_or(pid::kOn, std::memory_order_seq_cst) & pid::kOn) == 0;
}

void clear_pid(PostedInterruptDescriptor& d)
{
    d.control.fetch_and(~pid::kOn, std::memory_order_seq_cst);
    for (auto& w : d.pir) {
        w.store(0, std::memory_order_seq_cst);
    }
}

PidPointerTable::PidPointerTable(std::size_t entries)
    : n_(entries == 0 ? 1 : entries), entries_(std::make_unique<std::atomic<uint64_t>[]>(n_))
{
    for (std::size_t i = 0; i < n_; ++i) {
        entries_[i].store(0, std::memory_order_relaxed);
    }
}

uint64_t PidPointerTable::entry(std::size_t index) const
{
    return index < n_ ? entries_[index].load(std::memory_order_acquire) : 0;
}

void PidPointerTable::set(std::size_t index, const PostedInterruptDescriptor* p)
{
    if (index < n_) {
        entries_[index].store(pid_pointer_entry(reinterpret_cast<uintptr_t>(p)),
                              std::memory_order_release);
    }
}

void PidPointerTable::clear(std::size_t index)
{
    if (index < n_) {
        entries_[index].store(0, std::memory_order_release);
    }
}

PostedInterruptDescriptor* PidPointerTable::lookup(std::size_t index) const
{
    const uint64_t e = entry(index);
    if ((e & pidptr::kValid) == 0) {
        return nullptr;
    }
    return reinterpret_cast<PostedInterruptDescriptor*>(
        static_cast<uintptr_t>(e & pidptr::kAddressMask));
}

}  // namespace hv::vmx
