#include "core/base/file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/base/error.hpp"

namespace hv {

namespace {

// fstat of a freshly opened descriptor; anything but a regular file is refused.
struct stat regular_stat(const Fd& fd, const std::string& what)
{
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) {
        const int err = errno;
        throw_errno(fmt::format("{}: cannot stat", what), err);
    }
    if (!S_ISREG(st.st_mode))
        fail("{}: not a regular file", what);
    return st;
}

// Opened O_NONBLOCK so that a FIFO could not stall open(); I/O on a regular file never blocks,
// and the flag is cleared only to leave a plain descriptor.
void clear_nonblock(const Fd& fd)
{
    const int fl = ::fcntl(fd.get(), F_GETFL);
    if (fl >= 0)
        ::fcntl(fd.get(), F_SETFL, fl & ~O_NONBLOCK);
}

}  // namespace

RegularFile open_regular_file(const std::string& path, const std::string& what, bool writable)
{
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
    Fd fd(::open(path.c_str(), (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
    if (!fd.valid()) {
        const int err = errno;
        throw_errno(fmt::format("{}: cannot open", what), err);
    }
    const struct stat st = regular_stat(fd, what);
    clear_nonblock(fd);
    return {std::move(fd), static_cast<std::uint64_t>(st.st_size)};
}

Fd open_output_file(const std::string& path, const std::string& what)
{
    if (path.empty())
        fail("{}: empty path", what);
    constexpr int kFlags = O_WRONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY;
    Fd fd(::open(path.c_str(), kFlags | O_CREAT | O_EXCL, 0600));
    if (!fd.valid() && errno == EEXIST)
        fd = Fd(::open(path.c_str(), kFlags));
    if (!fd.valid()) {
        const int err = errno;
        if (err == ELOOP)
            fail("{}: is a symlink (refused: output files are never reached through one)", what);
        if (err == ENXIO)
            fail("{}: not a regular file", what);
        throw_errno(fmt::format("{}: cannot open", what), err);
    }
    const struct stat st = regular_stat(fd, what);
    if (st.st_uid != ::geteuid())
        fail("{}: belongs to uid {}, not to this process's uid {} (refused)", what, st.st_uid,
             ::geteuid());
    if (st.st_nlink != 1)
        fail("{}: has {} links (refused: it may be another file's hard link)", what, st.st_nlink);
    if (::ftruncate(fd.get(), 0) != 0) {
        const int err = errno;
        throw_errno(fmt::format("{}: cannot truncate", what), err);
    }
    clear_nonblock(fd);
    return fd;
}

void write_output_file(const std::string& path, std::string_view text, const std::string& what)
{
    Fd fd = open_output_file(path, what);
    while (!text.empty()) {
        ssize_t n = ::write(fd.get(), text.data(), text.size());
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            const int err = n < 0 ? errno : ENOSPC;
            throw_errno(fmt::format("{}: write", what), err);
        }
        text.remove_prefix(static_cast<std::size_t>(n));
    }
}

}  // namespace hv
