#include "tests/support/control.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace hv::support {
namespace {

double now_s()
{
    timespec t{};
    clock_gettime(CLOCK_MONOTONIC, &t);
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

}  // namespace

int connect_unix(const std::string& path, int timeout_s)
{
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (path.size() >= sizeof a.sun_path)
        return -1;
    std::memcpy(a.sun_path, path.c_str(), path.size());
    double end = now_s() + timeout_s;
    for (;;) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -1;
        if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0)
            return fd;
        close(fd);
        if (now_s() >= end)
            return -1;
        usleep(5000);
    }
}

bool send_line(int fd, const std::string& text)
{
    std::string line = text + "\n";
    std::size_t done = 0;
    while (done < line.size()) {
        ssize_t n = send(fd, line.data() + done, line.size() - done, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        done += static_cast<std::size_t>(n);
    }
    return true;
}

std::string control_request(const std::string& path, const std::string& line, int connect_timeout_s,
                            int reply_timeout_s)
{
    int fd = connect_unix(path, connect_timeout_s);
    if (fd < 0)
        return {};
    std::string reply;
    if (send_line(fd, line)) {
        double end = now_s() + reply_timeout_s;
        char c;
        for (;;) {
            if (reply_timeout_s > 0) {
                pollfd p{fd, POLLIN, 0};
                double left = end - now_s();
                if (left <= 0 || poll(&p, 1, static_cast<int>(left * 1000) + 1) <= 0)
                    break;
            }
            if (read(fd, &c, 1) != 1 || c == '\n')
                break;
            reply += c;
        }
    }
    close(fd);
    return reply;
}

}  // namespace hv::support
