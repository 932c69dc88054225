#include "tests/support/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

extern char** environ;

namespace hv::support {
namespace {

double now_s()
{
    timespec t{};
    clock_gettime(CLOCK_MONOTONIC, &t);
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

int poll_ms(double seconds)
{
    return static_cast<int>(seconds * 1000) + 1;
}

int decode_status(int st)
{
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return -1;
}

// Everything the child needs, built before fork(): a threaded parent's child may only make
// async-signal-safe calls, so nothing is allocated after the fork.
struct ExecPlan {
    std::vector<std::string> env;
    std::vector<char*> argv, envp;
};

ExecPlan make_plan(const std::vector<std::string>& argv, const std::vector<std::string>& env)
{
    ExecPlan p;
    for (const auto& a : argv)
        p.argv.push_back(const_cast<char*>(a.c_str()));
    p.argv.push_back(nullptr);
    if (env.empty())
        return p;
    auto name_of = [](const std::string& e) { return e.substr(0, e.find('=')); };
    for (char** e = environ; e && *e; ++e) {
        std::string entry = *e;
        bool replaced = false;
        for (const auto& x : env)
            replaced = replaced || name_of(x) == name_of(entry);
        if (!replaced)
            p.env.push_back(std::move(entry));
    }
    p.env.insert(p.env.end(), env.begin(), env.end());
    for (auto& e : p.env)
        p.envp.push_back(e.data());
    p.envp.push_back(nullptr);
    return p;
}

// In the child: points fd `target` (1 or 2) where `s` says; `pipe_w` is the capture pipe.
void redirect(const Sink& s, int pipe_w, int target)
{
    int fd = -1;
    switch (s.kind) {
    case Sink::Kind::inherit:
        return;
    case Sink::Kind::capture:
        fd = pipe_w >= 0 ? pipe_w : open("/dev/null", O_WRONLY);
        break;
    case Sink::Kind::discard:
        fd = open("/dev/null", O_WRONLY);
        break;
    case Sink::Kind::file:
        fd = open(s.path.c_str(), O_WRONLY | O_CREAT | (s.append ? O_APPEND : O_TRUNC),
                  static_cast<mode_t>(s.mode));
        break;
    }
    if (fd < 0)
        _exit(127);
    dup2(fd, target);
}

[[noreturn]] void exec_child(const ExecPlan& p, const ProcessOptions& opt, int out_w, int err_w)
{
    if (opt.stdin_null) {
        int fd = open("/dev/null", O_RDONLY);
        if (fd >= 0)
            dup2(fd, 0);
    }
    redirect(opt.out, out_w, 1);
    redirect(opt.err, err_w, 2);
    if (p.envp.empty())
        execvp(p.argv[0], p.argv.data());
    else
        execvpe(p.argv[0], p.argv.data(), p.envp.data());
    dprintf(2, "exec %s: %s\n", p.argv[0], strerror(errno));
    _exit(127);
}

// Waits for pid to end, killing it at `deadline` (0: none), and reaps it. A pidfd tells when it
// ends without reaping it first; where there is none (kernels before 5.3), waitid(WNOWAIT) polls.
int reap(int pid, double deadline, bool& timed_out, rusage& ru)
{
    if (deadline > 0) {
        int pfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
        for (;;) {
            double left = deadline - now_s();
            if (left <= 0) {
                kill(pid, SIGKILL);
                timed_out = true;
                break;
            }
            if (pfd >= 0) {
                pollfd p{pfd, POLLIN, 0};
                int n = poll(&p, 1, poll_ms(left));
                if (n > 0)
                    break;
                if (n < 0 && errno != EINTR) {
                    close(pfd);
                    pfd = -1;
                }
                continue;
            }
            siginfo_t info{};
            if (waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0 ||
                info.si_pid != 0)
                break;
            usleep(2000);
        }
        if (pfd >= 0)
            close(pfd);
    }
    int st = 0;
    while (wait4(pid, &st, 0, &ru) < 0 && errno == EINTR) {
    }
    return st;
}

}  // namespace

ProcessResult run_process(const std::vector<std::string>& argv, const ProcessOptions& opt)
{
    ProcessResult r;
    if (argv.empty())
        return r;
    int out[2] = {-1, -1}, err[2] = {-1, -1};
    if (opt.out.kind == Sink::Kind::capture && pipe2(out, O_CLOEXEC) != 0)
        return r;
    if (opt.err.kind == Sink::Kind::capture && pipe2(err, O_CLOEXEC) != 0) {
        if (out[0] >= 0) {
            close(out[0]);
            close(out[1]);
        }
        return r;
    }
    ExecPlan plan = make_plan(argv, opt.env);
    double start = now_s();
    pid_t pid = fork();
    if (pid == 0)
        exec_child(plan, opt, out[1], err[1]);
    pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
    for (int fd : {out[1], err[1]})
        if (fd >= 0)
            close(fd);
    if (pid < 0) {
        for (auto& f : fds)
            if (f.fd >= 0)
                close(f.fd);
        return r;
    }
    double deadline = opt.timeout_s > 0 ? start + opt.timeout_s : 0;
    std::string* sinks[2] = {&r.out, &r.err};
    int open_fds = (fds[0].fd >= 0) + (fds[1].fd >= 0);
    char buf[65536];
    while (open_fds > 0) {
        double left = deadline - now_s();
        if (deadline > 0 && left <= 0) {
            kill(pid, SIGKILL);
            r.timed_out = true;
            break;
        }
        int n = poll(fds, 2, deadline > 0 ? poll_ms(left) : -1);
        if (n < 0 && errno != EINTR)
            break;
        for (int i = 0; i < 2 && n > 0; ++i) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t got = read(fds[i].fd, buf, sizeof buf);
            if (got > 0) {
                sinks[i]->append(buf, static_cast<std::size_t>(got));
            } else if (got == 0 || errno != EINTR) {
                close(fds[i].fd);
                fds[i].fd = -1;
                --open_fds;
            }
        }
    }
    for (auto& f : fds)
        if (f.fd >= 0)
            close(f.fd);
    rusage ru{};
    int st = reap(pid, r.timed_out ? 0 : deadline, r.timed_out, ru);
    r.status = r.timed_out ? -1 : decode_status(st);
    r.seconds = now_s() - start;
    r.max_rss_kib = ru.ru_maxrss;
    return r;
}

ProcessResult run_process(const std::vector<std::string>& argv, int timeout_s)
{
    ProcessOptions opt;
    opt.timeout_s = timeout_s;
    opt.stdin_null = false;
    return run_process(argv, opt);
}

int spawn_process(const std::vector<std::string>& argv, const ProcessOptions& opt)
{
    if (argv.empty())
        return -1;
    ExecPlan plan = make_plan(argv, opt.env);
    pid_t pid = fork();
    if (pid == 0)
        exec_child(plan, opt, -1, -1);
    return pid;
}

int wait_process(int pid, int timeout_s, long* max_rss_kib)
{
    if (pid <= 0)
        return -1;
    bool timed_out = false;
    rusage ru{};
    int st = reap(pid, timeout_s > 0 ? now_s() + timeout_s : 0, timed_out, ru);
    if (max_rss_kib)
        *max_rss_kib = ru.ru_maxrss;
    return timed_out ? -1 : decode_status(st);
}

void kill_process(int pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
}

std::string self_exe()
{
    std::error_code ec;
    auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
    return ec ? std::string("/proc/self/exe") : p.string();
}

std::string find_in_path(const std::string& name)
{
    const char* path = std::getenv("PATH");
    std::string dirs = path ? path : "/usr/bin:/bin";
    std::size_t start = 0;
    while (start <= dirs.size()) {
        std::size_t end = dirs.find(':', start);
        std::string dir = dirs.substr(start, end == std::string::npos ? end : end - start);
        std::string cand = (dir.empty() ? "." : dir) + "/" + name;
        if (access(cand.c_str(), X_OK) == 0)
            return cand;
        if (end == std::string::npos)
            break;
        start = end + 1;
    }
    return {};
}

std::string slurp(const std::string& path)
{
    std::string s;
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return s;
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        s.append(buf, static_cast<std::size_t>(n));
    close(fd);
    return s;
}

bool wait_for_text(const std::string& path, const std::string& text, int timeout_s)
{
    double end = now_s() + timeout_s;
    while (now_s() < end) {
        if (slurp(path).find(text) != std::string::npos)
            return true;
        usleep(2000);
    }
    return false;
}

}  // namespace hv::support
