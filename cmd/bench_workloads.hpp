// The guest workloads `hvaccel bench` knows (guest/tests/bench_*.c and the device's
// msix_latency.c), the paths it runs them on, and one measured (workload, variant, path).
#pragma once

#include <set>
#include <string>
#include <vector>

#include "cmd/bench_stats.hpp"

namespace hv::host {
struct HostProfile;
}

namespace hv::bench {

// One run configuration of a workload: "mode=WORD" on its command line and the series it prints.
struct Variant {
    std::string mode;                 // "" when the workload has no modes
    std::vector<std::string> series;  // sample lines it prints
    double irqs_per_sample = 1;       // interrupts raised per sample (all series together)
    // QEMU: whether the variant exists there, and the names its series have there (QEMU's edu
    // has no host-side raiser: the guest raises from a vCPU and prints under the plain name).
    bool on_qemu = true;
    std::map<std::string, std::string> qemu_names = {};  // QEMU's name -> ours
};

struct Workload {
    std::string name;   // --workload NAME
    std::string image;  // NAME.elf in the guest directory
    std::string description;
    unsigned vcpus = 1;
    std::vector<Variant> variants;
    std::vector<std::string> hvaccel_args;  // e.g. --irqdev
    std::string qemu_machine = "microvm";   // pc/q35 only where a PCI device is needed
    std::vector<std::string> qemu_devices;  // -device arguments
    bool needs_irqdev = false;              // the PCI MSI-X test device (hvaccel run --irqdev)
};

const std::vector<Workload>& all_workloads();
const Workload* find_workload(const std::string& name);

// Every --apic spec the bench knows, in table order.
const std::vector<std::string>& all_backend_specs();
// Those this host can run (host::choose_backend does not refuse them), with the reason for the
// ones it cannot.
std::vector<std::string> runnable_backends(const host::HostProfile& p,
                                           std::vector<std::string>* refused = nullptr);

// What one path (an hvaccel backend or QEMU) gave for one workload variant.
struct PathResult {
    std::string path;  // "kernel", "apicv,noipiv", "qemu microvm"
    bool qemu = false;
    std::string error;  // empty when every run passed
    std::vector<std::string> series_order;
    std::map<std::string, std::vector<double>> us;  // latencies, every measured run pooled
    std::map<std::string, std::string> skipped;
    std::vector<std::string> notes;  // "NAME_note: ..." lines of the measured runs
    ExitRates exits;                 // per 1,000 interrupts; empty for QEMU
    bool have_exits = false;
    int runs = 0;
};

struct VariantResult {
    const Workload* workload = nullptr;
    const Variant* variant = nullptr;
    std::vector<PathResult> paths;
};

// What to run and how.
struct RunPlan {
    std::string guest_dir;
    std::string hvaccel;  // this binary
    std::string qemu;     // "" when not installed or not wanted
    unsigned iterations = 200, repeat = 3;
    double tsc_khz = 0;
    int timeout_s = 120;
    bool progress = true;
    std::set<std::string> modes;  // only variants with these modes ("" = no mode); empty: all
    // The demo: workload name -> image instead of guest_dir/IMAGE.elf (the embedded guest).
    std::map<std::string, std::string> image_override;
};

// The image path of a workload under the plan, and whether it exists.
std::string image_path(const RunPlan& plan, const Workload& w);
// Why a workload cannot run here ("" when it can): image missing, device not built.
std::string unavailable_reason(const RunPlan& plan, const Workload& w);

// Runs one variant on one path: a warm-up run with fewer samples (also the baseline that
// cancels boot from the exit counts) then `repeat` measured runs. `step`/`steps` for the
// progress line.
PathResult run_path(const RunPlan& plan, const Workload& w, const Variant& v,
                    const std::string& path, bool qemu, int& step, int steps);

}  // namespace hv::bench
