// Destination resolution: which local APICs a message reaches.
//
// A free function over a view of every vCPU's addressing state (DestInfo), so the caller can take
// that view however its locking allows. The model never routes by itself.
//
// Rules (SDM Vol3 11.6.2 "Determining IPI Destination" and 11.12.10 "Determining IPI Destination
// in x2APIC Mode"):
// - a globally disabled APIC (IA32_APIC_BASE.EN = 0) receives nothing;
// - shorthands ignore the destination field: self, all including self, all excluding self;
// - physical: the receiver's ID equals the destination; all ones (0xFF in xAPIC format,
//   0xFFFFFFFF in x2APIC format) is a broadcast. An xAPIC-mode receiver compares its 8-bit ID;
// - logical, receiver in xAPIC mode: DFR model 1111b (flat) matches when LDR[31:24] & dest != 0;
//   model 0000b (cluster) matches when LDR[31:28] == dest[7:4] and LDR[27:24] & dest[3:0] != 0;
//   a destination of all ones addresses every APIC;
// - logical, receiver in x2APIC mode: dest[31:16] is the cluster, dest[15:0] a bitmap, compared
//   against the derived LDR; 0xFFFFFFFF addresses every APIC;
// - lowest priority: among the matched APICs, the one with the lowest PPR wins; SVR-disabled APICs
//   are only chosen if no enabled one matched; ties go to the lowest index (deterministic, the
//   SDM leaves it to the bus arbitration ID — 11.6.2.4 "Lowest Priority Delivery Mode"). Focus
//   processor checking is not modelled.
#pragma once

#include <bitset>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "apic/ipi.hpp"

namespace hv::apic {

// The addressing-relevant state of one local APIC.
struct DestInfo {
    uint32_t id = 0;             // 32-bit x2APIC ID (xAPIC mode compares id & 0xFF)
    uint32_t ldr = 0;            // LDR register value in the current mode
    uint32_t dfr = 0xFFFFFFFFu;  // xAPIC only
    bool enabled = true;         // IA32_APIC_BASE.EN
    bool x2apic = false;         // IA32_APIC_BASE.EXTD
    bool sw_enabled = false;     // SVR[8]
    uint8_t ppr = 0;
};

inline constexpr std::size_t kMaxApics = 256;
using TargetSet = std::bitset<kMaxApics>;

// Whether `target` matches `d` ignoring shorthands (which need to know who sends).
bool matches(const Destination& d, const DestInfo& target);

// All APICs addressed by `d`. `self` is the sender's index (required for the self shorthands;
// without it they address nobody). Indices >= kMaxApics are ignored.
TargetSet resolve(const Destination& d, std::span<const DestInfo> apics,
                  std::optional<std::size_t> self);

// The lowest-priority winner among `candidates`, none if the set is empty.
std::optional<std::size_t> lowest_priority(const TargetSet& candidates,
                                           std::span<const DestInfo> apics);

// resolve() plus the delivery-mode rules: lowest priority narrows to one target; INIT level
// de-assert goes to every enabled APIC regardless of the destination (SDM Vol3 11.6.1).
TargetSet resolve_ipi(const Ipi& ipi, std::span<const DestInfo> apics,
                      std::optional<std::size_t> self);

}  // namespace hv::apic
