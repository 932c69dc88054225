// What `run` and `restore` share: the options that shape a running VM (serial, stats, APIC
// backend, pinning, PM QoS, control socket, snapshot-on-signal) and running it with the signal
// watcher and the control server around it.
#pragma once

#include <sys/types.h>

#include <csignal>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cmd/options.hpp"
#include "core/vm/vm.hpp"

namespace hv::cli {

struct SessionOptions {
    std::string control;               // --control PATH
    std::vector<uid_t> control_allow;  // --control-allow-uid UID (repeatable)
    int snapshot_signal = 0;           // --snapshot-on SIGNAL PATH
    std::string snapshot_path;
    bool paused = false;   // --paused: the vCPUs wait for "resume" on the control socket
    bool sandbox = false;  // --sandbox: drop privileges and filter system calls (sandbox.hpp)
};

// Adds --serial, --apic, --stats, --pin, --pm-qos, --control, --control-allow-uid,
// --snapshot-on, --sandbox.
void add_session_options(Options& o, VmConfig& cfg, SessionOptions& s);

// Blocks the session's signals, builds the VM with `make_vm` (so that every thread it starts
// inherits the mask), starts the control server, and runs the VM until it ends; SIGINT/SIGTERM
// stop it, the snapshot signal writes a snapshot. With --sandbox, the sandbox is entered after
// the control socket exists and before any vCPU runs.
int run_session(const SessionOptions& s, const std::function<std::unique_ptr<Vm>()>& make_vm);

// "USR2", "SIGUSR2", "HUP", ... -> signal number; refuses SIGUSR1 (hvaccel's vCPU kick).
int parse_signal(const std::string& name);

}  // namespace hv::cli
