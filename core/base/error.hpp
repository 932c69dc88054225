// Errors with context. Setup paths throw hv::Error whose message names the operation, the
// object and, for system calls, the OS error text; the CLI prints it as one line and exits
// non-zero. Hot paths (exit handling, delivery) never throw: they count faults instead.
#pragma once

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace hv {

class Error : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// Throws hv::Error "<what>: <strerror(err)>".
[[noreturn]] inline void throw_errno(const std::string& what, int err = errno)
{
    throw Error(fmt::format("{}: {}", what, std::strerror(err)));
}

template <typename... Args> [[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args)
{
    throw Error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace hv
