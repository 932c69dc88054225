#include "cmd/session.hpp"

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <functional>
#include <memory>
#include <thread>

#include "cmd/sandbox.hpp"
#include "core/base/error.hpp"
#include "core/vm/control.hpp"

namespace hv::cli {

namespace {

// --disk path=FILE[,format=raw|qcow2][,readonly=on|off][,serial=S][,queues=N]
DiskConfig parse_disk(const std::string& spec)
{
    DiskConfig d;
    std::size_t pos = 0;
    while (pos <= spec.size()) {
        const std::size_t end = std::min(spec.find(',', pos), spec.size());
        const std::string item = spec.substr(pos, end - pos);
        pos = end + 1;
        const std::size_t eq = item.find('=');
        const std::string key = item.substr(0, eq);
        if (eq == std::string::npos)
            fail("--disk: '{}' is not KEY=VALUE (path, format, readonly, serial, queues)", item);
        const std::string value = item.substr(eq + 1);
        if (key == "path") {
            d.path = value;
        } else if (key == "format") {
            if (value != "raw" && value != "qcow2")
                fail("--disk: format={} (raw or qcow2)", value);
            d.format = value;
        } else if (key == "readonly") {
            if (value != "on" && value != "off")
                fail("--disk: readonly={} (on or off)", value);
            d.read_only = value == "on";
        } else if (key == "serial") {
            d.serial = value;
        } else if (key == "queues") {
            d.queues = static_cast<unsigned>(parse_uint(value, "--disk queues", 1, 16));
        } else {
            fail("--disk: unknown key '{}' (path, format, readonly, serial, queues)", key);
        }
    }
    if (d.path.empty())
        fail("--disk needs path=FILE");
    return d;
}

}  // namespace

void add_session_options(Options& o, VmConfig& cfg, SessionOptions& s)
{
    o.value("--disk", [&](const std::string& v) { cfg.disks.push_back(parse_disk(v)); });
    o.value("--serial", [&](const std::string& v) { cfg.serial = v; });
    o.value("--apic", [&](const std::string& v) { cfg.apic = v; });
    o.flag("--stats", [&] { cfg.stats = true; });
    o.value("--pin", [&](const std::string& v) { cfg.pin = v; });
    o.flag("--pm-qos", [&] { cfg.pm_qos = true; });
    o.flag("--irqdev", [&] { cfg.irqdev = true; });
    o.value("--control", [&](const std::string& v) {
        if (v.empty())
            fail("--control needs a socket path");
        s.control = v;
    });
    o.value("--control-allow-uid", [&](const std::string& v) {
        s.control_allow.push_back(
            static_cast<uid_t>(parse_uint(v, "--control-allow-uid", 0, 0xfffffffeu)));
    });
    o.flag("--paused", [&] { s.paused = true; });
    o.pair("--snapshot-on", [&](const std::string& sig, const std::string& path) {
        s.snapshot_signal = parse_signal(sig);
        if (path.empty())
            fail("--snapshot-on {} needs a file path", sig);
        s.snapshot_path = path;
    });
    o.flag("--sandbox", [&] { s.sandbox = true; });
}

int parse_signal(const std::string& name)
{
    std::string n = name.rfind("SIG", 0) == 0 ? name.substr(3) : name;
    struct {
        const char* name;
        int sig;
    } const table[] = {{"USR2", SIGUSR2}, {"HUP", SIGHUP}, {"QUIT", SIGQUIT}, {"TSTP", SIGTSTP}};
    if (n == "USR1")
        fail("--snapshot-on: SIGUSR1 is used by hvaccel to kick vCPUs; use USR2 or HUP");
    for (const auto& e : table)
        if (n == e.name)
            return e.sig;
    fail("--snapshot-on: unknown signal '{}' (USR2, HUP, QUIT, TSTP)", name);
}

int run_session(const SessionOptions& s, const std::function<std::unique_ptr<Vm>()>& make_vm)
{
    if (s.paused && s.control.empty())
        fail("--paused needs --control (nothing else could resume the VM)");
    if (!s.control_allow.empty() && s.control.empty())
        fail("--control-allow-uid needs --control");
    // Signals are taken by a thread of their own (no work in a signal handler). They are
    // blocked before any other thread exists (the VM's timer, vCPU and device threads, the
    // control server's): every thread inherits the mask, so none of them can receive one and
    // let its default action end the process.
    // The watcher sleeps in sigwaitinfo() until one arrives; `wake` (a real-time signal nothing
    // else sends) ends it once the VM has stopped, without a polling interval to wait out.
    const int wake = SIGRTMIN;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, wake);
    if (s.snapshot_signal)
        sigaddset(&set, s.snapshot_signal);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    std::unique_ptr<Vm> owned = make_vm();
    Vm& vm = *owned;
    std::unique_ptr<ControlServer> control;
    if (!s.control.empty())
        control = std::make_unique<ControlServer>(vm, s.control, s.control_allow);
    if (s.sandbox)
        enter_sandbox(vm, {.control = !s.control.empty(),
                           .snapshots = !s.control.empty() || s.snapshot_signal != 0});
    sandbox_selftest();  // tests only: HVACCEL_SANDBOX_SELFTEST
    std::atomic<bool> done{false};
    std::thread watcher([&] {
        while (!done.load()) {
            const int sig = sigwaitinfo(&set, nullptr);
            if (sig < 0 || sig == wake)
                continue;
            if (sig == s.snapshot_signal) {
                try {
                    vm.snapshot(s.snapshot_path);
                    std::fprintf(stderr, "hvaccel: snapshot written to %s\n",
                                 s.snapshot_path.c_str());
                } catch (const std::exception& e) {
                    std::fprintf(stderr, "hvaccel: %s\n", e.what());
                }
                continue;
            }
            vm.request_stop(kExitInterrupted, fmt::format("stopped by signal {}", sig));
        }
    });
    if (s.paused)
        vm.pause();  // taken by every vCPU thread before its first instruction
    int status = vm.run();
    done = true;
    pthread_kill(watcher.native_handle(), wake);  // pending until taken: no lost wake-up
    watcher.join();
    return status;
}

}  // namespace hv::cli
