// Disk images: what a virtual disk reads its sectors from. Raw files and QCOW2 (versions 2 and
// 3, with zero clusters, compressed clusters and backing files) are read here; every image is
// checked when it is opened — a hostile header, table offset or size is refused with one line
// naming the file and the reason, before anything it describes is allocated or read.
//
// This layer is read-only for now: writing QCOW2 (cluster allocation, refcounts, ordered
// metadata updates) is the next step, and a disk opened from it says so.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace hv::storage {

enum class Format { Raw, Qcow2 };

std::string_view to_string(Format f);
// "raw" / "qcow2"; throws hv::Error naming the accepted values.
Format parse_format(std::string_view s);

class Image {
  public:
    virtual ~Image() = default;
    virtual Format format() const = 0;
    virtual std::uint64_t size() const = 0;  // virtual size in bytes
    // Reads [offset, offset + out.size()) of the virtual disk; unallocated parts read as zeros
    // (or from the backing file). Throws hv::Error on a bad range or a damaged image.
    virtual void read(std::uint64_t offset, std::span<std::uint8_t> out) = 0;
    // Bytes of the file that hold data (allocated clusters for QCOW2, the file for raw).
    virtual std::uint64_t allocated_bytes() const = 0;
    // The backing image, if any (QCOW2).
    virtual const Image* backing() const { return nullptr; }
    // A one-line description ("qcow2 v3, 1048576 bytes, 64 KiB clusters").
    virtual std::string describe() const = 0;
};

// Opens `path`, a regular file, read-only. Without `format` the file's first bytes decide (the
// QCOW2 magic, else raw) — but a guessed QCOW2 image may not name a backing file: content that
// could have been written by a guest never makes hvaccel open another host file. With `format`,
// the file must be that format. Backing chains are at most kMaxBackingDepth deep.
inline constexpr unsigned kMaxBackingDepth = 16;
std::unique_ptr<Image> open_image(const std::string& path, std::optional<Format> format = {});

}  // namespace hv::storage
