#include "cmd/bench.hpp"

#include <sys/utsname.h>
#include <time.h>

#include <cstdio>
#include <filesystem>

#include "cmd/options.hpp"
#include "core/base/error.hpp"
#include "core/base/file.hpp"
#include "core/host/backend.hpp"
#include "core/host/profile.hpp"
#include "core/host/tsc.hpp"
#include "core/vm/config.hpp"
#include "tests/support/process.hpp"

#if __has_include("hv_revision.h")
#include "hv_revision.h"
#endif
#ifndef HV_REVISION
#define HV_REVISION "unknown"
#endif
#ifndef HV_GUEST_DIR
#define HV_GUEST_DIR "guest"
#endif

namespace hv::bench {

std::string revision()
{
    return HV_REVISION;
}

std::string default_guest_dir()
{
    auto next_to_binary = std::filesystem::path(support::self_exe()).parent_path() / "guest";
    std::error_code ec;
    if (std::filesystem::is_directory(next_to_binary, ec))
        return next_to_binary.string();
    return HV_GUEST_DIR;
}

Report run_benchmarks(const RunPlan& plan, const std::vector<const Workload*>& workloads,
                      const std::vector<std::string>& backends)
{
    Report rep;
    rep.plan = plan;
    std::vector<const Workload*> runnable;
    for (const Workload* w : workloads) {
        if (auto why = unavailable_reason(plan, *w); !why.empty())
            rep.unavailable.push_back({w->name, why});
        else
            runnable.push_back(w);
    }
    int paths = static_cast<int>(backends.size()) + (plan.qemu.empty() ? 0 : 1);
    int steps = 0, step = 0;
    for (const Workload* w : runnable)
        for (const Variant& v : w->variants)
            steps += plan.modes.empty() || plan.modes.count(v.mode)
                         ? paths * static_cast<int>(plan.repeat + 1)
                         : 0;
    for (const Workload* w : runnable) {
        for (const Variant& v : w->variants) {
            if (!plan.modes.empty() && !plan.modes.count(v.mode))
                continue;
            VariantResult vr{w, &v, {}};
            for (const auto& b : backends)
                vr.paths.push_back(run_path(plan, *w, v, b, false, step, steps));
            if (!plan.qemu.empty())
                vr.paths.push_back(run_path(plan, *w, v, "", true, step, steps));
            rep.results.push_back(std::move(vr));
        }
    }
    return rep;
}

nlohmann::json run_metadata(const std::vector<std::string>& command_line)
{
    nlohmann::json j;
    j["revision"] = revision();
    char date[64];
    time_t now = time(nullptr);
    tm utc{};
    gmtime_r(&now, &utc);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &utc);
    j["date"] = date;
    j["command_line"] = command_line;
    utsname u{};
    uname(&u);
    nlohmann::json h = {{"kernel", std::string(u.sysname) + " " + u.release}};
    try {
        host::HostProfile p = host::probe_host();
        h["cpu"] = {{"vendor", p.cpu.id.vendor_string},
                    {"brand", p.cpu.id.brand},
                    {"family", p.cpu.id.family},
                    {"model", p.cpu.id.model},
                    {"stepping", p.cpu.id.stepping}};
        h["kvm_module"] = p.kvm.provider;
        h["cores"] = p.topology.cores;
        h["hardware_threads"] = p.topology.pus;
        h["packages"] = p.topology.packages;
    } catch (const std::exception& e) {
        h["error"] = e.what();
    }
    j["host"] = h;
    return j;
}

}  // namespace hv::bench

namespace {

// "--backend kernel,apicv,noipiv,avic,x2avic": backend names start a new spec, options attach
// to the spec before them ("apicv,noipiv" stays one spec).
std::vector<std::string> split_backends(const std::string& list)
{
    std::vector<std::string> specs;
    std::size_t start = 0;
    while (start <= list.size()) {
        std::size_t end = list.find(',', start);
        std::string word = list.substr(start, end == std::string::npos ? end : end - start);
        if (word.empty())
            hv::fail("--backend {}: empty name", list);
        if (hv::host::is_backend_name(word) || specs.empty())
            specs.push_back(word);
        else
            specs.back() += "," + word;
        if (end == std::string::npos)
            break;
        start = end + 1;
    }
    return specs;
}

std::string workload_names()
{
    std::string s;
    for (const auto& w : hv::bench::all_workloads())
        s += (s.empty() ? "" : ", ") + w.name;
    return s;
}

constexpr const char* kBenchUsage = R"(usage: hvaccel bench [options]

Runs the guest latency workloads on every APIC backend this host can run and under QEMU+KVM,
then prints one table per workload (latency in us; exits per 1,000 interrupts by reason).

  --workload A,B      workloads (default all): ipi_pingpong, ipi_multicast, timer, level_eoi,
                      msix_latency
  --backend A,B       --apic specs (default every one the host can run), e.g.
                      kernel,apicv,noipiv,avic,x2avic (options attach to the backend before)
  --no-qemu           leave out the QEMU column
  --iterations N      samples per series per run (2 to 1000; default 200)
  --repeat N          measured runs per path after one warm-up run (1 to 50; default 3)
  --json FILE         every summary with revision, host, date and command line
  --plot FILE.svg     latency CDFs per path, one panel per workload series
  --guest-dir DIR     where the workload images are (default: guest/ next to this binary)
  --timeout S         time limit per VM run in seconds (default 120)
  --quiet             no progress lines on stderr
)";

}  // namespace

int cmd_bench(int argc, char** argv)
{
    using namespace hv::bench;
    RunPlan plan;
    plan.guest_dir = default_guest_dir();
    std::string workloads_opt, backends_opt, json_path, plot_path;
    bool no_qemu = false, help = false;
    hv::cli::Options o;
    o.flag("--help", [&] { help = true; });
    o.value("--workload", [&](const std::string& v) { workloads_opt = v; });
    o.value("--backend", [&](const std::string& v) { backends_opt = v; });
    o.flag("--no-qemu", [&] { no_qemu = true; });
    o.value("--iterations", [&](const std::string& v) {
        plan.iterations = static_cast<unsigned>(hv::cli::parse_uint(v, "--iterations", 2, 1000));
    });
    o.value("--repeat", [&](const std::string& v) {
        plan.repeat = static_cast<unsigned>(hv::cli::parse_uint(v, "--repeat", 1, 50));
    });
    o.value("--json", [&](const std::string& v) { json_path = v; });
    o.value("--plot", [&](const std::string& v) { plot_path = v; });
    o.value("--guest-dir", [&](const std::string& v) { plan.guest_dir = v; });
    o.value("--timeout", [&](const std::string& v) {
        plan.timeout_s = static_cast<int>(hv::cli::parse_uint(v, "--timeout", 1, 3600));
    });
    o.flag("--quiet", [&] { plan.progress = false; });
    auto pos = o.parse(argc, argv, 1);
    if (help) {
        std::fputs(kBenchUsage, stdout);
        return 0;
    }
    if (!pos.empty())
        hv::fail("bench takes no positional arguments (got '{}')", pos[0]);
    if (!plot_path.empty() && plot_path.size() < 4)
        hv::fail("--plot {}: give a FILE.svg", plot_path);
    if (!plot_path.empty() && plot_path.substr(plot_path.size() - 4) != ".svg")
        hv::fail("--plot {}: only SVG is written (FILE.svg)", plot_path);

    std::vector<const Workload*> workloads;
    if (workloads_opt.empty()) {
        for (const auto& w : all_workloads())
            workloads.push_back(&w);
    } else {
        std::size_t start = 0;
        while (start <= workloads_opt.size()) {
            std::size_t end = workloads_opt.find(',', start);
            std::string name =
                workloads_opt.substr(start, end == std::string::npos ? end : end - start);
            const Workload* w = find_workload(name);
            if (!w)
                hv::fail("--workload {}: unknown workload '{}' (available: {})", workloads_opt,
                         name, workload_names());
            workloads.push_back(w);
            if (end == std::string::npos)
                break;
            start = end + 1;
        }
    }

    hv::host::HostProfile profile = hv::host::probe_host();
    std::vector<std::string> refused;
    std::vector<std::string> runnable = runnable_backends(profile, &refused), backends;
    if (backends_opt.empty()) {
        backends = runnable;
    } else {
        for (const auto& spec : split_backends(backends_opt)) {
            // Throws with the reason for a bad spec.
            auto c = hv::host::choose_backend(profile, hv::host::parse_apic_spec(spec).kind);
            if (c.refused)
                hv::fail("--backend {}: this host cannot run it ({})", spec, c.reason);
            backends.push_back(spec);
        }
    }

    std::string qemu_note;
    plan.hvaccel = hv::support::self_exe();
    if (!no_qemu) {
        plan.qemu = hv::support::find_in_path("qemu-system-x86_64");
        if (plan.qemu.empty())
            qemu_note = "not installed (qemu-system-x86_64 not in PATH)";
    } else {
        qemu_note = "left out (--no-qemu)";
    }
    plan.tsc_khz = hv::host::measure_tsc_khz();

    std::vector<std::string> command_line(argv, argv + argc);
    command_line.insert(command_line.begin(), "hvaccel");
    std::printf("hvaccel bench: revision %s, TSC %.0f MHz, %s, %u samples x %u runs (+1 warm-up) "
                "per path\n",
                revision().c_str(), plan.tsc_khz / 1000.0,
                profile.cpu.id.brand.empty() ? profile.cpu.id.vendor_string.c_str()
                                             : profile.cpu.id.brand.c_str(),
                plan.iterations, plan.repeat);
    std::printf("KVM: %s; paths: %zu hvaccel backend(s)%s\n", profile.kvm.provider.c_str(),
                backends.size(), plan.qemu.empty() ? "" : " + QEMU");
    for (const auto& r : refused)
        std::printf("not runnable here: %s\n", r.c_str());
    std::fflush(stdout);

    Report rep = run_benchmarks(plan, workloads, backends);
    rep.qemu_note = qemu_note;
    print_tables(stdout, rep);
    std::fflush(stdout);
    if (!json_path.empty())
        hv::write_output_file(json_path, to_json(rep, run_metadata(command_line)).dump(2) + "\n",
                              "--json " + json_path);
    if (!plot_path.empty())
        hv::write_output_file(plot_path,
                              to_svg(rep, "hvaccel bench " + revision() + ": latency CDF per path"),
                              "--plot " + plot_path);
    bool failed = false;
    for (const auto& v : rep.results)
        for (const auto& p : v.paths)
            failed |= !p.error.empty();
    if (failed)
        std::fprintf(stderr, "hvaccel bench: some runs failed (see FAILED rows)\n");
    return failed ? 1 : 0;
}
