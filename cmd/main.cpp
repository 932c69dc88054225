// The hvaccel command line: `hvaccel run IMAGE [options]`, `hvaccel probe`, --help, --version.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include "cmd/bench.hpp"
#include "cmd/demo.hpp"
#include "cmd/disk_cmd.hpp"
#include "cmd/options.hpp"
#include "cmd/probe.hpp"
#include "cmd/session.hpp"
#include "cmd/snapshot_cmd.hpp"
#include "core/base/error.hpp"
#include "core/bus/memory.hpp"
#include "core/vm/vm.hpp"

#ifndef HV_VERSION
#define HV_VERSION "0.0.0"
#endif

namespace {

constexpr const char* kUsage = R"(usage: hvaccel COMMAND [options]

commands:
  run IMAGE [options]   boot a multiboot v1 image (ELF32, ELF64 or a.out-kludge) on KVM
  restore FILE [opts]   continue a VM from a snapshot
  snapshot inspect|diff examine snapshots
  disk info|snapshot    check and describe a disk image; a QCOW2 image's internal snapshots
  demo [--vcpus N]      a tour: boot the embedded guest, IPI latency on every backend and
                        QEMU, snapshot on one backend and restore on another
  bench [options]       interrupt latency workloads on every backend and QEMU (bench --help)
  probe [--json]        show the host profile, the errata that apply and the APIC path
  --help                this text
  --version             the version

run options:
  --vcpus N             number of vCPUs (1 to 255; default 1)
  --memory MiB          guest RAM in MiB (2 to 65536; default 128)
  --cmdline STR         the multiboot command line after the image path
  --module "FILE ARGS"  a multiboot boot module (repeatable)
  --serial stdio|none|FILE   where COM1 output goes (default stdio)
  --apic BACKEND        the APIC backend: auto (from the host profile), kernel, emulated,
                        apicv[,noipiv][,nopi][,novid][,nox2apic], avic[,x2avic][,erratum1235]
  --stats               print exit and device counters on stderr at exit
  --pin none|auto|LIST  pin vCPU threads: auto = one per core first (hwloc), or CPUs "0,2-3"
  --pm-qos              hold a zero-latency PM QoS request (/dev/cpu_dma_latency) while running
  --irqdev              add the passthrough-style MSI-X test device (PCI 00:01.0, docs/passthrough.md)
  --disk path=FILE[,format=raw|qcow2][,readonly=on][,serial=S][,queues=N]
                        an NVMe disk (PCI 00:02.0, then 00:03.0, ...; repeatable, at most 8;
                        docs/storage.md); without format the content decides (no backing file)
  --control PATH        a Unix socket taking JSON lines: pause, resume, snapshot, stats, quit
                        (mode 0600; root and this user may connect)
  --control-allow-uid UID  let user UID use the control socket too (repeatable)
  --paused              start with the vCPUs paused (resume through --control)
  --snapshot-on SIG FILE   write a snapshot to FILE on signal SIG (USR2, HUP, QUIT, TSTP)
  --sandbox             once the VM is built: drop root to nobody and allow only the system
                        calls a running VM needs (seccomp; docs/reliability.md)

restore FILE [options]  continue a snapshot, on any APIC backend; takes the run options above
  but --vcpus/--memory/--cmdline/--module (they come from the file), and:
  --clock-offset NS     move the guest clock forward by NS nanoseconds
  --allow-tsc-mismatch  restore although this host's TSC frequency differs
  --allow-clock-jump    restore on a host whose KVM cannot set the guest TSC: the guest clock
                        moves forward by the time since the snapshot (refused otherwise)

snapshot inspect FILE [--json]   print a snapshot's sections
snapshot diff A B                 show where two snapshots differ

disk info FILE [--format raw|qcow2]   without --format the content decides, but a QCOW2 image
  found that way may not name a backing file (give --format qcow2 to follow it)
disk snapshot FILE list|create NAME|apply NAME|delete NAME   a QCOW2 image's internal snapshots
  (the same table qemu-img snapshot reads and writes; NAME may be a snapshot's ID)

environment: HVACCEL_KVM_DEVICE overrides /dev/kvm.

exit status: the guest's debug-exit value v gives (v << 1) | 1, as QEMU's isa-debug-exit;
  2 bad usage or input, 4 guest crash (triple fault, KVM error, halted forever), 130 interrupted.
)";

int cmd_run(int argc, char** argv)
{
    hv::VmConfig cfg;
    hv::cli::SessionOptions session;
    hv::cli::Options o;
    bool help = false;
    o.flag("--help", [&] { help = true; });
    o.value("--vcpus", [&](const std::string& v) {
        cfg.vcpus = static_cast<unsigned>(hv::cli::parse_uint(v, "--vcpus", 1, hv::kMaxVcpus));
    });
    o.value("--memory", [&](const std::string& v) {
        cfg.memory_mib =
            hv::cli::parse_uint(v, "--memory", hv::kMinMemory >> 20, hv::kMaxMemory >> 20);
    });
    o.value("--cmdline", [&](const std::string& v) { cfg.cmdline = v; });
    o.value("--module", [&](const std::string& v) { cfg.modules.push_back(v); });
    hv::cli::add_session_options(o, cfg, session);
    auto pos = o.parse(argc, argv, 2);
    if (help) {
        std::fputs(kUsage, stdout);
        return 0;
    }
    if (pos.size() != 1)
        hv::fail("run needs exactly one IMAGE (got {})", pos.size());
    cfg.image = pos[0];
    if (const char* dev = std::getenv("HVACCEL_KVM_DEVICE"))
        cfg.kvm_path = dev;
    return hv::cli::run_session(session, [&] { return std::make_unique<hv::Vm>(cfg); });
}

}  // namespace

int main(int argc, char** argv)
{
    if (argc < 2) {
        std::fputs(kUsage, stderr);
        return hv::kExitUsage;
    }
    std::string cmd = argv[1];
    try {
        if (cmd == "--help" || cmd == "-h" || cmd == "help") {
            std::fputs(kUsage, stdout);
            return 0;
        }
        if (cmd == "--version") {
            std::printf("hvaccel %s\n", HV_VERSION);
            return 0;
        }
        if (cmd == "run")
            return cmd_run(argc, argv);
        if (cmd == "restore")
            return cmd_restore(argc - 1, argv + 1);
        if (cmd == "snapshot")
            return cmd_snapshot(argc - 1, argv + 1);
        if (cmd == "disk")
            return cmd_disk(argc - 1, argv + 1);
        if (cmd == "bench")
            return cmd_bench(argc - 1, argv + 1);
        if (cmd == "demo")
            return cmd_demo(argc - 1, argv + 1);
        if (cmd == "probe")
            return cmd_probe(argc - 1, argv + 1);
        hv::fail("unknown command '{}' (see --help)", cmd);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "hvaccel: %s\n", e.what());
        return hv::kExitUsage;
    }
}
