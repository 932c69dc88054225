// Opening images, and raw images.
#include "core/storage/image.hpp"

#include <unistd.h>

#include <array>
#include <cerrno>

#include <fmt/format.h>

#include "core/base/error.hpp"
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

namespace {

class RawImage final : public Image {
  public:
    RawImage(RegularFile f, std::string path) : file_(std::move(f)), path_(std::move(path)) {}
    Format format() const override { return Format::Raw; }
    std::uint64_t size() const override { return file_.size; }
    void read(std::uint64_t offset, std::span<std::uint8_t> out) override
    {
        if (offset > file_.size || out.size() > file_.size - offset)
            fail("{}: read of {} bytes at {:#x} is past the disk's end", path_, out.size(), offset);
        pread_exact(file_.fd.get(), offset, out, path_);
    }
    std::uint64_t allocated_bytes() const override { return file_.size; }
    std::string describe() const override { return fmt::format("raw, {} bytes", file_.size); }

  private:
    RegularFile file_;
    std::string path_;
};

std::unique_ptr<Image> open_chain(const std::string& path, std::optional<Format> format,
                                  unsigned depth)
{
    if (depth > kMaxBackingDepth)
        fail("{}: backing chain deeper than {} images", path, kMaxBackingDepth);
    RegularFile f = open_regular_file(path, path);
    bool guessed = false;
    if (!format) {
        std::array<std::uint8_t, 4> magic{};
        if (f.size >= magic.size())
            pread_exact(f.fd.get(), 0, magic, path);
        format = qcow2::be32(magic.data()) == qcow2::kMagic ? Format::Qcow2 : Format::Raw;
        guessed = true;
    }
    if (*format == Format::Raw)
        return std::make_unique<RawImage>(std::move(f), path);
    return open_qcow2(std::move(f), path, guessed, depth);
}

}  // namespace

std::unique_ptr<Image> open_image(const std::string& path, std::optional<Format> format)
{
    return open_chain(path, format, 0);
}

std::unique_ptr<Image> open_backing(const std::string& path, std::optional<Format> format,
                                    unsigned depth)
{
    return open_chain(path, format, depth);
}

}  // namespace hv::storage
