#include "core/boot/cpu_state.hpp"

namespace hv {

namespace {

kvm_segment real_mode_segment(std::uint16_t selector, std::uint8_t type)
{
    kvm_segment s{};
    s.selector = selector;
    s.base = std::uint64_t{selector} << 4;
    s.limit = 0xffff;
    s.type = type;
    s.present = 1;
    s.s = 1;
    return s;
}

// Real mode at cs_selector:rip with the segment base given, and the rest of the CPU as after
// INIT.
void set_real_mode(kvm::Vcpu& v, std::uint16_t cs_selector, std::uint64_t cs_base,
                   std::uint64_t rip)
{
    kvm_sregs s = v.get_sregs();
    s.cs = real_mode_segment(cs_selector, 0xb);
    s.cs.base = cs_base;
    s.ds = s.es = s.fs = s.gs = s.ss = real_mode_segment(0, 0x3);
    s.cr0 = 0x60000010;
    s.cr3 = 0;
    s.cr4 = 0;
    s.efer = 0;
    v.set_sregs(s);
    kvm_regs r{};
    r.rip = rip;
    r.rflags = 0x2;
    v.set_regs(r);
}

}  // namespace

void set_multiboot_state(kvm::Vcpu& v, const BootInfo& boot)
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
    r.rip = boot.entry;
    r.rax = kMultibootBootMagic;
    r.rbx = boot.info_addr;
    r.rflags = 0x2;
    v.set_regs(r);
}

void set_reset_state(kvm::Vcpu& v)
{
    set_real_mode(v, 0xf000, 0xffff0000, 0xfff0);
}

void set_sipi_state(kvm::Vcpu& v, std::uint8_t vector)
{
    auto sel = static_cast<std::uint16_t>(vector << 8);
    set_real_mode(v, sel, std::uint64_t{sel} << 4, 0);
}

}  // namespace hv
