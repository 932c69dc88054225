#include "core/vm/control.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include <nlohmann/json.hpp>

#include "core/base/error.hpp"
#include "core/base/json.hpp"

namespace hv {

using nlohmann::json;

ControlServer::ControlServer(ControlTarget& target, std::string path, std::vector<uid_t> allow)
    : target_(target), path_(std::move(path)), allow_(std::move(allow))
{
    allow_.push_back(0);
    allow_.push_back(::geteuid());
    bind_socket();
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0)
        throw_errno("--control: pipe");
    stop_r_ = Fd(p[0]);
    stop_w_ = Fd(p[1]);
    thread_ = std::thread([this] { serve(); });
}

void ControlServer::bind_socket()
{
    sockaddr_un addr{};
    if (path_.find('\0') != std::string::npos)
        fail("--control: a socket path cannot hold a NUL byte");
    if (path_.empty() || path_.size() >= sizeof addr.sun_path)
        fail("--control {}: a socket path must be 1 to {} characters", path_,
             sizeof addr.sun_path - 1);
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path_.c_str(), path_.size());
    listen_ = Fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!listen_.valid())
        throw_errno("--control: socket");
    struct stat st {};
    if (::lstat(path_.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            fail("--control {}: exists and is not a socket", path_);
        // A socket someone answers on belongs to a running process (another VM): never take it
        // over. One nobody answers is left by a process that died: replace it.
        // Anything but a refused connection (a socket of another user's, say) is left alone.
        Fd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (!probe.valid())
            throw_errno("--control: socket");
        if (::connect(probe.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0)
            fail("--control {}: another process is listening on this socket", path_);
        if (errno != ECONNREFUSED) {
            const int cerr = errno;
            throw_errno(fmt::format("--control {}: the socket there cannot be checked", path_),
                        cerr);
        }
        ::unlink(path_.c_str());
    }
    // Mode 0600 from the moment the file exists: bind creates it under this umask.
    const mode_t old_umask = ::umask(0177);
    const int rc = ::bind(listen_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    const int err = errno;
    ::umask(old_umask);
    if (rc != 0)
        throw_errno(fmt::format("--control {}: bind", path_), err);
    if (::lstat(path_.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode))
        fail("--control {}: the socket file vanished after bind", path_);
    dev_ = st.st_dev;
    ino_ = st.st_ino;
    if (::listen(listen_.get(), static_cast<int>(kMaxClients)) != 0) {
        const int lerr = errno;
        ::unlink(path_.c_str());
        throw_errno(fmt::format("--control {}: listen", path_), lerr);
    }
}

ControlServer::~ControlServer()
{
    char c = 1;
    [[maybe_unused]] auto n = ::write(stop_w_.get(), &c, 1);
    if (thread_.joinable())
        thread_.join();
    // Only our own socket: the path may have been replaced since (by a later VM given the same
    // path after this one stopped answering, or by hand).
    struct stat st {};
    if (::lstat(path_.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == dev_ &&
        st.st_ino == ino_)
        ::unlink(path_.c_str());
}

bool ControlServer::allowed(int fd) const
{
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof cred)
        return false;
    return std::find(allow_.begin(), allow_.end(), cred.uid) != allow_.end();
}

std::string ControlServer::handle(const std::string& line)
{
    auto error = [](const std::string& why) { return json{{"ok", false}, {"error", why}}.dump(); };
    std::string why;
    json req = parse_json(line, why);
    if (req.is_discarded())
        return error("request is not a JSON object (" + why + ")");
    if (!req.is_object())
        return error("request is not a JSON object");
    auto cmd_it = req.find("cmd");
    if (cmd_it == req.end() || !cmd_it->is_string())
        return error("request has no \"cmd\" string");
    const std::string cmd = cmd_it->get<std::string>();
    try {
        if (cmd == "pause") {
            target_.pause();
            return json{{"ok", true}, {"state", "paused"}}.dump();
        }
        if (cmd == "resume") {
            target_.resume();
            return json{{"ok", true}, {"state", "running"}}.dump();
        }
        if (cmd == "snapshot") {
            auto p = req.find("path");
            if (p == req.end() || !p->is_string() || p->get<std::string>().empty())
                return error("snapshot needs a \"path\" string");
            target_.snapshot(p->get<std::string>());
            return json{{"ok", true}, {"path", p->get<std::string>()}}.dump();
        }
        if (cmd == "stats")
            return json{{"ok", true}, {"stats", target_.stats_report()}}.dump();
        if (cmd == "quit") {
            target_.quit("stopped through the control socket");
            return json{{"ok", true}}.dump();
        }
    } catch (const std::exception& e) {
        return error(e.what());
    }
    return error("unknown command '" + cmd + "' (pause, resume, snapshot, stats, quit)");
}

struct ControlServer::Client {
    Fd fd;
    std::string in;   // bytes of a request line not complete yet
    std::string out;  // replies not sent yet (the client reads slowly)
};

namespace {

std::string error_line(const std::string& why)
{
    return json{{"ok", false}, {"error", why}}.dump() + "\n";
}

}  // namespace

void ControlServer::serve()
{
    std::vector<Client> clients;
    for (;;) {
        std::vector<pollfd> fds = {{listen_.get(), POLLIN, 0}, {stop_r_.get(), POLLIN, 0}};
        for (const auto& c : clients)
            fds.push_back(
                {c.fd.get(), static_cast<short>(c.out.empty() ? POLLIN : POLLIN | POLLOUT), 0});
        if (::poll(fds.data(), fds.size(), -1) < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        if (fds[1].revents)
            return;
        // Clients first (their indices match fds[2..]), then a new connection.
        std::vector<Client> kept;
        for (std::size_t i = 0; i < clients.size(); ++i) {
            short ev = fds[i + 2].revents;
            bool keep = true;
            if (ev & (POLLIN | POLLHUP | POLLERR))
                keep = read_client(clients[i]);
            if (keep && (ev & POLLOUT))
                keep = flush_client(clients[i]);
            if (keep)
                kept.push_back(std::move(clients[i]));
        }
        clients = std::move(kept);
        if (fds[0].revents & POLLIN)
            accept_client(clients);
    }
}

void ControlServer::accept_client(std::vector<Client>& clients)
{
    Fd fd(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!fd.valid())
        return;
    if (!allowed(fd.get())) {
        std::string reply = error_line("permission denied: this user may not use the socket");
        ::send(fd.get(), reply.data(), reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        return;
    }
    if (clients.size() >= kMaxClients) {
        std::string reply = error_line(fmt::format("too many clients (at most {})", kMaxClients));
        ::send(fd.get(), reply.data(), reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        return;
    }
    clients.push_back({std::move(fd), {}, {}});
}

// Reads what the client sent and answers every complete line. A request is handled whole or
// not at all: a client that disconnects mid-line leaves nothing behind.
bool ControlServer::read_client(Client& c)
{
    char chunk[4096];
    for (;;) {
        ssize_t n = ::read(c.fd.get(), chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0)
            return false;  // disconnected (or reset)
        c.in.append(chunk, static_cast<std::size_t>(n));
        for (std::size_t nl; (nl = c.in.find('\n')) != std::string::npos;) {
            std::string line = c.in.substr(0, nl);
            c.in.erase(0, nl + 1);
            try {
                c.out += handle(line) + "\n";
            } catch (const std::exception& e) {  // e.g. out of memory: the server goes on
                c.out += error_line(e.what());
            }
        }
        if (c.in.size() > kMaxRequest) {
            c.out += error_line(fmt::format("request too long (over {} bytes)", kMaxRequest));
            flush_client(c);
            return false;  // the rest of its line cannot be trusted
        }
        if (c.out.size() > kMaxUnsent)
            return false;  // it does not read its replies
    }
    return flush_client(c);
}

bool ControlServer::flush_client(Client& c)
{
    while (!c.out.empty()) {
        ssize_t n = ::send(c.fd.get(), c.out.data(), c.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return c.out.size() <= kMaxUnsent;
        if (n < 0)
            return false;
        c.out.erase(0, static_cast<std::size_t>(n));
    }
    return true;
}

}  // namespace hv
