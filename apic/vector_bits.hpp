// Bit helpers for the 256-bit vector registers (IRR, ISR, TMR) stored as 8 x 32-bit words, the
// layout of the APIC page (word i holds vectors 32*i .. 32*i+31).
#pragma once

#include <array>
#include <cstdint>

namespace hv::apic {

using VectorWords = std::array<uint32_t, 8>;

constexpr void set_vector(VectorWords& w, uint8_t v)
{
    w[v >> 5] |= 1u << (v & 31u);
}
constexpr void clear_vector(VectorWords& w, uint8_t v)
{
    w[v >> 5] &= ~(1u << (v & 31u));
}
constexpr bool test_vector(const VectorWords& w, uint8_t v)
{
    return (w[v >> 5] & (1u << (v & 31u))) != 0;
}

} // namespace hv::apic
