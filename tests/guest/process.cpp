#include "process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace hvtest {

namespace {
long long now_ms()
{
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}
}  // namespace

Result run(const std::vector<std::string>& argv, int timeout_s, const std::vector<std::string>& env)
{
    Result r;
    int out[2], err[2];
    if (pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC))
        return r;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out[1], 1);
        dup2(err[1], 2);
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, 0);
        for (const auto& e : env)
            putenv(const_cast<char*>(e.c_str()));
        std::vector<char*> args;
        for (const auto& a : argv)
            args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        execvp(args[0], args.data());
        dprintf(2, "exec %s: %s\n", args[0], strerror(errno));
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
    long long deadline = now_ms() + timeout_s * 1000LL;
    int open_fds = 2;
    while (open_fds > 0) {
        long long left = deadline - now_ms();
        if (left <= 0) {
            r.timed_out = true;
            kill(pid, SIGKILL);
            break;
        }
        if (poll(fds, 2, static_cast<int>(left)) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP)))
                continue;
            char buf[4096];
            ssize_t n = read(fds[i].fd, buf, sizeof buf);
            if (n <= 0) {
                close(fds[i].fd);
                fds[i].fd = -1;
                --open_fds;
            } else {
                (i == 0 ? r.out : r.err).append(buf, static_cast<std::size_t>(n));
            }
        }
    }
    for (auto& f : fds)
        if (f.fd >= 0)
            close(f.fd);
    int st = 0;
    waitpid(pid, &st, 0);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return r;
}

Background spawn(const std::vector<std::string>& argv, const std::string& out_path,
                 const std::string& err_path)
{
    Background b;
    b.pid = fork();
    if (b.pid == 0) {
        int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(out, 1);
        dup2(err, 2);
        std::vector<char*> args;
        for (const auto& a : argv)
            args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        execvp(args[0], args.data());
        _exit(127);
    }
    return b;
}

int Background::wait(int timeout_s)
{
    long long end = now_ms() + timeout_s * 1000LL;
    int st = 0;
    while (now_ms() < end) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        usleep(5000);
    }
    kill9();
    return -1;
}

void Background::kill9()
{
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
}

std::string control(const std::string& socket_path, const std::string& request)
{
    for (int attempt = 0; attempt < 1000; ++attempt) {
        int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, socket_path.c_str(), sizeof addr.sun_path - 1);
        if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
            close(fd);
            usleep(10000);
            continue;
        }
        std::string line = request + "\n", reply;
        if (::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
            close(fd);
            return {};
        }
        char c;
        while (read(fd, &c, 1) == 1 && c != '\n')
            reply.push_back(c);
        close(fd);
        return reply;
    }
    return {};
}

std::string slurp(const std::string& path)
{
    std::string s;
    int fd = open(path.c_str(), O_RDONLY);
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
    long long end = now_ms() + timeout_s * 1000LL;
    while (now_ms() < end) {
        if (slurp(path).find(text) != std::string::npos)
            return true;
        usleep(2000);
    }
    return false;
}

std::string hvaccel()
{
    return HV_BINARY;
}

std::string guest(const std::string& name)
{
    return std::string(HV_GUEST_DIR) + "/" + name + ".elf";
}

std::string kvm_unavailable()
{
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return strerror(errno);
    close(fd);
    return {};
}

}  // namespace hvtest
