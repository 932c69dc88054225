// QCOW2 internal snapshots, as `qemu-img snapshot` keeps them (the format's "Snapshot table"):
// each snapshot owns a copy of the L1 table; the L2 tables and data clusters it reaches count one
// reference per L1 table that reaches them. Creating one adds those references and clears the
// active tree's COPIED flags before the snapshot is linked; deleting one drops them after it is
// unlinked; applying one makes its L1 the active one (written to new clusters, switched in the
// header in one write). A kill midway leaves at worst leaked clusters, or — between the header
// switch of an apply or a delete and the COPIED flag update that follows — flags that
// `qemu-img check -r all` corrects; never a cluster referenced more often than it is counted.
#include <time.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "core/base/error.hpp"
#include "core/storage/qcow2.hpp"
#include "core/storage/qcow2_image.hpp"

namespace hv::storage {

using qcow2::be16;
using qcow2::be32;
using qcow2::be64;
using qcow2::put_be16;
using qcow2::put_be32;
using qcow2::put_be64;

namespace {

constexpr std::size_t kEntryFixed = 40;              // bytes before the extra data
constexpr std::uint32_t kMaxExtra = 1024;            // QEMU's limit on extra data
constexpr std::uint64_t kMaxTableBytes = 64u << 20;  // QEMU's limit on the whole table
constexpr std::size_t kMaxName = 1024;

std::size_t padded(std::size_t n)
{
    return (n + 7) & ~std::size_t{7};
}

}  // namespace

std::uint64_t Qcow2Image::Snapshot::table_bytes() const
{
    return padded(kEntryFixed + extra.size() + id.size() + name.size());
}

std::vector<Qcow2Image::Snapshot> Qcow2Image::snapshots()
{
    std::lock_guard lock(mu_);
    return read_snapshots();
}

std::vector<Qcow2Image::Snapshot> Qcow2Image::read_snapshots()
{
    std::vector<Snapshot> out;
    if (h_.nb_snapshots == 0)
        return out;
    std::uint64_t at = h_.snapshots_offset;
    const std::uint64_t limit = std::min(file_.size, h_.snapshots_offset + kMaxTableBytes);
    for (std::uint32_t i = 0; i < h_.nb_snapshots; ++i) {
        std::uint8_t fixed[kEntryFixed];
        if (at + sizeof fixed > limit)
            fail("{}: snapshot table runs past the end of the file", path_);
        read_file(at, fixed);
        Snapshot s;
        s.l1_table_offset = be64(fixed);
        s.l1_size = be32(fixed + 8);
        const std::uint16_t id_len = be16(fixed + 12), name_len = be16(fixed + 14);
        s.date_sec = be32(fixed + 16);
        s.date_nsec = be32(fixed + 20);
        s.vm_clock_nsec = be64(fixed + 24);
        s.vm_state_size = be32(fixed + 32);
        const std::uint32_t extra = be32(fixed + 36);
        if (extra > kMaxExtra)
            fail("{}: snapshot {} has {} bytes of extra data", path_, i, extra);
        // The last entry's padding may be missing from the file (QEMU does not write it).
        const std::size_t used = kEntryFixed + extra + id_len + name_len;
        if (at + used > limit)
            fail("{}: snapshot table runs past the end of the file", path_);
        std::vector<std::uint8_t> rest(used - kEntryFixed);
        read_file(at + kEntryFixed, rest);
        const char* text = reinterpret_cast<const char*>(rest.data());
        s.extra.assign(rest.begin(), rest.begin() + extra);
        s.id.assign(text + extra, id_len);
        s.name.assign(text + extra + id_len, name_len);
        if (s.l1_size > qcow2::kMaxL1Bytes / 8 ||
            (s.l1_size != 0 && !cluster_in_file(s.l1_table_offset)))
            fail("{}: snapshot '{}' has a bad L1 table ({:#x}, {} entries)", path_, s.name,
                 s.l1_table_offset, s.l1_size);
        out.push_back(std::move(s));
        at += padded(used);
    }
    return out;
}

std::vector<std::uint64_t> Qcow2Image::read_l1(std::uint64_t offset, std::uint32_t entries)
{
    std::vector<std::uint8_t> raw(std::size_t{entries} * 8);
    read_file(offset, raw);
    std::vector<std::uint64_t> l1(entries);
    for (std::size_t i = 0; i < l1.size(); ++i) {
        l1[i] = be64(&raw[i * 8]);
        if (l1[i] & qcow2::kL1Reserved)
            fail("{}: L1 entry {:#x} has reserved bits set", path_, l1[i]);
        const std::uint64_t l2 = l1[i] & qcow2::kOffsetMask;
        if (l2 != 0 && !cluster_in_file(l2))
            fail("{}: L2 table offset {:#x} is not a cluster in the file", path_, l2);
    }
    return l1;
}

void Qcow2Image::adjust_tree(const std::vector<std::uint64_t>& l1, int delta)
{
    const std::uint64_t cs = cluster_size();
    auto adjust = [&](std::uint64_t c) {
        const std::uint16_t rc = refcount(c);
        if ((delta > 0 && rc == 0xffff) || (delta < 0 && rc == 0))
            fail("{}: refcount of cluster {:#x} is {} and cannot change by {}", path_, c, rc,
                 delta);
        set_refcount(c, static_cast<std::uint16_t>(rc + delta));
    };
    std::vector<std::uint64_t> table;
    for (std::uint64_t e : l1) {
        const std::uint64_t l2 = e & qcow2::kOffsetMask;
        if (l2 == 0)
            continue;
        load_table(l2, table);
        for (std::uint64_t d : table) {
            if (d & qcow2::kCompressed) {
                const qcow2::ClusterRange r = qcow2::compressed_clusters(d, h_.cluster_bits);
                for (std::uint64_t c = r.first; c <= r.last; c += cs)
                    adjust(c);
            } else if (const std::uint64_t data = d & qcow2::kOffsetMask; data != 0) {
                if (!cluster_in_file(data))
                    fail("{}: data cluster offset {:#x} is not a cluster in the file", path_, data);
                adjust(data);
            }
        }
        adjust(l2);
    }
}

void Qcow2Image::fix_copied_flags()
{
    std::vector<std::uint64_t> table;
    for (std::size_t i = 0; i < l1_.size(); ++i) {
        const std::uint64_t l2 = l1_[i] & qcow2::kOffsetMask;
        if (l2 == 0)
            continue;
        const bool own = refcount(l2) == 1;
        const std::uint64_t want = own ? (l1_[i] | qcow2::kCopied) : (l1_[i] & ~qcow2::kCopied);
        if (want != l1_[i]) {
            std::uint8_t b[8];
            put_be64(b, want);
            write_file(h_.l1_table_offset + i * 8, b);
            l1_[i] = want;
        }
        load_table(l2, table);
        bool changed = false;
        for (std::uint64_t& d : table) {
            const std::uint64_t data = d & qcow2::kOffsetMask;
            if ((d & qcow2::kCompressed) || data == 0)
                continue;
            const std::uint64_t w =
                refcount(data) == 1 ? (d | qcow2::kCopied) : (d & ~qcow2::kCopied);
            changed = changed || w != d;
            d = w;
        }
        if (changed) {
            std::vector<std::uint8_t> raw(cluster_size());
            for (std::size_t k = 0; k < table.size(); ++k)
                put_be64(&raw[k * 8], table[k]);
            write_file(l2, raw);
            for (auto& [at, cached] : l2_cache_)
                if (at == l2)
                    cached = table;
        }
    }
}

// A new snapshot table in new clusters, switched in the header (count and offset are adjacent:
// one write), then the old table's clusters freed.
void Qcow2Image::write_snapshot_table(const std::vector<Snapshot>& list)
{
    std::vector<std::uint8_t> raw;
    for (const Snapshot& s : list) {
        const std::size_t start = raw.size();
        raw.resize(start + s.table_bytes(), 0);
        std::uint8_t* p = &raw[start];
        put_be64(p, s.l1_table_offset);
        put_be32(p + 8, s.l1_size);
        put_be16(p + 12, static_cast<std::uint16_t>(s.id.size()));
        put_be16(p + 14, static_cast<std::uint16_t>(s.name.size()));
        put_be32(p + 16, s.date_sec);
        put_be32(p + 20, s.date_nsec);
        put_be64(p + 24, s.vm_clock_nsec);
        put_be32(p + 32, s.vm_state_size);
        put_be32(p + 36, static_cast<std::uint32_t>(s.extra.size()));
        std::memcpy(p + kEntryFixed, s.extra.data(), s.extra.size());
        std::memcpy(p + kEntryFixed + s.extra.size(), s.id.data(), s.id.size());
        std::memcpy(p + kEntryFixed + s.extra.size() + s.id.size(), s.name.data(), s.name.size());
    }
    const std::uint64_t old_at = h_.snapshots_offset;
    std::uint64_t old_size = 0;
    for (const Snapshot& s : read_snapshots())
        old_size += s.table_bytes();
    const std::uint64_t at = raw.empty() ? 0 : allocate_run(raw.size());
    if (!raw.empty()) {
        write_file(at, raw);
        note_metadata(at, raw.size());
    }
    std::uint8_t hdr[12];
    put_be32(hdr, static_cast<std::uint32_t>(list.size()));
    put_be64(hdr + 4, at);
    write_file(60, hdr);
    const std::uint32_t old_count = h_.nb_snapshots;
    h_.nb_snapshots = static_cast<std::uint32_t>(list.size());
    h_.snapshots_offset = at;
    if (old_count != 0)
        for (std::uint64_t c = old_at; c < old_at + old_size; c += cluster_size())
            release(c);
}

void Qcow2Image::create_snapshot(const std::string& name)
{
    if (!writable_)
        fail("{}: the image is read-only", path_);
    if (name.empty() || name.size() > kMaxName)
        fail("{}: a snapshot name has 1 to {} bytes", path_, kMaxName);
    std::lock_guard lock(mu_);
    auto list = read_snapshots();
    unsigned long next_id = 1;
    for (const Snapshot& s : list) {
        if (s.name == name)
            fail("{}: a snapshot named '{}' exists already", path_, name);
        next_id = std::max(next_id, std::strtoul(s.id.c_str(), nullptr, 10) + 1);
    }
    // 1. The references the snapshot's L1 will hold, and the active tree's COPIED flags off.
    adjust_tree(l1_, +1);
    fix_copied_flags();
    // 2. The snapshot's L1 table: the active one as it is now.
    const std::uint64_t l1_at = l1_.empty() ? 0 : allocate_run(l1_.size() * 8);
    std::vector<std::uint8_t> raw(l1_.size() * 8);
    for (std::size_t i = 0; i < l1_.size(); ++i)
        put_be64(&raw[i * 8], l1_[i] & ~qcow2::kCopied);
    if (!raw.empty()) {
        write_file(l1_at, raw);
        note_metadata(l1_at, raw.size());
    }
    // 3. Linked into the table.
    Snapshot s;
    s.id = std::to_string(next_id);
    s.name = name;
    s.l1_table_offset = l1_at;
    s.l1_size = static_cast<std::uint32_t>(l1_.size());
    struct timespec now {};
    ::clock_gettime(CLOCK_REALTIME, &now);
    s.date_sec = static_cast<std::uint32_t>(now.tv_sec);
    s.date_nsec = static_cast<std::uint32_t>(now.tv_nsec);
    s.extra.assign(16, 0);  // vm_state_size_large = 0, disk_size
    put_be64(s.extra.data() + 8, h_.size);
    list.push_back(std::move(s));
    write_snapshot_table(list);
}

void Qcow2Image::delete_snapshot(const std::string& name)
{
    if (!writable_)
        fail("{}: the image is read-only", path_);
    std::lock_guard lock(mu_);
    auto list = read_snapshots();
    auto it = std::find_if(list.begin(), list.end(),
                           [&](const Snapshot& s) { return s.name == name || s.id == name; });
    if (it == list.end())
        fail("{}: no snapshot named '{}'", path_, name);
    const Snapshot gone = *it;
    const auto l1 = read_l1(gone.l1_table_offset, gone.l1_size);
    list.erase(it);
    write_snapshot_table(list);
    adjust_tree(l1, -1);
    for (std::uint64_t c = gone.l1_table_offset;
         gone.l1_size != 0 && c < gone.l1_table_offset + std::uint64_t{gone.l1_size} * 8;
         c += cluster_size())
        release(c);
    fix_copied_flags();
}

void Qcow2Image::apply_snapshot(const std::string& name)
{
    if (!writable_)
        fail("{}: the image is read-only", path_);
    std::lock_guard lock(mu_);
    const auto list = read_snapshots();
    auto it = std::find_if(list.begin(), list.end(),
                           [&](const Snapshot& s) { return s.name == name || s.id == name; });
    if (it == list.end())
        fail("{}: no snapshot named '{}'", path_, name);
    if (it->l1_size > l1_.size())
        fail("{}: snapshot '{}' is of a larger disk", path_, name);
    auto l1 = read_l1(it->l1_table_offset, it->l1_size);
    l1.resize(l1_.size(), 0);
    // The snapshot's tree gains the active L1's references, in a new L1 table switched in
    // the header (L1 size and offset are adjacent: one write); then the old tree loses them.
    adjust_tree(l1, +1);
    const std::uint64_t at = allocate_run(l1.size() * 8);
    std::vector<std::uint8_t> raw(l1.size() * 8);
    for (std::size_t i = 0; i < l1.size(); ++i)
        put_be64(&raw[i * 8], l1[i] & ~qcow2::kCopied);
    write_file(at, raw);
    note_metadata(at, raw.size());
    std::uint8_t hdr[12];
    put_be32(hdr, static_cast<std::uint32_t>(l1.size()));
    put_be64(hdr + 4, at);
    write_file(36, hdr);
    const auto old_l1 = l1_;
    const std::uint64_t old_at = h_.l1_table_offset;
    h_.l1_table_offset = at;
    for (auto& e : l1)
        e &= ~qcow2::kCopied;
    l1_ = std::move(l1);
    adjust_tree(old_l1, -1);
    for (std::uint64_t c = old_at; c < old_at + old_l1.size() * 8; c += cluster_size())
        release(c);
    for (auto& slot : l2_cache_)
        slot.first = 0;  // cached flags may be stale
    fix_copied_flags();
}

namespace {

Qcow2Image& as_qcow2(Image& img)
{
    return static_cast<Qcow2Image&>(img);  // opened with Format::Qcow2
}

}  // namespace

std::vector<DiskSnapshot> list_disk_snapshots(const std::string& path)
{
    auto img = open_image(path, Format::Qcow2);
    std::vector<DiskSnapshot> out;
    for (const auto& s : as_qcow2(*img).snapshots())
        out.push_back({s.id, s.name, s.date_sec, s.vm_clock_nsec, s.vm_state_size});
    return out;
}

void create_disk_snapshot(const std::string& path, const std::string& name)
{
    auto img = open_image(path, Format::Qcow2, true);
    as_qcow2(*img).create_snapshot(name);
    img->flush();
}

void apply_disk_snapshot(const std::string& path, const std::string& name)
{
    auto img = open_image(path, Format::Qcow2, true);
    as_qcow2(*img).apply_snapshot(name);
    img->flush();
}

void delete_disk_snapshot(const std::string& path, const std::string& name)
{
    auto img = open_image(path, Format::Qcow2, true);
    as_qcow2(*img).delete_snapshot(name);
    img->flush();
}

}  // namespace hv::storage
