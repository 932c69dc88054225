#include "cmd/demo.hpp"

#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <string>
#include <thread>

#include "cmd/bench.hpp"
#include "cmd/options.hpp"
#include "core/base/error.hpp"
#include "core/base/file.hpp"
#include "core/host/profile.hpp"
#include "core/host/tsc.hpp"
#include "core/vm/vm.hpp"
#include "tests/support/control.hpp"
#include "tests/support/process.hpp"

// The demo guest, linked in by cmd/embed_guest.S.
extern "C" const unsigned char hv_demo_guest[];
extern "C" const unsigned char hv_demo_guest_end[];

namespace {

namespace fs = std::filesystem;
namespace support = hv::support;
using namespace hv::bench;

// A private directory for the image, the snapshot and the socket; removed at the end.
struct TempDir {
    fs::path path;
    TempDir()
    {
        std::string tmpl = (fs::temp_directory_path() / "hvaccel-demo-XXXXXX").string();
        if (!::mkdtemp(tmpl.data()))
            hv::throw_errno("mkdtemp for the demo");
        path = tmpl;
    }
    ~TempDir()
    {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
};

// The embedded image as a file: the VMs of steps 2 and 3 are child processes (and QEMU).
std::string write_image(const TempDir& dir)
{
    auto path = (dir.path / "demo-guest.elf").string();
    hv::write_output_file(path,
                          {reinterpret_cast<const char*>(hv_demo_guest),
                           static_cast<std::size_t>(hv_demo_guest_end - hv_demo_guest)},
                          "the demo guest " + path);
    return path;
}

void heading(const char* text)
{
    std::printf("\n=== %s\n", text);
    std::fflush(stdout);
}

bool step_boot(const std::string& image, unsigned vcpus)
{
    hv::VmConfig cfg;
    cfg.vcpus = vcpus;
    cfg.memory_mib = 64;
    cfg.image = image;
    cfg.cmdline = "samples=5";
    std::printf("booting the embedded guest (IPI ping-pong, 5 samples) on %u vCPU(s), %llu MiB, "
                "--apic auto\n",
                cfg.vcpus, static_cast<unsigned long long>(cfg.memory_mib));
    std::fflush(stdout);
    hv::Vm vm(cfg);
    int status = vm.run();
    std::fflush(stdout);
    std::fputs(vm.stats_report().c_str(), stdout);
    // The guest reports success as debug-exit value 0, i.e. status (0 << 1) | 1.
    std::printf("guest %s (exit status %d)\n", status == 1 ? "passed" : "FAILED", status);
    return status == 1;
}

std::string pick(const std::vector<std::string>& runnable, const char* want, const char* fallback)
{
    for (const auto& b : runnable)
        if (b == want)
            return want;
    return fallback;
}

bool step_snapshot(const TempDir& dir, const std::string& image,
                   const std::vector<std::string>& runnable)
{
    std::string from = pick(runnable, "apicv", "emulated"), to = pick(runnable, "avic", "kernel");
    std::string sock = (dir.path / "control.sock").string(), snap = (dir.path / "vm.snap").string();
    std::string out1 = (dir.path / "run.out").string(), out2 = (dir.path / "restore.out").string();
    std::string self = support::self_exe();
    std::printf("running the guest on %s (2 vCPUs, ping-pong for 3 s), snapshot through the "
                "control socket after 1 s, restore on %s\n",
                from.c_str(), to.c_str());
    std::fflush(stdout);
    support::ProcessOptions to_out1;
    to_out1.out = to_out1.err = support::Sink::to_file(out1, true, 0600);
    to_out1.stdin_null = false;
    int pid =
        support::spawn_process({self, "run", image, "--vcpus", "2", "--memory", "64", "--apic",
                                from, "--control", sock, "--cmdline", "samples=20 seconds=3"},
                               to_out1);
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));
    std::string reply =
        support::control_request(sock, R"({"cmd":"snapshot","path":")" + snap + "\"}", 20, 21);
    std::printf("  snapshot: %s\n", reply.empty() ? "(no reply)" : reply.c_str());
    support::control_request(sock, R"({"cmd":"quit"})", 5, 6);
    support::wait_process(pid, 30);
    bool ok = reply.find("\"ok\":true") != std::string::npos;
    if (!ok) {
        std::printf("  the snapshot failed; the run printed:\n%s\n", support::slurp(out1).c_str());
        return false;
    }
    std::error_code ec;
    std::printf("  %s: %.1f MiB\n", snap.c_str(),
                static_cast<double>(fs::file_size(snap, ec)) / (1 << 20));
    // The tour's guest measures nothing across the snapshot: restore also where KVM cannot set
    // the guest TSC (the clock then moves forward by the time in the file).
    auto r = support::run_process(
        {self, "restore", snap, "--apic", to, "--allow-clock-jump", "--stats"}, 60);
    // What the restored guest printed after its samples: its checks.
    std::istringstream lines(r.out);
    std::string line;
    while (std::getline(lines, line))
        if (line.rfind("ok ", 0) == 0 || line.rfind("not ok", 0) == 0 ||
            line.find("passed,") != std::string::npos)
            std::printf("  restored on %s: %s\n", to.c_str(), line.c_str());
    bool passed = r.status == 1;
    std::printf("  the restored guest %s (exit status %d%s)\n",
                passed ? "finished correctly" : "FAILED", r.status,
                r.timed_out ? ", timed out" : "");
    return passed;
}

}  // namespace

int cmd_demo(int argc, char** argv)
{
    unsigned vcpus = 2;
    unsigned iterations = 100;
    bool no_qemu = false;
    hv::cli::Options o;
    o.value("--vcpus", [&](const std::string& v) {
        vcpus = static_cast<unsigned>(hv::cli::parse_uint(v, "--vcpus", 1, hv::kMaxVcpus));
    });
    o.value("--iterations", [&](const std::string& v) {
        iterations = static_cast<unsigned>(hv::cli::parse_uint(v, "--iterations", 2, 1000));
    });
    o.flag("--no-qemu", [&] { no_qemu = true; });
    auto pos = o.parse(argc, argv, 1);
    if (!pos.empty())
        hv::fail("demo takes no arguments (got '{}')", pos[0]);
    TempDir dir;
    std::string image = write_image(dir);
    std::printf("hvaccel demo (revision %s): a tour in four steps\n", revision().c_str());

    heading("1/4 boot");
    bool ok_boot = step_boot(image, vcpus);

    heading("2/4 interrupt latency on every APIC backend this host runs, and QEMU");
    hv::host::HostProfile profile = hv::host::probe_host();
    std::vector<std::string> refused;
    auto backends = runnable_backends(profile, &refused);
    RunPlan plan;
    plan.guest_dir = default_guest_dir();
    plan.hvaccel = support::self_exe();
    plan.qemu = no_qemu ? std::string() : support::find_in_path("qemu-system-x86_64");
    plan.iterations = iterations;
    plan.repeat = 1;
    plan.tsc_khz = hv::host::measure_tsc_khz();
    plan.timeout_s = 60;
    plan.image_override["ipi_pingpong"] = image;
    plan.modes = {"halted", "running"};  // the device's vcpu_* variants only in `hvaccel bench`
    std::printf("%zu backends: ", backends.size());
    for (const auto& b : backends)
        std::printf("%s ", b.c_str());
    std::printf("%s\n", plan.qemu.empty() ? "(QEMU not installed)" : "+ QEMU");
    std::fflush(stdout);
    Report rep = run_benchmarks(
        plan, {find_workload("ipi_pingpong"), find_workload("msix_latency")}, backends);
    if (plan.qemu.empty())
        rep.qemu_note = no_qemu ? "left out (--no-qemu)" : "not installed";
    bool ok_latency = !rep.results.empty();
    for (const auto& v : rep.results)
        for (const auto& p : v.paths)
            ok_latency &= p.error.empty();

    heading("3/4 snapshot on one backend, restore on another");
    bool ok_snap = step_snapshot(dir, image, backends);

    heading("4/4 latency (us) and exits per 1,000 interrupts");
    print_tables(stdout, rep);
    bool ok = ok_boot && ok_latency && ok_snap;
    std::printf("\nhvaccel demo: boot %s, latency runs %s, snapshot/restore %s: %s\n",
                ok_boot ? "ok" : "FAILED", ok_latency ? "ok" : "FAILED", ok_snap ? "ok" : "FAILED",
                ok ? "all passed" : "FAILED");
    std::printf("(hvaccel bench runs every workload: timer modes, multicast IPIs, level EOIs)\n");
    return ok ? 0 : 1;
}
