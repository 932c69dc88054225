// The control channel (`--control PATH`): a Unix socket speaking line-delimited JSON.
// Requests: {"cmd":"pause"}, {"cmd":"resume"}, {"cmd":"snapshot","path":"FILE"},
// {"cmd":"stats"}, {"cmd":"quit"}. Replies: {"ok":true,...} or {"ok":false,"error":"..."}.
// Malformed, unknown and oversized requests get an error reply; a client that disconnects
// mid-request is forgotten; the server keeps serving. Up to kMaxClients clients are served at
// once (requests are handled one at a time, in arrival order); a further connection gets an
// error line and is closed. A request line longer than kMaxRequest ends its client (after an
// error reply), as does a client that leaves kMaxUnsent bytes of replies unread: no client can
// make the server buffer without bound or block it.
//
// Who may use it (docs/security.md): the socket file is created with mode 0600 whatever the
// umask, and every connection's peer is checked with SO_PEERCRED: root, the user hvaccel runs as,
// and the uids given with --control-allow-uid are served; anyone else gets one error line and
// is closed. A path where another process is listening is refused (a second VM cannot take a
// running VM's socket over); a stale socket left by a crash is replaced. At exit the socket file
// is removed only if it is still this server's.
#pragma once

#include <sys/types.h>

#include <string>
#include <thread>
#include <vector>

#include "core/base/fd.hpp"

namespace hv {

// What the control socket acts on: the Vm, or a fake in tests. Every method is thread-safe.
class ControlTarget {
  public:
    virtual ~ControlTarget() = default;
    virtual void pause() = 0;
    virtual void resume() = 0;
    virtual void snapshot(const std::string& path) = 0;  // throws hv::Error
    virtual std::string stats_report() const = 0;
    virtual void quit(const std::string& message) = 0;  // the VM ends with status 0
};

class ControlServer {
  public:
    static constexpr std::size_t kMaxRequest = 64 * 1024;
    static constexpr std::size_t kMaxClients = 16;
    static constexpr std::size_t kMaxUnsent = 1024 * 1024;

    // Binds `path` and starts serving. `allow` adds uids to root and this process's own.
    // Throws hv::Error.
    ControlServer(ControlTarget& target, std::string path, std::vector<uid_t> allow = {});
    ~ControlServer();
    ControlServer(const ControlServer&) = delete;
    ControlServer& operator=(const ControlServer&) = delete;

    // One request line in, one reply line out (without the newline); also used by tests.
    std::string handle(const std::string& line);

  private:
    struct Client;
    void bind_socket();
    bool allowed(int fd) const;
    void serve();
    void accept_client(std::vector<Client>& clients);
    bool read_client(Client& c);   // false: drop the client
    bool flush_client(Client& c);  // false: drop the client

    ControlTarget& target_;
    std::string path_;
    std::vector<uid_t> allow_;
    Fd listen_;
    dev_t dev_ = 0;  // the socket file's identity, to remove only our own at exit
    ino_t ino_ = 0;
    Fd stop_r_, stop_w_;
    std::thread thread_;
};

}  // namespace hv
