#include "core/host/cpuid.hpp"

#include <algorithm>
#include <cstring>

#include <libcpuid/libcpuid.h>

#include "core/base/error.hpp"

namespace hv::host {

namespace {

constexpr std::uint32_t kExtBase = 0x80000000u;

std::uint32_t word_of(std::string_view s, std::size_t at)
{
    std::uint32_t w = 0;
    for (std::size_t i = 0; i < 4; ++i) {
        const auto c = at + i < s.size() ? static_cast<unsigned char>(s[at + i]) : 0u;
        w |= static_cast<std::uint32_t>(c) << (8 * i);
    }
    return w;
}

CpuidRegs regs_of(const std::uint32_t (&r)[NUM_REGS])
{
    return {r[EAX], r[EBX], r[ECX], r[EDX]};
}

void put(std::uint32_t (&r)[NUM_REGS], const CpuidRegs& v)
{
    r[EAX] = v.eax;
    r[EBX] = v.ebx;
    r[ECX] = v.ecx;
    r[EDX] = v.edx;
}

}  // namespace

void CpuidTable::set(std::uint32_t leaf, std::uint32_t subleaf, CpuidRegs regs)
{
    leaves_[{leaf, subleaf}] = regs;
}

std::optional<CpuidRegs> CpuidTable::query(std::uint32_t leaf, std::uint32_t subleaf) const
{
    // SDM Vol2A CPUID: leaves above the maximum return data of the highest basic leaf on Intel
    // and zeros on AMD; either way they carry no information, so report them absent.
    const std::uint32_t range = leaf & 0xF0000000u;
    const auto max_it = leaves_.find({range == kExtBase ? kExtBase : 0u, 0u});
    if (range == 0 || range == kExtBase) {
        if (max_it == leaves_.end() || leaf > max_it->second.eax)
            return std::nullopt;
    }
    const auto it = leaves_.find({leaf, subleaf});
    if (it == leaves_.end())
        return std::nullopt;
    return it->second;
}

void CpuidTable::set_vendor(std::string_view vendor12, std::uint32_t max_leaf,
                            std::uint32_t max_ext_leaf)
{
    // Leaf 0: EBX, EDX, ECX hold the vendor string in that order.
    set(0, {max_leaf, word_of(vendor12, 0), word_of(vendor12, 8), word_of(vendor12, 4)});
    set(kExtBase, {max_ext_leaf, 0, 0, 0});
}

void CpuidTable::set_brand(std::string_view brand)
{
    const std::string b(brand.substr(0, 47));
    for (std::uint32_t i = 0; i < 3; ++i) {
        const std::size_t at = i * 16;
        set(kExtBase + 2 + i,
            {word_of(b, at), word_of(b, at + 4), word_of(b, at + 8), word_of(b, at + 12)});
    }
}

void CpuidTable::set_signature(std::uint32_t family, std::uint32_t model, std::uint32_t stepping,
                               std::uint32_t leaf1_ecx, std::uint32_t leaf1_edx)
{
    const std::uint32_t base_family = family >= 0xF ? 0xFu : family;
    const std::uint32_t ext_family = family >= 0xF ? family - 0xF : 0u;
    const bool ext_model_used = family == 6 || family >= 0xF;
    const std::uint32_t base_model = model & 0xF;
    const std::uint32_t ext_model = ext_model_used ? (model >> 4) & 0xF : 0u;
    const std::uint32_t eax = (stepping & 0xF) | (base_model << 4) | (base_family << 8) |
                              (ext_model << 16) | ((ext_family & 0xFF) << 20);
    set(1, {eax, 0, leaf1_ecx, leaf1_edx});
}

CpuidTable read_live_cpuid()
{
    if (!cpuid_present())
        fail("libcpuid: the CPUID instruction is not available");
    cpu_raw_data_t raw{};
    if (cpuid_get_raw_data(&raw) != 0)
        fail("libcpuid cpuid_get_raw_data: {}", cpuid_error());
    return from_libcpuid_raw(raw);
}

void to_libcpuid_raw(const CpuidSource& src, cpu_raw_data_t& raw)
{
    std::memset(&raw, 0, sizeof raw);
    for (std::uint32_t i = 0; i < MAX_CPUID_LEVEL; ++i)
        if (auto r = src.query(i))
            put(raw.basic_cpuid[i], *r);
    for (std::uint32_t i = 0; i < MAX_EXT_CPUID_LEVEL; ++i)
        if (auto r = src.query(kExtBase + i))
            put(raw.ext_cpuid[i], *r);
    for (std::uint32_t i = 0; i < MAX_INTELFN4_LEVEL; ++i)
        if (auto r = src.query(4, i))
            put(raw.intel_fn4[i], *r);
    for (std::uint32_t i = 0; i < MAX_INTELFN11_LEVEL; ++i)
        if (auto r = src.query(0xB, i))
            put(raw.intel_fn11[i], *r);
    for (std::uint32_t i = 0; i < MAX_AMDFN8000001DH_LEVEL; ++i)
        if (auto r = src.query(0x8000001Du, i))
            put(raw.amd_fn8000001dh[i], *r);
}

CpuidTable from_libcpuid_raw(const cpu_raw_data_t& raw)
{
    CpuidTable t;
    const std::uint32_t max_basic =
        std::min<std::uint32_t>(raw.basic_cpuid[0][EAX], MAX_CPUID_LEVEL - 1);
    for (std::uint32_t i = 0; i <= max_basic; ++i)
        t.set(i, regs_of(raw.basic_cpuid[i]));
    const std::uint32_t max_ext = raw.ext_cpuid[0][EAX];
    const std::uint32_t ext_count =
        max_ext >= kExtBase ? std::min<std::uint32_t>(max_ext - kExtBase + 1, MAX_EXT_CPUID_LEVEL)
                            : 0u;
    for (std::uint32_t i = 0; i < ext_count; ++i)
        t.set(kExtBase + i, regs_of(raw.ext_cpuid[i]));
    // Leaf 0x80000000 must exist for the range check in query(), even if the CPU has none.
    if (ext_count == 0)
        t.set(kExtBase, {0, 0, 0, 0});
    // Sub-leaves libcpuid captured. The leaf-7 sub-leaf 0 values are in basic_cpuid[7].
    for (std::uint32_t i = 0; i < MAX_INTELFN4_LEVEL && max_basic >= 4; ++i)
        t.set(4, i, regs_of(raw.intel_fn4[i]));
    for (std::uint32_t i = 0; i < MAX_INTELFN11_LEVEL && max_basic >= 0xB; ++i)
        t.set(0xB, i, regs_of(raw.intel_fn11[i]));
    for (std::uint32_t i = 0; i < MAX_AMDFN8000001DH_LEVEL && max_ext >= 0x8000001Du; ++i)
        t.set(0x8000001Du, i, regs_of(raw.amd_fn8000001dh[i]));
    return t;
}

}  // namespace hv::host
