// Thin RAII wrappers over the /dev/kvm ioctls: the system, a VM and a vCPU. Every failing
// ioctl throws hv::Error naming the operation and the errno text.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/base/fd.hpp"

namespace hv::kvm {

// One capability hvaccel requires, with its human-readable name for error messages.
struct Capability {
    int id;
    const char* name;
};

class System {
  public:
    // Opens /dev/kvm (or `path`), checks the API version.
    explicit System(const std::string& path = "/dev/kvm");

    int check_extension(int cap) const;
    // Throws "KVM lacks capability KVM_CAP_X" when a required one is missing.
    void require(const Capability& cap) const;
    std::vector<kvm_cpuid_entry2> supported_cpuid() const;
    std::size_t vcpu_mmap_size() const;
    int fd() const { return fd_.get(); }

  private:
    Fd fd_;
};

class Vm {
  public:
    explicit Vm(const System& sys);

    int fd() const { return fd_.get(); }
    int check_extension(int cap) const;
    void enable_cap(std::uint32_t cap, std::uint64_t arg0 = 0, std::uint64_t arg1 = 0) const;
    void set_memory_region(std::uint32_t slot, std::uint64_t gpa, std::uint64_t size, void* host,
                           std::uint32_t flags = 0) const;
    void set_tss_addr(std::uint64_t gpa) const;
    void set_identity_map_addr(std::uint64_t gpa) const;
    void set_msr_filter(const kvm_msr_filter& filter) const;
    // KVM_SIGNAL_MSI; returns the ioctl's result (>0 delivered, 0 blocked by the guest).
    int signal_msi(std::uint64_t address, std::uint32_t data) const;
    void ioctl_checked(unsigned long req, void* arg, const char* what) const;

  private:
    Fd fd_;
};

class Vcpu {
  public:
    Vcpu(const System& sys, const Vm& vm, unsigned id);
    ~Vcpu();
    Vcpu(const Vcpu&) = delete;
    Vcpu& operator=(const Vcpu&) = delete;

    unsigned id() const { return id_; }
    int fd() const { return fd_.get(); }
    kvm_run* run_struct() const { return run_; }

    // KVM_RUN. Returns 0 on success, or -errno for EINTR/EAGAIN (kicked); throws on others.
    int run() const;

    kvm_regs get_regs() const;
    void set_regs(const kvm_regs& r) const;
    kvm_sregs get_sregs() const;
    void set_sregs(const kvm_sregs& s) const;
    void set_cpuid(std::span<const kvm_cpuid_entry2> entries) const;
    std::uint64_t get_msr(std::uint32_t index) const;
    void set_msr(std::uint32_t index, std::uint64_t value) const;
    // The same, reporting instead of throwing when KVM refuses the value.
    bool try_set_msr(std::uint32_t index, std::uint64_t value) const;
    void interrupt(std::uint8_t vector) const;
    // The guest TSC frequency (KVM_GET_TSC_KHZ), in kHz.
    std::uint32_t tsc_khz() const;
    void nmi() const;
    kvm_mp_state get_mp_state() const;
    void set_mp_state(std::uint32_t state) const;
    void ioctl_checked(unsigned long req, void* arg, const char* what) const;

  private:
    unsigned id_;
    Fd fd_;
    kvm_run* run_ = nullptr;
    std::size_t run_size_ = 0;
};

}  // namespace hv::kvm
