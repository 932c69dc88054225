#include "core/vm/vm.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>

#include "core/base/clock.hpp"
#include "core/base/error.hpp"
#include "core/base/file.hpp"
#include "core/boot/cpu_state.hpp"
#include "core/devices/acpi_tables.hpp"
#include "core/host/backend.hpp"
#include "core/vcpu/guest_cpuid.hpp"

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
    host::parse_apic_spec(cfg.apic);
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

// Where COM1 output goes: "stdio", "none" or a file of this user's (core/base/file.hpp).
Fd open_serial(const std::string& spec)
{
    int fd = -1;
    if (spec == "stdio")
        fd = ::fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 0);
    else if (spec == "none")
        fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    else
        return open_output_file(spec, "--serial " + spec);
    if (fd < 0) {
        const int err = errno;
        throw_errno(fmt::format("--serial {}", spec), err);
    }
    return Fd(fd);
}

}  // namespace

Vm::Vm(const VmConfig& cfg, const RestoreSource* restore)
    : cfg_(validated(cfg, restore != nullptr)), restore_(restore), created_ns_(monotonic_ns()),
      image_(restore ? std::vector<std::uint8_t>{} : read_file(cfg_.image, cfg_.memory_mib << 20)),
      modules_(restore ? std::vector<BootModule>{}
                       : (plan_multiboot(image_), read_modules(cfg_, cfg_.memory_mib << 20))),
      serial_fd_(open_serial(cfg_.serial)), disk_images_(open_disks(cfg_)), sys_(cfg.kvm_path),
      vm_((check_capabilities(), sys_)), mem_(cfg.memory_mib << 20)
{
    restored_ = restore != nullptr;
    apic_ = choose_vm_apic(cfg_.apic, cfg_.vcpus);
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
    apic_->prepare(vm_);
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
        auto v =
            std::make_unique<VcpuThread>(*this, sys_, vm_, i, apic_->lapic_in_kvm(), pin_entry(i));
        v->kvm().set_cpuid(guest_cpuid(supported, i, cfg_.vcpus, apic));
        if (i == 0 && !restore_)
            set_multiboot_state(v->kvm(), boot_);
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
    for (unsigned i = 0; i < cfg_.vcpus; ++i) {
        VcpuApicSetup s{.index = i,
                        .config = {},
                        .interrupts = *interrupts_,
                        .vm = vm_,
                        .vcpu = vcpus_[i]->kvm(),
                        .notifier = *vcpus_[i],
                        .host_apic_id = {}};
        s.config.id = i;
        s.config.bsp = i == 0;
        s.config.caps = caps;
        s.config.tsc_hz = tsc_hz;
        // A periodic timer fires at most every 100 us on the host, as KVM's min_timer_period_us
        // keeps a guest from turning the host timer into a storm.
        s.config.min_period_ns = 100'000;
        if (const host::PinEntry* pin = pin_entry(i))
            s.host_apic_id = pin->host_apic_id;
        interrupts_->add(apic_->make_vcpu_apic(s));
        vcpus_[i]->set_apic(&interrupts_->backend(i));
    }
    apic_->attach(*interrupts_, vm_);
    mmio_.attach(apic::ioapic::kDefaultBase, apic::ioapic::kMmioSize, &interrupts_->ioapic_mmio(),
                 "IOAPIC");
    irq_testdev_ = std::make_unique<dev::IrqTestDev>(
        [this](unsigned pin, bool level) { interrupts_->ioapic().set_irq(pin, level); });
    pio_.attach(dev::IrqTestDev::kPort, dev::IrqTestDev::kLines, irq_testdev_.get(),
                "IRQ test lines");
    pci_.attach(pio_, mmio_);
    if (cfg_.irqdev)
        setup_passthrough();
    setup_disks();
}

// The passthrough-style device in slot 1 (requester ID 00:01.0) and the remapping path that
// carries its MSIs on this VM's backend (core/passthrough/remapping.hpp).
void Vm::setup_passthrough()
{
    constexpr unsigned kSlot = 1;
    constexpr std::uint16_t kSourceId = kSlot << 3;  // bus 0, device 1, function 0
    remapping_ = apic_->make_remapping({*interrupts_, vm_, dev::irqdev::kEntries});
    InterruptRemapping& r = *remapping_;
    irq_device_ = std::make_unique<dev::IrqDevice>(
        mem_, interrupts_->tsc_offset(),
        [this, &r](unsigned entry) {
            r.program(kSourceId, entry, irq_device_->msix().entry(entry));
        },
        [&r](unsigned entry, const dev::MsixEntry&) { r.send(kSourceId, entry); });
    pci_.add(kSlot, irq_device_.get());
}

const host::PinEntry* Vm::pin_entry(unsigned i) const
{
    return i < pin_plan_.entries.size() ? &pin_plan_.entries[i] : nullptr;
}

}  // namespace hv
