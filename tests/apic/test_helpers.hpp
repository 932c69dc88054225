// Shared helpers for the APIC model tests.
#pragma once

#include <cstdint>
#include <ostream>

#include "apic/local_apic.hpp"
#include "apic/regs.hpp"

namespace hv::apic::test {

inline GuestTime at(uint64_t ns, uint64_t tsc = 0)
{
    return GuestTime{ns, tsc};
}

// An xAPIC-mode BSP with the APIC software-enabled (SVR = 0x1FF).
inline LocalApic make_apic(uint32_t id = 0, bool bsp = true, ApicCaps caps = {})
{
    LocalApicConfig cfg;
    cfg.id = id;
    cfg.bsp = bsp;
    cfg.caps = caps;
    LocalApic a(cfg);
    a.mmio_write(reg::kSvr, 4, 0x1FF, at(0));
    return a;
}

inline uint32_t rd(LocalApic& a, uint32_t off, uint64_t now = 0)
{
    return static_cast<uint32_t>(a.mmio_read(off, 4, at(now)).value);
}

inline AccessResult wr(LocalApic& a, uint32_t off, uint32_t v, uint64_t now = 0)
{
    return a.mmio_write(off, 4, v, at(now));
}

inline AccessResult to_x2apic(LocalApic& a)
{
    const uint64_t b = (a.apic_base() & ~0xFFFULL) | (a.apic_base() & base::kBsp);
    return a.msr_write(kMsrApicBase, b | base::kEnable | base::kExtd, at(0));
}

inline bool irr_has(LocalApic& a, uint8_t v)
{
    const ApicState s = a.flatten(at(0));
    return (s.irr[v >> 5] >> (v & 31)) & 1u;
}
inline bool isr_has(LocalApic& a, uint8_t v)
{
    const ApicState s = a.flatten(at(0));
    return (s.isr[v >> 5] >> (v & 31)) & 1u;
}
inline bool tmr_has(LocalApic& a, uint8_t v)
{
    const ApicState s = a.flatten(at(0));
    return (s.tmr[v >> 5] >> (v & 31)) & 1u;
}

}  // namespace hv::apic::test

namespace hv::apic {
// Readable gtest output for ApicState mismatches (found by ADL).
inline void PrintTo(const ApicState& s, std::ostream* os)
{
    *os << "ApicState{" << describe_difference(ApicState{}, s) << "} (fields differing from reset)";
}
}  // namespace hv::apic
