#include "core/kvm/kvm.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include <cstddef>
#include <cstring>
#include <memory>

#include "core/base/error.hpp"
#include "core/kvm/uapi.hpp"

namespace hv::kvm {

namespace {

int checked(int rc, const char* what)
{
    if (rc < 0)
        throw_errno(what);
    return rc;
}

}  // namespace

System::System(const std::string& path)
{
    int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0)
        throw_errno(fmt::format("open {}", path));
    fd_ = Fd(fd);
    int api = ::ioctl(fd_.get(), KVM_GET_API_VERSION, 0);
    if (api != KVM_API_VERSION)
        fail("{}: KVM API version {} (expected {})", path, api, KVM_API_VERSION);
}

int System::check_extension(int cap) const
{
    int rc = ::ioctl(fd_.get(), KVM_CHECK_EXTENSION, cap);
    return rc < 0 ? 0 : rc;
}

void System::require(const Capability& cap) const
{
    if (check_extension(cap.id) <= 0)
        fail("KVM lacks capability {}", cap.name);
}

std::vector<kvm_cpuid_entry2> System::supported_cpuid() const
{
    for (std::uint32_t n = 128; n <= 4096; n *= 2) {
        std::vector<std::uint8_t> buf(uapi::kEntriesOffset + n * sizeof(kvm_cpuid_entry2));
        uapi::CpuidHeader h{n, 0};
        std::memcpy(buf.data(), &h, sizeof h);
        if (::ioctl(fd_.get(), uapi::kGetSupportedCpuid, buf.data()) == 0) {
            std::memcpy(&h, buf.data(), sizeof h);
            std::vector<kvm_cpuid_entry2> out(h.nent);
            std::memcpy(out.data(), buf.data() + uapi::kEntriesOffset,
                        h.nent * sizeof(kvm_cpuid_entry2));
            return out;
        }
        if (errno != E2BIG)
            throw_errno("KVM_GET_SUPPORTED_CPUID");
    }
    fail("KVM_GET_SUPPORTED_CPUID: too many entries");
}

std::size_t System::vcpu_mmap_size() const
{
    return static_cast<std::size_t>(
        checked(::ioctl(fd_.get(), KVM_GET_VCPU_MMAP_SIZE, 0), "KVM_GET_VCPU_MMAP_SIZE"));
}

Vm::Vm(const System& sys)
{
    int fd = -1;
    // KVM_CREATE_VM may fail transiently with EINTR.
    do {
        fd = ::ioctl(sys.fd(), KVM_CREATE_VM, 0);
    } while (fd < 0 && errno == EINTR);
    fd_ = Fd(checked(fd, "KVM_CREATE_VM"));
}

int Vm::check_extension(int cap) const
{
    int rc = ::ioctl(fd_.get(), KVM_CHECK_EXTENSION, cap);
    return rc < 0 ? 0 : rc;
}

void Vm::ioctl_checked(unsigned long req, void* arg, const char* what) const
{
    if (::ioctl(fd_.get(), req, arg) < 0)
        throw_errno(what);
}

void Vm::enable_cap(std::uint32_t cap, std::uint64_t arg0, std::uint64_t arg1) const
{
    kvm_enable_cap c{};
    c.cap = cap;
    c.args[0] = arg0;
    c.args[1] = arg1;
    if (::ioctl(fd_.get(), KVM_ENABLE_CAP, &c) < 0)
        throw_errno(fmt::format("KVM_ENABLE_CAP({})", cap));
}

void Vm::set_memory_region(std::uint32_t slot, std::uint64_t gpa, std::uint64_t size, void* host,
                           std::uint32_t flags) const
{
    kvm_userspace_memory_region r{};
    r.slot = slot;
    r.flags = flags;
    r.guest_phys_addr = gpa;
    r.memory_size = size;
    r.userspace_addr = reinterpret_cast<std::uint64_t>(host);
    if (::ioctl(fd_.get(), KVM_SET_USER_MEMORY_REGION, &r) < 0)
        throw_errno(
            fmt::format("KVM_SET_USER_MEMORY_REGION slot {} at {:#x} size {:#x}", slot, gpa, size));
}

void Vm::set_tss_addr(std::uint64_t gpa) const
{
    checked(::ioctl(fd_.get(), KVM_SET_TSS_ADDR, static_cast<unsigned long>(gpa)),
            "KVM_SET_TSS_ADDR");
}

void Vm::set_identity_map_addr(std::uint64_t gpa) const
{
    std::uint64_t a = gpa;
    ioctl_checked(KVM_SET_IDENTITY_MAP_ADDR, &a, "KVM_SET_IDENTITY_MAP_ADDR");
}

void Vm::set_msr_filter(const kvm_msr_filter& filter) const
{
    auto f = filter;
    ioctl_checked(KVM_X86_SET_MSR_FILTER, &f, "KVM_X86_SET_MSR_FILTER");
}

int Vm::signal_msi(std::uint64_t address, std::uint32_t data) const
{
    kvm_msi m{};
    m.address_lo = static_cast<std::uint32_t>(address);
    m.address_hi = static_cast<std::uint32_t>(address >> 32);
    m.data = data;
    return checked(::ioctl(fd_.get(), KVM_SIGNAL_MSI, &m), "KVM_SIGNAL_MSI");
}

Vcpu::Vcpu(const System& sys, const Vm& vm, unsigned id) : id_(id)
{
    fd_ = Fd(checked(::ioctl(vm.fd(), KVM_CREATE_VCPU, static_cast<unsigned long>(id)),
                     "KVM_CREATE_VCPU"));
    run_size_ = sys.vcpu_mmap_size();
    void* p = ::mmap(nullptr, run_size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(), 0);
    if (p == MAP_FAILED)
        throw_errno(fmt::format("mmap kvm_run of vCPU {}", id));
    run_ = static_cast<kvm_run*>(p);
}

Vcpu::~Vcpu()
{
    if (run_)
        ::munmap(run_, run_size_);
}

int Vcpu::run() const
{
    if (::ioctl(fd_.get(), KVM_RUN, 0) == 0)
        return 0;
    int err = errno;
    if (err == EINTR || err == EAGAIN)
        return -err;
    throw_errno(fmt::format("KVM_RUN on vCPU {}", id_), err);
}

void Vcpu::ioctl_checked(unsigned long req, void* arg, const char* what) const
{
    if (::ioctl(fd_.get(), req, arg) < 0)
        throw_errno(fmt::format("{} on vCPU {}", what, id_));
}

kvm_regs Vcpu::get_regs() const
{
    kvm_regs r{};
    ioctl_checked(KVM_GET_REGS, &r, "KVM_GET_REGS");
    return r;
}

void Vcpu::set_regs(const kvm_regs& r) const
{
    auto c = r;
    ioctl_checked(KVM_SET_REGS, &c, "KVM_SET_REGS");
}

kvm_sregs Vcpu::get_sregs() const
{
    kvm_sregs s{};
    ioctl_checked(KVM_GET_SREGS, &s, "KVM_GET_SREGS");
    return s;
}

void Vcpu::set_sregs(const kvm_sregs& s) const
{
    auto c = s;
    ioctl_checked(KVM_SET_SREGS, &c, "KVM_SET_SREGS");
}

void Vcpu::set_cpuid(std::span<const kvm_cpuid_entry2> entries) const
{
    const uapi::CpuidHeader h{static_cast<std::uint32_t>(entries.size()), 0};
    std::vector<std::uint8_t> buf(uapi::kEntriesOffset);
    std::memcpy(buf.data(), &h, sizeof h);
    const auto* bytes = reinterpret_cast<const std::uint8_t*>(entries.data());
    buf.insert(buf.end(), bytes, bytes + entries.size_bytes());
    ioctl_checked(uapi::kSetCpuid2, buf.data(), "KVM_SET_CPUID2");
}

namespace {
// struct kvm_msrs with one entry, in its C layout (see core/kvm/uapi.hpp).
struct OneMsr {
    uapi::MsrsHeader hdr{1, 0};
    kvm_msr_entry entry{};
};
static_assert(offsetof(OneMsr, entry) == uapi::kEntriesOffset);
}  // namespace

std::uint64_t Vcpu::get_msr(std::uint32_t index) const
{
    OneMsr m;
    m.entry.index = index;
    if (::ioctl(fd_.get(), uapi::kGetMsrs, &m) != 1)
        fail("KVM_GET_MSRS {:#x} on vCPU {} failed", index, id_);
    return m.entry.data;
}

void Vcpu::set_msr(std::uint32_t index, std::uint64_t value) const
{
    if (!try_set_msr(index, value))
        fail("KVM_SET_MSRS {:#x}={:#x} on vCPU {} failed", index, value, id_);
}

bool Vcpu::try_set_msr(std::uint32_t index, std::uint64_t value) const
{
    OneMsr m;
    m.entry.index = index;
    m.entry.data = value;
    return ::ioctl(fd_.get(), uapi::kSetMsrs, &m) == 1;
}

void Vcpu::interrupt(std::uint8_t vector) const
{
    kvm_interrupt i{};
    i.irq = vector;
    ioctl_checked(KVM_INTERRUPT, &i, "KVM_INTERRUPT");
}

std::uint32_t Vcpu::tsc_khz() const
{
    int khz = ::ioctl(fd_.get(), KVM_GET_TSC_KHZ, 0);
    if (khz <= 0)
        throw_errno(fmt::format("KVM_GET_TSC_KHZ on vCPU {}", id_));
    return static_cast<std::uint32_t>(khz);
}

void Vcpu::nmi() const
{
    ioctl_checked(KVM_NMI, nullptr, "KVM_NMI");
}

kvm_mp_state Vcpu::get_mp_state() const
{
    kvm_mp_state s{};
    ioctl_checked(KVM_GET_MP_STATE, &s, "KVM_GET_MP_STATE");
    return s;
}

void Vcpu::set_mp_state(std::uint32_t state) const
{
    kvm_mp_state s{};
    s.mp_state = state;
    ioctl_checked(KVM_SET_MP_STATE, &s, "KVM_SET_MP_STATE");
}

}  // namespace hv::kvm
