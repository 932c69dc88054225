// The guest integration tests' view of child processes (tests/support/process.hpp): run hvaccel
// or QEMU with a time limit and capture its output and exit status; skip a test where /dev/kvm
// cannot be used.
#pragma once

#include <string>
#include <vector>

#include "tests/support/control.hpp"
#include "tests/support/process.hpp"

namespace hvtest {

using Result = hv::support::ProcessResult;

// Runs argv with stdout and stderr captured, stdin from /dev/null and `env` (NAME=VALUE) added.
Result run(const std::vector<std::string>& argv, int timeout_s = 60,
           const std::vector<std::string>& env = {});

// A process running in the background with stdout and stderr to files.
struct Background {
    int pid = -1;
    // Waits up to `timeout_s` for the exit status (-1 and a SIGKILL on timeout).
    int wait(int timeout_s = 60) { return hv::support::wait_process(pid, timeout_s); }
    void kill9() { hv::support::kill_process(pid); }
};
Background spawn(const std::vector<std::string>& argv, const std::string& out_path,
                 const std::string& err_path);

// Sends one JSON line to a control socket (retrying the connect for up to 10 s) and returns
// the reply line.
inline std::string control(const std::string& socket, const std::string& request)
{
    return hv::support::control_request(socket, request, 10);
}

using hv::support::slurp;
using hv::support::wait_for_text;

// The hvaccel binary and a guest image path.
std::string hvaccel();
std::string guest(const std::string& name);

// Empty when /dev/kvm is usable, else the reason.
std::string kvm_unavailable();

// Process exit code of a guest that called rt_exit(s): QEMU's isa-debug-exit rule.
constexpr int guest_status(int s)
{
    return (s << 1) | 1;
}

}  // namespace hvtest

#define REQUIRE_KVM()                                                                              \
    do {                                                                                           \
        auto why = hvtest::kvm_unavailable();                                                      \
        if (!why.empty())                                                                          \
            GTEST_SKIP() << "needs /dev/kvm: " << why;                                             \
    } while (0)
