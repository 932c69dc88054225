// Bit helpers for the 256-bit vector registers (IRR, ISR, TMR) stored as 8 x 32-bit words, the
// layout of the APIC page (word i holds vectors 32*i .. 32*i+31).
#pragma once

#include <array>
#include <bit>
#include <cstdint>
#include <optional>

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

// Highest set vector, none if empty.
constexpr std::optional<uint8_t> highest_vector(const VectorWords& w)
{
    for (std::size_t i = w.size(); i-- > 0;) {
        if (w[i] != 0) {
            const auto bit = static_cast<std::size_t>(31 - std::countl_zero(w[i]));
            return static_cast<uint8_t>(i * 32 + bit);
        }
    }
    return std::nullopt;
}

// SDM Vol3 11.8.3.1 "Task and Processor Priorities": PPR = TPR if TPR[7:4] >= ISRV[7:4], else
// ISRV[7:4] << 4.
constexpr uint8_t processor_priority(uint32_t tpr, const VectorWords& isr)
{
    const uint32_t t = tpr & 0xFFu;
    const uint32_t isrv = highest_vector(isr).value_or(0);
    return static_cast<uint8_t>((t & 0xF0u) >= (isrv & 0xF0u) ? t : (isrv & 0xF0u));
}
static_assert(processor_priority(0x35, VectorWords{0, 0, 0x2, 0, 0, 0, 0, 0}) == 0x40);

}  // namespace hv::apic
