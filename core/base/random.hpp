// Unpredictable numbers for names other users must not guess (temporary files).
#pragma once

#include <sys/random.h>

#include <cerrno>
#include <cstdint>

#include "core/base/error.hpp"

namespace hv {

inline std::uint64_t random_u64()
{
    std::uint64_t v = 0;
    ssize_t n = 0;
    do
        n = ::getrandom(&v, sizeof v, 0);
    while (n < 0 && errno == EINTR);
    if (n != static_cast<ssize_t>(sizeof v))
        throw_errno("getrandom");
    return v;
}

}  // namespace hv
