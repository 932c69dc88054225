// The control channel (`--control PATH`): a Unix socket speaking line-delimited JSON.
// Requests: {"cmd":"pause"}, {"cmd":"resume"}, {"cmd":"snapshot","path":"FILE"},
// {"cmd":"stats"}, {"cmd":"quit"}. Replies: {"ok":true,...} or {"ok":false,"error":"..."}.
// Malformed, unknown and oversized requests get an error reply; a client that disconnects
// mid-request is forgotten; the server keeps serving. Up to kMaxClients clients are served at
// once (requests are handled one at a time, in arrival order); a further connection gets an
// error line and is closed. A request line longer than kMaxRequest ends its client (after an
// error reply), as does a client that leaves kMaxUnsent bytes of replies unread: no client can
// make the server buffer without bound or block it.
#pragma once

#include <string>
#include <thread>
#include <vector>

#include "core/base/fd.hpp"

namespace hv {

class Vm;

class ControlServer {
  public:
    static constexpr std::size_t kMaxRequest = 64 * 1024;
    static constexpr std::size_t kMaxClients = 16;
    static constexpr std::size_t kMaxUnsent = 1024 * 1024;

    // Binds `path` (replacing a stale socket there, refusing any other file). Throws hv::Error.
    ControlServer(Vm& vm, std::string path);
    ~ControlServer();
    ControlServer(const ControlServer&) = delete;
    ControlServer& operator=(const ControlServer&) = delete;

    // One request line in, one reply line out (without the newline); also used by tests.
    std::string handle(const std::string& line);

  private:
    struct Client;
    void serve();
    void accept_client(std::vector<Client>& clients);
    bool read_client(Client& c);   // false: drop the client
    bool flush_client(Client& c);  // false: drop the client

    Vm& vm_;
    std::string path_;
    Fd listen_;
    Fd stop_r_, stop_w_;
    std::thread thread_;
};

}  // namespace hv
