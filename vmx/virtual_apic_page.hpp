// The 4-KByte virtual-APIC page and the PPR rule the hardware applies to it.
//
// SDM Vol3 30.1 "Virtual APIC State": the virtual-APIC page has the xAPIC register layout
// (apic/apic_page.hpp), 32-bit registers at 16-byte aligned offsets. The processor itself keeps
// VTPR (080H), VPPR (0A0H), VEOI (0B0H), VISR (100H-170H), VIRR (200H-270H) and VICR (300H/310H);
// everything else on the page is what the hypervisor put there for APIC-register virtualization
// to read. x2APIC mode keeps the ICR as one 64-bit value at 300H (SDM Vol3 30.5 "Virtualizing
// MSR-Based APIC Accesses": WRMSR 830H writes 8 bytes at offset 300H), as KVM does.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>

#include "apic/apic_page.hpp"
#include "apic/regs.hpp"
#include "apic/vector_bits.hpp"

namespace hv::vmx {

namespace vapic {
inline constexpr uint32_t kVtpr = apic::reg::kTpr;         // 0x080
inline constexpr uint32_t kVppr = apic::reg::kPpr;         // 0x0A0
inline constexpr uint32_t kVeoi = apic::reg::kEoi;         // 0x0B0
inline constexpr uint32_t kVisr = apic::reg::kIsr;         // 0x100, 8 x 16 bytes
inline constexpr uint32_t kVtmr = apic::reg::kTmr;         // 0x180
inline constexpr uint32_t kVirr = apic::reg::kIrr;         // 0x200
inline constexpr uint32_t kVicrLo = apic::reg::kIcrLow;    // 0x300
inline constexpr uint32_t kVicrHi = apic::reg::kIcrHigh;   // 0x310
inline constexpr uint32_t kSelfIpi = apic::reg::kSelfIpi;  // 0x3F0
inline constexpr std::size_t kPageBytes = 4096;
static_assert(kVtpr == 0x80 && kVppr == 0xA0 && kVeoi == 0xB0 && kVisr == 0x100 && kVirr == 0x200 &&
              kVicrLo == 0x300 && kVicrHi == 0x310);
}  // namespace vapic

struct alignas(4096) VirtualApicPage {
    std::array<uint32_t, vapic::kPageBytes / 4> words{};

    uint32_t get(uint32_t offset) const
    {
        return offset < vapic::kPageBytes ? words[offset / 4] : 0;
    }
    void set(uint32_t offset, uint32_t v)
    {
        if (offset < vapic::kPageBytes) {
            words[offset / 4] = v;
        }
    }
    // Bytes [offset, offset + size) little-endian (size 1, 2, 4 or 8), as a guest access sees them.
    uint64_t read_bytes(uint32_t offset, unsigned size) const;
    void write_bytes(uint32_t offset, unsigned size, uint64_t value);

    uint8_t vtpr() const { return static_cast<uint8_t>(get(vapic::kVtpr)); }
    uint8_t vppr() const { return static_cast<uint8_t>(get(vapic::kVppr)); }
    // SDM Vol3 30.1.1 "Virtualized APIC Registers": VISR/VIRR bit v is bit (v & 31) of the
    // register at offset base + 16 * (v >> 5).
    apic::VectorWords vectors(uint32_t base) const;
    void set_vectors(uint32_t base, const apic::VectorWords& w);
    bool test(uint32_t base, uint8_t v) const
    {
        return (get(base + 0x10u * (v >> 5)) >> (v & 31u)) & 1u;
    }
    void set_bit(uint32_t base, uint8_t v)
    {
        words[(base + 0x10u * (v >> 5)) / 4] |= 1u << (v & 31u);
    }
    void clear_bit(uint32_t base, uint8_t v)
    {
        words[(base + 0x10u * (v >> 5)) / 4] &= ~(1u << (v & 31u));
    }
    std::optional<uint8_t> highest(uint32_t base) const
    {
        return apic::highest_vector(vectors(base));
    }

    // The first 0x400 bytes as the shared register-page codec sees them.
    apic::ApicRegisterPage registers() const;
    void set_registers(const apic::ApicRegisterPage& p);
};
static_assert(sizeof(VirtualApicPage) == 4096 && alignof(VirtualApicPage) == 4096);
static_assert(offsetof(VirtualApicPage, words) == 0);

// SDM Vol3 30.1.3 "PPR Virtualization": VPPR = VTPR if VTPR[7:4] >= SVI[7:4], else SVI & F0H.
constexpr uint8_t virtual_ppr(uint8_t vtpr, uint8_t svi)
{
    return (vtpr & 0xF0u) >= (svi & 0xF0u) ? vtpr : static_cast<uint8_t>(svi & 0xF0u);
}
static_assert(virtual_ppr(0x35, 0x41) == 0x40 && virtual_ppr(0x45, 0x41) == 0x45);

}  // namespace hv::vmx
