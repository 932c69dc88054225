// Reading a snapshot document back into a VmState: every field checked, with one-line errors
// that name the file, the section and the field.
#include "core/snapshot/state.hpp"

// GCC 12 reports "null pointer dereference" inside nlohmann::json's iterators when they are
// inlined here (a known false positive of -Wnull-dereference with that library).
#pragma GCC diagnostic ignored "-Wnull-dereference"

#include <algorithm>
#include <limits>
#include <optional>
#include <set>

#include "core/base/error.hpp"
#include "core/snapshot/file.hpp"
#include "core/snapshot/sections.hpp"

namespace hv::snapshot {

using nlohmann::json;

namespace {

// Exactly what the writer produces: "0x" and 1 to 16 hex digits. No sign, no blanks, no octal
// or decimal strings ("010" is not 8 or 10 here; it is refused).
std::optional<std::uint64_t> parse_hex(const std::string& s)
{
    if (s.size() < 3 || s.size() > 18 || s[0] != '0' || s[1] != 'x')
        return std::nullopt;
    std::uint64_t x = 0;
    for (std::size_t i = 2; i < s.size(); ++i) {
        const char c = s[i];
        unsigned d = 0;
        if (c >= '0' && c <= '9')
            d = static_cast<unsigned>(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = static_cast<unsigned>(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            d = static_cast<unsigned>(c - 'A' + 10);
        else
            return std::nullopt;
        x = x << 4 | d;
    }
    return x;
}

// Reads fields of one JSON object with the context needed for a one-line error.
class In {
  public:
    In(const json& j, std::string where, const std::string& file)
        : j_(j), where_(std::move(where)), file_(file)
    {
        if (!j_.is_object())
            bad("", "expected an object");
    }

    [[noreturn]] void bad(const std::string& field, const std::string& why) const
    {
        if (field.empty())
            fail("snapshot {}: {}: {}", file_, where_, why);
        fail("snapshot {}: {}: field '{}': {}", file_, where_, field, why);
    }

    const json& at(const std::string& f) const
    {
        auto it = j_.find(f);
        if (it == j_.end())
            bad(f, "missing");
        return *it;
    }

    In sub(const std::string& f) const { return In(at(f), where_ + "." + f, file_); }

    // An unsigned integer given as a JSON number or a "0x..." string, within [lo, hi].
    std::uint64_t u(const std::string& f, std::uint64_t lo = 0,
                    std::uint64_t hi = std::numeric_limits<std::uint64_t>::max()) const
    {
        return check(f, value(at(f), f), lo, hi);
    }
    std::uint64_t check(const std::string& f, std::uint64_t v, std::uint64_t lo,
                        std::uint64_t hi) const
    {
        if (v < lo || v > hi)
            bad(f, fmt::format("{:#x} out of range [{:#x}, {:#x}]", v, lo, hi));
        return v;
    }
    std::uint64_t value(const json& v, const std::string& f) const
    {
        if (v.is_number_unsigned())
            return v.get<std::uint64_t>();
        if (v.is_number_integer() && v.get<std::int64_t>() >= 0)
            return static_cast<std::uint64_t>(v.get<std::int64_t>());
        if (v.is_string())
            if (auto x = parse_hex(v.get_ref<const std::string&>()))
                return *x;
        bad(f, "expected an unsigned integer (a number or a \"0x...\" string)");
    }
    std::string str(const std::string& f) const
    {
        const json& v = at(f);
        if (!v.is_string())
            bad(f, "expected a string");
        return v.get<std::string>();
    }
    template <std::size_t N> std::array<std::uint32_t, N> words(const std::string& f) const
    {
        const json& v = at(f);
        if (!v.is_array() || v.size() != N)
            bad(f, fmt::format("expected an array of {} values", N));
        std::array<std::uint32_t, N> out{};
        for (std::size_t i = 0; i < N; ++i)
            out[i] = static_cast<std::uint32_t>(
                check(fmt::format("{}[{}]", f, i), value(v[i], f), 0, 0xffffffffu));
        return out;
    }
    const json& raw() const { return j_; }
    const std::string& where() const { return where_; }

  private:
    const json& j_;
    std::string where_;
    const std::string& file_;
};

kvm_segment seg_from(const In& in)
{
    kvm_segment s{};
    s.base = in.u("base");
    s.limit = static_cast<std::uint32_t>(in.u("limit", 0, 0xffffffff));
    s.selector = static_cast<std::uint16_t>(in.u("selector", 0, 0xffff));
    s.type = static_cast<std::uint8_t>(in.u("type", 0, 15));
    s.present = static_cast<std::uint8_t>(in.u("present", 0, 1));
    s.dpl = static_cast<std::uint8_t>(in.u("dpl", 0, 3));
    s.db = static_cast<std::uint8_t>(in.u("db", 0, 1));
    s.s = static_cast<std::uint8_t>(in.u("s", 0, 1));
    s.l = static_cast<std::uint8_t>(in.u("l", 0, 1));
    s.g = static_cast<std::uint8_t>(in.u("g", 0, 1));
    s.avl = static_cast<std::uint8_t>(in.u("avl", 0, 1));
    s.unusable = static_cast<std::uint8_t>(in.u("unusable", 0, 1));
    return s;
}

kvm_dtable dt_from(const In& in)
{
    kvm_dtable d{};
    d.base = in.u("base");
    d.limit = static_cast<std::uint16_t>(in.u("limit", 0, 0xffff));
    return d;
}

apic::ApicState apic_from(const In& in)
{
    apic::ApicState a;
    a.apic_base = in.u("apic_base");
    a.id = static_cast<std::uint32_t>(in.u("id", 0, 0xffffffff));
    a.version = static_cast<std::uint32_t>(in.u("version", 0, 0xffffffff));
    a.tpr = static_cast<std::uint32_t>(in.u("tpr", 0, 0xff));
    a.ldr = static_cast<std::uint32_t>(in.u("ldr", 0, 0xffffffff));
    a.dfr = static_cast<std::uint32_t>(in.u("dfr", 0, 0xffffffff));
    a.svr = static_cast<std::uint32_t>(in.u("svr", 0, 0xffffffff));
    a.isr = in.words<8>("isr");
    a.tmr = in.words<8>("tmr");
    a.irr = in.words<8>("irr");
    a.esr = static_cast<std::uint32_t>(in.u("esr", 0, 0xffffffff));
    a.esr_pending = static_cast<std::uint32_t>(in.u("esr_pending", 0, 0xffffffff));
    In lvt = in.sub("lvt");
    for (std::size_t i = 0; i < apic::kLvtCount; ++i)
        a.lvt[i] = static_cast<std::uint32_t>(lvt.u(kLvtNames[i], 0, 0xffffffff));
    a.icr = in.u("icr");
    a.timer_initial = static_cast<std::uint32_t>(in.u("timer_initial", 0, 0xffffffff));
    a.timer_remaining = static_cast<std::uint32_t>(in.u("timer_remaining", 0, 0xffffffff));
    a.timer_divide = static_cast<std::uint32_t>(in.u("timer_divide", 0, 0xf));
    a.tsc_deadline = in.u("tsc_deadline");
    std::string rs = in.str("run_state");
    if (rs == "running")
        a.run_state = apic::RunState::Running;
    else if (rs == "halted")
        a.run_state = apic::RunState::Halted;
    else if (rs == "wait-for-sipi")
        a.run_state = apic::RunState::WaitForSipi;
    else
        in.bad("run_state", fmt::format("'{}' is not running, halted or wait-for-sipi", rs));
    return a;
}

VcpuRecord vcpu_from(const In& in, const Reader& r)
{
    VcpuRecord v;
    In g = in.sub("regs");
    auto& x = v.regs;
    __u64* gprs[] = {&x.rax, &x.rbx, &x.rcx, &x.rdx, &x.rsi, &x.rdi, &x.rsp, &x.rbp, &x.r8,
                     &x.r9,  &x.r10, &x.r11, &x.r12, &x.r13, &x.r14, &x.r15, &x.rip};
    const char* names[] = {"rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp", "r8",
                           "r9",  "r10", "r11", "r12", "r13", "r14", "r15", "rip"};
    for (std::size_t i = 0; i < std::size(names); ++i)
        *gprs[i] = g.u(names[i]);
    // RFLAGS bit 1 is always 1; bits 63:22 and 15, 5, 3 are reserved (SDM Vol1 3.4.3).
    x.rflags = g.u("rflags");
    if (!(x.rflags & 2) || (x.rflags & ~0x3f7fd7ull))
        g.bad("rflags", fmt::format("{:#x} has reserved bits wrong", x.rflags));
    In s = in.sub("sregs");
    auto& sr = v.sregs;
    kvm_segment* segs[] = {&sr.cs, &sr.ds, &sr.es, &sr.fs, &sr.gs, &sr.ss, &sr.tr, &sr.ldt};
    const char* seg_names[] = {"cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt"};
    for (std::size_t i = 0; i < std::size(seg_names); ++i)
        *segs[i] = seg_from(s.sub(seg_names[i]));
    sr.gdt = dt_from(s.sub("gdt"));
    sr.idt = dt_from(s.sub("idt"));
    sr.cr0 = s.u("cr0", 0, 0xffffffff);
    sr.cr2 = s.u("cr2");
    sr.cr3 = s.u("cr3");
    sr.cr4 = s.u("cr4", 0, 0xffffffff);
    sr.cr8 = s.u("cr8", 0, 15);
    sr.efer = s.u("efer", 0, 0xffff);
    In m = in.sub("msrs");
    for (const auto& [k, val] : m.raw().items()) {
        auto idx = m.check("msr " + k, m.value(json(k), k), 0, 0xffffffff);
        v.msrs.emplace_back(static_cast<std::uint32_t>(idx), m.value(val, k));
    }
    In ev = in.sub("events");
    In exc = ev.sub("exception"), irq = ev.sub("interrupt"), nmi = ev.sub("nmi");
    auto& e = v.events;
    e.exception.injected = static_cast<std::uint8_t>(exc.u("injected", 0, 1));
    e.exception.nr = static_cast<std::uint8_t>(exc.u("nr", 0, 31));
    e.exception.has_error_code = static_cast<std::uint8_t>(exc.u("has_error_code", 0, 1));
    e.exception.pending = static_cast<std::uint8_t>(exc.u("pending", 0, 1));
    e.exception.error_code = static_cast<std::uint32_t>(exc.u("error_code", 0, 0xffffffff));
    e.interrupt.injected = static_cast<std::uint8_t>(irq.u("injected", 0, 1));
    e.interrupt.nr = static_cast<std::uint8_t>(irq.u("nr", 0, 255));
    e.interrupt.soft = static_cast<std::uint8_t>(irq.u("soft", 0, 1));
    e.interrupt.shadow = static_cast<std::uint8_t>(irq.u("shadow", 0, 3));
    e.nmi.injected = static_cast<std::uint8_t>(nmi.u("injected", 0, 1));
    e.nmi.pending = static_cast<std::uint8_t>(nmi.u("pending", 0, 1));
    e.nmi.masked = static_cast<std::uint8_t>(nmi.u("masked", 0, 1));
    e.sipi_vector = static_cast<std::uint32_t>(ev.u("sipi_vector", 0, 255));
    v.xcr0 = in.u("xcr0");
    if (!(v.xcr0 & 1))
        in.bad("xcr0", "bit 0 (x87) must be set");
    In xs = in.sub("xsave");
    auto blob = r.blob(xs.u("blob"), xs.u("length", kXsaveSize, kXsaveSize), in.where() + ".xsave");
    v.xsave.assign(blob.begin(), blob.end());
    return v;
}

struct SectionTable {
    const json* sections;
    const Reader& r;
    std::set<std::string> used;

    // The data of a required section, after its version checks.
    In get(const std::string& name)
    {
        auto it = sections->find(name);
        if (it == sections->end())
            fail("snapshot {}: section '{}' is missing", r.name(), name);
        used.insert(name);
        In s(*it, fmt::format("section '{}'", name), r.name());
        auto min = s.u("min_version");
        if (min > kSectionVersion)
            s.bad("min_version", fmt::format("needs a reader of version {} (this hvaccel reads {})",
                                             min, kSectionVersion));
        return In(s.at("data"), fmt::format("section '{}'", name), r.name());
    }
    // Unknown sections: optional ones are ignored, required ones refused.
    void check_unknown() const
    {
        for (const auto& [name, sec] : sections->items()) {
            if (used.count(name))
                continue;
            bool optional = false;
            if (sec.is_object()) {
                auto o = sec.find("optional");
                optional = o != sec.end() && o->is_boolean() && o->get<bool>();
            }
            if (!optional)
                fail("snapshot {}: section '{}' is required but unknown to this hvaccel", r.name(),
                     name);
        }
    }
};

}  // namespace

VmState from_json(const Reader& r)
{
    const json& doc = r.doc();
    In(doc, "document", r.name()).sub("hvaccel").str("format");
    auto it = doc.find("sections");
    if (it == doc.end() || !it->is_object())
        fail("snapshot {}: no 'sections' object", r.name());
    SectionTable t{&*it, r, {}};
    VmState s;

    In m = t.get("machine");
    s.machine.vcpus = static_cast<unsigned>(m.u("vcpus", 1, 255));
    s.machine.memory_mib = m.u("memory_mib", 2, 65536);
    s.machine.image = m.str("image");
    s.machine.apic_backend = m.str("apic_backend");
    s.machine.tsc_khz = m.u("tsc_khz", 1, 100'000'000);
    In f = m.sub("cpuid_features");
    for (const auto& [name, val] : f.raw().items())
        s.machine.cpuid_features.emplace_back(
            name, static_cast<std::uint32_t>(f.check(name, f.value(val, name), 0, 0xffffffff)));

    for (unsigned i = 0; i < s.machine.vcpus; ++i) {
        VcpuRecord v = vcpu_from(t.get(fmt::format("vcpu/{}", i)), r);
        In a = t.get(fmt::format("apic/{}", i));
        v.apic = apic_from(a);
        // Checked here against the APIC its own version register describes; the restoring VM
        // checks it again against the APIC it offers (Vm::check_restorable).
        apic::ApicCaps caps;
        caps.cmci = ((v.apic.version >> 16) & 0xff) >= 6;
        caps.directed_eoi = (v.apic.version >> 24) & 1;
        if (auto err = apic::validate(v.apic, caps))
            a.bad("", *err);
        // vCPU 0 is the bootstrap processor: INIT restarts it at the reset vector (SDM Vol3
        // 9.1.1), so it never waits for a SIPI. A machine whose every vCPU waited would never run.
        if (i == 0 && v.apic.run_state == apic::RunState::WaitForSipi)
            a.bad("run_state", "vCPU 0 is the bootstrap processor and never waits for a SIPI");
        s.vcpus.push_back(std::move(v));
    }

    In io = t.get("ioapic");
    s.ioapic.id = static_cast<std::uint8_t>(io.u("id", 0, 15));
    s.ioapic.ioregsel = static_cast<std::uint32_t>(io.u("ioregsel", 0, 0xff));
    const json& redir = io.at("redir");
    if (!redir.is_array() || redir.size() != apic::ioapic::kPins)
        io.bad("redir", fmt::format("expected {} entries", apic::ioapic::kPins));
    for (std::size_t i = 0; i < apic::ioapic::kPins; ++i)
        s.ioapic.redir[i] = io.value(redir[i], fmt::format("redir[{}]", i));
    s.ioapic.pin_levels = static_cast<std::uint32_t>(io.u("pin_levels", 0, 0xffffff));
    if (auto err = apic::validate(s.ioapic))
        io.bad("", *err);

    In u = t.get("uart");
    auto byte = [&](const char* n) { return static_cast<std::uint8_t>(u.u(n, 0, 0xff)); };
    s.uart = {byte("ier"), byte("lcr"), byte("mcr"), byte("scr"),
              byte("fcr"), byte("dll"), byte("dlm")};
    In p = t.get("pic");
    s.pic_master = {static_cast<std::uint8_t>(p.u("master_imr", 0, 0xff)),
                    static_cast<std::uint8_t>(p.u("master_base", 0, 0xf8))};
    s.pic_slave = {static_cast<std::uint8_t>(p.u("slave_imr", 0, 0xff)),
                   static_cast<std::uint8_t>(p.u("slave_base", 0, 0xf8))};
    s.pm_timer = static_cast<std::uint32_t>(t.get("pm_timer").u("ticks", 0, 0xffffffff));

    In mem = t.get("memory");
    const json& runs = mem.at("runs");
    if (!runs.is_array())
        mem.bad("runs", "expected an array");
    std::uint64_t low = std::min<std::uint64_t>(s.machine.memory_mib << 20, 0xC000'0000);
    std::uint64_t high = (s.machine.memory_mib << 20) - low;
    std::uint64_t prev_end = 0;
    for (std::size_t i = 0; i < runs.size(); ++i) {
        In run(runs[i], fmt::format("section 'memory' run {}", i), r.name());
        MemoryRun mr{run.u("gpa"), run.u("length", 1, 1ull << 40), run.u("blob")};
        bool in_low = mr.gpa < low && mr.len <= low - mr.gpa;
        bool in_high = mr.gpa >= 0x1'0000'0000ull && mr.gpa - 0x1'0000'0000ull < high &&
                       mr.len <= high - (mr.gpa - 0x1'0000'0000ull);
        if ((mr.gpa | mr.len) & 0xfff)
            run.bad("gpa", "runs must be 4 KiB aligned");
        if (!in_low && !in_high)
            run.bad("gpa", fmt::format("[{:#x}, +{:#x}) is outside the machine's {} MiB of RAM",
                                       mr.gpa, mr.len, s.machine.memory_mib));
        if (mr.gpa < prev_end)
            run.bad("gpa", "runs overlap or are not sorted");
        prev_end = mr.gpa + mr.len;
        r.blob(mr.blob, mr.len, run.where());
        s.memory.push_back(mr);
    }
    // Each run has bytes of its own in the file: restored memory is never more than the file
    // holds (runs sharing one blob range would let a small file fill all of guest RAM).
    std::vector<MemoryRun> by_blob = s.memory;
    std::sort(by_blob.begin(), by_blob.end(),
              [](const MemoryRun& a, const MemoryRun& b) { return a.blob < b.blob; });
    for (std::size_t i = 1; i < by_blob.size(); ++i)
        if (by_blob[i].blob < by_blob[i - 1].blob + by_blob[i - 1].len)
            mem.bad("runs", fmt::format("the blobs of the runs at {:#x} and {:#x} overlap",
                                        by_blob[i - 1].gpa, by_blob[i].gpa));
    t.check_unknown();
    return s;
}

}  // namespace hv::snapshot
