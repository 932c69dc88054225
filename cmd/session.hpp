// What `run` and `restore` share: the options that shape a running VM (serial, stats, APIC
// backend, pinning, PM QoS, control socket, snapshot-on-signal) and running it with the signal
// watcher and the control server around it.
#pragma once

#include <csignal>
#include <string>

#include "cmd/options.hpp"
#include "core/vm/vm.hpp"

namespace hv::cli {

struct SessionOptions {
    std::string control;      // --control PATH
    int snapshot_signal = 0;  // --snapshot-on SIGNAL PATH
    std::string snapshot_path;
    bool paused = false;   // --paused: the vCPUs wait for "resume" on the control socket
    bool sandbox = false;  // --sandbox: drop privileges and filter system calls (sandbox.hpp)
};

// Adds --serial, --apic, --stats, --pin, --pm-qos, --control, --snapshot-on, --sandbox.
void add_session_options(Options& o, VmConfig& cfg, SessionOptions& s);

// Runs the VM until it ends; SIGINT/SIGTERM stop it, the snapshot signal writes a snapshot.
// With --sandbox, the sandbox is entered after the control socket exists and before any vCPU runs.
int run_session(Vm& vm, const SessionOptions& s);

// "USR2", "SIGUSR2", "HUP", ... -> signal number; refuses SIGUSR1 (hvaccel's vCPU kick).
int parse_signal(const std::string& name);

}  // namespace hv::cli
