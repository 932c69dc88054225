// QCOW2 header validation: every field that later decides an allocation, a read offset or a
// table size is checked here, against the format's rules and against the file's real size.
#include "core/storage/qcow2_format.hpp"

#include <fmt/format.h>

namespace hv::storage::qcow2 {

std::uint16_t be16(const std::uint8_t* p)
{
    return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}

void put_be16(std::uint8_t* p, std::uint16_t v)
{
    p[0] = static_cast<std::uint8_t>(v >> 8);
    p[1] = static_cast<std::uint8_t>(v);
}

void put_be32(std::uint8_t* p, std::uint32_t v)
{
    for (int i = 0; i < 4; ++i)
        p[i] = static_cast<std::uint8_t>(v >> (24 - 8 * i));
}

void put_be64(std::uint8_t* p, std::uint64_t v)
{
    put_be32(p, static_cast<std::uint32_t>(v >> 32));
    put_be32(p + 4, static_cast<std::uint32_t>(v));
}

std::uint32_t be32(const std::uint8_t* p)
{
    return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
           std::uint32_t{p[3]};
}

std::uint64_t be64(const std::uint8_t* p)
{
    return (std::uint64_t{be32(p)} << 32) | be32(p + 4);
}

std::uint64_t l1_entries_for(std::uint64_t size, unsigned cluster_bits)
{
    // One L2 table maps cluster_size / 8 clusters: 2^(2 * cluster_bits - 3) bytes.
    const unsigned shift = 2 * cluster_bits - 3;
    return (size + (1ull << shift) - 1) >> shift;
}

CompressedExtent compressed_extent(std::uint64_t l2_entry, unsigned cluster_bits)
{
    const unsigned shift = 62 - (cluster_bits - 8);
    const std::uint64_t offset = l2_entry & ((1ull << shift) - 1);
    const std::uint64_t sectors = ((l2_entry >> shift) & ((1ull << (cluster_bits - 8)) - 1)) + 1;
    return {offset, sectors * 512 - (offset & 511)};
}

ClusterRange compressed_clusters(std::uint64_t l2_entry, unsigned cluster_bits)
{
    const CompressedExtent x = compressed_extent(l2_entry, cluster_bits);
    const std::uint64_t mask = ~((std::uint64_t{1} << cluster_bits) - 1);
    return {x.offset & mask, (x.offset + x.length - 1) & mask};
}

namespace {

bool aligned(std::uint64_t v, const Header& h)
{
    return (v & (h.cluster_size() - 1)) == 0;
}

// [offset, offset + len) lies inside a file of `file_size` bytes.
bool inside(std::uint64_t offset, std::uint64_t len, std::uint64_t file_size)
{
    return offset <= file_size && len <= file_size - offset;
}

std::optional<std::string> read_extensions(std::span<const std::uint8_t> b, Header& h)
{
    // Extensions follow the header, inside the first cluster: type, length, data padded to 8.
    std::uint64_t at = h.header_length;
    const std::uint64_t end = std::min<std::uint64_t>(b.size(), h.cluster_size());
    for (unsigned n = 0; n < 64; ++n) {
        if (at + 8 > end)
            return "header extensions run past the first cluster";
        const std::uint32_t type = be32(&b[at]);
        const std::uint32_t len = be32(&b[at + 4]);
        at += 8;
        if (type == kExtEnd)
            return std::nullopt;
        const std::uint64_t padded = (std::uint64_t{len} + 7) & ~std::uint64_t{7};
        if (padded > end - at)
            return fmt::format("header extension {:#x} runs past the first cluster", type);
        if (type == kExtBackingFormat) {
            if (len == 0 || len > 16)
                return "backing file format name has a bad length";
            h.backing_format.assign(reinterpret_cast<const char*>(&b[at]), len);
        }
        at += padded;
    }
    return "more than 64 header extensions";
}

}  // namespace

std::variant<Header, std::string> validate_header(std::span<const std::uint8_t> b,
                                                  std::uint64_t file_size)
{
    if (b.size() < kV2HeaderSize || file_size < kV2HeaderSize)
        return std::string("file too short for a QCOW2 header");
    if (be32(&b[0]) != kMagic)
        return std::string("no QCOW2 magic");
    Header h;
    h.version = be32(&b[4]);
    if (h.version != 2 && h.version != 3)
        return fmt::format("QCOW2 version {} (2 and 3 are supported)", h.version);
    h.backing_file_offset = be64(&b[8]);
    h.backing_file_size = be32(&b[16]);
    h.cluster_bits = be32(&b[20]);
    h.size = be64(&b[24]);
    h.crypt_method = be32(&b[32]);
    h.l1_size = be32(&b[36]);
    h.l1_table_offset = be64(&b[40]);
    h.refcount_table_offset = be64(&b[48]);
    h.refcount_table_clusters = be32(&b[56]);
    h.nb_snapshots = be32(&b[60]);
    h.snapshots_offset = be64(&b[64]);
    if (h.version == 3) {
        if (b.size() < kV3HeaderSize)
            return std::string("file too short for a QCOW2 version 3 header");
        h.incompatible_features = be64(&b[72]);
        h.compatible_features = be64(&b[80]);
        h.autoclear_features = be64(&b[88]);
        h.refcount_order = be32(&b[96]);
        h.header_length = be32(&b[100]);
        if (h.header_length < kV3HeaderSize || h.header_length % 8 != 0)
            return fmt::format("header length {} (at least 104, a multiple of 8)", h.header_length);
    }
    if (h.cluster_bits < kMinClusterBits || h.cluster_bits > kMaxClusterBits)
        return fmt::format("cluster size 2^{} (2^9 to 2^21 are valid)", h.cluster_bits);
    if (h.header_length > h.cluster_size() || h.header_length > b.size())
        return std::string("header longer than the first cluster");
    if (h.crypt_method != 0)
        return std::string("encrypted images are not supported");
    const std::uint64_t known = incompat::kDirty | incompat::kCorrupt | incompat::kExternalData |
                                incompat::kCompressionType | incompat::kExtendedL2;
    if (h.incompatible_features & ~known)
        return fmt::format("unknown incompatible features {:#x}", h.incompatible_features & ~known);
    if (h.incompatible_features & incompat::kExternalData)
        return std::string("external data files are not supported");
    if (h.incompatible_features & incompat::kExtendedL2)
        return std::string("extended L2 entries (subclusters) are not supported");
    if (h.incompatible_features & incompat::kCompressionType) {
        if (h.header_length < kV3HeaderSize + 8 || b[kV3HeaderSize] != 0)
            return std::string("compression type other than zlib is not supported");
    }
    if (h.refcount_order > 6)
        return fmt::format("refcount order {} (at most 6)", h.refcount_order);
    if (h.size > kMaxVirtualSize)
        return fmt::format("virtual size {} is too large", h.size);
    // The L1 table: big enough for the virtual size, bounded, cluster-aligned, inside the file.
    if (std::uint64_t{h.l1_size} * 8 > kMaxL1Bytes)
        return fmt::format("L1 table of {} entries is too large", h.l1_size);
    if (h.l1_size < l1_entries_for(h.size, h.cluster_bits))
        return fmt::format("L1 table of {} entries is too small for a {}-byte disk", h.l1_size,
                           h.size);
    if (h.l1_size != 0 && (!aligned(h.l1_table_offset, h) || h.l1_table_offset == 0 ||
                           !inside(h.l1_table_offset, std::uint64_t{h.l1_size} * 8, file_size)))
        return fmt::format("L1 table offset {:#x} is not a cluster inside the file",
                           h.l1_table_offset);
    const std::uint64_t rt_bytes = std::uint64_t{h.refcount_table_clusters} * h.cluster_size();
    if (h.refcount_table_clusters == 0 || rt_bytes > kMaxRefcountTableBytes)
        return fmt::format("refcount table of {} clusters", h.refcount_table_clusters);
    if (!aligned(h.refcount_table_offset, h) || h.refcount_table_offset == 0 ||
        !inside(h.refcount_table_offset, rt_bytes, file_size))
        return fmt::format("refcount table offset {:#x} is not a cluster inside the file",
                           h.refcount_table_offset);
    if (h.nb_snapshots > kMaxSnapshots)
        return fmt::format("{} internal snapshots (at most {})", h.nb_snapshots, kMaxSnapshots);
    if (h.nb_snapshots != 0 &&
        (!aligned(h.snapshots_offset, h) || !inside(h.snapshots_offset, 0, file_size)))
        return fmt::format("snapshot table offset {:#x} is not a cluster inside the file",
                           h.snapshots_offset);
    if (h.backing_file_offset != 0) {
        if (h.backing_file_size == 0 || h.backing_file_size > kMaxBackingNameBytes)
            return fmt::format("backing file name of {} bytes", h.backing_file_size);
        if (!inside(h.backing_file_offset, h.backing_file_size,
                    std::min<std::uint64_t>(b.size(), h.cluster_size())))
            return std::string("backing file name lies outside the first cluster");
        h.backing_file.assign(reinterpret_cast<const char*>(&b[h.backing_file_offset]),
                              h.backing_file_size);
        if (h.backing_file.find('\0') != std::string::npos)
            return std::string("backing file name contains a NUL byte");
    }
    if (auto err = read_extensions(b, h))
        return *err;
    return h;
}

}  // namespace hv::storage::qcow2
