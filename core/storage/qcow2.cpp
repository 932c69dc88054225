// Opening QCOW2 images, and their read path: L1 -> L2 -> data cluster, with zero clusters
// (version 3), compressed clusters (raw deflate, QEMU's zlib compression type) and backing files.
// Every table and data offset is checked against the file before it is read; a damaged entry is
// an error naming the file and the virtual offset, never a read outside what the entry may
// address.
#include "core/storage/qcow2.hpp"

#include <unistd.h>

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <vector>

#include <fmt/format.h>

#include "core/base/error.hpp"
#include "core/storage/qcow2_format.hpp"
#include "core/storage/qcow2_image.hpp"

namespace hv::storage {

using qcow2::Header;

Qcow2Image::Qcow2Image(RegularFile f, std::string path, Header h, std::vector<std::uint64_t> l1,
                       std::unique_ptr<Image> backing)
    : file_(std::move(f)), path_(std::move(path)), h_(std::move(h)), l1_(std::move(l1)),
      backing_(std::move(backing))
{
}

Qcow2Image::~Qcow2Image()
{
    if (writable_)
        ::fdatasync(file_.fd.get());
}

void Qcow2Image::read(std::uint64_t offset, std::span<std::uint8_t> out)
{
    check_range(offset, out.size(), h_.size, path_);
    std::lock_guard lock(mu_);
    const std::uint64_t cs = cluster_size();
    while (!out.empty()) {
        const std::uint64_t in = offset & (cs - 1);
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(out.size(), cs - in));
        read_in_cluster(offset, out.first(n));
        offset += n;
        out = out.subspan(n);
    }
}

std::uint64_t Qcow2Image::allocated_bytes() const
{
    std::lock_guard lock(mu_);
    std::uint64_t total = 0;
    std::vector<std::uint64_t> l2;
    for (std::uint64_t e : l1_) {
        const std::uint64_t l2_off = e & qcow2::kOffsetMask;
        if (l2_off == 0 || !cluster_in_file(l2_off))
            continue;
        load_table(l2_off, l2);
        for (std::uint64_t d : l2) {
            if (d & qcow2::kCompressed)
                total += qcow2::compressed_extent(d, h_.cluster_bits).length;
            else if (d & qcow2::kOffsetMask)
                total += cluster_size();
        }
    }
    return total;
}

std::string Qcow2Image::describe() const
{
    const std::uint64_t cs = cluster_size();
    std::string s =
        fmt::format("qcow2 v{}, {} bytes, {} clusters", h_.version, h_.size,
                    cs >= 1024 ? fmt::format("{} KiB", cs / 1024) : fmt::format("{}-byte", cs));
    if (backing_)
        s += fmt::format(", backing file {} ({})", h_.backing_file, to_string(backing_->format()));
    if (h_.nb_snapshots)
        s += fmt::format(", {} internal snapshots", h_.nb_snapshots);
    if (h_.incompatible_features & qcow2::incompat::kDirty)
        s += ", dirty (refcounts need repair before writing)";
    if (h_.incompatible_features & qcow2::incompat::kCorrupt)
        s += ", marked corrupt";
    return s;
}

// A table or data cluster at `off`: cluster-aligned and starting inside the file.
bool Qcow2Image::cluster_in_file(std::uint64_t off) const
{
    return (off & (cluster_size() - 1)) == 0 && off < std::max(file_.size, end_);
}

void Qcow2Image::damaged(std::uint64_t vaddr, const std::string& why) const
{
    fail("{}: damaged image at disk offset {:#x}: {}", path_, vaddr, why);
}

// Reads [off, off + out.size()) of the file; bytes past its end read as zeros (QCOW2 files may
// end inside their last cluster).
void Qcow2Image::read_file(std::uint64_t off, std::span<std::uint8_t> out) const
{
    const std::uint64_t have = off < file_.size ? file_.size - off : 0;
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(have, out.size()));
    pread_exact(file_.fd.get(), off, out.first(n), path_);
    std::fill(out.begin() + static_cast<std::ptrdiff_t>(n), out.end(), std::uint8_t{0});
}

void Qcow2Image::load_table(std::uint64_t off, std::vector<std::uint64_t>& table) const
{
    std::vector<std::uint8_t> raw(cluster_size());
    read_file(off, raw);
    table.resize(h_.l2_entries());
    for (std::size_t i = 0; i < table.size(); ++i)
        table[i] = qcow2::be64(&raw[i * 8]);
}

std::vector<std::uint64_t>& Qcow2Image::l2_table(std::uint64_t off)
{
    for (auto& [at, table] : l2_cache_)
        if (at == off && off != 0)
            return table;
    auto& slot = l2_cache_[next_l2_];
    next_l2_ = (next_l2_ + 1) % l2_cache_.size();
    slot.first = 0;  // not valid until loaded
    load_table(off, slot.second);
    slot.first = off;
    return slot.second;
}

std::uint64_t Qcow2Image::l2_offset(std::uint64_t vaddr)
{
    const std::uint64_t l1e = l1_[(vaddr >> h_.cluster_bits) / h_.l2_entries()];
    if (l1e & qcow2::kL1Reserved)
        damaged(vaddr, fmt::format("L1 entry {:#x} has reserved bits set", l1e));
    const std::uint64_t off = l1e & qcow2::kOffsetMask;
    if (off != 0 && !cluster_in_file(off))
        damaged(vaddr, fmt::format("L2 table offset {:#x} is not a cluster in the file", off));
    return off;
}

void Qcow2Image::read_unallocated(std::uint64_t vaddr, std::span<std::uint8_t> out)
{
    std::fill(out.begin(), out.end(), std::uint8_t{0});
    if (!backing_ || vaddr >= backing_->size())
        return;
    const auto n =
        static_cast<std::size_t>(std::min<std::uint64_t>(out.size(), backing_->size() - vaddr));
    backing_->read(vaddr, out.first(n));
}

void Qcow2Image::read_compressed(std::uint64_t vaddr, std::uint64_t entry,
                                 std::span<std::uint8_t> out)
{
    const std::uint64_t cs = cluster_size();
    const qcow2::CompressedExtent x = qcow2::compressed_extent(entry, h_.cluster_bits);
    if (x.offset >= file_.size)
        damaged(vaddr, "compressed cluster starts past the end of the file");
    if (inflated_at_ != x.offset) {
        std::vector<std::uint8_t> in(x.length);
        read_file(x.offset, in);
        inflated_.resize(cs);
        inflated_at_ = ~std::uint64_t{0};
        z_stream z{};
        if (inflateInit2(&z, -12) != Z_OK)
            damaged(vaddr, "zlib initialisation failed");
        z.next_in = in.data();
        z.avail_in = static_cast<uInt>(in.size());
        z.next_out = inflated_.data();
        z.avail_out = static_cast<uInt>(cs);
        const int rc = inflate(&z, Z_FINISH);
        const bool whole = z.avail_out == 0;
        inflateEnd(&z);
        // The stream may end exactly at the cluster (Z_STREAM_END) or be cut where the output
        // is full (Z_BUF_ERROR with no room left): both filled the cluster.
        if (!whole || (rc != Z_STREAM_END && rc != Z_BUF_ERROR && rc != Z_OK))
            damaged(vaddr, "compressed cluster does not inflate to a whole cluster");
        inflated_at_ = x.offset;
    }
    std::memcpy(out.data(), inflated_.data() + (vaddr & (cs - 1)), out.size());
}

void Qcow2Image::read_in_cluster(std::uint64_t vaddr, std::span<std::uint8_t> out)
{
    const std::uint64_t l2_off = l2_offset(vaddr);
    if (l2_off == 0)
        return read_unallocated(vaddr, out);
    const std::uint64_t e = l2_table(l2_off)[(vaddr >> h_.cluster_bits) % h_.l2_entries()];
    if (e & qcow2::kCompressed)
        return read_compressed(vaddr, e, out);
    if (e & qcow2::kL2Reserved)
        damaged(vaddr, fmt::format("L2 entry {:#x} has reserved bits set", e));
    if (h_.version == 3 && (e & qcow2::kZeroFlag)) {
        std::fill(out.begin(), out.end(), std::uint8_t{0});
        return;
    }
    const std::uint64_t data = e & qcow2::kOffsetMask;
    if (data == 0)
        return read_unallocated(vaddr, out);
    if (!cluster_in_file(data))
        damaged(vaddr, fmt::format("data cluster offset {:#x} is not a cluster in the file", data));
    read_file(data + (vaddr & (cluster_size() - 1)), out);
}

std::unique_ptr<Image> open_qcow2(RegularFile f, const std::string& path, bool guessed,
                                  unsigned depth, bool writable)
{
    std::vector<std::uint8_t> first(
        static_cast<std::size_t>(std::min<std::uint64_t>(f.size, 1u << qcow2::kMaxClusterBits)));
    pread_exact(f.fd.get(), 0, first, path);
    auto v = qcow2::validate_header(first, f.size);
    if (auto* why = std::get_if<std::string>(&v))
        fail("{}: not a usable QCOW2 image: {}", path, *why);
    Header h = std::get<Header>(std::move(v));

    std::vector<std::uint64_t> l1(h.l1_size);
    if (!l1.empty()) {
        std::vector<std::uint8_t> raw(l1.size() * 8);
        pread_exact(f.fd.get(), h.l1_table_offset, raw, path);
        for (std::size_t i = 0; i < l1.size(); ++i)
            l1[i] = qcow2::be64(&raw[i * 8]);
    }

    std::unique_ptr<Image> backing;
    if (!h.backing_file.empty()) {
        if (guessed)
            fail("{}: names a backing file ({}), which is only followed when the image's format "
                 "is given as qcow2",
                 path, h.backing_file);
        // A relative name is relative to the image's directory.
        std::filesystem::path b(h.backing_file);
        if (b.is_relative())
            b = std::filesystem::path(path).parent_path() / b;
        std::optional<Format> bf;
        if (!h.backing_format.empty())
            bf = parse_format(h.backing_format);
        backing = open_backing(b.string(), bf, depth + 1);
    }
    auto img = std::make_unique<Qcow2Image>(std::move(f), path, std::move(h), std::move(l1),
                                            std::move(backing));
    if (writable)
        img->open_for_writing();
    return img;
}

}  // namespace hv::storage
