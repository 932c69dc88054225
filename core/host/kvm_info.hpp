// The host's KVM: which module provides /dev/kvm, the capabilities hvaccel uses, and the
// module parameters that decide whether KVM's in-kernel LAPIC uses APIC virtualization
// hardware (kvm_intel enable_apicv/enable_ipiv, kvm_amd avic/force_avic).
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hv::host {

// Answers KVM_CHECK_EXTENSION on the system fd.
class KvmCapSource {
  public:
    virtual ~KvmCapSource() = default;
    virtual int api_version() const = 0;
    virtual int check_extension(int cap) const = 0;
};

// Synthetic capabilities for tests: unlisted capabilities read as 0.
class KvmCapTable : public KvmCapSource {
  public:
    explicit KvmCapTable(std::map<int, int> caps, int api = 12) : caps_(std::move(caps)), api_(api)
    {
    }
    int api_version() const override { return api_; }
    int check_extension(int cap) const override;

  private:
    std::map<int, int> caps_;
    int api_;
};

// /dev/kvm, opened read-only for queries. Throws hv::Error naming the device on failure.
class DevKvm : public KvmCapSource {
  public:
    explicit DevKvm(const std::filesystem::path& dev = "/dev/kvm");
    ~DevKvm() override;
    DevKvm(const DevKvm&) = delete;
    DevKvm& operator=(const DevKvm&) = delete;
    int api_version() const override;
    int check_extension(int cap) const override;

  private:
    int fd_ = -1;
};

struct KvmCap {
    std::string_view name;  // "SPLIT_IRQCHIP"
    int number = 0;         // KVM_CAP_SPLIT_IRQCHIP
    int value = 0;          // KVM_CHECK_EXTENSION result (0: absent)
};

// The capabilities hvaccel uses, in the order reports print them.
std::vector<KvmCap> kvm_caps_of_interest();

struct KvmInfo {
    bool present = false;
    std::string error;  // why /dev/kvm could not be used, when !present
    int api_version = 0;
    std::vector<KvmCap> caps;
    // Module providing KVM for x86 hardware: "kvm_intel", "kvm_amd", or another provider found
    // as /sys/module/kvm_* (e.g. "kvm_pvm"); "" when none is loaded (built-in without params).
    std::string provider;
    std::vector<std::string> other_providers;
    std::map<std::string, std::string> params;  // provider's /sys/module/<p>/parameters/*

    int cap(std::string_view name) const;  // 0 when unknown or absent
    std::optional<std::string> param(std::string_view name) const;
    std::optional<bool> param_bool(std::string_view name) const;
    // Whether KVM's own LAPIC uses APIC virtualization hardware, and a short why,
    // e.g. "kvm_intel enable_apicv=Y" or "kvm_pvm, no hardware APIC virtualization".
    bool kernel_uses_apic_hw() const;
    std::string kernel_apic_summary() const;
};

// Reads the provider and parameters under `root`/sys/module, and the capabilities from `caps`
// (nullptr: /dev/kvm unavailable, with `error` saying why).
KvmInfo read_kvm_info(const std::filesystem::path& root, const KvmCapSource* caps,
                      std::string error = {});

// Live: opens /dev/kvm; failure to open is recorded in KvmInfo::error, not thrown.
KvmInfo probe_kvm(const std::filesystem::path& root = "/");

}  // namespace hv::host
