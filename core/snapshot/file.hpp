// The snapshot container (docs/snapshot.md "The file"):
//
//   0   magic "HVACSNAP"
//   8   u32 format major version   (a reader refuses a newer major)
//   12  u32 format minor version   (additions a reader may ignore)
//   16  u32 CRC-32 of every byte from offset 24 to the end of the file
//   20  u32 reserved, 0
//   24  u64 length of the JSON document
//   32  u64 offset of the blob area (4 KiB aligned, after the JSON)
//   40  u64 length of the blob area
//   48  the JSON document (UTF-8): a tree of sections, see core/snapshot/state.hpp
//   ... the blob area: binary data (guest memory, XSAVE areas) that sections reference by
//       offset and length relative to the start of the blob area
//
// Writing goes to a temporary file in the same directory (an unpredictable name, created with
// O_EXCL and O_NOFOLLOW, mode 0600), is synced, then renamed over the target, so a crash never
// leaves a half-written file at the target path.
#pragma once

#include <fcntl.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace hv::snapshot {

inline constexpr char kMagic[8] = {'H', 'V', 'A', 'C', 'S', 'N', 'A', 'P'};
inline constexpr std::uint32_t kFormatMajor = 1;
inline constexpr std::uint32_t kFormatMinor = 0;
inline constexpr std::size_t kHeaderSize = 48;
// How the temporary file is opened (the --sandbox filter allows exactly these flags).
inline constexpr int kTmpFlags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;

// Collects blobs by reference (they must stay valid until commit()), then writes the file.
class Writer {
  public:
    // Returns the blob's offset in the blob area.
    std::uint64_t add_blob(const void* data, std::uint64_t len);
    // Writes `path` atomically (temporary file, fsync, rename, fsync of the directory).
    // Throws hv::Error naming the path and the OS error; the target is untouched on failure.
    void commit(const std::string& path, const nlohmann::json& doc) const;

  private:
    struct Chunk {
        const std::uint8_t* data;
        std::uint64_t len;
    };
    std::vector<Chunk> chunks_;
    std::uint64_t blob_len_ = 0;
};

// Reads and checks a whole file: magic, version window, sizes (the header before anything
// else is read), CRC, JSON syntax within kJsonMaxDepth (core/base/json.hpp). Throws
// hv::Error with a one-line reason ("snapshot FILE: ...").
class Reader {
  public:
    // Maps the file read-only (no copy of guest memory is made before it is restored).
    explicit Reader(const std::string& path);
    // For tests: parse from bytes.
    Reader(std::vector<std::uint8_t> bytes, std::string name);
    ~Reader();
    Reader(const Reader&) = delete;
    Reader& operator=(const Reader&) = delete;

    const nlohmann::json& doc() const { return doc_; }
    std::uint32_t minor() const { return minor_; }
    // A checked view of [offset, offset + len) of the blob area; throws naming `what`.
    std::span<const std::uint8_t> blob(std::uint64_t offset, std::uint64_t len,
                                       const std::string& what) const;
    const std::string& name() const { return name_; }

  private:
    void parse();
    void parse_checked();
    // Magic, version, reserved field and the three sizes against the file's length.
    void check_header(const std::uint8_t* bytes);

    std::string name_;
    std::vector<std::uint8_t> bytes_;  // the test constructor's bytes
    void* map_ = nullptr;              // the mapped file
    const std::uint8_t* data_ = nullptr;
    std::size_t size_ = 0;
    nlohmann::json doc_;
    std::uint32_t minor_ = 0;
    std::uint64_t json_len_ = 0, blob_off_ = 0, blob_len_ = 0;
};

}  // namespace hv::snapshot
