#include "core/snapshot/file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "core/base/error.hpp"
#include "core/base/fault_inject.hpp"
#include "core/base/fd.hpp"
#include "core/base/file.hpp"
#include "core/base/json.hpp"
#include "core/base/random.hpp"
#include "core/snapshot/crc32.hpp"

namespace hv::snapshot {

namespace {

constexpr std::uint64_t kBlobAlign = 4096;

void put_u32(std::uint8_t* p, std::uint32_t v)
{
    std::memcpy(p, &v, 4);
}
void put_u64(std::uint8_t* p, std::uint64_t v)
{
    std::memcpy(p, &v, 8);
}
std::uint32_t get_u32(const std::uint8_t* p)
{
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}
std::uint64_t get_u64(const std::uint8_t* p)
{
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}

// One write(2), or the fault HV_FAULT_INJECT asks for (core/base/fault_inject.hpp): short writes of
// at most 4 KiB, or EIO once `done` bytes reached 64 KiB.
ssize_t write_once(int fd, const std::uint8_t* p, std::uint64_t len, std::uint64_t done)
{
    static const bool short_writes = fault_injected("snapshot_write_short");
    static const bool eio = fault_injected("snapshot_write_eio");
    if (eio && done >= 64 * 1024) {
        errno = EIO;
        return -1;
    }
    std::uint64_t most = short_writes ? 4096 : (1u << 30);
    return ::write(fd, p, len > most ? most : len);
}

// Writes all of [data, data + len) however the kernel splits it; `done` counts the file's bytes.
void write_all(int fd, const void* data, std::uint64_t len, const std::string& path,
               std::uint64_t& done)
{
    const auto* p = static_cast<const std::uint8_t*>(data);
    while (len > 0) {
        ssize_t n = write_once(fd, p, len, done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            throw_errno(fmt::format("snapshot {}: write", path), n < 0 ? errno : ENOSPC);
        p += n;
        len -= static_cast<std::uint64_t>(n);
        done += static_cast<std::uint64_t>(n);
    }
}

std::string dir_of(const std::string& path)
{
    auto slash = path.rfind('/');
    if (slash == std::string::npos)
        return ".";
    return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

std::uint64_t Writer::add_blob(const void* data, std::uint64_t len)
{
    std::uint64_t at = blob_len_;
    chunks_.push_back({static_cast<const std::uint8_t*>(data), len});
    blob_len_ += len;
    return at;
}

void Writer::commit(const std::string& path, const nlohmann::json& doc) const
{
    // The path as the kernel will see it: a NUL would cut the temporary file's name short and
    // the file would be written in place. The target may be absent or a regular file; anything
    // else there (the control socket, a FIFO, a directory) is not replaced.
    if (path.empty() || path.find('\0') != std::string::npos)
        fail("snapshot: the path is empty or holds a NUL byte");
    struct stat target {};
    if (::lstat(path.c_str(), &target) == 0 && !S_ISREG(target.st_mode) && !S_ISLNK(target.st_mode))
        fail("snapshot {}: exists and is not a regular file (refused)", path);
    std::string json = doc.dump(1);
    std::uint64_t blob_off = (kHeaderSize + json.size() + kBlobAlign - 1) & ~(kBlobAlign - 1);
    std::vector<std::uint8_t> head(blob_off, 0);
    std::memcpy(head.data(), kMagic, sizeof kMagic);
    put_u32(&head[8], kFormatMajor);
    put_u32(&head[12], kFormatMinor);
    put_u64(&head[24], json.size());
    put_u64(&head[32], blob_off);
    put_u64(&head[40], blob_len_);
    std::memcpy(&head[kHeaderSize], json.data(), json.size());
    std::uint32_t crc = crc32(&head[24], head.size() - 24);
    for (const auto& c : chunks_)
        crc = crc32(c.data, c.len, crc);
    put_u32(&head[16], crc);

    // Every failure below removes the temporary file and leaves the target as it was; the
    // error names the target, the step and the OS error in one line.
    // The temporary file has an unpredictable name and is created, never opened: nothing planted
    // beside the target (a symlink, a FIFO, another user's file) is followed, reused or waited
    // on. Mode 0600: the file holds the guest's memory.
    const std::string tmp = fmt::format("{}.tmp.{:016x}", path, random_u64());
    Fd fd(::open(tmp.c_str(), kTmpFlags, 0600));
    if (!fd.valid())
        throw_errno(fmt::format("snapshot {}: cannot create {}", path, tmp));
    auto fail_step = [&](const char* step, int err) {
        fd.reset();
        ::unlink(tmp.c_str());
        throw_errno(fmt::format("snapshot {}: {}", path, step), err);
    };
    try {
        std::uint64_t done = 0;
        write_all(fd.get(), head.data(), head.size(), path, done);
        for (const auto& c : chunks_)
            write_all(fd.get(), c.data, c.len, path, done);
    } catch (...) {
        fd.reset();
        ::unlink(tmp.c_str());
        throw;
    }
    static const bool fsync_eio = fault_injected("snapshot_fsync_eio");
    if (fsync_eio || ::fsync(fd.get()) != 0)
        fail_step("fsync", fsync_eio ? EIO : errno);
    fd.reset();
    static const bool rename_eio = fault_injected("snapshot_rename_eio");
    if (rename_eio || ::rename(tmp.c_str(), path.c_str()) != 0)
        fail_step("rename", rename_eio ? EIO : errno);
    // The rename itself must reach the disk for the new file to survive a crash.
    Fd dir(::open(dir_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir.valid())
        ::fsync(dir.get());
}

Reader::Reader(const std::string& path) : name_(path)
{
    RegularFile f = open_regular_file(path, "snapshot " + path);
    size_ = static_cast<std::size_t>(f.size);
    // The header is read and checked on its own first: a file that is not a snapshot, or whose
    // sizes disagree with its length, is refused before the rest of it is read.
    std::uint8_t head[kHeaderSize] = {};
    std::size_t got = 0;
    while (size_ >= kHeaderSize && got < kHeaderSize) {
        ssize_t n = ::pread(f.fd.get(), head + got, kHeaderSize - got, static_cast<off_t>(got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            const int err = n < 0 ? errno : EIO;
            throw_errno(fmt::format("snapshot {}: read", path), err);
        }
        got += static_cast<std::size_t>(n);
    }
    check_header(head);
    // Mapped, not read: guest memory is copied once, from the page cache, when it is restored.
    map_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, f.fd.get(), 0);
    if (map_ == MAP_FAILED) {
        map_ = nullptr;
        const int err = errno;
        throw_errno(fmt::format("snapshot {}: mmap", path), err);
    }
    ::madvise(map_, size_, MADV_SEQUENTIAL);
    data_ = static_cast<const std::uint8_t*>(map_);
    parse();
}

Reader::Reader(std::vector<std::uint8_t> bytes, std::string name)
    : name_(std::move(name)), bytes_(std::move(bytes)), data_(bytes_.data()), size_(bytes_.size())
{
    parse();
}

Reader::~Reader()
{
    if (map_)
        ::munmap(map_, size_);
}

// A constructor that throws runs no destructor: unmap here on failure.
void Reader::parse()
{
    try {
        parse_checked();
    } catch (...) {
        if (map_)
            ::munmap(map_, size_);
        map_ = nullptr;
        throw;
    }
}

void Reader::check_header(const std::uint8_t* bytes)
{
    const auto size = size_;
    if (size < kHeaderSize)
        fail("snapshot {}: truncated header ({} bytes)", name_, size);
    if (std::memcmp(bytes, kMagic, sizeof kMagic) != 0)
        fail("snapshot {}: not an hvaccel snapshot (bad magic)", name_);
    std::uint32_t major = get_u32(&bytes[8]);
    minor_ = get_u32(&bytes[12]);
    if (major != kFormatMajor)
        fail("snapshot {}: format version {}.{} is not readable by this hvaccel (reads {}.x)",
             name_, major, minor_, kFormatMajor);
    if (std::uint32_t reserved = get_u32(&bytes[20]); reserved != 0)
        fail("snapshot {}: reserved header field is {:#x}, not 0", name_, reserved);
    json_len_ = get_u64(&bytes[24]);
    blob_off_ = get_u64(&bytes[32]);
    blob_len_ = get_u64(&bytes[40]);
    if (json_len_ > size - kHeaderSize || blob_off_ < kHeaderSize + json_len_ || blob_off_ > size ||
        blob_len_ != size - blob_off_)
        fail("snapshot {}: truncated or inconsistent sizes (file {} bytes, JSON {}, blobs {} at "
             "{})",
             name_, size, json_len_, blob_len_, blob_off_);
}

void Reader::parse_checked()
{
    const std::uint8_t* bytes = data_;
    check_header(bytes);
    std::uint32_t want = get_u32(&bytes[16]);
    std::uint32_t got = crc32(&bytes[24], size_ - 24);
    if (want != got)
        fail("snapshot {}: CRC mismatch (stored {:#010x}, computed {:#010x}): the file is corrupt",
             name_, want, got);
    std::string why;
    doc_ = parse_json(
        {reinterpret_cast<const char*>(bytes + kHeaderSize), static_cast<std::size_t>(json_len_)},
        why);
    if (doc_.is_discarded())
        fail("snapshot {}: the JSON document is refused: {}", name_, why);
    if (!doc_.is_object())
        fail("snapshot {}: the JSON document is not an object", name_);
}

std::span<const std::uint8_t> Reader::blob(std::uint64_t offset, std::uint64_t len,
                                           const std::string& what) const
{
    if (offset > blob_len_ || len > blob_len_ - offset)
        fail("snapshot {}: {}: blob [{:#x}, +{:#x}) lies outside the blob area ({:#x} bytes)",
             name_, what, offset, len, blob_len_);
    return {data_ + blob_off_ + offset, static_cast<std::size_t>(len)};
}

}  // namespace hv::snapshot
