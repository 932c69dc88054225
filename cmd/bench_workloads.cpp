#include "cmd/bench_workloads.hpp"

#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "core/host/backend.hpp"
#include "core/host/profile.hpp"
#include "tests/support/process.hpp"

namespace hv::bench {

const std::vector<Workload>& all_workloads()
{
    static const std::vector<Workload> w = {
        {"ipi_pingpong",
         "bench_ipi_pingpong",
         "IPI ping-pong between two vCPUs: one-way (send -> peer's handler) and round trip",
         2,
         {{"halted", {"halted_oneway", "halted_rtt"}, 2},
          {"running", {"running_oneway", "running_rtt"}, 2}},
         {},
         "microvm",
         {},
         false},
        {"ipi_multicast",
         "bench_ipi_multicast",
         "one IPI to all other vCPUs (3 receivers, halted): to the last and to each receiver",
         4,
         {{"", {"multicast_last", "multicast_each"}, 3}},
         {},
         "microvm",
         {},
         false},
        {"timer",
         "bench_timer",
         "LAPIC timer deadline -> handler (vCPU halted): one-shot, periodic, TSC-deadline",
         1,
         {{"oneshot", {"timer_oneshot"}, 1},
          {"periodic", {"timer_periodic"}, 1},
          {"tscdeadline", {"timer_tscdeadline"}, 1}},
         {},
         "microvm",
         {},
         false},
        {"level_eoi",
         "bench_level_eoi",
         "level-triggered IOAPIC pin (pc-testdev port) -> handler, line lowered, EOI: target "
         "halted or in a ring-3 loop",
         2,
         {{"halted", {"level_halted"}, 1}, {"running", {"level_running"}, 1}},
         {},
         "microvm",
         {"pc-testdev"},
         false},
        {"msix_latency",
         "msix_latency",
         "device MSI-X (hvaccel --irqdev, raised by the device's host thread) to the BSP in a "
         "ring-3 loop or halted; the msi_vcpu_* series raise from the AP through the device "
         "register, as QEMU's edu does",
         2,
         {{"running", {"msi_running"}, 1, false},
          {"halted", {"msi_halted"}, 1, false},
          {"vcpu_running", {"msi_vcpu_running"}, 1, true, {{"msi_running", "msi_vcpu_running"}}},
          {"vcpu_halted", {"msi_vcpu_halted"}, 1, true, {{"msi_halted", "msi_vcpu_halted"}}}},
         {"--irqdev"},
         "q35",
         {"edu"},
         true},
    };
    return w;
}

const Workload* find_workload(const std::string& name)
{
    for (const auto& w : all_workloads())
        if (w.name == name)
            return &w;
    return nullptr;
}

const std::vector<std::string>& all_backend_specs()
{
    static const std::vector<std::string> s = {
        // apicv's options nest: posted interrupts need VID, IPIv needs posted interrupts.
        "kernel",       "emulated",          "apicv",
        "apicv,noipiv", "apicv,noipiv,nopi", "apicv,noipiv,nopi,novid",
        "avic",         "avic,x2avic",       "avic,erratum1235"};
    return s;
}

std::vector<std::string> runnable_backends(const host::HostProfile& p,
                                           std::vector<std::string>* refused)
{
    std::vector<std::string> out;
    for (const auto& spec : all_backend_specs()) {
        auto c = host::choose_backend(p, host::parse_apic_spec(spec).kind);
        if (c.refused) {
            if (refused)
                refused->push_back(spec + ": " + c.reason);
            continue;
        }
        out.push_back(spec);
    }
    return out;
}

std::string image_path(const RunPlan& plan, const Workload& w)
{
    if (auto it = plan.image_override.find(w.name); it != plan.image_override.end())
        return it->second;
    return plan.guest_dir + "/" + w.image + ".elf";
}

std::string unavailable_reason(const RunPlan& plan, const Workload& w)
{
    bool image = access(image_path(plan, w).c_str(), R_OK) == 0;
    if (w.needs_irqdev) {
        static int has_irqdev = -1;  // asked once: does `hvaccel run` know --irqdev?
        if (has_irqdev < 0)
            has_irqdev =
                support::run_process({plan.hvaccel, "run", "--help"}, 10).out.find("--irqdev") !=
                std::string::npos;
        if (!image || !has_irqdev)
            return "not available (device not built)";
    }
    if (!image)
        return "not available (" + image_path(plan, w) + " missing)";
    return {};
}

namespace {

std::string first_failure(const support::ProcessResult& r)
{
    for (const std::string* text : {&r.out, &r.err}) {
        auto p = text->find("not ok");
        if (p == std::string::npos)
            p = text->find("hvaccel: ");
        if (p != std::string::npos)
            return text->substr(p, text->find('\n', p) - p);
    }
    return {};
}

std::vector<std::string> argv_for(const RunPlan& plan, const Workload& w, const std::string& path,
                                  bool qemu, const std::string& cmdline)
{
    std::string image = image_path(plan, w), vcpus = std::to_string(w.vcpus);
    if (qemu) {
        std::vector<std::string> a = {plan.qemu,      "-machine",
                                      w.qemu_machine, "-accel",
                                      "kvm",          "-cpu",
                                      "host",         "-smp",
                                      vcpus,          "-m",
                                      "128",          "-nodefaults",
                                      "-display",     "none",
                                      "-serial",      "stdio",
                                      "-kernel",      image,
                                      "-append",      cmdline,
                                      "-device",      "isa-debug-exit,iobase=0xf4,iosize=4"};
        for (const auto& d : w.qemu_devices) {
            a.push_back("-device");
            a.push_back(d);
        }
        return a;
    }
    std::vector<std::string> a = {plan.hvaccel, "run",    image, "--vcpus", vcpus,       "--memory",
                                  "64",         "--apic", path,  "--stats", "--cmdline", cmdline};
    a.insert(a.end(), w.hvaccel_args.begin(), w.hvaccel_args.end());
    return a;
}

}  // namespace

PathResult run_path(const RunPlan& plan, const Workload& w, const Variant& v,
                    const std::string& path, bool qemu, int& step, int steps)
{
    PathResult r;
    r.path = qemu ? "qemu " + w.qemu_machine : path;
    r.qemu = qemu;
    r.series_order = v.series;
    unsigned small = std::max(1u, plan.iterations / 5);
    auto cmdline = [&](unsigned n) {
        std::string c = "samples=" + std::to_string(n) +
                        " tsc_khz=" + std::to_string(static_cast<long long>(plan.tsc_khz));
        return v.mode.empty() ? c : c + " mode=" + v.mode;
    };
    std::string label = w.name + (v.mode.empty() ? "" : "(" + v.mode + ")");
    if (qemu && !v.on_qemu) {
        for (const auto& s : v.series)
            r.skipped[s] = "n/a under QEMU (no host-side device thread there)";
        step += static_cast<int>(plan.repeat + 1);
        return r;
    }
    Counters base;
    std::size_t base_out = 0;
    std::vector<ExitRates> rates;
    for (unsigned run = 0; run <= plan.repeat; ++run) {
        bool warmup = run == 0;
        unsigned n = warmup ? small : plan.iterations;
        ++step;
        if (plan.progress)
            std::fprintf(stderr, "[%d/%d] %s on %s%s ...\n", step, steps, label.c_str(),
                         r.path.c_str(), warmup ? " (warm-up)" : "");
        auto res = support::run_process(argv_for(plan, w, path, qemu, cmdline(n)), plan.timeout_s);
        if (res.timed_out || res.status != 1) {
            r.error = res.timed_out ? "timed out after " + std::to_string(plan.timeout_s) +
                                          " s (a lost interrupt leaves a vCPU halted)"
                                    : "exit status " + std::to_string(res.status);
            if (auto why = first_failure(res); !why.empty())
                r.error += ": " + why;
            step += static_cast<int>(plan.repeat - run);
            break;
        }
        auto series = parse_series(res.out);
        if (qemu)
            for (const auto& [theirs, ours] : v.qemu_names)
                if (auto it = series.samples.find(theirs); it != series.samples.end()) {
                    series.samples[ours] = std::move(it->second);
                    series.samples.erase(theirs);
                }
        for (const auto& [name, why] : series.skipped)
            r.skipped[name] = why;
        if (warmup) {
            base = parse_counters(res.err);
            base_out = res.out.size();
            continue;
        }
        ++r.runs;
        for (const auto& [name, text] : series.notes)
            r.notes.push_back(name + ": " + text);
        for (const auto& [name, cycles] : series.samples) {
            auto& dst = r.us[name];
            for (auto c : cycles)
                dst.push_back(static_cast<double>(c) * 1000.0 / plan.tsc_khz);
        }
        if (!qemu) {
            double serial = static_cast<double>(res.out.size()) - static_cast<double>(base_out);
            rates.push_back(
                exit_rates(base, parse_counters(res.err), serial, (n - small) * v.irqs_per_sample));
        }
    }
    // The mean over the measured runs (they agree to the exit on a deterministic workload).
    for (const auto& e : rates) {
        for (const auto& [k, x] : e.userspace)
            r.exits.userspace[k] += x / static_cast<double>(rates.size());
        for (const auto& [k, x] : e.architectural)
            r.exits.architectural[k] += x / static_cast<double>(rates.size());
    }
    r.have_exits = !rates.empty();
    return r;
}

}  // namespace hv::bench
