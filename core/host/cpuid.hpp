// Raw CPUID: where the host's CPU identity comes from.
//
// A CpuidSource answers CPUID(leaf, subleaf) queries. The live source is libcpuid's raw dump of
// the boot CPU; tests build a CpuidTable from the published family/model/stepping and feature
// bits of real CPUs, so every decoder, erratum and path choice is exercised without that CPU.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

struct cpu_raw_data_t;

namespace hv::host {

struct CpuidRegs {
    std::uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
};

class CpuidSource {
  public:
    virtual ~CpuidSource() = default;
    // nullopt when the leaf is beyond the CPU's maximum (standard or extended) leaf or was not
    // captured by the source.
    virtual std::optional<CpuidRegs> query(std::uint32_t leaf, std::uint32_t subleaf = 0) const = 0;
};

// A table of leaves: synthetic CPUs in tests, or a capture of a live CPU.
class CpuidTable : public CpuidSource {
  public:
    void set(std::uint32_t leaf, std::uint32_t subleaf, CpuidRegs regs);
    void set(std::uint32_t leaf, CpuidRegs regs) { set(leaf, 0, regs); }
    std::optional<CpuidRegs> query(std::uint32_t leaf, std::uint32_t subleaf = 0) const override;
    const std::map<std::pair<std::uint32_t, std::uint32_t>, CpuidRegs>& leaves() const
    {
        return leaves_;
    }

    // Helpers for building synthetic CPUs.
    // Leaf 0 (max leaf, vendor) and leaf 0x80000000 (max extended leaf).
    void set_vendor(std::string_view vendor12, std::uint32_t max_leaf, std::uint32_t max_ext_leaf);
    // Leaves 0x80000002..4; `brand` is padded or cut to 47 characters.
    void set_brand(std::string_view brand);
    // Leaf 1 EAX from display family/model/stepping, encoded the way SDM Vol2A CPUID "Figure
    // 3-6 Version Information" prescribes (extended family only when family >= 0xF, extended
    // model for families 6 and >= 0xF). ECX/EDX are the feature words.
    void set_signature(std::uint32_t family, std::uint32_t model, std::uint32_t stepping,
                       std::uint32_t leaf1_ecx = 0, std::uint32_t leaf1_edx = 0);

  private:
    std::map<std::pair<std::uint32_t, std::uint32_t>, CpuidRegs> leaves_;
};

// Reads the boot CPU's leaves through libcpuid (cpuid_get_raw_data). Throws hv::Error with
// libcpuid's message when CPUID is unavailable.
CpuidTable read_live_cpuid();

// Converts any source into libcpuid's raw layout so libcpuid can identify it (cpu_identify).
void to_libcpuid_raw(const CpuidSource& src, cpu_raw_data_t& raw);
// And back: the leaves of a libcpuid raw dump, bounded by the reported maximum leaves.
CpuidTable from_libcpuid_raw(const cpu_raw_data_t& raw);

}  // namespace hv::host
