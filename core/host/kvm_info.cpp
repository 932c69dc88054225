#include "core/host/kvm_info.hpp"

#include <cerrno>

#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "core/base/error.hpp"
#include "core/host/sysfs.hpp"

namespace hv::host {

namespace {

// Known vendor modules first: they decide what the in-kernel LAPIC does with hardware.
constexpr std::string_view kVendorModules[] = {"kvm_intel", "kvm_amd"};

// Module parameters are small; refuse to slurp anything else found in the directory.
constexpr std::size_t kParamMax = 4096;

}  // namespace

int KvmCapTable::check_extension(int cap) const
{
    const auto it = caps_.find(cap);
    return it == caps_.end() ? 0 : it->second;
}

DevKvm::DevKvm(const std::filesystem::path& dev)
{
    fd_ = ::open(dev.c_str(), O_RDWR | O_CLOEXEC);
    if (fd_ < 0)
        throw_errno(fmt::format("open {}", dev.string()));
}

DevKvm::~DevKvm()
{
    if (fd_ >= 0)
        ::close(fd_);
}

int DevKvm::api_version() const
{
    const int v = ::ioctl(fd_, KVM_GET_API_VERSION, 0);
    if (v < 0)
        throw_errno("ioctl KVM_GET_API_VERSION on /dev/kvm");
    return v;
}

int DevKvm::check_extension(int cap) const
{
    const int v = ::ioctl(fd_, KVM_CHECK_EXTENSION, cap);
    return v < 0 ? 0 : v;
}

std::vector<KvmCap> kvm_caps_of_interest()
{
    // Documentation/virt/kvm/api.rst, section 8 "Other capabilities" and per-ioctl notes.
    return {
        {"IRQCHIP", KVM_CAP_IRQCHIP, 0},
        {"SPLIT_IRQCHIP", KVM_CAP_SPLIT_IRQCHIP, 0},            // kernel backend
        {"X86_USER_SPACE_MSR", KVM_CAP_X86_USER_SPACE_MSR, 0},  // x2APIC MSRs to userspace
        {"X86_MSR_FILTER", KVM_CAP_X86_MSR_FILTER, 0},
        {"IMMEDIATE_EXIT", KVM_CAP_IMMEDIATE_EXIT, 0},  // kicks
        {"SIGNAL_MSI", KVM_CAP_SIGNAL_MSI, 0},
        {"IRQFD", KVM_CAP_IRQFD, 0},
        {"IRQ_ROUTING", KVM_CAP_IRQ_ROUTING, 0},
        {"MSI_DEVID", KVM_CAP_MSI_DEVID, 0},
        {"X2APIC_API", KVM_CAP_X2APIC_API, 0},
        {"TSC_CONTROL", KVM_CAP_TSC_CONTROL, 0},
        {"GET_TSC_KHZ", KVM_CAP_GET_TSC_KHZ, 0},
        {"TSC_DEADLINE_TIMER", KVM_CAP_TSC_DEADLINE_TIMER, 0},
        {"VCPU_EVENTS", KVM_CAP_VCPU_EVENTS, 0},
        {"X86_DISABLE_EXITS", KVM_CAP_X86_DISABLE_EXITS, 0},
        {"NR_VCPUS", KVM_CAP_NR_VCPUS, 0},
        {"MAX_VCPUS", KVM_CAP_MAX_VCPUS, 0},
    };
}

int KvmInfo::cap(std::string_view name) const
{
    for (const auto& c : caps)
        if (c.name == name)
            return c.value;
    return 0;
}

std::optional<std::string> KvmInfo::param(std::string_view name) const
{
    const auto it = params.find(std::string(name));
    if (it == params.end())
        return std::nullopt;
    return it->second;
}

std::optional<bool> KvmInfo::param_bool(std::string_view name) const
{
    const auto p = param(name);
    return p ? parse_param_bool(*p) : std::nullopt;
}

bool KvmInfo::kernel_uses_apic_hw() const
{
    if (provider == "kvm_intel")
        return param_bool("enable_apicv").value_or(false);
    if (provider == "kvm_amd")
        return param_bool("avic").value_or(false);
    return false;
}

std::string KvmInfo::kernel_apic_summary() const
{
    // Appended with fmt::format rather than `" " + std::string`: GCC 12 at -O3 reports a false
    // -Wrestrict overlap inside std::string's operator+(const char*, string&&).
    const auto show = [this](std::string_view name) {
        const auto p = param(name);
        return fmt::format("{}={}", name, p ? *p : std::string("?"));
    };
    if (provider == "kvm_intel") {
        std::string s = fmt::format("kvm_intel {}", show("enable_apicv"));
        if (kernel_uses_apic_hw() && param("enable_ipiv"))
            s += fmt::format(" {}", show("enable_ipiv"));
        if (!kernel_uses_apic_hw())
            s += ", no hardware APIC virtualization";
        return s;
    }
    if (provider == "kvm_amd") {
        std::string s = fmt::format("kvm_amd {}", show("avic"));
        if (param("force_avic"))
            s += fmt::format(" {}", show("force_avic"));
        if (!kernel_uses_apic_hw())
            s += ", no hardware APIC virtualization";
        return s;
    }
    if (!provider.empty())
        return fmt::format("{}, no hardware APIC virtualization", provider);
    return "KVM provider unknown, no hardware APIC virtualization known";
}

KvmInfo read_kvm_info(const std::filesystem::path& root, const KvmCapSource* caps,
                      std::string error)
{
    KvmInfo k;
    const auto modules = under_root(root, "/sys/module");
    std::vector<std::string> found;
    for (const auto& name : list_dir(modules))
        if (name.rfind("kvm_", 0) == 0)
            found.push_back(name);
    for (auto want : kVendorModules)
        for (const auto& f : found)
            if (k.provider.empty() && f == want)
                k.provider = f;
    for (const auto& f : found) {
        if (k.provider.empty())
            k.provider = f;  // another provider, reported by name (e.g. kvm_pvm)
        else if (f != k.provider)
            k.other_providers.push_back(f);
    }
    if (!k.provider.empty()) {
        const auto dir = modules / k.provider / "parameters";
        for (const auto& p : list_dir(dir)) {
            try {
                k.params[p] = std::string(trim(read_file(dir / p, kParamMax)));
            } catch (const hv::Error& e) {
                k.params[p] = fmt::format("<unreadable: {}>", e.what());
            }
        }
    }
    k.caps = kvm_caps_of_interest();
    if (caps == nullptr) {
        k.error = error.empty() ? "/dev/kvm not probed" : std::move(error);
        return k;
    }
    k.present = true;
    k.api_version = caps->api_version();
    for (auto& c : k.caps)
        c.value = caps->check_extension(c.number);
    return k;
}

KvmInfo probe_kvm(const std::filesystem::path& root)
{
    try {
        DevKvm dev(under_root(root, "/dev/kvm"));
        return read_kvm_info(root, &dev);
    } catch (const hv::Error& e) {
        return read_kvm_info(root, nullptr, e.what());
    }
}

}  // namespace hv::host
