// One-line requests to a Unix-socket server started as a child process (hvaccel's control socket,
// QEMU's monitor), for the guest tests, bench/ and `hvaccel bench`/`demo`.
#pragma once

#include <string>

namespace hv::support {

// Connects to the Unix socket at `path`, retrying for up to `timeout_s` while the server starts;
// returns the fd (close-on-exec) or -1.
int connect_unix(const std::string& path, int timeout_s);

// Writes all of `text` plus a newline; false if the peer is gone (no SIGPIPE).
bool send_line(int fd, const std::string& text);

// Sends `line` to the socket at `path` (connecting as connect_unix does) and returns the reply up
// to its newline; "" on failure. `reply_timeout_s` bounds the wait for the reply (0: no limit).
std::string control_request(const std::string& path, const std::string& line,
                            int connect_timeout_s = 10, int reply_timeout_s = 0);

}  // namespace hv::support
