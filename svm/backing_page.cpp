#include "svm/backing_page.hpp"

namespace hv::svm {

apic::VectorWords BackingPage::irr() const
{
    apic::VectorWords w{};
    for (uint32_t i = 0; i < 8; ++i) {
        w[i] = load(apic::reg::kIrr + 0x10u * i);
    }
    return w;
}

bool BackingPage::test_irr(uint8_t vector) const
{
    return ((load(apic::reg::kIrr + 0x10u * (vector >> 5)) >> (vector & 31u)) & 1u) != 0;
}

void BackingPage::clear_irr(uint8_t vector)
{
    irr_word(vector).fetch_and(~(1u << (vector & 31u)), std::memory_order_acq_rel);
}

apic::ApicRegisterPage BackingPage::snapshot() const
{
    apic::ApicRegisterPage p{};
    for (uint32_t off = 0; off < apic::kApicRegisterBytes; off += 4) {
        apic::page_set(p, off, dword[off / 4].load(std::memory_order_acquire));
    }
    return p;
}

void BackingPage::write_registers(const apic::ApicRegisterPage& p, bool replace_irr)
{
    for (uint32_t off = 0; off < apic::kApicRegisterBytes; off += 4) {
        const uint32_t v = apic::page_get(p, off);
        const bool irr = off >= apic::reg::kIrr && off < apic::reg::kIrr + 0x80;
        if (irr && !replace_irr) {
            dword[off / 4].fetch_or(v, std::memory_order_acq_rel);
        } else {
            dword[off / 4].store(v, std::memory_order_release);
        }
    }
}

bool post_to_backing_page(BackingPage& page, uint8_t vector)
{
    if (!apic::is_legal_vector(vector)) {
        return false;
    }
    const uint32_t bit = 1u << (vector & 31u);
    // seq_cst: the IsRunning / scheduling-state load that follows must not be reordered before
    // the IRR update (the target clears IsRunning, then reads IRR: one of the two sees the other).
    return (page.irr_word(vector).fetch_or(bit, std::memory_order_seq_cst) & bit) == 0;
}

}  // namespace hv::svm
