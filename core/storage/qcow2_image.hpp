// Qcow2Image: a QCOW2 file as a virtual disk. Reading (qcow2.cpp): L1 -> L2 -> data cluster,
// zero clusters, compressed clusters, the backing file for what is unallocated. Writing
// (qcow2_write.cpp): clusters allocated at the end of the file, 16-bit refcounts kept exact
// (blocks and the refcount table grown as needed), copy-on-write of shared, compressed and zero
// clusters and of shared L2 tables; metadata written in the order that keeps the image
// consistent after a kill at any point (image.hpp). Internal snapshots (qcow2_snapshot.cpp):
// list, create, apply and delete, as qemu-img snapshot does them.
//
// One mutex serialises every access; tables are cached write-through, so the cache never holds
// anything the file does not.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "core/base/file.hpp"
#include "core/storage/image.hpp"
#include "core/storage/qcow2_format.hpp"

namespace hv::storage {

class Qcow2Image final : public Image {
  public:
    Qcow2Image(RegularFile f, std::string path, qcow2::Header h, std::vector<std::uint64_t> l1,
               std::unique_ptr<Image> backing);
    ~Qcow2Image() override;
    Qcow2Image(const Qcow2Image&) = delete;
    Qcow2Image& operator=(const Qcow2Image&) = delete;

    // Makes the image writable: checks that it can be written, loads the refcount table and
    // clears the autoclear feature bits this writer does not maintain (qcow2_write.cpp).
    void open_for_writing();

    // Internal snapshots (qcow2_snapshot.cpp): the table as qemu-img keeps it.
    struct Snapshot {
        std::string id, name;
        std::uint64_t l1_table_offset = 0;
        std::uint32_t l1_size = 0;
        std::uint32_t date_sec = 0, date_nsec = 0;
        std::uint64_t vm_clock_nsec = 0;
        std::uint32_t vm_state_size = 0;
        std::vector<std::uint8_t> extra;    // kept as read
        std::uint64_t table_bytes() const;  // its entry in the table, padded to 8
    };
    std::vector<Snapshot> snapshots();
    void create_snapshot(const std::string& name);
    void apply_snapshot(const std::string& name);
    void delete_snapshot(const std::string& name);

    Format format() const override { return Format::Qcow2; }
    std::uint64_t size() const override { return h_.size; }
    const Image* backing() const override { return backing_.get(); }
    void read(std::uint64_t offset, std::span<std::uint8_t> out) override;
    bool writable() const override { return writable_; }
    void write(std::uint64_t offset, std::span<const std::uint8_t> data) override;
    void flush() override;
    std::uint64_t allocated_bytes() const override;
    std::string describe() const override;

  private:
    std::uint64_t cluster_size() const { return h_.cluster_size(); }
    bool cluster_in_file(std::uint64_t off) const;
    [[noreturn]] void damaged(std::uint64_t vaddr, const std::string& why) const;

    // --- reading (qcow2.cpp) ---
    void read_file(std::uint64_t off, std::span<std::uint8_t> out) const;
    void load_table(std::uint64_t off, std::vector<std::uint64_t>& table) const;
    std::vector<std::uint64_t>& l2_table(std::uint64_t off);
    std::uint64_t l2_offset(std::uint64_t vaddr);  // 0: no L2 table
    void read_unallocated(std::uint64_t vaddr, std::span<std::uint8_t> out);
    void read_compressed(std::uint64_t vaddr, std::uint64_t entry, std::span<std::uint8_t> out);
    void read_in_cluster(std::uint64_t vaddr, std::span<std::uint8_t> out);

    // --- writing (qcow2_write.cpp) ---
    void write_file(std::uint64_t off, std::span<const std::uint8_t> data);
    std::uint64_t refcount_block(std::uint64_t host_off);  // 0: none yet
    std::uint16_t refcount(std::uint64_t host_off);
    void set_refcount(std::uint64_t host_off, std::uint16_t value);
    void release(std::uint64_t host_off);  // refcount - 1
    void release_compressed(std::uint64_t entry);
    std::uint64_t allocate_cluster();
    std::uint64_t allocate_run(std::uint64_t bytes);  // contiguous clusters, refcount 1 each
    void add_refcount_block();
    void grow_refcount_table();
    std::uint64_t writable_l2(std::uint64_t vaddr);  // L2 table offset, allocated/copied
    void write_in_cluster(std::uint64_t vaddr, std::span<const std::uint8_t> data);

    // --- internal snapshots (qcow2_snapshot.cpp) ---
    std::vector<Snapshot> read_snapshots();
    std::vector<std::uint64_t> read_l1(std::uint64_t offset, std::uint32_t entries);
    // Adds `delta` (+1 / -1) to every L2 table and data cluster the L1 table reaches.
    void adjust_tree(const std::vector<std::uint64_t>& l1, int delta);
    // COPIED set exactly where the refcount is 1, through the active L1 and its L2 tables.
    void fix_copied_flags();
    void write_snapshot_table(const std::vector<Snapshot>& list);

    RegularFile file_;
    std::string path_;
    qcow2::Header h_;
    std::vector<std::uint64_t> l1_;
    std::unique_ptr<Image> backing_;
    bool writable_ = false;
    mutable std::mutex mu_;
    // Write-through caches: L2 tables and refcount blocks (host offset -> entries).
    std::array<std::pair<std::uint64_t, std::vector<std::uint64_t>>, 16> l2_cache_{};
    std::size_t next_l2_ = 0;
    std::array<std::pair<std::uint64_t, std::vector<std::uint8_t>>, 8> rb_cache_{};
    std::size_t next_rb_ = 0;
    std::vector<std::uint8_t> inflated_;
    std::uint64_t inflated_at_ = ~std::uint64_t{0};
    // Writing: the refcount table, and the first cluster past everything in the file.
    std::vector<std::uint64_t> rt_;
    std::uint64_t end_ = 0;
    // Every cluster that holds metadata (header, tables, refcount blocks, L2 tables): a data
    // write never lands on one, whatever a damaged or hostile L2 entry says.
    std::unordered_set<std::uint64_t> metadata_;
    void note_metadata(std::uint64_t offset, std::uint64_t bytes);
};

}  // namespace hv::storage
