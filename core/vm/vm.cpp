#include "core/vm/vm.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>

#include "apic/emulated.hpp"
#include "core/base/clock.hpp"
#include "core/base/error.hpp"
#include "core/devices/acpi_tables.hpp"
#include "core/host/backend.hpp"
#include "core/host/profile.hpp"
#include "core/interrupts/kernel_apic.hpp"
#include "core/vcpu/guest_cpuid.hpp"
#include "svm/avic_vm.hpp"
#include "vmx/apicv_backend.hpp"
#include "vmx/apicv_vm.hpp"

namespace hv {

namespace {

// Capabilities every VM needs, named for the error message when KVM lacks one.
constexpr kvm::Capability kRequired[] = {
    {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
    {KVM_CAP_X86_USER_SPACE_MSR, "KVM_CAP_X86_USER_SPACE_MSR"},
    {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
    {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
};

// Where KVM keeps the real-mode TSS and identity map on VMX hosts, inside the hole below 4 GiB
// (the same addresses QEMU uses).
constexpr std::uint64_t kTssAddr = 0xfffbd000;
constexpr std::uint64_t kIdentityMapAddr = 0xfeffc000;

// Checks what can be checked before touching KVM, so that a bad option is reported as such
// even on a host without /dev/kvm.
const VmConfig& validated(const VmConfig& cfg, bool restoring)
{
    if (cfg.memory_mib < (kMinMemory >> 20) || cfg.memory_mib > (kMaxMemory >> 20))
        fail("--memory {} MiB out of range ({} to {})", cfg.memory_mib, kMinMemory >> 20,
             kMaxMemory >> 20);
    if (cfg.vcpus == 0 || cfg.vcpus > kMaxVcpus)
        fail("--vcpus {} out of range (1 to {})", cfg.vcpus, kMaxVcpus);
    parse_apic_spec(cfg.apic);
    if (cfg.image.empty() && !restoring)
        fail("no image given");
    host::parse_pin(cfg.pin);  // syntax only; the CPUs are checked against the topology later
    return cfg;
}

std::vector<BootModule> read_modules(const VmConfig& cfg, std::uint64_t limit)
{
    std::vector<BootModule> mods;
    for (const auto& spec : cfg.modules) {
        std::string path = spec.substr(0, spec.find(' '));
        mods.push_back({spec, read_file(path, limit)});
    }
    return mods;
}

// Where COM1 output goes: "stdio", "none" or a file (truncated).
Fd open_serial(const std::string& spec)
{
    int fd = -1;
    if (spec == "stdio")
        fd = ::fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 0);
    else if (spec == "none")
        fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    else
        fd = ::open(spec.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        throw_errno(fmt::format("--serial {}", spec));
    return Fd(fd);
}

}  // namespace

Vm::Vm(const VmConfig& cfg, const RestoreSource* restore)
    : cfg_(validated(cfg, restore != nullptr)), restore_(restore), created_ns_(monotonic_ns()),
      image_(restore ? std::vector<std::uint8_t>{} : read_file(cfg_.image, cfg_.memory_mib << 20)),
      modules_(restore ? std::vector<BootModule>{}
                       : (plan_multiboot(image_), read_modules(cfg_, cfg_.memory_mib << 20))),
      serial_fd_(open_serial(cfg_.serial)), sys_(cfg.kvm_path), vm_((check_capabilities(), sys_)),
      mem_(cfg.memory_mib << 20)
{
    restored_ = restore != nullptr;
    choose_apic_backend();
    auto max_vcpus = static_cast<unsigned>(sys_.check_extension(KVM_CAP_MAX_VCPUS));
    if (max_vcpus && cfg_.vcpus > max_vcpus)
        fail("--vcpus {}: this KVM allows at most {}", cfg_.vcpus, max_vcpus);
    auto pin = host::parse_pin(cfg_.pin);
    if (pin.mode != host::PinRequest::Mode::None)
        pin_plan_ = host::make_pin_plan(host::read_topology(), cfg_.vcpus, pin);
    setup_memory();
    setup_devices();
    if (!restore_) {
        boot_ = load_multiboot(mem_, image_, cfg_.image, cfg_.cmdline, modules_);
        image_ = {};
        modules_ = {};
    }
    setup_vcpus();
    restore_ = nullptr;
}

Vm::~Vm()
{
    for (auto& v : vcpus_)
        v->request_stop();
    for (auto& v : vcpus_)
        v->join();
    if (interrupts_)
        interrupts_->stop();
    if (uart_)
        uart_->flush();
}

ApicSpec parse_apic_spec(const std::string& text)
{
    ApicSpec spec;
    std::size_t comma = text.find(',');
    spec.name = text.substr(0, comma);
    if (spec.name != host::kAutoBackend && !host::is_backend_name(spec.name))
        fail("--apic {}: unknown APIC backend (available: auto, kernel, emulated, apicv, avic)",
             text);
    while (comma != std::string::npos) {
        std::size_t next = text.find(',', comma + 1);
        std::string opt =
            text.substr(comma + 1, next == std::string::npos ? next : next - comma - 1);
        bool avic = spec.name == "avic", apicv = spec.name == "apicv";
        if (avic && opt == "x2avic")
            spec.x2avic = true;
        else if (avic && opt == "erratum1235")
            spec.erratum_1235 = true;
        else if (apicv && opt == "noipiv")
            spec.ipiv = false;
        else if (apicv && opt == "nopi")
            spec.posted = false;
        else if (apicv && opt == "novid")
            spec.vid = false;
        else if (apicv && opt == "nox2apic")
            spec.x2apic_virt = false;
        else
            fail("--apic {}: unknown option '{}' for {} (avic: x2avic, erratum1235; apicv: "
                 "noipiv, nopi, novid, nox2apic)",
                 text, opt, spec.name);
        comma = next;
    }
    return spec;
}

// The host profile decides (core/host/backend.hpp): `auto` takes KVM's own LAPIC where KVM
// offers the split irqchip — on hosts with APICv or AVIC that is the hardware path — and the
// errata of the host's CPU apply to the models (AMD 1235: IsRunning never set).
void Vm::choose_apic_backend()
{
    apic_spec_ = parse_apic_spec(cfg_.apic);
    host::HostProfile profile = host::probe_host();
    // The errata of this host, each reported once as a warning with its workaround (the
    // early-Ryzen idle lockups suggest --pm-qos; AMD 1235 switches avic to its erratum mode).
    for (const auto& m : profile.errata)
        std::fprintf(stderr, "hvaccel: warning: host erratum %.*s (%.*s): %.*s\n",
                     static_cast<int>(m.erratum->id.size()), m.erratum->id.data(),
                     static_cast<int>(m.erratum->title.size()), m.erratum->title.data(),
                     static_cast<int>(m.erratum->workaround.size()), m.erratum->workaround.data());
    host::BackendChoice choice = host::choose_backend(profile, apic_spec_.name);
    if (choice.refused)
        fail("--apic {}: {}", cfg_.apic, choice.reason);
    for (const auto& e : choice.errata_applied)
        if (e == "AMD-1235" && choice.backend == "avic") {
            apic_spec_.erratum_1235 = true;
            choice.reason += " (erratum 1235 mode: IsRunning never set)";
        }
    apic_backend_ = choice.backend;
    apic_reason_ = choice.reason;
    if (apic_spec_.x2avic)
        apic_reason_ += ", x2AVIC";
    if (apic_backend_ == "apicv")
        apic_reason_ +=
            fmt::format(", IPIv {}, posted interrupts {}, VID {}, x2APIC virtualization {}",
                        apic_spec_.ipiv ? "on" : "off", apic_spec_.posted ? "on" : "off",
                        apic_spec_.vid ? "on" : "off", apic_spec_.x2apic_virt ? "on" : "off");
    if (apic_spec_.erratum_1235 && choice.errata_applied.empty())
        apic_reason_ += ", erratum 1235 mode";
}

void Vm::check_capabilities()
{
    for (const auto& cap : kRequired)
        sys_.require(cap);
}

void Vm::setup_memory()
{
    std::uint32_t slot = 0;
    for (const auto& r : mem_.regions())
        vm_.set_memory_region(slot++, r.gpa, r.size, r.host);
    vm_.set_tss_addr(kTssAddr);
    vm_.set_identity_map_addr(kIdentityMapAddr);
    // MSRs KVM does not know or refuses exit to userspace, where Vm::msr_read/msr_write dispatch
    // them. The x2APIC range needs INVAL: KVM exempts it from MSR filters and, without an
    // in-kernel LAPIC, refuses it rather than calling it unknown.
    vm_.enable_cap(KVM_CAP_X86_USER_SPACE_MSR, KVM_MSR_EXIT_REASON_UNKNOWN |
                                                   KVM_MSR_EXIT_REASON_INVAL |
                                                   KVM_MSR_EXIT_REASON_FILTER);
    if (apic_in_kernel()) {
        // The LAPICs in KVM, the IOAPIC here (24 pins routed as MSIs); 32-bit x2APIC IDs in
        // KVM_GET_LAPIC and MSIs. Both before any vCPU exists.
        vm_.enable_cap(KVM_CAP_SPLIT_IRQCHIP, 24);
        vm_.enable_cap(KVM_CAP_X2APIC_API,
                       KVM_X2APIC_API_USE_32BIT_IDS | KVM_X2APIC_API_DISABLE_BROADCAST_QUIRK);
        return;
    }
    // IA32_APIC_BASE and IA32_TSC_DEADLINE are KVM's own MSRs: filter them (an empty bitmap
    // denies, i.e. exits) so that the userspace APIC owns them. The x2APIC range is listed too,
    // for kernels that still filter it.
    static const std::uint8_t kDenyAll[0x100 / 8] = {};
    kvm_msr_filter f{};
    f.flags = KVM_MSR_FILTER_DEFAULT_ALLOW;
    const std::uint32_t ranges[][2] = {
        {apic::kMsrApicBase, 1}, {apic::kMsrTscDeadline, 1}, {apic::kX2apicMsrFirst, 0x100}};
    for (std::size_t i = 0; i < std::size(ranges); ++i) {
        f.ranges[i].flags = KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE;
        f.ranges[i].base = ranges[i][0];
        f.ranges[i].nmsrs = ranges[i][1];
        f.ranges[i].bitmap = const_cast<std::uint8_t*>(kDenyAll);
    }
    vm_.set_msr_filter(f);
}

void Vm::setup_devices()
{
    uart_ = std::make_unique<dev::Uart16550>(serial_fd_.get());
    pio_.attach(dev::Uart16550::kCom1, dev::Uart16550::kPorts, uart_.get(), "COM1");
    debug_exit_ = std::make_unique<dev::DebugExit>([this](int status) { request_stop(status); });
    pio_.attach(dev::DebugExit::kPort, dev::DebugExit::kPorts, debug_exit_.get(), "debug-exit");
    fw_cfg_ = std::make_unique<dev::FwCfg>(mem_.size(), static_cast<std::uint16_t>(cfg_.vcpus),
                                           static_cast<std::uint16_t>(cfg_.vcpus));
    pio_.attach(dev::FwCfg::kPort, dev::FwCfg::kPorts, fw_cfg_.get(), "fw_cfg");
    pic_master_ = std::make_unique<dev::Pic8259>();
    pic_slave_ = std::make_unique<dev::Pic8259>();
    pio_.attach(dev::Pic8259::kMaster, dev::Pic8259::kPorts, pic_master_.get(), "PIC master");
    pio_.attach(dev::Pic8259::kSlave, dev::Pic8259::kPorts, pic_slave_.get(), "PIC slave");
    pm_timer_ = std::make_unique<dev::PmTimer>();
    pio_.attach(dev::PmTimer::kPort, dev::PmTimer::kPorts, pm_timer_.get(), "PM timer");

    dev::AcpiConfig acpi;
    acpi.cpus = cfg_.vcpus;
    dev::write_acpi_tables(mem_, acpi);
}

void Vm::setup_vcpus()
{
    supported_cpuid_ = sys_.supported_cpuid();
    const auto& supported = supported_cpuid_;
    CpuidApicFeatures apic;
    dead_halt_.assign(cfg_.vcpus, false);
    for (unsigned i = 0; i < cfg_.vcpus; ++i) {
        auto v = std::make_unique<VcpuThread>(*this, i);
        v->kvm().set_cpuid(guest_cpuid(supported, i, cfg_.vcpus, apic));
        if (i == 0 && !restore_)
            set_boot_state(v->kvm());
        vcpus_.push_back(std::move(v));
    }
    if (restore_) {
        check_restorable(restore_->state);  // everything checked before anything is applied
        restore_memory(restore_->state);
        restore_cpus(restore_->state);  // before the guest clock is read from the TSC
    }
    setup_interrupts();
    if (restore_)
        restore_devices(restore_->state);
}

// One backend per vCPU, the IOAPIC on the MMIO bus, and the guest clock. The guest TSC is
// KVM's: read vCPU 0's IA32_TSC beside the host TSC once to learn the offset.
// The APIC the guest's CPUID describes, the same for every backend: no CMCI (hvaccel sets up
// no machine-check banks), directed EOI (the IOAPIC has an EOI register), and the
// physical-address width that bounds IA32_APIC_BASE.
apic::ApicCaps Vm::apic_caps() const
{
    apic::ApicCaps caps;
    caps.cmci = false;
    caps.directed_eoi = true;
    for (const auto& e : supported_cpuid_)
        if (e.function == 0x80000008)
            caps.maxphyaddr = e.eax & 0xff;
    return caps;
}

void Vm::setup_interrupts()
{
    kvm::Vcpu& v0 = vcpus_[0]->kvm();
    std::uint64_t host_tsc = __builtin_ia32_rdtsc();
    std::uint64_t guest_tsc = v0.get_msr(0x10);  // IA32_TIME_STAMP_COUNTER
    std::uint64_t tsc_hz = std::uint64_t{v0.tsc_khz()} * 1000;
    interrupts_ = std::make_unique<Interrupts>(guest_tsc - host_tsc, tsc_hz);
    apic::ApicCaps caps = apic_caps();
    if (apic_in_kernel()) {
        for (unsigned i = 0; i < cfg_.vcpus; ++i) {
            interrupts_->add(std::make_unique<KernelApic>(vm_, vcpus_[i]->kvm(), caps));
            vcpus_[i]->set_apic(&interrupts_->backend(i));
        }
        interrupts_->use_kernel_irqchip(vm_);
    }
    if (apic_backend_ == "apicv") {
        vmx::ApicvOptions opts;
        opts.ipiv = apic_spec_.ipiv;
        opts.posted_interrupts = apic_spec_.posted;
        opts.virtual_interrupt_delivery = apic_spec_.vid;
        opts.x2apic_virtualization = apic_spec_.x2apic_virt;
        try {
            apicv_ = std::make_unique<vmx::ApicvVm>(cfg_.vcpus, opts);
        } catch (const std::invalid_argument& e) {
            fail("--apic {}: {}", cfg_.apic, e.what());
        }
    }
    if (apic_backend_ == "avic") {
        svm::AvicOptions opts;
        opts.x2avic = apic_spec_.x2avic;
        opts.erratum_1235 = apic_spec_.erratum_1235;
        avic_ = std::make_unique<svm::AvicVm>(cfg_.vcpus, opts);
    }
    for (unsigned i = 0; i < cfg_.vcpus && !apic_in_kernel(); ++i) {
        apic::LocalApicConfig lc;
        lc.id = i;
        lc.bsp = i == 0;
        lc.caps = caps;
        lc.tsc_hz = tsc_hz;
        // A periodic timer fires at most every 100 us on the host, as KVM's min_timer_period_us
        // keeps a guest from turning the host timer into a storm.
        lc.min_period_ns = 100'000;
        // The notification / doorbell targets the host CPU the vCPU thread is pinned to (--pin).
        const host::PinEntry* pin = pin_entry(i);
        if (apicv_) {
            if (pin && pin->host_apic_id)
                apicv_->set_host_apic_id(i, *pin->host_apic_id);
            interrupts_->add(apicv_->make_backend(i, lc, *interrupts_, *interrupts_, *vcpus_[i]));
        } else if (avic_) {
            if (pin && pin->host_apic_id)
                avic_->set_host_apic_id(i, *pin->host_apic_id);
            interrupts_->add(avic_->make_backend(i, lc, *interrupts_, *interrupts_, *vcpus_[i]));
        } else {
            interrupts_->add(std::make_unique<apic::EmulatedApic>(i, lc, *interrupts_, *interrupts_,
                                                                  *vcpus_[i]));
        }
        vcpus_[i]->set_apic(&interrupts_->backend(i));
    }
    if (apicv_) {
        // APICv's EOI-exit bitmap must name the vectors of level-triggered IOAPIC routes.
        interrupts_->on_ioapic_change([this](const apic::VectorWords& level_vectors) {
            for (unsigned i = 0; i < cfg_.vcpus; ++i)
                static_cast<vmx::ApicvBackend&>(interrupts_->backend(i))
                    .set_ioapic_eoi_vectors(level_vectors);
        });
    }
    mmio_.attach(apic::ioapic::kDefaultBase, apic::ioapic::kMmioSize, &interrupts_->ioapic_mmio(),
                 "IOAPIC");
    irq_testdev_ = std::make_unique<dev::IrqTestDev>(
        [this](unsigned pin, bool level) { interrupts_->ioapic().set_irq(pin, level); });
    pio_.attach(dev::IrqTestDev::kPort, dev::IrqTestDev::kLines, irq_testdev_.get(),
                "IRQ test lines");
    pci_.attach(pio_, mmio_);
    if (cfg_.irqdev)
        setup_passthrough();
}

// The passthrough-style device in slot 1 (requester ID 00:01.0) and the remapping path that
// carries its MSIs on this VM's backend (core/passthrough.hpp).
void Vm::setup_passthrough()
{
    constexpr unsigned kSlot = 1;
    constexpr std::uint16_t kSourceId = kSlot << 3;  // bus 0, device 1, function 0
    RemappingContext ctx{*interrupts_, vm_};
    ctx.apicv = apicv_.get();
    ctx.avic = avic_.get();
    ctx.kernel_irqchip = apic_in_kernel();
    ctx.entries = dev::irqdev::kEntries;
    remapping_ = make_interrupt_remapping(ctx);
    InterruptRemapping& r = *remapping_;
    irq_device_ = std::make_unique<dev::IrqDevice>(
        mem_, interrupts_->tsc_offset(),
        [this, &r](unsigned entry) {
            r.program(kSourceId, entry, irq_device_->msix().entry(entry));
        },
        [&r](unsigned entry, const dev::MsixEntry&) { r.send(kSourceId, entry); });
    pci_.add(kSlot, irq_device_.get());
}

// Multiboot 0.6.96 3.2 "Machine state": 32-bit protected mode, flat 4 GiB segments, paging off,
// interrupts off, EAX = 0x2BADB002, EBX = physical address of the information structure.
void Vm::set_boot_state(kvm::Vcpu& v)
{
    kvm_sregs s = v.get_sregs();
    kvm_segment code{};
    code.base = 0;
    code.limit = 0xffffffff;
    code.selector = 0x10;  // QEMU's multiboot option ROM uses these selectors
    code.type = 0xb;       // execute/read, accessed
    code.present = 1;
    code.s = 1;
    code.db = 1;
    code.g = 1;
    kvm_segment data = code;
    data.selector = 0x18;
    data.type = 0x3;  // read/write, accessed
    s.cs = code;
    s.ds = s.es = s.fs = s.gs = s.ss = data;
    s.cr0 = 0x11;  // PE | ET
    s.cr4 = 0;
    s.efer = 0;
    v.set_sregs(s);
    kvm_regs r{};
    r.rip = boot_.entry;
    r.rax = kMultibootBootMagic;
    r.rbx = boot_.info_addr;
    r.rflags = 0x2;
    v.set_regs(r);
}

const host::PinEntry* Vm::pin_entry(unsigned i) const
{
    return i < pin_plan_.entries.size() ? &pin_plan_.entries[i] : nullptr;
}

int Vm::run()
{
    // Keep the host out of deep C-states while vCPUs may idle (the early-Ryzen lockup
    // mitigation, and latency runs); released when run() returns.
    std::optional<host::PmQosHold> pm_qos;
    if (cfg_.pm_qos)
        pm_qos.emplace();
    interrupts_->start();
    for (auto& v : vcpus_)
        v->start();
    running_ns_ = monotonic_ns();
    {
        // With KVM's LAPIC, halts happen inside KVM: ask the vCPUs every second whether they
        // are stuck, so that a guest halted for good ends instead of hanging.
        std::unique_lock lk(stop_mu_);
        while (!stop_cv_.wait_for(lk, std::chrono::seconds(1), [this] { return stopping(); })) {
            if (!apic_in_kernel())
                continue;
            lk.unlock();
            for (auto& v : vcpus_)
                v->request_liveness_check();
            lk.lock();
        }
    }
    for (auto& v : vcpus_)
        v->request_stop();
    for (auto& v : vcpus_)
        v->join();
    interrupts_->stop();
    uart_->flush();
    if (!exit_message_.empty())
        std::fprintf(stderr, "hvaccel: %s\n", exit_message_.c_str());
    if (cfg_.stats)
        std::fputs(stats_report().c_str(), stderr);
    return exit_status_;
}

void Vm::request_stop(int status, const std::string& message)
{
    {
        std::lock_guard lk(stop_mu_);
        if (stopping())
            return;
        exit_status_ = status;
        exit_message_ = message;
        stopping_.store(true, std::memory_order_release);
    }
    stop_cv_.notify_all();
    for (auto& v : vcpus_)
        v->request_stop();
}

void Vm::pause()
{
    std::lock_guard lk(control_mu_);
    if (!paused_.exchange(true))
        pause_vcpus();
}

void Vm::resume()
{
    std::lock_guard lk(control_mu_);
    if (paused_.exchange(false))
        resume_vcpus();
}

void Vm::pause_vcpus()
{
    if (irq_device_)
        irq_device_->quiesce();  // a device stops raising while the guest is stopped
    for (auto& v : vcpus_)
        v->request_pause();
    for (auto& v : vcpus_)
        v->wait_paused();
}

void Vm::resume_vcpus()
{
    for (auto& v : vcpus_)
        v->request_resume();
    if (irq_device_)
        irq_device_->resume();
}

// Userspace MSRs: the local APIC's; anything else takes #GP as an unimplemented MSR does.
bool Vm::msr_read(unsigned vcpu, std::uint32_t msr, std::uint64_t& value)
{
    auto r = interrupts_->backend(vcpu).msr_read(msr);
    value = r.value;
    return r.is_ok();
}

bool Vm::msr_write(unsigned vcpu, std::uint32_t msr, std::uint64_t value)
{
    return interrupts_->backend(vcpu).msr_write(msr, value).is_ok();
}

void Vm::note_parked(unsigned vcpu)
{
    {
        std::lock_guard lk(stop_mu_);
        dead_halt_.at(vcpu) = true;
    }
    check_all_stuck();
}

void Vm::note_dead_halt(unsigned vcpu, std::uint64_t rip)
{
    {
        std::lock_guard lk(stop_mu_);
        dead_halt_.at(vcpu) = true;
        last_dead_halt_ = {vcpu, rip};
    }
    check_all_stuck();
}

void Vm::check_all_stuck()
{
    bool all_dead = true;
    std::pair<unsigned, std::uint64_t> where;
    {
        std::lock_guard lk(stop_mu_);
        where = last_dead_halt_;
        for (unsigned i = 0; i < dead_halt_.size(); ++i) {
            if (dead_halt_[i])
                continue;
            if (vcpus_[i]->state() != VcpuState::WaitForSipi)
                all_dead = false;
        }
    }
    if (all_dead)
        request_stop(kExitGuestCrash,
                     fmt::format("guest halted with interrupts disabled on every vCPU "
                                 "(vCPU {} at RIP {:#x})",
                                 where.first, where.second));
}

void Vm::note_alive(unsigned vcpu)
{
    std::lock_guard lk(stop_mu_);
    dead_halt_.at(vcpu) = false;
}

std::string Vm::stats_report() const
{
    std::string out =
        fmt::format("hvaccel statistics\n  APIC backend {} ({})\n", apic_backend_, apic_reason_);
    if (running_ns_)
        out += fmt::format("  vCPUs running {:.3f} ms after the VM was begun ({})\n",
                           static_cast<double>(running_ns_ - created_ns_) / 1e6,
                           restored_ ? "restored" : "booted");
    for (const auto& v : vcpus_) {
        const auto& s = v->stats();
        out += fmt::format("  vCPU {}: kicks {} wakes {} msr-faults {}\n", v->id(), s.kicks.load(),
                           s.wakes.load(), s.msr_faults.load());
        for (std::size_t r = 0; r < s.exits.size(); ++r) {
            auto n = s.exits[r].load();
            if (!n)
                continue;
            const char* name = kvm_exit_name(static_cast<std::uint32_t>(r));
            out += fmt::format("    exit {:<14} {}\n", name ? name : fmt::format("#{}", r), n);
        }
        // The APIC backend's own counters: architectural exits by reason, deliveries by source.
        auto& b = interrupts_->backend(v->id());
        for (const auto& list : {b.exit_counters(), b.stats()})
            for (const auto& c : list)
                if (c.value)
                    out += fmt::format("    apic {:<14} {}\n", c.name, c.value);
    }
    out += "  " + pci_.stats() + "\n";
    if (irq_device_)
        out += "  " + irq_device_->stats() + "\n";
    if (remapping_) {
        out += fmt::format("  interrupt remapping: {}\n", remapping_->path());
        for (const auto& c : remapping_->counters())
            out += fmt::format("    iommu {:<16} {}\n", c.name, c.value);
    }
    out += fmt::format("  guest RAM resident: {} KiB of {} MiB\n", mem_.resident_bytes() >> 10,
                       mem_.size() >> 20);
    out += fmt::format("  unclaimed: port reads {} writes {}, MMIO reads {} writes {}\n",
                       pio_.unclaimed_reads(), pio_.unclaimed_writes(), mmio_.unclaimed_reads(),
                       mmio_.unclaimed_writes());
    return out;
}

}  // namespace hv
