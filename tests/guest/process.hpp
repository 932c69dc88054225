// Runs a command with a time limit and captures its output and exit status, for the guest
// integration tests. Skips a test where /dev/kvm cannot be used.
#pragma once

#include <string>
#include <vector>

namespace hvtest {

struct Result {
    int status = -1;  // exit status, or 128 + signal
    bool timed_out = false;
    std::string out, err;
};

Result run(const std::vector<std::string>& argv, int timeout_s = 60,
           const std::vector<std::string>& env = {});

// A process running in the background with stdout and stderr to files.
struct Background {
    int pid = -1;
    // Waits up to `timeout_s` for the exit status (-1 and a SIGKILL on timeout).
    int wait(int timeout_s = 60);
    void kill9();
};
Background spawn(const std::vector<std::string>& argv, const std::string& out_path,
                 const std::string& err_path);

// Sends one JSON line to a control socket (retrying the connect for up to 10 s) and returns
// the reply line.
std::string control(const std::string& socket, const std::string& request);

// Waits up to `timeout_s` for `text` to appear in the file at `path`.
bool wait_for_text(const std::string& path, const std::string& text, int timeout_s = 30);
std::string slurp(const std::string& path);

// The hvaccel binary and a guest image path.
std::string hvaccel();
std::string guest(const std::string& name);

// Empty when /dev/kvm is usable, else the reason.
std::string kvm_unavailable();

// Process exit code of a guest that called rt_exit(s): QEMU's isa-debug-exit rule.
constexpr int guest_status(int s) { return (s << 1) | 1; }

}  // namespace hvtest

#define REQUIRE_KVM()                                               \
    do {                                                            \
        auto why = hvtest::kvm_unavailable();                       \
        if (!why.empty())                                           \
            GTEST_SKIP() << "needs /dev/kvm: " << why;              \
    } while (0)
