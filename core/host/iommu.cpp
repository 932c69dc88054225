#include "core/host/iommu.hpp"

#include <algorithm>
#include <system_error>

#include <unistd.h>

#include "core/base/error.hpp"
#include "core/host/sysfs.hpp"

namespace hv::host {

namespace {

constexpr std::size_t kAttrMax = 4096;      // one sysfs page
constexpr std::size_t kTableMax = 1 << 20;  // ACPI tables are KiB-sized; 1 MiB is garbage

void read_table(const std::filesystem::path& root, std::string_view name, IommuInfo& out)
{
    const auto file = under_root(root, "/sys/firmware/acpi/tables") / std::string(name);
    std::error_code ec;
    if (fs::exists(file, ec) && ::access(file.c_str(), R_OK) != 0) {
        // The tables are root-only (0400): not an error, just less to report.
        out.unreadable_tables.push_back(std::string(name));
        return;
    }
    try {
        const auto bytes = read_file_if_exists(file, kTableMax);
        if (!bytes)
            return;
        if (name == "DMAR")
            out.dmar = parse_dmar(*bytes);
        else
            out.ivrs = parse_ivrs(*bytes);
    } catch (const hv::Error& e) {
        out.errors.push_back(fmt::format("{}: {}", file.string(), e.what()));
    }
}

}  // namespace

bool IommuInfo::vtd_posting() const
{
    return !vtd.empty() && std::all_of(vtd.begin(), vtd.end(),
                                       [](const VtdUnit& u) { return u.posted_interrupts(); });
}

bool IommuInfo::amd_ga() const
{
    return !amd.empty() &&
           std::all_of(amd.begin(), amd.end(), [](const AmdIommuUnit& u) { return u.ga(); });
}

VtdUnit parse_vtd_unit(const std::string& name, const std::string& cap_text,
                       const std::string& ecap_text)
{
    VtdUnit u;
    u.name = name;
    u.cap = parse_hex_u64(cap_text, fmt::format("{} intel-iommu/cap", name));
    u.ecap = parse_hex_u64(ecap_text, fmt::format("{} intel-iommu/ecap", name));
    return u;
}

AmdIommuUnit parse_amd_unit(const std::string& name, const std::string& features_text)
{
    // drivers/iommu/amd/init.c features_show(): "%llx\n", or "%llx:%llx\n" with EFR2.
    AmdIommuUnit u;
    u.name = name;
    const std::string_view t = trim(features_text);
    const auto colon = t.find(':');
    const std::string what = fmt::format("{} amd-iommu/features", name);
    u.features = parse_hex_u64(t.substr(0, colon), what);
    if (colon != std::string_view::npos)
        u.features2 = parse_hex_u64(t.substr(colon + 1), what + " (EFR2)");
    return u;
}

IommuInfo read_iommu(const std::filesystem::path& root)
{
    IommuInfo info;
    const auto cls = under_root(root, "/sys/class/iommu");
    for (const auto& name : list_dir(cls)) {
        const auto dir = cls / name;
        try {
            if (auto cap = read_file_if_exists(dir / "intel-iommu" / "cap", kAttrMax)) {
                const auto ecap = read_file(dir / "intel-iommu" / "ecap", kAttrMax);
                info.vtd.push_back(parse_vtd_unit(name, *cap, ecap));
            } else if (auto f = read_file_if_exists(dir / "amd-iommu" / "features", kAttrMax)) {
                info.amd.push_back(parse_amd_unit(name, *f));
            }
            // Other IOMMU classes (virtio-iommu, ...) have neither and cannot post interrupts.
        } catch (const hv::Error& e) {
            info.errors.push_back(e.what());
        }
    }
    read_table(root, "DMAR", info);
    read_table(root, "IVRS", info);
    if (!info.unreadable_tables.empty())
        info.acpi_note = fmt::format("{} present but not readable (root only)",
                                     fmt::join(info.unreadable_tables, " and "));
    else if (!info.dmar && !info.ivrs)
        info.acpi_note = "no DMAR or IVRS table";
    return info;
}

}  // namespace hv::host
