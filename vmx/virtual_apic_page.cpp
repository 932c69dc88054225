#include "vmx/virtual_apic_page.hpp"

namespace hv::vmx {

uint64_t VirtualApicPage::read_bytes(uint32_t offset, unsigned size) const
{
    uint64_t v = 0;
    if (size > 8 || offset + size > vapic::kPageBytes) {
        return 0;
    }
    std::memcpy(&v, reinterpret_cast<const unsigned char*>(words.data()) + offset, size);
    return v;
}

void VirtualApicPage::write_bytes(uint32_t offset, unsigned size, uint64_t value)
{
    if (size > 8 || offset + size > vapic::kPageBytes) {
        return;
    }
    std::memcpy(reinterpret_cast<unsigned char*>(words.data()) + offset, &value, size);
}

apic::VectorWords VirtualApicPage::vectors(uint32_t base) const
{
    apic::VectorWords w{};
    for (uint32_t i = 0; i < 8; ++i) {
        w[i] = get(base + 0x10u * i);
    }
    return w;
}

void VirtualApicPage::set_vectors(uint32_t base, const apic::VectorWords& w)
{
    for (uint32_t i = 0; i < 8; ++i) {
        set(base + 0x10u * i, w[i]);
    }
}

apic::ApicRegisterPage VirtualApicPage::registers() const
{
    apic::ApicRegisterPage p{};
    std::memcpy(p.data(), words.data(), p.size());
    return p;
}

void VirtualApicPage::set_registers(const apic::ApicRegisterPage& p)
{
    std::memcpy(words.data(), p.data(), p.size());
}

}  // namespace hv::vmx
