// AvicVm: table maintenance (hypervisor half) and the notifications shared by both halves.
#include "svm/avic_vm.hpp"

#include <array>
#include <stdexcept>

#include <fmt/format.h>

#include "svm/avic_backend.hpp"

namespace hv::svm {
namespace {

constexpr std::array<std::string_view, static_cast<std::size_t>(AvicStat::Count)> kStatNames{
    "doorbells",  "ipi_accelerated", "ipi_self",         "ipi_software",
    "posted_ipi", "posted_device",   "posted_coalesced", "irr_refused"};

}  // namespace

struct AvicVm::Slot {
    apic::VcpuSchedule schedule;
    apic::CounterTable<AvicStat, static_cast<std::size_t>(AvicStat::Count)> stats{kStatNames};
    // Guarded by table_mu_.
    Addressing addr{};
    bool running = false;
    uint32_t host_apic_id = 0;
    std::optional<uint32_t> phys_index;
};

AvicVm::AvicVm(std::size_t vcpus, const AvicOptions& options)
    : n_(vcpus), opt_(options), phys_(std::make_unique<PhysicalIdTable>()),
      logical_(std::make_unique<LogicalIdTable>()), slots_(std::make_unique<Slot[]>(vcpus))
{
    if (vcpus == 0 || vcpus > phys::kMaxIndexX2avic + 1) {
        throw std::invalid_argument(
            fmt::format("AvicVm: {} vCPUs (1..{} supported)", vcpus, phys::kMaxIndexX2avic + 1));
    }
    pages_.reserve(vcpus);
    for (std::size_t i = 0; i < vcpus; ++i) {
        pages_.push_back(std::make_unique<BackingPage>());
        slots_[i].host_apic_id = static_cast<uint32_t>(i) & phys::kHostIdMask;
    }
}

AvicVm::~AvicVm() = default;

std::unique_ptr<apic::ApicBackend>
AvicVm::make_backend(std::size_t index, const apic::LocalApicConfig& cfg, apic::GuestClock& clock,
                     apic::ApicPlatform& platform, apic::VcpuNotifier& notifier)
{
    if (index >= n_) {
        throw std::out_of_range(
            fmt::format("AvicVm::make_backend: vCPU index {} of a {}-vCPU VM", index, n_));
    }
    attach(index, &notifier);
    return std::make_unique<AvicBackend>(*this, index, cfg, clock, platform, notifier);
}

void AvicVm::attach(std::size_t vcpu, apic::VcpuNotifier* notifier)
{
    slots_[vcpu].schedule.attach(notifier);
}

apic::VcpuSchedule& AvicVm::schedule(std::size_t vcpu)
{
    return slots_[vcpu].schedule;
}

apic::CounterTable<AvicStat, static_cast<std::size_t>(AvicStat::Count)>&
AvicVm::stats(std::size_t vcpu)
{
    return slots_[vcpu].stats;
}

void AvicVm::poke_physical_entry(uint32_t index, uint64_t raw)
{
    std::lock_guard lock(table_mu_);
    if (index < phys_->entry.size()) {
        phys_->entry[index].store(raw);
    }
}

std::optional<std::size_t> AvicVm::vcpu_at_frame(uint64_t frame) const
{
    if (frame < kBackingFrameBase || frame - kBackingFrameBase >= n_) {
        return std::nullopt;
    }
    return static_cast<std::size_t>(frame - kBackingFrameBase);
}

PhysicalEntry AvicVm::physical_entry(uint32_t index) const
{
    return index < phys_->entry.size() ? decode_physical(phys_->entry[index].load())
                                       : PhysicalEntry{};
}

uint32_t AvicVm::logical_entry(uint32_t index) const
{
    return index < logical_->entry.size() ? logical_->entry[index].load() : 0;
}

uint64_t AvicVm::physical_table_pointer() const
{
    return ((kTableFrameBase << 12) & kTableAddrMask) | max_index();
}

uint64_t AvicVm::logical_table_pointer() const
{
    return ((kTableFrameBase + 1) << 12) & kTableAddrMask;
}

bool AvicVm::is_running(std::size_t vcpu) const
{
    std::lock_guard lock(table_mu_);
    const auto& idx = slots_[vcpu].phys_index;
    return idx && (phys_->entry[*idx].load() & phys::kIsRunning) != 0;
}

void AvicVm::set_sched(std::size_t vcpu, Sched s)
{
    slots_[vcpu].schedule.set_state(s);
}

Sched AvicVm::sched(std::size_t vcpu) const
{
    return slots_[vcpu].schedule.state();
}

std::optional<uint32_t> AvicVm::phys_index_locked(const Addressing& a) const
{
    if (!a.enabled) {
        return std::nullopt;
    }
    // APM Vol2 15.29.3.1: the table is indexed by the guest physical APIC ID; an xAPIC-mode
    // vCPU is addressed by ID[7:0]; 0xFF is the broadcast ID and has no entry.
    const uint32_t idx = a.x2apic ? a.id : (a.id & 0xFFu);
    if ((!a.x2apic && idx == 0xFFu) || idx > max_index()) {
        return std::nullopt;
    }
    return idx;
}

void AvicVm::rebuild_locked()
{
    // Rebuilding both tables from every vCPU's addressing keeps them a pure function of the
    // guest-visible registers, which is what restore relies on (IsRunning comes from `running`).
    std::array<uint64_t, 512> want{};
    std::array<uint32_t, 1024> lwant{};
    for (std::size_t i = 0; i < n_; ++i) {
        Slot& s = slots_[i];
        s.phys_index = phys_index_locked(s.addr);
        if (!s.phys_index || want[*s.phys_index] != 0) {
            s.phys_index.reset();  // duplicate ID: the lowest vCPU index owns the entry
            continue;
        }
        const PhysicalEntry e{s.host_apic_id, backing_frame(i), s.running && !opt_.erratum_1235,
                              true};
        want[*s.phys_index] = encode(e);
        // APM Vol2 15.29.3.2: xAPIC-mode vCPUs get a logical entry (x2APIC-mode ones are
        // addressed by their derived logical ID: x2AVIC uses no logical table).
        if (!s.addr.x2apic) {
            if (auto li = logical_index_of(s.addr.ldr, s.addr.dfr); li && lwant[*li] == 0) {
                lwant[*li] = encode_logical(static_cast<uint8_t>(*s.phys_index), true);
            }
        }
    }
    for (std::size_t i = 0; i < want.size(); ++i) {
        if (phys_->entry[i].load() != want[i]) {
            phys_->entry[i].store(want[i]);
        }
    }
    for (std::size_t i = 0; i < lwant.size(); ++i) {
        if (logical_->entry[i].load() != lwant[i]) {
            logical_->entry[i].store(lwant[i]);
        }
    }
}

void AvicVm::update_addressing(std::size_t vcpu, const Addressing& a)
{
    std::lock_guard lock(table_mu_);
    slots_[vcpu].addr = a;
    rebuild_locked();
}

void AvicVm::set_running(std::size_t vcpu, bool running)
{
    uint32_t host = 0;
    {
        std::lock_guard lock(table_mu_);
        Slot& s = slots_[vcpu];
        s.running = running;
        host = s.host_apic_id;
        if (s.phys_index) {
            // APM Vol2 15.29.3.1: IsRunning tells the CPU to ring the doorbell of the host APIC
            // ID in the same entry. Erratum 1235: the CPU may see a stale IsRunning = 1 and
            // neither ring nor exit, so the workaround never sets it (every IPI to another vCPU
            // then exits).
            const PhysicalEntry e{s.host_apic_id, backing_frame(vcpu),
                                  running && !opt_.erratum_1235, true};
            phys_->entry[*s.phys_index].store(encode(e), std::memory_order_seq_cst);
        }
    }
    for (const RunningHook& hook : running_hooks_)
        hook(vcpu, running, host);
}

std::optional<uint32_t> AvicVm::physical_index(std::size_t vcpu) const
{
    std::lock_guard lock(table_mu_);
    return slots_[vcpu].phys_index;
}

uint32_t AvicVm::host_apic_id(std::size_t vcpu) const
{
    std::lock_guard lock(table_mu_);
    return slots_[vcpu].host_apic_id;
}

void AvicVm::wake(std::size_t vcpu)
{
    slots_[vcpu].schedule.wake();
}

void AvicVm::set_host_apic_id(std::size_t vcpu, uint32_t host_apic_id)
{
    std::lock_guard lock(table_mu_);
    slots_[vcpu].host_apic_id = host_apic_id & phys::kHostIdMask;
    rebuild_locked();
}

void AvicVm::ring_doorbell(std::size_t vcpu)
{
    // APM Vol2 15.29.4.3: the doorbell (MSR 0xC001011B) makes the running target re-evaluate
    // its backing page IRR without an exit. hvaccel: a kick (signal + immediate_exit).
    slots_[vcpu].stats.add(AvicStat::Doorbells);
    slots_[vcpu].schedule.kick_uncounted();
}

void AvicVm::notify(std::size_t vcpu, Signal in_guest)
{
    apic::VcpuSchedule& s = slots_[vcpu].schedule;
    const apic::Notify n = s.wanted();
    if (n == apic::Notify::Kick && in_guest == Signal::Doorbell) {
        ring_doorbell(vcpu);
    } else {
        s.notify(n);  // a kick after an exit, a wake-up, or nothing (outside: it looks at entry)
    }
}

bool AvicVm::post_interrupt(std::size_t vcpu, uint8_t vector, AvicStat source)
{
    const bool fresh = post_to_backing_page(*pages_[vcpu], vector);
    slots_[vcpu].stats.add(fresh ? source : AvicStat::PostedCoalesced);
    // Linux avic_deliver_posted_interrupt: doorbell if the target is in guest mode, else wake.
    notify(vcpu, Signal::Doorbell);
    return fresh;
}

void AvicVm::complete_not_running(std::size_t sender, const apic::Ipi& ipi)
{
    // APM Vol2 15.29.9.1, cause 1: the IRR bits are already set in every valid target's page;
    // the hypervisor only has to get the targets running (Linux avic_kick_target_vcpus).
    std::vector<apic::DestInfo> infos(n_);
    {
        std::lock_guard lock(table_mu_);
        for (std::size_t i = 0; i < n_; ++i) {
            const Addressing& a = slots_[i].addr;
            infos[i] = apic::DestInfo{
                a.id, a.x2apic ? apic::x2apic_ldr(a.id) : a.ldr, a.dfr, a.enabled, a.x2apic, true,
                0};
        }
    }
    const apic::TargetSet targets = apic::resolve(ipi.dest, infos, sender);
    for (std::size_t i = 0; i < n_ && i < targets.size(); ++i) {
        if (!targets[i] || i == sender) {
            continue;
        }
        const Sched s = sched(i);
        if (s == Sched::Blocked || (s == Sched::InGuest && !is_running(i))) {
            notify(i, Signal::Kick);
        }
    }
}

}  // namespace hv::svm
