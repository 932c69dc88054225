// Real CPUs as raw CPUID leaves (and VMX capability MSRs), built from their published
// family/model/stepping, brand strings and feature bits, plus a helper that turns one into a
// HostProfile on a fixture host tree (tests/host/fixtures/hosts/<name>).
#pragma once

#include <string>
#include <string_view>

#include "core/host/profile.hpp"

namespace hv::host::realcpu {

struct RealCpu {
    std::string name;
    CpuidTable cpuid;
    MsrTable msrs;
    bool has_msrs = false;
};

RealCpu ryzen7_1700();     // Zen 1, family 0x17 model 0x01 stepping 1 (Summit Ridge)
RealCpu epyc_7702();       // Zen 2, family 0x17 model 0x31 stepping 0 (Rome)
RealCpu epyc_7763();       // Zen 3, family 0x19 model 0x01 stepping 1 (Milan)
RealCpu epyc_9654();       // Zen 4, family 0x19 model 0x11 stepping 1 (Genoa), x2AVIC
RealCpu hygon_c86_7185();  // Hygon Dhyana, family 0x18 model 0x00 stepping 1
RealCpu xeon_gold_6248();  // Cascade Lake, family 6 model 0x55 stepping 7
RealCpu xeon_8480();       // Sapphire Rapids, family 6 model 0x8F stepping 8, IPIv

std::string fixture_root(std::string_view host);  // fixtures/hosts/<host>

struct ProfileOptions {
    bool kvm = true;             // /dev/kvm present
    bool split_irqchip = true;   // KVM_CAP_SPLIT_IRQCHIP
    bool user_space_msr = true;  // KVM_CAP_X86_USER_SPACE_MSR
    bool msrs = true;            // give the CPU's VMX MSRs (false: "msr module not loaded")
    std::string topology = "pack:1 core:4 pu:2";
};

HostProfile profile_of(const RealCpu& cpu, std::string_view host, ProfileOptions opt = {});

}  // namespace hv::host::realcpu
