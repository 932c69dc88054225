// What a snapshot holds, as C++ values, and their JSON form (docs/snapshot.md).
//
// The document: {"hvaccel": {...}, "sections": {NAME: {"version": V, "min_version": M,
// "optional": bool, "data": {...}}}}. A reader refuses a section whose min_version is newer
// than it reads, and a required section it does not know; it ignores optional unknown ones.
// Sections: machine, memory, ioapic, uart, pic, pm_timer, and per vCPU "vcpu/N" (registers,
// special registers, MSRs, events, XCRs, the XSAVE area as a blob) and "apic/N" (ApicState, the
// host-neutral flattened form). Nothing host-specific is stored: no PIR/ON, RVI/SVI,
// IsRunning, host APIC IDs or notification vectors; guest time is the guest-visible TSC with
// its frequency, and timers as remaining counts.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "apic/apic_state.hpp"
#include "apic/ioapic.hpp"

namespace hv::snapshot {

struct MachineState {
    unsigned vcpus = 1;
    std::uint64_t memory_mib = 0;
    std::string image;          // informational: what was booted
    std::string apic_backend;   // informational: which backend flattened the state
    std::uint64_t tsc_khz = 0;  // the guest TSC frequency
    // CPUID feature words the guest saw (leaf 1 ECX/EDX, leaf 7.0 EBX/ECX/EDX,
    // 0x80000001 ECX/EDX): a restoring host must offer them all.
    std::vector<std::pair<std::string, std::uint32_t>> cpuid_features;
};

struct VcpuRecord {
    kvm_regs regs{};
    kvm_sregs sregs{};
    std::vector<std::pair<std::uint32_t, std::uint64_t>> msrs;  // includes IA32_TSC (0x10)
    kvm_vcpu_events events{};
    std::uint64_t xcr0 = 1;
    std::vector<std::uint8_t> xsave;  // 4096 bytes
    apic::ApicState apic;
};

struct UartState {
    std::uint8_t ier = 0, lcr = 0, mcr = 0, scr = 0, fcr = 0, dll = 0, dlm = 0;
};

struct PicState {
    std::uint8_t imr = 0xff, base = 0;
};

struct MemoryRun {
    std::uint64_t gpa = 0, len = 0, blob = 0;  // blob: offset in the blob area
};

struct VmState {
    MachineState machine;
    std::vector<VcpuRecord> vcpus;
    apic::IoApicState ioapic;
    UartState uart;
    PicState pic_master, pic_slave;
    std::uint32_t pm_timer = 0;  // PM timer ticks at the snapshot
    std::vector<MemoryRun> memory;
};

inline constexpr std::uint32_t kMsrTsc = 0x10;

// The document (without blobs: VcpuRecord::xsave and memory go to the blob area; `blob_of`
// returns the blob offset for the xsave area of vCPU i).
nlohmann::json to_json(const VmState& s, const std::vector<std::uint64_t>& xsave_blobs);

class Reader;
// Parses and validates the whole document (every section, every field, vCPU/memory
// consistency, ApicState and IoApicState rules) before anything is applied. Throws hv::Error
// "snapshot FILE: section 'S': field 'F': why".
VmState from_json(const Reader& r);

// Readable differences between two documents' sections ("apic/0.irr[1]: 0x10 != 0x0").
std::vector<std::string> diff(const nlohmann::json& a, const nlohmann::json& b);

}  // namespace hv::snapshot
