// Interrupt latency per APIC backend and beside QEMU, in the same run: boots
// build/guest/ipi_latency.elf (self-IPI and cross-vCPU IPI round trip, timed in the guest with
// the TSC) on each backend and under qemu-system-x86_64 -accel kvm, then prints count, min, p50,
// p99, max in microseconds, and the userspace exits per interrupt of hvaccel's backends (the
// difference of two runs with different sample counts, so boot cancels out; port I/O, which is
// the guest printing its samples, is left out).
// Reports only; asserts nothing.
//
//   hv_bench_apic_latency [--samples N]
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "core/host/tsc.hpp"
#include "tests/support/process.hpp"

namespace {

// Runs argv to its end with stdout and stderr captured; returns stdout.
std::string run(const std::vector<std::string>& argv, std::string* err = nullptr)
{
    auto r = hv::support::run_process(argv, 0);
    if (err)
        *err = r.err;
    return r.out;
}

std::vector<double> samples(const std::string& out, const std::string& name)
{
    std::vector<double> v;
    auto p = out.find(name + ":");
    if (p == std::string::npos)
        return v;
    std::istringstream in(out.substr(p + name.size() + 1, out.find('\n', p) - p));
    std::string tok;
    while (std::getline(in, tok, ','))
        if (!tok.empty() && isdigit(static_cast<unsigned char>(tok[0])))
            v.push_back(std::stod(tok));
    return v;
}

// Sums of "exit X N" and "apic X N" counters from --stats, over all vCPUs.
std::map<std::string, long> counters(const std::string& stats)
{
    std::map<std::string, long> c;
    std::istringstream in(stats);
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream l(line);
        std::string kind, name;
        long n = 0;
        if (l >> kind >> name >> n && (kind == "exit" || kind == "apic"))
            c[kind + " " + name] += n;
    }
    return c;
}

void row(const char* who, const char* what, std::vector<double> v, double hz,
         const std::string& exits)
{
    if (v.size() > 10)
        v.erase(v.begin(), v.begin() + 10);  // warm-up
    if (v.empty()) {
        std::printf("| %-22s | %-13s | %5s | %7s | %7s | %7s | %7s | %s |\n", who, what, "-", "-",
                    "-", "-", "-", exits.c_str());
        return;
    }
    std::sort(v.begin(), v.end());
    auto us = [&](double c) { return c / hz * 1e6; };
    auto pct = [&](double p) {
        return v[std::min(v.size() - 1,
                          static_cast<std::size_t>(p * static_cast<double>(v.size())))];
    };
    std::printf("| %-22s | %-13s | %5zu | %7.1f | %7.1f | %7.1f | %7.1f | %s |\n", who, what,
                v.size(), us(v.front()), us(pct(0.5)), us(pct(0.99)), us(v.back()), exits.c_str());
}

std::string exits_per_irq(const std::map<std::string, long>& a,
                          const std::map<std::string, long>& b, int extra, int irqs_per_sample)
{
    std::string s;
    for (const auto& [k, v] : b) {
        if (k.rfind("exit ", 0) != 0 || k == "exit io")
            continue;  // port I/O here is the guest printing its samples, not interrupt work
        long d = v - (a.count(k) ? a.at(k) : 0);
        if (d <= 0)
            continue;
        char buf[64];
        std::snprintf(buf, sizeof buf, "%s%s %.2f", s.empty() ? "" : ", ", k.c_str() + 5,
                      static_cast<double>(d) / (extra * irqs_per_sample));
        s += buf;
    }
    return s.empty() ? "0" : s;
}

// The VM exits the modelled hardware would take (the backends' exit counters), per
// 1,000 (self-IPI + round trip) pairs, from the difference of the two runs.
std::string architectural_exits(const std::map<std::string, long>& a,
                                const std::map<std::string, long>& b, int extra)
{
    static const char* const kArch[] = {"apic apic_write",
                                        "apic eoi_induced",
                                        "apic apic_access",
                                        "apic tpr_below_threshold",
                                        "apic external_interrupt",
                                        "apic msr_write",
                                        "apic msr_read",
                                        "apic avic_incomplete_ipi_not_running",
                                        "apic avic_noaccel_trap",
                                        "apic avic_noaccel_fault_read",
                                        "apic avic_noaccel_fault_write",
                                        "apic msr",
                                        "apic xapic_read",
                                        "apic xapic_write"};
    std::string s;
    for (const char* k : kArch) {
        long d = (b.count(k) ? b.at(k) : 0) - (a.count(k) ? a.at(k) : 0);
        if (d <= 0)
            continue;
        char buf[96];
        std::snprintf(buf, sizeof buf, "%s%s %.0f", s.empty() ? "" : ", ", k + 5,
                      1000.0 * static_cast<double>(d) / extra);
        s += buf;
    }
    return s.empty() ? "0" : s + " per 1,000";
}

}  // namespace

int main(int argc, char** argv)
{
    int n = 200;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--samples") && i + 1 < argc)
            n = std::max(20, std::min(1000, std::atoi(argv[++i])));
        else {
            std::fprintf(stderr, "usage: %s [--samples N]\n", argv[0]);
            return 2;
        }
    }
    const std::string image = HV_GUEST_DIR "/ipi_latency.elf";
    // The guest's TSC runs at the host's rate (no scaling here).
    double hz = hv::host::measure_tsc_khz(std::chrono::milliseconds(200)) * 1e3;
    std::printf("interrupt latency, %d samples per workload (10 warm-up dropped), TSC %.0f MHz, "
                "2 vCPUs\n\n",
                n, hz / 1e6);
    std::printf("| %-22s | %-13s | %5s | %7s | %7s | %7s | %7s | %s |\n", "path", "workload",
                "count", "min us", "p50 us", "p99 us", "max us", "userspace exits per interrupt");
    std::printf("|---|---|---|---|---|---|---|---|\n");
    const char* const backends[] = {"emulated",
                                    "kernel",
                                    "apicv",
                                    "apicv,noipiv",
                                    "apicv,noipiv,nopi",
                                    "apicv,noipiv,nopi,novid",
                                    "avic",
                                    "avic,x2avic",
                                    "avic,erratum1235"};
    for (const char* backend : backends) {
        std::vector<std::string> base = {HV_BINARY, "run",   image,     "--vcpus",  "2",
                                         "--apic",  backend, "--stats", "--cmdline"};
        std::string err_small, err_big;
        auto a = base, b = base;
        a.push_back("samples=20");
        b.push_back("samples=" + std::to_string(n));
        run(a, &err_small);
        std::string out = run(b, &err_big);
        auto ca = counters(err_small), cb = counters(err_big);
        int extra = n - 20;
        // Per workload the exits cannot be told apart from one --stats; both workloads run the
        // same number of samples, so the per-sample exits of the two are reported together.
        std::string ex = exits_per_irq(ca, cb, extra, 1) + " (per self-IPI + round trip)";
        std::string arch = architectural_exits(ca, cb, extra);
        std::string who = std::string("hvaccel ") + backend;
        row(who.c_str(), "self-IPI", samples(out, "self_ipi"), hz, ex);
        row(who.c_str(), "IPI round trip", samples(out, "ipi_roundtrip"), hz,
            arch.empty() ? "" : "architectural: " + arch);
    }
    if (!hv::support::find_in_path("qemu-system-x86_64").empty()) {
        std::string out = run({"qemu-system-x86_64",
                               "-machine",
                               "microvm",
                               "-accel",
                               "kvm",
                               "-cpu",
                               "host",
                               "-smp",
                               "2",
                               "-m",
                               "128",
                               "-nodefaults",
                               "-display",
                               "none",
                               "-serial",
                               "stdio",
                               "-kernel",
                               image,
                               "-append",
                               "samples=" + std::to_string(n),
                               "-device",
                               "isa-debug-exit,iobase=0xf4,iosize=4"});
        row("qemu microvm (KVM LAPIC)", "self-IPI", samples(out, "self_ipi"), hz, "n/a");
        row("qemu microvm (KVM LAPIC)", "IPI round trip", samples(out, "ipi_roundtrip"), hz, "");
    }
    return 0;
}
