// Child processes for the guest tests, the benchmarks in bench/ and `hvaccel bench`/`demo`: run
// a command with its output captured or sent to files, under a time limit, and collect its exit
// status, wall time and peak RSS. Every VM these run is a child, so a guest or VMM crash ends
// one run, not the caller.
//
// Plain POSIX and the C++ library only (no GoogleTest): the hvaccel binary links this too.
#pragma once

#include <string>
#include <vector>

namespace hv::support {

// Where a child's standard output or error goes.
struct Sink {
    enum class Kind {
        capture,  // into ProcessResult::out/err (run_process); /dev/null for spawn_process
        discard,  // /dev/null
        inherit,  // the caller's own stream
        file,     // `path`, truncated or appended to, created with `mode`
    };
    Kind kind = Kind::capture;
    std::string path;
    bool append = false;
    unsigned mode = 0644;

    static Sink captured() { return {}; }
    static Sink null() { return {Kind::discard, {}, false, 0}; }
    static Sink inherited() { return {Kind::inherit, {}, false, 0}; }
    static Sink to_file(std::string path, bool append = false, unsigned mode = 0644)
    {
        return {Kind::file, std::move(path), append, mode};
    }
};

struct ProcessOptions {
    Sink out;
    Sink err;
    int timeout_s = 0;             // SIGKILL after this many seconds; 0: no limit
    std::vector<std::string> env;  // NAME=VALUE entries added to (or replacing in) the child's
    bool stdin_null = true;        // stdin from /dev/null; false: inherited
};

struct ProcessResult {
    int status = -1;         // exit status, 128 + signal; -1 when it could not start or timed out
    bool timed_out = false;  // killed (SIGKILL) at the time limit
    std::string out, err;    // the Sink::capture streams
    double seconds = 0;      // wall time from the fork to the child reaped
    long max_rss_kib = 0;    // the child's peak resident set (wait4)
};

// Runs argv[0] (searched in PATH) and waits for it.
ProcessResult run_process(const std::vector<std::string>& argv, const ProcessOptions& opt = {});
// The same with stdout and stderr captured, stdin inherited and a time limit.
ProcessResult run_process(const std::vector<std::string>& argv, int timeout_s);

// Starts argv in the background (Sink::capture goes to /dev/null); returns its pid, -1 on failure.
int spawn_process(const std::vector<std::string>& argv, const ProcessOptions& opt);
// Waits up to `timeout_s` (0: no limit) for pid; returns its status as run_process does (-1 and
// a SIGKILL at the limit). `max_rss_kib`, when given, receives the child's peak RSS.
int wait_process(int pid, int timeout_s, long* max_rss_kib = nullptr);
// SIGKILL and reap.
void kill_process(int pid);

// This binary (/proc/self/exe resolved).
std::string self_exe();
// Where `name` is in PATH (an executable file), or "" when not there.
std::string find_in_path(const std::string& name);

// The whole file at `path` ("" when it cannot be read).
std::string slurp(const std::string& path);
// Waits up to `timeout_s` for `text` to appear in the file at `path` (e.g. a child's output).
bool wait_for_text(const std::string& path, const std::string& text, int timeout_s = 30);

}  // namespace hv::support
