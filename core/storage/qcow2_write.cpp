// QCOW2 writes. New clusters are always taken at the end of the file; 16-bit refcounts are kept
// exact, so nothing needs the dirty bit. Every metadata change is ordered so that a process
// killed between any two pwrite()s leaves an image whose refcounts are never lower than its
// references (`qemu-img check` finds at worst leaked clusters, never corruption):
//   1. the new cluster's refcount (and any refcount block or table it needs),
//   2. the data,
//   3. the L2 entry (a new or copied L2 table first, then its L1 entry),
//   4. last, the reference the old cluster lost.
// A cluster still shared with an internal snapshot (refcount above 1), a compressed cluster and
// a zero cluster are copied on write; so is a shared L2 table (QEMU counts a data cluster's
// references per L1 table it is reachable from, so the copy changes no data cluster's count).
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "core/base/error.hpp"
#include "core/storage/qcow2.hpp"
#include "core/storage/qcow2_image.hpp"

namespace hv::storage {

using qcow2::be16;
using qcow2::put_be16;
using qcow2::put_be32;
using qcow2::put_be64;

namespace {

constexpr std::uint64_t kRefTableReserved = 0x1ff;  // refcount table entry bits 0-8

}  // namespace

void Qcow2Image::open_for_writing()
{
    if (h_.incompatible_features & qcow2::incompat::kDirty)
        fail("{}: marked dirty (its refcounts are not up to date): repair it with 'qemu-img check "
             "-r all' before writing to it",
             path_);
    if (h_.incompatible_features & qcow2::incompat::kCorrupt)
        fail("{}: marked corrupt: it can only be opened read-only", path_);
    if (h_.refcount_order != 4)
        fail("{}: {}-bit refcounts: only 16-bit refcounts are written", path_,
             1u << h_.refcount_order);
    const std::uint64_t cs = cluster_size();
    std::vector<std::uint8_t> raw(h_.refcount_table_clusters * cs);  // at most 8 MiB (validated)
    read_file(h_.refcount_table_offset, raw);
    rt_.resize(raw.size() / 8);
    for (std::size_t i = 0; i < rt_.size(); ++i) {
        const std::uint64_t e = qcow2::be64(&raw[i * 8]);
        if ((e & kRefTableReserved) || (e != 0 && !cluster_in_file(e)))
            fail("{}: refcount table entry {} ({:#x}) is not a cluster in the file", path_, i, e);
        rt_[i] = e;
    }
    end_ = (file_.size + cs - 1) & ~(cs - 1);
    // The metadata map; two kinds of metadata in one cluster make the image unwritable.
    std::size_t expected = 0;
    auto add = [&](std::uint64_t off, std::uint64_t bytes) {
        expected += (bytes + cs - 1) / cs;
        note_metadata(off, bytes);
        if (metadata_.size() != expected)
            fail("{}: its metadata overlaps itself (at {:#x}): it can only be opened read-only",
                 path_, off);
    };
    add(0, cs);
    if (!l1_.empty())
        add(h_.l1_table_offset, l1_.size() * 8);
    add(h_.refcount_table_offset, raw.size());
    for (std::uint64_t b : rt_)
        if (b != 0)
            add(b, cs);
    for (std::uint64_t e : l1_)
        if (const std::uint64_t l2 = e & qcow2::kOffsetMask; l2 != 0)
            add(l2, cs);
    if (h_.nb_snapshots != 0) {
        std::uint64_t table = 0;
        for (const Snapshot& sn : read_snapshots()) {
            table += sn.table_bytes();
            if (sn.l1_size != 0)
                note_metadata(sn.l1_table_offset, std::uint64_t{sn.l1_size} * 8);
        }
        note_metadata(h_.snapshots_offset, table);
    }
    // Autoclear features (bitmaps, ...) describe data this writer does not keep up to date: the
    // specification says a writer that does not know them clears them before its first write.
    if (h_.version == 3 && h_.autoclear_features != 0) {
        std::uint8_t zero[8] = {};
        write_file(88, zero);
        h_.autoclear_features = 0;
    }
    writable_ = true;
}

void Qcow2Image::note_metadata(std::uint64_t offset, std::uint64_t bytes)
{
    for (std::uint64_t c = offset & ~(cluster_size() - 1); c < offset + bytes; c += cluster_size())
        metadata_.insert(c);
}

void Qcow2Image::write(std::uint64_t offset, std::span<const std::uint8_t> data)
{
    if (!writable_)
        fail("{}: the disk is read-only", path_);
    check_range(offset, data.size(), h_.size, path_);
    std::lock_guard lock(mu_);
    const std::uint64_t cs = cluster_size();
    while (!data.empty()) {
        const std::uint64_t in = offset & (cs - 1);
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(data.size(), cs - in));
        write_in_cluster(offset, data.first(n));
        offset += n;
        data = data.subspan(n);
    }
}

void Qcow2Image::flush()
{
    std::lock_guard lock(mu_);
    sync_file(file_.fd.get(), path_);
}

void Qcow2Image::write_file(std::uint64_t off, std::span<const std::uint8_t> data)
{
    pwrite_exact(file_.fd.get(), off, data, path_);
    file_.size = std::max(file_.size, off + data.size());
}

// --- refcounts ---

std::uint64_t Qcow2Image::refcount_block(std::uint64_t host_off)
{
    const std::uint64_t index = (host_off >> h_.cluster_bits) >> (h_.cluster_bits - 1);
    return index < rt_.size() ? rt_[index] : 0;
}

std::uint16_t Qcow2Image::refcount(std::uint64_t host_off)
{
    const std::uint64_t block = refcount_block(host_off);
    if (block == 0)
        return 0;
    for (auto& [at, bytes] : rb_cache_)
        if (at == block)
            return be16(&bytes[((host_off >> h_.cluster_bits) & (cluster_size() / 2 - 1)) * 2]);
    auto& slot = rb_cache_[next_rb_];
    next_rb_ = (next_rb_ + 1) % rb_cache_.size();
    slot.first = 0;
    slot.second.resize(cluster_size());
    read_file(block, slot.second);
    slot.first = block;
    return be16(&slot.second[((host_off >> h_.cluster_bits) & (cluster_size() / 2 - 1)) * 2]);
}

void Qcow2Image::set_refcount(std::uint64_t host_off, std::uint16_t value)
{
    const std::uint64_t block = refcount_block(host_off);
    if (block == 0)
        fail("{}: no refcount block for cluster {:#x}", path_, host_off);
    (void)refcount(host_off);  // the block is now cached
    const std::uint64_t at = ((host_off >> h_.cluster_bits) & (cluster_size() / 2 - 1)) * 2;
    std::uint8_t b[2];
    put_be16(b, value);
    write_file(block + at, b);
    for (auto& [off, bytes] : rb_cache_)
        if (off == block)
            std::memcpy(&bytes[at], b, 2);
}

void Qcow2Image::release(std::uint64_t host_off)
{
    const std::uint16_t rc = refcount(host_off);
    if (rc == 0)
        fail("{}: cluster {:#x} is referenced but its refcount is 0 (the image is damaged)", path_,
             host_off);
    set_refcount(host_off, static_cast<std::uint16_t>(rc - 1));
}

// The host clusters a compressed cluster's data touches each hold one reference for it.
void Qcow2Image::release_compressed(std::uint64_t entry)
{
    const qcow2::ClusterRange r = qcow2::compressed_clusters(entry, h_.cluster_bits);
    for (std::uint64_t c = r.first; c <= r.last; c += cluster_size())
        release(c);
}

std::uint64_t Qcow2Image::allocate_cluster()
{
    for (;;) {
        const std::uint64_t off = end_;
        if (refcount_block(off) == 0) {
            add_refcount_block();
            continue;
        }
        end_ = off + cluster_size();
        // A cluster past the old end of the file with a reference already counted was taken by
        // a writer that stopped before writing it: leaked, and left alone.
        if (refcount(off) != 0)
            continue;
        set_refcount(off, 1);
        return off;
    }
}

std::uint64_t Qcow2Image::allocate_run(std::uint64_t bytes)
{
    const std::uint64_t cs = cluster_size();
    const std::uint64_t n = (bytes + cs - 1) / cs;
    for (;;) {
        const std::uint64_t start = end_;
        // Every cluster of the run needs a refcount block, made before the run is placed.
        std::uint64_t missing = 0;
        for (std::uint64_t c = start; c < start + n * cs && missing == 0; c += cs)
            if (refcount_block(c) == 0)
                missing = c;
        if (missing == 0) {
            bool free = true;
            for (std::uint64_t c = start; c < start + n * cs && free; c += cs)
                free = refcount(c) == 0;
            if (!free) {  // leaked clusters past the old end of the file: skip them
                end_ += cs;
                continue;
            }
            for (std::uint64_t c = start; c < start + n * cs; c += cs)
                set_refcount(c, 1);
            end_ = start + n * cs;
            return start;
        }
        const std::uint64_t index = (missing >> h_.cluster_bits) / (cs / 2);
        if (index >= rt_.size()) {
            grow_refcount_table();
            continue;
        }
        if (refcount_block(end_) == 0) {
            add_refcount_block();
            continue;
        }
        // A block for a later part of the run: one cluster here, counted where end_ is.
        const std::uint64_t block = allocate_cluster();
        write_file(block, std::vector<std::uint8_t>(cs, 0));
        std::uint8_t e[8];
        put_be64(e, block);
        write_file(h_.refcount_table_offset + index * 8, e);
        rt_[index] = block;
        note_metadata(block, cs);
    }
}

// A refcount block at the end of the file, covering that cluster itself.
void Qcow2Image::add_refcount_block()
{
    const std::uint64_t off = end_;
    const std::uint64_t index = (off >> h_.cluster_bits) >> (h_.cluster_bits - 1);
    if (index >= rt_.size())
        return grow_refcount_table();
    std::vector<std::uint8_t> block(cluster_size(), 0);
    put_be16(&block[((off >> h_.cluster_bits) & (cluster_size() / 2 - 1)) * 2], 1);
    write_file(off, block);
    std::uint8_t e[8];
    put_be64(e, off);
    write_file(h_.refcount_table_offset + index * 8, e);
    rt_[index] = off;
    note_metadata(off, cluster_size());
    end_ = off + cluster_size();
}

// A refcount table twice as large (or more), at the end of the file, with the refcount blocks
// that cover it; the header is switched to it in one write, then the old table is freed.
void Qcow2Image::grow_refcount_table()
{
    const std::uint64_t cs = cluster_size();
    const std::uint64_t per_block = cs / 2;  // clusters one refcount block covers
    std::uint64_t clusters = std::uint64_t{h_.refcount_table_clusters} * 2;
    auto covers = [&](std::uint64_t n) { return n * (cs / 8) * per_block * cs; };
    while (covers(clusters) < end_ + (clusters + 64) * cs)
        clusters *= 2;
    if (clusters * cs > qcow2::kMaxRefcountTableBytes)
        fail("{}: the refcount table would exceed {} bytes", path_, qcow2::kMaxRefcountTableBytes);

    std::vector<std::uint64_t> table = rt_;
    table.resize(clusters * cs / 8, 0);
    const std::uint64_t table_at = end_;
    std::uint64_t next = table_at + clusters * cs;
    std::vector<std::uint64_t> fresh_blocks;
    std::vector<std::uint64_t> counted;  // clusters to give refcount 1: the table, the blocks
    auto index_of = [&](std::uint64_t host) { return (host >> h_.cluster_bits) / per_block; };
    auto cover = [&](std::uint64_t host) {
        counted.push_back(host);
        if (table[index_of(host)] == 0) {
            table[index_of(host)] = next;
            fresh_blocks.push_back(next);
            next += cs;
        }
    };
    for (std::uint64_t c = table_at; c < table_at + clusters * cs; c += cs)
        cover(c);
    for (std::size_t i = 0; i < fresh_blocks.size(); ++i)
        cover(fresh_blocks[i]);

    // 1. The new blocks, with the counts of what they cover; counts in existing blocks.
    for (std::uint64_t b : fresh_blocks) {
        std::vector<std::uint8_t> block(cs, 0);
        for (std::uint64_t c : counted)
            if (table[index_of(c)] == b)
                put_be16(&block[((c >> h_.cluster_bits) % per_block) * 2], 1);
        write_file(b, block);
    }
    for (std::uint64_t c : counted)
        if (std::find(fresh_blocks.begin(), fresh_blocks.end(), table[index_of(c)]) ==
            fresh_blocks.end())
            set_refcount(c, 1);
    // 2. The table.
    std::vector<std::uint8_t> raw(clusters * cs);
    for (std::size_t i = 0; i < table.size(); ++i)
        put_be64(&raw[i * 8], table[i]);
    write_file(table_at, raw);
    // 3. The header: offset (48) and size in clusters (56) in one write.
    std::uint8_t hdr[12];
    put_be64(hdr, table_at);
    put_be32(hdr + 8, static_cast<std::uint32_t>(clusters));
    write_file(48, hdr);
    const std::uint64_t old_at = h_.refcount_table_offset;
    const std::uint64_t old_clusters = h_.refcount_table_clusters;
    rt_ = std::move(table);
    note_metadata(table_at, clusters * cs);
    for (std::uint64_t b : fresh_blocks)
        note_metadata(b, cs);
    h_.refcount_table_offset = table_at;
    h_.refcount_table_clusters = static_cast<std::uint32_t>(clusters);
    end_ = next;
    // 4. The old table's clusters are free.
    for (std::uint64_t i = 0; i < old_clusters; ++i)
        release(old_at + i * cs);
}

// --- copy on write ---

std::uint64_t Qcow2Image::writable_l2(std::uint64_t vaddr)
{
    const std::uint64_t l1_index = (vaddr >> h_.cluster_bits) / h_.l2_entries();
    const std::uint64_t old = l2_offset(vaddr);
    if (old != 0 && refcount(old) == 1)
        return old;
    // A table shared with a snapshot is copied as it is: its clusters' refcounts already count
    // one reference per L1 table they are reached from (the snapshot took them), and their
    // COPIED flags are already clear.
    std::vector<std::uint8_t> raw(cluster_size(), 0);
    if (old != 0)
        read_file(old, raw);
    const std::uint64_t fresh = allocate_cluster();
    write_file(fresh, raw);
    std::uint8_t e[8];
    put_be64(e, fresh | qcow2::kCopied);
    write_file(h_.l1_table_offset + l1_index * 8, e);
    l1_[l1_index] = fresh | qcow2::kCopied;
    note_metadata(fresh, cluster_size());
    if (old != 0)
        release(old);
    return fresh;
}

void Qcow2Image::write_in_cluster(std::uint64_t vaddr, std::span<const std::uint8_t> data)
{
    const std::uint64_t cs = cluster_size();
    const std::uint64_t in = vaddr & (cs - 1);
    const std::uint64_t l2_off = writable_l2(vaddr);
    const std::size_t index = (vaddr >> h_.cluster_bits) % h_.l2_entries();
    const std::uint64_t e = l2_table(l2_off)[index];
    const std::uint64_t old = e & qcow2::kOffsetMask;
    const bool compressed = (e & qcow2::kCompressed) != 0;
    const bool zero = h_.version == 3 && (e & qcow2::kZeroFlag);
    if (!compressed && (e & qcow2::kL2Reserved))
        damaged(vaddr, fmt::format("L2 entry {:#x} has reserved bits set", e));
    if (!compressed && old != 0 && !cluster_in_file(old))
        damaged(vaddr, fmt::format("data cluster offset {:#x} is not a cluster in the file", old));
    if (!compressed && old != 0 && metadata_.count(old))
        damaged(vaddr, fmt::format("data cluster {:#x} is also the image's metadata", old));
    if (!compressed && !zero && old != 0 && refcount(old) == 1) {
        write_file(old + in, data);  // in place: no metadata changes
        return;
    }
    // Copy on write: the cluster as the guest sees it now, with the new bytes over it.
    std::vector<std::uint8_t> cluster(cs);
    if (data.size() != cs)
        read_in_cluster(vaddr & ~(cs - 1), cluster);
    std::memcpy(cluster.data() + in, data.data(), data.size());
    const std::uint64_t fresh = allocate_cluster();
    write_file(fresh, cluster);
    std::uint8_t b[8];
    put_be64(b, fresh | qcow2::kCopied);
    write_file(l2_off + index * 8, b);
    l2_table(l2_off)[index] = fresh | qcow2::kCopied;
    if (compressed)
        release_compressed(e);
    else if (old != 0)
        release(old);
}

}  // namespace hv::storage
