#include "vmx/apicv_vm.hpp"

#include <sched.h>

#include <algorithm>
#include <stdexcept>

#include "vmx/apicv_backend.hpp"

namespace hv::vmx {
namespace {

// The PID-pointer table covers every 8-bit APIC ID (IPIv destinations beyond the last index
// exit: SDM Vol3 30.1.6 "IPI Virtualization").
constexpr std::size_t kPidTableEntries = 256;

void check_options(const ApicvOptions& o)
{
    // SDM Vol3 26.2.1.1 "VM-Execution Control Fields": "process posted interrupts" requires
    // "virtual-interrupt delivery"; IPI virtualization delivers through PIDs, so it needs both.
    if (o.posted_interrupts && !o.virtual_interrupt_delivery) {
        throw std::invalid_argument("apicv: posted interrupts need virtual-interrupt delivery");
    }
    if (o.ipiv && !o.posted_interrupts) {
        throw std::invalid_argument("apicv: IPI virtualization needs posted interrupts");
    }
    if (o.notification_vector == o.wakeup_vector) {
        throw std::invalid_argument("apicv: notification and wake-up vectors must differ");
    }
}

}  // namespace

uint32_t host_ndst()
{
    const int cpu = sched_getcpu();
    return pid::ndst_for(cpu < 0 ? 0u : static_cast<uint32_t>(cpu), true);
}

ApicvVm::ApicvVm(std::size_t vcpus, const ApicvOptions& opts)
    : n_(vcpus), opts_(opts), pids_(std::make_unique<PostedInterruptDescriptor[]>(vcpus)),
      table_(kPidTableEntries), backends_(std::make_unique<std::atomic<ApicvBackend*>[]>(vcpus)),
      host_ids_(std::make_unique<std::atomic<uint64_t>[]>(vcpus))
{
    check_options(opts);
    if (vcpus == 0 || vcpus > apic::kMaxApics) {
        throw std::invalid_argument("apicv: vCPU count must be 1.." +
                                    std::to_string(apic::kMaxApics));
    }
    for (std::size_t i = 0; i < n_; ++i) {
        backends_[i].store(nullptr, std::memory_order_relaxed);
        host_ids_[i].store(0, std::memory_order_relaxed);
        // Not running anywhere yet: notifications suppressed until the first entry.
        update_control(pids_[i], ControlUpdate{opts_.notification_vector, 0, true});
    }
}

ApicvVm::~ApicvVm() = default;

std::unique_ptr<apic::ApicBackend>
ApicvVm::make_backend(std::size_t index, const apic::LocalApicConfig& cfg, apic::GuestClock& clock,
                      apic::ApicPlatform& platform, apic::VcpuNotifier& notifier)
{
    if (index >= n_) {
        throw std::out_of_range("apicv: vCPU index " + std::to_string(index) +
                                " >= " + std::to_string(n_));
    }
    return std::make_unique<ApicvBackend>(*this, index, cfg, clock, platform, notifier);
}

void ApicvVm::set_host_apic_id(std::size_t index, uint32_t host_apic_id)
{
    if (index < n_) {
        host_ids_[index].store(static_cast<uint64_t>(host_apic_id) + 1, std::memory_order_relaxed);
    }
}

uint32_t ApicvVm::ndst_for(std::size_t index) const
{
    const uint64_t h = index < n_ ? host_ids_[index].load(std::memory_order_relaxed) : 0;
    return h != 0 ? vmx::pid::ndst_for(static_cast<uint32_t>(h - 1), true) : vmx::host_ndst();
}

void ApicvVm::attach(std::size_t index, ApicvBackend* b)
{
    backends_[index].store(b, std::memory_order_release);
}

void ApicvVm::detach(std::size_t index)
{
    backends_[index].store(nullptr, std::memory_order_release);
    remove_blocked(index);
}

std::optional<std::size_t> ApicvVm::index_of(const PostedInterruptDescriptor* p) const
{
    const PostedInterruptDescriptor* first = pids_.get();
    if (p < first || p >= first + n_) {
        return std::nullopt;
    }
    return static_cast<std::size_t>(p - first);
}

PostedInterruptDescriptor* ApicvVm::pid_at(uint64_t address)
{
    const uint64_t first = address_of(pids_[0]);
    const uint64_t size = sizeof(PostedInterruptDescriptor);
    if (address < first || (address - first) % size != 0 || (address - first) / size >= n_) {
        return nullptr;
    }
    return &pids_[(address - first) / size];
}

PostResult ApicvVm::post_counted(PostedInterruptDescriptor& d, uint8_t vector)
{
    const PostResult r = vmx::post(d, vector);
    const auto idx = index_of(&d);
    if (!idx) {
        return r;
    }
    if (ApicvBackend* b = backends_[*idx].load(std::memory_order_acquire)) {
        b->count_post(r);
    }
    return r;
}

PostResult ApicvVm::post(PostedInterruptDescriptor& d, uint8_t vector)
{
    const PostResult r = post_counted(d, vector);
    if (const auto idx = index_of(&d)) {
        notify(*idx, r);
    }
    return r;
}

void ApicvVm::set_ioapic_eoi_vectors(const apic::VectorWords& level_vectors)
{
    for (std::size_t i = 0; i < n_; ++i) {
        if (ApicvBackend* b = backends_[i].load(std::memory_order_acquire)) {
            b->set_ioapic_eoi_vectors(level_vectors);
        }
    }
}

void ApicvVm::notify(std::size_t index, const PostResult& r)
{
    if (!r.notify || index >= n_) {
        return;
    }
    if (r.nv == opts_.notification_vector) {
        // SDM Vol3 30.6: a running vCPU's CPU recognises NV in VMX non-root operation and
        // processes PIR without a VM exit. The stand-in is a kick (signal + immediate_exit).
        if (ApicvBackend* b = backends_[index].load(std::memory_order_acquire)) {
            b->on_notification();
        }
    } else if (r.nv == opts_.wakeup_vector) {
        wakeup_handler(r.ndst);
    }
}

void ApicvVm::add_blocked(std::size_t index)
{
    std::lock_guard lock(blocked_mu_);
    if (std::find(blocked_.begin(), blocked_.end(), index) == blocked_.end()) {
        blocked_.push_back(index);
    }
}

void ApicvVm::remove_blocked(std::size_t index)
{
    std::lock_guard lock(blocked_mu_);
    blocked_.erase(std::remove(blocked_.begin(), blocked_.end(), index), blocked_.end());
}

void ApicvVm::wakeup_handler(uint32_t ndst)
{
    // KVM's pi_wakeup_handler: walk the blocked vCPUs of the CPU the wake-up vector arrived on
    // and wake those whose descriptor has ON set. Collected under the list lock, woken after.
    std::array<std::size_t, apic::kMaxApics> wake{};
    std::size_t count = 0;
    {
        std::lock_guard lock(blocked_mu_);
        for (std::size_t i : blocked_) {
            const uint64_t c = pids_[i].load_control();
            if (pid::ndst_of(c) == ndst && (c & pid::kOn) != 0 && count < wake.size()) {
                wake[count++] = i;
            }
        }
    }
    for (std::size_t k = 0; k < count; ++k) {
        if (ApicvBackend* b = backends_[wake[k]].load(std::memory_order_acquire)) {
            b->on_wakeup();
        }
    }
}

void ApicvVm::set_table_entry(std::size_t apic_id, std::optional<std::size_t> index)
{
    if (index) {
        table_.set(apic_id, &pids_[*index]);
    } else {
        table_.clear(apic_id);
    }
}

}  // namespace hv::vmx
