#include "cmd/bench_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace hv::bench {
namespace {

double now_s()
{
    timespec t{};
    clock_gettime(CLOCK_MONOTONIC, &t);
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

[[noreturn]] void exec_child(const std::vector<std::string>& argv)
{
    std::vector<char*> a;
    for (const auto& s : argv)
        a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    // A VM of its own session: a terminal's ^C reaches the bench, which ends its children.
    execvp(a[0], a.data());
    _exit(127);
}

int decode_status(int st)
{
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return -1;
}

}  // namespace

ProcessResult run_process(const std::vector<std::string>& argv, int timeout_s)
{
    ProcessResult r;
    int out[2], err[2];
    if (pipe2(out, O_CLOEXEC) != 0)
        return r;
    if (pipe2(err, O_CLOEXEC) != 0) {
        close(out[0]);
        close(out[1]);
        return r;
    }
    double start = now_s();
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out[1], 1);
        dup2(err[1], 2);
        exec_child(argv);
    }
    close(out[1]);
    close(err[1]);
    if (pid < 0) {
        close(out[0]);
        close(err[0]);
        return r;
    }
    pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
    std::string* sinks[2] = {&r.out, &r.err};
    int open_fds = 2;
    char buf[65536];
    while (open_fds > 0) {
        double left = start + timeout_s - now_s();
        if (left <= 0) {
            kill(pid, SIGKILL);
            r.timed_out = true;
            break;
        }
        int n = poll(fds, 2, static_cast<int>(left * 1000) + 1);
        if (n < 0 && errno != EINTR)
            break;
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t got = read(fds[i].fd, buf, sizeof buf);
            if (got > 0) {
                sinks[i]->append(buf, static_cast<std::size_t>(got));
            } else {
                close(fds[i].fd);
                fds[i].fd = -1;
                --open_fds;
            }
        }
    }
    for (auto& f : fds)
        if (f.fd >= 0)
            close(f.fd);
    int st = 0;
    waitpid(pid, &st, 0);
    r.status = r.timed_out ? -1 : decode_status(st);
    r.seconds = now_s() - start;
    return r;
}

int spawn_process(const std::vector<std::string>& argv, const std::string& out_path,
                  const std::string& err_path)
{
    pid_t pid = fork();
    if (pid == 0) {
        int o = open(out_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
        int e = open(err_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (o < 0 || e < 0)
            _exit(127);
        dup2(o, 1);
        dup2(e, 2);
        exec_child(argv);
    }
    return pid;
}

int wait_process(int pid, int timeout_s)
{
    double end = now_s() + timeout_s;
    int st = 0;
    for (;;) {
        pid_t got = waitpid(pid, &st, WNOHANG);
        if (got == pid)
            return decode_status(st);
        if (got < 0)
            return -1;
        if (now_s() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        usleep(10000);
    }
}

std::string self_exe()
{
    std::error_code ec;
    auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
    return ec ? std::string("/proc/self/exe") : p.string();
}

std::string find_qemu()
{
    const char* path = std::getenv("PATH");
    std::string dirs = path ? path : "/usr/bin:/bin";
    std::size_t start = 0;
    while (start <= dirs.size()) {
        std::size_t end = dirs.find(':', start);
        std::string dir = dirs.substr(start, end == std::string::npos ? end : end - start);
        std::string cand = (dir.empty() ? "." : dir) + "/qemu-system-x86_64";
        if (access(cand.c_str(), X_OK) == 0)
            return cand;
        if (end == std::string::npos)
            break;
        start = end + 1;
    }
    return {};
}

std::string control_request(const std::string& socket_path, const std::string& line,
                            int timeout_s)
{
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (socket_path.size() >= sizeof a.sun_path)
        return {};
    std::memcpy(a.sun_path, socket_path.c_str(), socket_path.size());
    double end = now_s() + timeout_s;
    int fd = -1;
    while (now_s() < end) {
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0)
            break;
        if (fd >= 0)
            close(fd);
        fd = -1;
        usleep(20000);
    }
    if (fd < 0)
        return {};
    std::string req = line + "\n", reply;
    if (write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
        char c;
        pollfd p{fd, POLLIN, 0};
        while (poll(&p, 1, static_cast<int>(std::max(0.0, end - now_s()) * 1000) + 1000) > 0 &&
               read(fd, &c, 1) == 1 && c != '\n')
            reply += c;
    }
    close(fd);
    return reply;
}

}  // namespace hv::bench
