// Disk images: what a virtual disk reads its sectors from. Raw files and QCOW2 (versions 2 and
// 3, with zero clusters, compressed clusters and backing files) are read here; every image is
// checked when it is opened — a hostile header, table offset or size is refused with one line
// naming the file and the reason, before anything it describes is allocated or read.
//
// Writes (docs/storage.md "Never losing a write"): a QCOW2 write allocates clusters at the end of
// the file and updates metadata in an order that keeps the image consistent at every step —
// refcount first, then the data, then the L2 entry, then the L1 entry; a cluster that lost its
// last reference is freed last. A process killed at any point leaves an image `qemu-img check`
// accepts (at worst with leaked clusters); every write returned is in the file (page cache), and
// flush() makes them durable.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

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
    // Writes [offset, offset + data.size()); throws hv::Error on a read-only image, a bad range,
    // a damaged image or an I/O error (nothing acknowledged is lost: a failed write changed no
    // metadata that points at unwritten data).
    virtual bool writable() const = 0;
    virtual void write(std::uint64_t offset, std::span<const std::uint8_t> data) = 0;
    // fdatasync(): every write so far survives a power loss.
    virtual void flush() = 0;
    // Bytes of the file that hold data (allocated clusters for QCOW2, the file for raw).
    virtual std::uint64_t allocated_bytes() const = 0;
    // The backing image, if any (QCOW2).
    virtual const Image* backing() const { return nullptr; }
    // A one-line description ("qcow2 v3, 1048576 bytes, 64 KiB clusters").
    virtual std::string describe() const = 0;
};

// Opens `path`, a regular file, read-only unless `writable` (backing files are always read-only).
// Without `format` the file's first bytes decide (the QCOW2 magic, else raw) — but a guessed QCOW2
// image may not name a backing file: content that could have been written by a guest never makes
// hvaccel open another host file. With `format`, the file must be that format. Backing chains are
// at most kMaxBackingDepth deep.
inline constexpr unsigned kMaxBackingDepth = 16;
std::unique_ptr<Image> open_image(const std::string& path, std::optional<Format> format = {},
                                  bool writable = false);

// Internal snapshots of a QCOW2 image (core/storage/qcow2_snapshot.cpp), as `qemu-img snapshot`
// lists, creates, applies and deletes them; `name` may also be a snapshot's ID. Throw hv::Error.
struct DiskSnapshot {
    std::string id, name;
    std::uint32_t date_sec = 0;
    std::uint64_t vm_clock_nsec = 0;
    std::uint32_t vm_state_size = 0;
};
std::vector<DiskSnapshot> list_disk_snapshots(const std::string& path);
void create_disk_snapshot(const std::string& path, const std::string& name);
void apply_disk_snapshot(const std::string& path, const std::string& name);
void delete_disk_snapshot(const std::string& path, const std::string& name);

}  // namespace hv::storage
