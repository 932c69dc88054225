#include "core/control.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/vm.hpp"

namespace hv {

using nlohmann::json;

ControlServer::ControlServer(Vm& vm, std::string path) : vm_(vm), path_(std::move(path))
{
    sockaddr_un addr{};
    if (path_.empty() || path_.size() >= sizeof addr.sun_path)
        fail("--control {}: a socket path must be 1 to {} characters", path_,
             sizeof addr.sun_path - 1);
    struct stat st {};
    if (::lstat(path_.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            fail("--control {}: exists and is not a socket", path_);
        ::unlink(path_.c_str());
    }
    listen_ = Fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!listen_.valid())
        throw_errno("--control: socket");
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path_.c_str(), path_.size());
    if (::bind(listen_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        throw_errno(fmt::format("--control {}: bind", path_));
    if (::listen(listen_.get(), 4) != 0)
        throw_errno(fmt::format("--control {}: listen", path_));
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0)
        throw_errno("--control: pipe");
    stop_r_ = Fd(p[0]);
    stop_w_ = Fd(p[1]);
    thread_ = std::thread([this] { serve(); });
}

ControlServer::~ControlServer()
{
    char c = 1;
    [[maybe_unused]] auto n = ::write(stop_w_.get(), &c, 1);
    if (thread_.joinable())
        thread_.join();
    ::unlink(path_.c_str());
}

std::string ControlServer::handle(const std::string& line)
{
    auto error = [](const std::string& why) { return json{{"ok", false}, {"error", why}}.dump(); };
    json req = json::parse(line, nullptr, false);
    if (req.is_discarded() || !req.is_object())
        return error("request is not a JSON object");
    auto cmd_it = req.find("cmd");
    if (cmd_it == req.end() || !cmd_it->is_string())
        return error("request has no \"cmd\" string");
    const std::string cmd = cmd_it->get<std::string>();
    try {
        if (cmd == "pause") {
            vm_.pause();
            return json{{"ok", true}, {"state", "paused"}}.dump();
        }
        if (cmd == "resume") {
            vm_.resume();
            return json{{"ok", true}, {"state", "running"}}.dump();
        }
        if (cmd == "snapshot") {
            auto p = req.find("path");
            if (p == req.end() || !p->is_string() || p->get<std::string>().empty())
                return error("snapshot needs a \"path\" string");
            vm_.snapshot(p->get<std::string>());
            return json{{"ok", true}, {"path", p->get<std::string>()}}.dump();
        }
        if (cmd == "stats")
            return json{{"ok", true}, {"stats", vm_.stats_report()}}.dump();
        if (cmd == "quit") {
            vm_.request_stop(0, "stopped through the control socket");
            return json{{"ok", true}}.dump();
        }
    } catch (const std::exception& e) {
        return error(e.what());
    }
    return error("unknown command '" + cmd + "' (pause, resume, snapshot, stats, quit)");
}

void ControlServer::serve()
{
    for (;;) {
        pollfd fds[2] = {{listen_.get(), POLLIN, 0}, {stop_r_.get(), POLLIN, 0}};
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        if (fds[1].revents)
            return;
        if (fds[0].revents & POLLIN) {
            Fd client(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
            if (client.valid())
                serve_client(client.get());
        }
    }
}

void ControlServer::serve_client(int fd)
{
    std::string buf;
    char chunk[4096];
    for (;;) {
        pollfd fds[2] = {{fd, POLLIN, 0}, {stop_r_.get(), POLLIN, 0}};
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        if (fds[1].revents)
            return;
        ssize_t n = ::read(fd, chunk, sizeof chunk);
        if (n <= 0)
            return;  // disconnected
        buf.append(chunk, static_cast<std::size_t>(n));
        for (std::size_t nl; (nl = buf.find('\n')) != std::string::npos;) {
            std::string reply = handle(buf.substr(0, nl)) + "\n";
            buf.erase(0, nl + 1);
            if (::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL) < 0)
                return;
        }
        if (buf.size() > kMaxRequest) {
            std::string reply = json{{"ok", false}, {"error", "request too long"}}.dump() + "\n";
            ::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
            return;  // drop the client: the rest of its line cannot be trusted
        }
    }
}

}  // namespace hv
