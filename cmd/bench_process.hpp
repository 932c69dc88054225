// Child processes for `hvaccel bench` and the demo: every VM runs as a child (the same hvaccel
// binary, or QEMU), so a guest or VMM crash ends one run, not the benchmark.
#pragma once

#include <string>
#include <vector>

namespace hv::bench {

struct ProcessResult {
    int status = -1;         // exit status, 128 + signal, or -1 when it could not start
    bool timed_out = false;  // killed after the time limit
    std::string out, err;
    double seconds = 0;
};

// Runs argv[0] (searched in PATH) with stdout and stderr captured; kills it (SIGKILL) after
// `timeout_s` seconds.
ProcessResult run_process(const std::vector<std::string>& argv, int timeout_s);

// Starts argv in the background with stdout and stderr appended to files; returns the pid.
int spawn_process(const std::vector<std::string>& argv, const std::string& out_path,
                  const std::string& err_path);
// Waits up to timeout_s for pid (SIGKILL after); returns its status as run_process does.
int wait_process(int pid, int timeout_s);

// This binary (/proc/self/exe resolved), for running VMs as children.
std::string self_exe();
// Where qemu-system-x86_64 is, or "" when not installed.
std::string find_qemu();
// Sends one line to a Unix socket (retrying the connect for up to `timeout_s`) and returns the
// reply line, "" on failure.
std::string control_request(const std::string& socket, const std::string& line, int timeout_s);

}  // namespace hv::bench
