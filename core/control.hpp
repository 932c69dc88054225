// The control channel (`--control PATH`): a Unix socket speaking line-delimited JSON.
// Requests: {"cmd":"pause"}, {"cmd":"resume"}, {"cmd":"snapshot","path":"FILE"},
// {"cmd":"stats"}, {"cmd":"quit"}. Replies: {"ok":true,...} or {"ok":false,"error":"..."}.
// Malformed, unknown and oversized requests get an error reply; a client that disconnects
// mid-request is forgotten; the server keeps serving. One client at a time.
#pragma once

#include <string>
#include <thread>

#include "core/kvm/fd.hpp"

namespace hv {

class Vm;

class ControlServer {
public:
    static constexpr std::size_t kMaxRequest = 64 * 1024;

    // Binds `path` (replacing a stale socket there, refusing any other file). Throws hv::Error.
    ControlServer(Vm& vm, std::string path);
    ~ControlServer();
    ControlServer(const ControlServer&) = delete;
    ControlServer& operator=(const ControlServer&) = delete;

    // One request line in, one reply line out (without the newline); also used by tests.
    std::string handle(const std::string& line);

private:
    void serve();
    void serve_client(int fd);

    Vm& vm_;
    std::string path_;
    Fd listen_;
    Fd stop_r_, stop_w_;
    std::thread thread_;
};

}  // namespace hv
