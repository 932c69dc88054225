// Multiboot v1 loading as QEMU's `-kernel` does it (Multiboot Specification 0.6.96, and QEMU's
// hw/i386/multiboot.c for the details the spec leaves open):
//  - a header in the first 8 KiB, 4-byte aligned, magic 0x1BADB002, checksum;
//  - flag 16 (address fields valid): the "a.out kludge" — load_addr/load_end_addr/bss_end_addr/
//    entry_addr place the file, whatever its format (ELF64 images use this);
//  - otherwise an ELF image loaded by its PT_LOAD program headers at their physical addresses
//    (ELF32 as QEMU; ELF64 too, which QEMU refuses);
//  - the info structure as QEMU fills it: memory bounds, a memory map, a command line whose first
//    word is the image path, boot modules page-aligned after the image, boot loader name.
// The image and modules are hostile input: every field is checked before anything is written.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace hv {

class GuestMemory;

inline constexpr std::uint32_t kMultibootMagic = 0x1BADB002;
inline constexpr std::uint32_t kMultibootBootMagic = 0x2BADB002;  // in EAX at entry
inline constexpr std::size_t kMultibootSearch = 8192;

struct MultibootHeader {
    std::size_t offset = 0;  // in the file
    std::uint32_t flags = 0;
    std::uint32_t header_addr = 0, load_addr = 0, load_end_addr = 0, bss_end_addr = 0,
                  entry_addr = 0;
    bool has_addresses() const { return flags & (1u << 16); }
};

// A piece of the file copied to guest memory, followed by zero fill up to mem_size.
struct LoadSegment {
    std::uint64_t gpa;
    std::uint64_t file_offset;
    std::uint64_t file_size;
    std::uint64_t mem_size;
};

struct LoadPlan {
    MultibootHeader header;
    std::vector<LoadSegment> segments;
    std::uint32_t entry = 0;
    std::uint64_t lowest = 0, highest = 0;  // [lowest, highest) covers every segment
    const char* format = "";                // "elf32", "elf64", "a.out-kludge"
};

struct BootModule {
    std::string cmdline;  // "PATH args...", as the module's string
    std::vector<std::uint8_t> data;
};

struct BootInfo {
    std::uint32_t entry;
    std::uint32_t info_addr;
    LoadPlan plan;
};

// Finds and validates the multiboot header (nullopt: none; throws hv::Error on a bad one).
std::optional<MultibootHeader> find_multiboot_header(std::span<const std::uint8_t> image);

// Works out where everything goes without touching guest memory. Throws hv::Error with a
// one-line reason for anything malformed.
LoadPlan plan_multiboot(std::span<const std::uint8_t> image);

// Loads the image and modules, writes the multiboot info; checks everything against `mem`
// (nothing may land outside RAM or in the hole below 4 GiB).
BootInfo load_multiboot(const GuestMemory& mem, std::span<const std::uint8_t> image,
                        const std::string& image_path, const std::string& cmdline,
                        const std::vector<BootModule>& modules);

// Reads a whole file, refusing one larger than `limit` bytes. Throws with the path.
std::vector<std::uint8_t> read_file(const std::string& path, std::uint64_t limit);

}  // namespace hv
