#include "core/snapshot/file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "core/base/error.hpp"
#include "core/base/fault_inject.hpp"
#include "core/base/fd.hpp"
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
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid())
        throw_errno(fmt::format("snapshot {}: cannot open", path));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode))
        fail("snapshot {}: not a regular file", path);
    size_ = static_cast<std::size_t>(st.st_size);
    if (size_ > 0) {
        map_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd.get(), 0);
        if (map_ == MAP_FAILED) {
            map_ = nullptr;
            throw_errno(fmt::format("snapshot {}: mmap", path));
        }
        data_ = static_cast<const std::uint8_t*>(map_);
    }
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

void Reader::parse_checked()
{
    const auto size = size_;
    const std::uint8_t* bytes = data_;
    if (size < kHeaderSize)
        fail("snapshot {}: truncated header ({} bytes)", name_, size);
    if (std::memcmp(bytes, kMagic, sizeof kMagic) != 0)
        fail("snapshot {}: not an hvaccel snapshot (bad magic)", name_);
    std::uint32_t major = get_u32(&bytes[8]);
    minor_ = get_u32(&bytes[12]);
    if (major != kFormatMajor)
        fail("snapshot {}: format version {}.{} is not readable by this hvaccel (reads {}.x)",
             name_, major, minor_, kFormatMajor);
    std::uint64_t json_len = get_u64(&bytes[24]);
    blob_off_ = get_u64(&bytes[32]);
    blob_len_ = get_u64(&bytes[40]);
    if (json_len > size - kHeaderSize || blob_off_ < kHeaderSize + json_len || blob_off_ > size ||
        blob_len_ != size - blob_off_)
        fail("snapshot {}: truncated or inconsistent sizes (file {} bytes, JSON {}, blobs {} at "
             "{})",
             name_, size, json_len, blob_len_, blob_off_);
    std::uint32_t want = get_u32(&bytes[16]);
    std::uint32_t got = crc32(&bytes[24], size - 24);
    if (want != got)
        fail("snapshot {}: CRC mismatch (stored {:#010x}, computed {:#010x}): the file is corrupt",
             name_, want, got);
    const std::uint8_t* first = bytes + kHeaderSize;
    doc_ = nlohmann::json::parse(first, first + json_len, nullptr, false);
    if (doc_.is_discarded())
        fail("snapshot {}: the JSON document is not valid JSON", name_);
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
