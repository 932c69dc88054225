// Opening images, and raw images.
#include "core/storage/image.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdlib>

#include <fmt/format.h>

#include "core/base/error.hpp"
#include "core/base/fault_inject.hpp"
#include "core/base/file.hpp"
#include "core/storage/qcow2.hpp"
#include "core/storage/qcow2_format.hpp"

namespace hv::storage {

std::string_view to_string(Format f)
{
    return f == Format::Qcow2 ? "qcow2" : "raw";
}

Format parse_format(std::string_view s)
{
    if (s == "raw")
        return Format::Raw;
    if (s == "qcow2")
        return Format::Qcow2;
    fail("unknown disk image format '{}' (raw or qcow2)", s);
}

void pread_exact(int fd, std::uint64_t offset, std::span<std::uint8_t> out, const std::string& what)
{
    std::size_t done = 0;
    while (done < out.size()) {
        const ssize_t n =
            ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            throw_errno(fmt::format("{}: read at {:#x}", what, offset + done));
        if (n == 0)
            fail("{}: read at {:#x}: past the end of the file", what, offset + done);
        done += static_cast<std::size_t>(n);
    }
}

void pwrite_exact(int fd, std::uint64_t offset, std::span<const std::uint8_t> data,
                  const std::string& what)
{
    // Test-only (core/base/fault_inject.hpp): stop dead before the Nth image write.
    static std::atomic<long> exit_countdown{[] {
        const std::string v = fault_value("disk_exit_after");
        return v.empty() ? 0L : std::strtol(v.c_str(), nullptr, 10);
    }()};
    if (exit_countdown.load(std::memory_order_relaxed) > 0 && --exit_countdown == 0)
        ::_exit(137);
    std::size_t done = 0;
    while (done < data.size()) {
        const ssize_t n =
            ::pwrite(fd, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            throw_errno(fmt::format("{}: write at {:#x}", what, offset + done),
                        n == 0 ? ENOSPC : errno);
        done += static_cast<std::size_t>(n);
    }
}

void sync_file(int fd, const std::string& what)
{
    if (::fdatasync(fd) != 0)
        throw_errno(fmt::format("{}: flush", what));
}

void check_range(std::uint64_t offset, std::size_t len, std::uint64_t size, const std::string& what)
{
    if (offset > size || len > size - offset)
        fail("{}: access of {} bytes at {:#x} is past the disk's end", what, len, offset);
}

namespace {

class RawImage final : public Image {
  public:
    RawImage(RegularFile f, std::string path, bool writable)
        : file_(std::move(f)), path_(std::move(path)), writable_(writable)
    {
    }
    ~RawImage() override
    {
        if (writable_)
            ::fdatasync(file_.fd.get());
    }
    Format format() const override { return Format::Raw; }
    std::uint64_t size() const override { return file_.size; }
    void read(std::uint64_t offset, std::span<std::uint8_t> out) override
    {
        check_range(offset, out.size(), file_.size, path_);
        pread_exact(file_.fd.get(), offset, out, path_);
    }
    bool writable() const override { return writable_; }
    void write(std::uint64_t offset, std::span<const std::uint8_t> data) override
    {
        if (!writable_)
            fail("{}: the disk is read-only", path_);
        check_range(offset, data.size(), file_.size, path_);
        pwrite_exact(file_.fd.get(), offset, data, path_);
    }
    void flush() override { sync_file(file_.fd.get(), path_); }
    std::uint64_t allocated_bytes() const override { return file_.size; }
    std::string describe() const override { return fmt::format("raw, {} bytes", file_.size); }

  private:
    RegularFile file_;
    std::string path_;
    bool writable_;
};

// One writer or any number of readers per image file, across processes: two VMs writing one
// image, or one reading an image another is writing, would see it torn. Open file description
// locks on the whole file (fcntl F_OFD_SETLK) conflict with the byte-range locks QEMU takes on
// its images, so each refuses an image the other is writing. A file system without locks is
// used unlocked.
void lock_image(int fd, bool writable, const std::string& path)
{
    struct flock fl {};
    fl.l_type = writable ? F_WRLCK : F_RDLCK;
    fl.l_whence = SEEK_SET;  // l_start = l_len = 0: the whole file, however it grows
    if (::fcntl(fd, F_OFD_SETLK, &fl) == 0)
        return;
    const int err = errno;
    if (err == EAGAIN || err == EACCES)
        fail("{}: in use: another --disk or process holds a lock on it ({} image)", path,
             writable ? "cannot write a locked" : "cannot read a write-locked");
    if (err != ENOLCK && err != EINVAL && err != EOPNOTSUPP)
        throw_errno(path + ": lock", err);
}

std::unique_ptr<Image> open_chain(const std::string& path, std::optional<Format> format,
                                  unsigned depth, bool writable)
{
    if (depth > kMaxBackingDepth)
        fail("{}: backing chain deeper than {} images", path, kMaxBackingDepth);
    RegularFile f = open_regular_file(path, path, writable);
    lock_image(f.fd.get(), writable, path);
    bool guessed = false;
    if (!format) {
        std::array<std::uint8_t, 4> magic{};
        if (f.size >= magic.size())
            pread_exact(f.fd.get(), 0, magic, path);
        format = qcow2::be32(magic.data()) == qcow2::kMagic ? Format::Qcow2 : Format::Raw;
        guessed = true;
    }
    if (*format == Format::Raw)
        return std::make_unique<RawImage>(std::move(f), path, writable);
    return open_qcow2(std::move(f), path, guessed, depth, writable);
}

}  // namespace

std::unique_ptr<Image> open_image(const std::string& path, std::optional<Format> format,
                                  bool writable)
{
    return open_chain(path, format, 0, writable);
}

std::unique_ptr<Image> open_backing(const std::string& path, std::optional<Format> format,
                                    unsigned depth)
{
    return open_chain(path, format, depth, false);
}

}  // namespace hv::storage
