// The QCOW2 on-disk format, versions 2 and 3 (QEMU's docs/interop/qcow2.txt, the format's
// specification): header fields, table entry layouts, and the validation of a header before any
// table it points at is read. All multi-byte fields are big-endian.
//
// validate_qcow2_header() is pure (bytes in, header or one-line reason out) so that a hostile
// image is judged before hvaccel allocates or reads anything it describes; the limits below keep
// a header from asking for more than a sane image ever needs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>

namespace hv::storage::qcow2 {

inline constexpr std::uint32_t kMagic = 0x514649fb;  // "QFI\xfb"
inline constexpr std::size_t kV2HeaderSize = 72;
inline constexpr std::size_t kV3HeaderSize = 104;
inline constexpr unsigned kMinClusterBits = 9;   // 512 bytes
inline constexpr unsigned kMaxClusterBits = 21;  // 2 MiB
// Table sizes QEMU itself refuses to go beyond (block/qcow2.h): the L1 table and the refcount
// table are read whole, so these bound what a header can make hvaccel allocate.
inline constexpr std::uint64_t kMaxL1Bytes = 32u << 20;
inline constexpr std::uint64_t kMaxRefcountTableBytes = 8u << 20;
inline constexpr std::uint32_t kMaxSnapshots = 65536;
inline constexpr std::uint32_t kMaxBackingNameBytes = 1023;
// The virtual size QEMU accepts (2^63 - 512 rounded to what offsets can address): the L2 entry
// offset field is bits 9-55, so no host offset is 2^56 or more.
inline constexpr std::uint64_t kMaxVirtualSize = 1ull << 55;

// Incompatible feature bits (header byte 72).
namespace incompat {
inline constexpr std::uint64_t kDirty = 1u << 0;
inline constexpr std::uint64_t kCorrupt = 1u << 1;
inline constexpr std::uint64_t kExternalData = 1u << 2;
inline constexpr std::uint64_t kCompressionType = 1u << 3;
inline constexpr std::uint64_t kExtendedL2 = 1u << 4;
}  // namespace incompat

// Table entries.
inline constexpr std::uint64_t kOffsetMask = 0x00ff'ffff'ffff'fe00ull;  // bits 9-55
inline constexpr std::uint64_t kCopied = 1ull << 63;
inline constexpr std::uint64_t kCompressed = 1ull << 62;
inline constexpr std::uint64_t kZeroFlag = 1ull << 0;  // L2, version 3
// L1 entry bits 1-8 and 56-62 are reserved; so are L2 entry bits 1-8 and 56-61 of a standard
// cluster.
inline constexpr std::uint64_t kL1Reserved = 0x7f00'0000'0000'01feull;
inline constexpr std::uint64_t kL2Reserved = 0x3f00'0000'0000'01feull;

// Header extension types.
inline constexpr std::uint32_t kExtEnd = 0;
inline constexpr std::uint32_t kExtBackingFormat = 0xe2792aca;

struct Header {
    std::uint32_t version = 0;
    std::uint64_t backing_file_offset = 0;
    std::uint32_t backing_file_size = 0;
    std::uint32_t cluster_bits = 0;
    std::uint64_t size = 0;  // virtual size in bytes
    std::uint32_t crypt_method = 0;
    std::uint32_t l1_size = 0;  // entries
    std::uint64_t l1_table_offset = 0;
    std::uint64_t refcount_table_offset = 0;
    std::uint32_t refcount_table_clusters = 0;
    std::uint32_t nb_snapshots = 0;
    std::uint64_t snapshots_offset = 0;
    std::uint64_t incompatible_features = 0;
    std::uint64_t compatible_features = 0;
    std::uint64_t autoclear_features = 0;
    std::uint32_t refcount_order = 4;
    std::uint32_t header_length = kV2HeaderSize;
    // From the header extensions and the backing file name.
    std::string backing_file;
    std::string backing_format;

    std::uint64_t cluster_size() const { return 1ull << cluster_bits; }
    std::uint64_t l2_entries() const { return cluster_size() / 8; }
};

std::uint16_t be16(const std::uint8_t* p);
std::uint32_t be32(const std::uint8_t* p);
std::uint64_t be64(const std::uint8_t* p);
void put_be16(std::uint8_t* p, std::uint16_t v);
void put_be32(std::uint8_t* p, std::uint32_t v);
void put_be64(std::uint8_t* p, std::uint64_t v);

// `first_cluster`: the file's first bytes, up to one maximum cluster (or the whole file when
// shorter); `file_size`: the file's size. Returns the header, or why the image is refused.
std::variant<Header, std::string> validate_header(std::span<const std::uint8_t> first_cluster,
                                                  std::uint64_t file_size);

// The L1 entries a virtual size needs.
std::uint64_t l1_entries_for(std::uint64_t size, unsigned cluster_bits);

// A compressed cluster's descriptor (L2 entry with kCompressed): where its deflate stream starts
// in the file and how many bytes hold it.
struct CompressedExtent {
    std::uint64_t offset = 0;
    std::uint64_t length = 0;
};
CompressedExtent compressed_extent(std::uint64_t l2_entry, unsigned cluster_bits);
// The first and the last host cluster that extent's bytes lie in: each holds one reference for
// the compressed cluster.
struct ClusterRange {
    std::uint64_t first = 0, last = 0;
};
ClusterRange compressed_clusters(std::uint64_t l2_entry, unsigned cluster_bits);

}  // namespace hv::storage::qcow2
