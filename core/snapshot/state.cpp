#include "core/snapshot/state.hpp"

// GCC 12 reports "null pointer dereference" inside nlohmann::json's iterators when they are
// inlined here (a known false positive of -Wnull-dereference with that library).
#pragma GCC diagnostic ignored "-Wnull-dereference"

#include "core/base/error.hpp"
#include "core/snapshot/file.hpp"
#include "core/snapshot/sections.hpp"

namespace hv::snapshot {

using nlohmann::json;

namespace {

std::string hex(std::uint64_t v)
{
    return fmt::format("{:#x}", v);
}

// --- writing ---------------------------------------------------------------------------------

json section(json data, bool optional = false)
{
    return {{"version", kSectionVersion},
            {"min_version", 1},
            {"optional", optional},
            {"data", std::move(data)}};
}

json seg_json(const kvm_segment& s)
{
    return {{"base", hex(s.base)},
            {"limit", hex(s.limit)},
            {"selector", hex(s.selector)},
            {"type", s.type},
            {"present", s.present},
            {"dpl", s.dpl},
            {"db", s.db},
            {"s", s.s},
            {"l", s.l},
            {"g", s.g},
            {"avl", s.avl},
            {"unusable", s.unusable}};
}

json dt_json(const kvm_dtable& d)
{
    return {{"base", hex(d.base)}, {"limit", hex(d.limit)}};
}

const char* run_state_name(apic::RunState r)
{
    switch (r) {
    case apic::RunState::Running:
        return "running";
    case apic::RunState::Halted:
        return "halted";
    case apic::RunState::WaitForSipi:
        return "wait-for-sipi";
    }
    return "?";
}

json words_json(const std::array<std::uint32_t, 8>& w)
{
    json a = json::array();
    for (auto v : w)
        a.push_back(hex(v));
    return a;
}

json apic_json(const apic::ApicState& a)
{
    json lvt;
    for (std::size_t i = 0; i < apic::kLvtCount; ++i)
        lvt[kLvtNames[i]] = hex(a.lvt[i]);
    return {{"apic_base", hex(a.apic_base)},
            {"id", a.id},
            {"version", hex(a.version)},
            {"tpr", hex(a.tpr)},
            {"ldr", hex(a.ldr)},
            {"dfr", hex(a.dfr)},
            {"svr", hex(a.svr)},
            {"isr", words_json(a.isr)},
            {"tmr", words_json(a.tmr)},
            {"irr", words_json(a.irr)},
            {"esr", hex(a.esr)},
            {"esr_pending", hex(a.esr_pending)},
            {"lvt", lvt},
            {"icr", hex(a.icr)},
            {"timer_initial", a.timer_initial},
            {"timer_remaining", a.timer_remaining},
            {"timer_divide", hex(a.timer_divide)},
            {"tsc_deadline", hex(a.tsc_deadline)},
            {"run_state", run_state_name(a.run_state)}};
}

json vcpu_json(const VcpuRecord& v, std::uint64_t xsave_blob)
{
    const auto& r = v.regs;
    json regs = {{"rax", hex(r.rax)}, {"rbx", hex(r.rbx)}, {"rcx", hex(r.rcx)},
                 {"rdx", hex(r.rdx)}, {"rsi", hex(r.rsi)}, {"rdi", hex(r.rdi)},
                 {"rsp", hex(r.rsp)}, {"rbp", hex(r.rbp)}, {"r8", hex(r.r8)},
                 {"r9", hex(r.r9)},   {"r10", hex(r.r10)}, {"r11", hex(r.r11)},
                 {"r12", hex(r.r12)}, {"r13", hex(r.r13)}, {"r14", hex(r.r14)},
                 {"r15", hex(r.r15)}, {"rip", hex(r.rip)}, {"rflags", hex(r.rflags)}};
    const auto& s = v.sregs;
    json sregs = {{"cs", seg_json(s.cs)},  {"ds", seg_json(s.ds)},   {"es", seg_json(s.es)},
                  {"fs", seg_json(s.fs)},  {"gs", seg_json(s.gs)},   {"ss", seg_json(s.ss)},
                  {"tr", seg_json(s.tr)},  {"ldt", seg_json(s.ldt)}, {"gdt", dt_json(s.gdt)},
                  {"idt", dt_json(s.idt)}, {"cr0", hex(s.cr0)},      {"cr2", hex(s.cr2)},
                  {"cr3", hex(s.cr3)},     {"cr4", hex(s.cr4)},      {"cr8", hex(s.cr8)},
                  {"efer", hex(s.efer)}};
    json msrs = json::object();
    for (const auto& [idx, val] : v.msrs)
        msrs[hex(idx)] = hex(val);
    const auto& e = v.events;
    json events = {
        {"exception",
         {{"injected", e.exception.injected},
          {"nr", e.exception.nr},
          {"has_error_code", e.exception.has_error_code},
          {"pending", e.exception.pending},
          {"error_code", e.exception.error_code}}},
        {"interrupt",
         {{"injected", e.interrupt.injected},
          {"nr", e.interrupt.nr},
          {"soft", e.interrupt.soft},
          {"shadow", e.interrupt.shadow}}},
        {"nmi",
         {{"injected", e.nmi.injected}, {"pending", e.nmi.pending}, {"masked", e.nmi.masked}}},
        {"sipi_vector", e.sipi_vector}};
    return {{"regs", regs},        {"sregs", sregs},
            {"msrs", msrs},        {"events", events},
            {"xcr0", hex(v.xcr0)}, {"xsave", {{"blob", xsave_blob}, {"length", v.xsave.size()}}}};
}

}  // namespace

json to_json(const VmState& s, const std::vector<std::uint64_t>& xsave_blobs)
{
    json sections;
    json features = json::object();
    for (const auto& [name, bits] : s.machine.cpuid_features)
        features[name] = hex(bits);
    sections["machine"] = section({{"vcpus", s.machine.vcpus},
                                   {"memory_mib", s.machine.memory_mib},
                                   {"image", s.machine.image},
                                   {"apic_backend", s.machine.apic_backend},
                                   {"tsc_khz", s.machine.tsc_khz},
                                   {"cpuid_features", features}});
    for (std::size_t i = 0; i < s.vcpus.size(); ++i) {
        sections[fmt::format("vcpu/{}", i)] = section(vcpu_json(s.vcpus[i], xsave_blobs.at(i)));
        sections[fmt::format("apic/{}", i)] = section(apic_json(s.vcpus[i].apic));
    }
    json redir = json::array();
    for (auto r : s.ioapic.redir)
        redir.push_back(hex(r));
    sections["ioapic"] = section({{"id", s.ioapic.id},
                                  {"ioregsel", hex(s.ioapic.ioregsel)},
                                  {"redir", redir},
                                  {"pin_levels", hex(s.ioapic.pin_levels)}});
    const auto& u = s.uart;
    sections["uart"] = section({{"ier", u.ier},
                                {"lcr", u.lcr},
                                {"mcr", u.mcr},
                                {"scr", u.scr},
                                {"fcr", u.fcr},
                                {"dll", u.dll},
                                {"dlm", u.dlm}});
    sections["pic"] = section({{"master_imr", s.pic_master.imr},
                               {"master_base", s.pic_master.base},
                               {"slave_imr", s.pic_slave.imr},
                               {"slave_base", s.pic_slave.base}});
    sections["pm_timer"] = section({{"ticks", s.pm_timer}});
    json runs = json::array();
    for (const auto& m : s.memory)
        runs.push_back({{"gpa", hex(m.gpa)}, {"length", hex(m.len)}, {"blob", m.blob}});
    sections["memory"] = section({{"runs", runs}, {"note", "pages not listed are zero"}});
    return {{"hvaccel", {{"format", fmt::format("{}.{}", kFormatMajor, kFormatMinor)}}},
            {"sections", sections}};
}
std::vector<std::string> diff(const json& a, const json& b)
{
    std::vector<std::string> out;
    json patch = json::diff(a, b);
    for (const auto& op : patch) {
        std::string path = op.at("path").get<std::string>();
        std::string what = op.at("op").get<std::string>();
        json before =
            a.contains(json::json_pointer(path)) ? a.at(json::json_pointer(path)) : json();
        json after = op.contains("value") ? op["value"] : json();
        out.push_back(fmt::format("{} {}: {} -> {}", what, path, before.dump(), after.dump()));
    }
    return out;
}

}  // namespace hv::snapshot
