#include "core/boot/loader.hpp"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "core/base/error.hpp"
#include "core/base/fd.hpp"
#include "core/base/file.hpp"
#include "core/bus/memory.hpp"

namespace hv {

namespace {

constexpr std::uint64_t kPage = 4096;
constexpr std::uint64_t kBiosAreaLo = 0xa0000;  // VGA, option ROMs, ACPI tables, BIOS
constexpr std::uint64_t kBiosAreaHi = 0x100000;
constexpr std::uint64_t kLowMemTop = 0x9fc00;  // 639 KiB usable, as a PC's EBDA leaves it

std::uint64_t align_up(std::uint64_t v, std::uint64_t a)
{
    return (v + a - 1) & ~(a - 1);
}

std::uint32_t load32(std::span<const std::uint8_t> b, std::size_t off)
{
    std::uint32_t v;
    std::memcpy(&v, b.data() + off, 4);
    return v;
}

// Copies a T out of the image after checking that it is entirely inside.
template <typename T>
T load_struct(std::span<const std::uint8_t> b, std::uint64_t off, const char* what)
{
    if (off > b.size() || sizeof(T) > b.size() - off)
        fail("ELF {} at offset {:#x} lies beyond the end of the file ({} bytes)", what, off,
             b.size());
    T v;
    std::memcpy(&v, b.data() + off, sizeof(T));
    return v;
}

void add_segment(LoadPlan& plan, std::span<const std::uint8_t> image, LoadSegment s)
{
    if (s.file_offset > image.size() || s.file_size > image.size() - s.file_offset)
        fail("segment at file offset {:#x} size {:#x} extends beyond the file ({} bytes)",
             s.file_offset, s.file_size, image.size());
    if (s.file_size > s.mem_size)
        fail("segment at {:#x}: file size {:#x} exceeds memory size {:#x}", s.gpa, s.file_size,
             s.mem_size);
    if (s.gpa + s.mem_size < s.gpa || s.gpa + s.mem_size > 0x1'0000'0000ull)
        fail("segment at {:#x} size {:#x} does not fit below 4 GiB", s.gpa, s.mem_size);
    if (s.mem_size == 0)
        return;
    plan.lowest = plan.segments.empty() ? s.gpa : std::min(plan.lowest, s.gpa);
    plan.highest = std::max(plan.highest, s.gpa + s.mem_size);
    plan.segments.push_back(s);
}

template <typename Ehdr, typename Phdr>
void plan_elf(LoadPlan& plan, std::span<const std::uint8_t> image)
{
    auto eh = load_struct<Ehdr>(image, 0, "header");
    if (eh.e_machine != EM_386 && eh.e_machine != EM_X86_64)
        fail("ELF machine {} is not x86", eh.e_machine);
    if (eh.e_phentsize != sizeof(Phdr))
        fail("ELF program header size {} (expected {})", eh.e_phentsize, sizeof(Phdr));
    if (eh.e_phnum == 0)
        fail("ELF image has no program headers");
    std::uint64_t entry = eh.e_entry;
    bool entry_mapped = false;
    for (unsigned i = 0; i < eh.e_phnum; ++i) {
        auto ph = load_struct<Phdr>(image, eh.e_phoff + std::uint64_t{i} * sizeof(Phdr),
                                    "program header");
        if (ph.p_type != PT_LOAD)
            continue;
        add_segment(plan, image, {ph.p_paddr, ph.p_offset, ph.p_filesz, ph.p_memsz});
        // A virtual entry point is translated to the physical one of its segment.
        if (!entry_mapped && entry >= ph.p_vaddr && entry - ph.p_vaddr < ph.p_memsz) {
            entry = entry - ph.p_vaddr + ph.p_paddr;
            entry_mapped = true;
        }
    }
    if (plan.segments.empty())
        fail("ELF image has no loadable segment");
    if (entry > 0xffffffffull)
        fail("ELF entry point {:#x} is not a 32-bit address", entry);
    plan.entry = static_cast<std::uint32_t>(entry);
}

void plan_aout_kludge(LoadPlan& plan, std::span<const std::uint8_t> image)
{
    const auto& h = plan.header;
    // QEMU's rules: the header's file offset fixes where load_addr's byte is in the file.
    if (h.header_addr < h.load_addr)
        fail("multiboot header_addr {:#x} is below load_addr {:#x}", h.header_addr, h.load_addr);
    if (h.header_addr - h.load_addr > h.offset)
        fail("multiboot header_addr {:#x} is inconsistent with the header's file offset {:#x}",
             h.header_addr, h.offset);
    std::uint64_t text_offset = h.offset - (h.header_addr - h.load_addr);
    std::uint64_t load_size;
    if (h.load_end_addr) {
        if (h.load_end_addr < h.load_addr)
            fail("multiboot load_end_addr {:#x} is below load_addr {:#x}", h.load_end_addr,
                 h.load_addr);
        load_size = h.load_end_addr - h.load_addr;
    } else {
        load_size = image.size() - text_offset;
    }
    std::uint64_t mem_size = load_size;
    if (h.bss_end_addr) {
        if (h.bss_end_addr < h.load_addr + load_size)
            fail("multiboot bss_end_addr {:#x} is below the end of the loaded image {:#x}",
                 h.bss_end_addr, h.load_addr + load_size);
        mem_size = h.bss_end_addr - h.load_addr;
    }
    add_segment(plan, image, {h.load_addr, text_offset, load_size, mem_size});
    plan.entry = h.entry_addr;
    plan.format = "a.out-kludge";
}

// Multiboot information structure offsets (Multiboot 0.6.96 section 3.3).
namespace mbi {
constexpr std::uint32_t kFlagMem = 1u << 0, kFlagBootDev = 1u << 1, kFlagCmdline = 1u << 2,
                        kFlagMods = 1u << 3, kFlagMmap = 1u << 6, kFlagLoaderName = 1u << 9;
constexpr std::size_t kFlags = 0, kMemLower = 4, kMemUpper = 8, kBootDevice = 12, kCmdline = 16,
                      kModsCount = 20, kModsAddr = 24, kMmapLength = 44, kMmapAddr = 48,
                      kLoaderName = 64, kSize = 0x80;
}  // namespace mbi

class InfoWriter {
  public:
    explicit InfoWriter(std::uint64_t base) : base_(base) {}
    std::uint32_t addr() const { return static_cast<std::uint32_t>(base_ + buf_.size()); }
    std::uint32_t put(const void* p, std::size_t n)
    {
        std::uint32_t at = addr();
        auto* b = static_cast<const std::uint8_t*>(p);
        buf_.insert(buf_.end(), b, b + n);
        return at;
    }
    std::uint32_t put_string(const std::string& s) { return put(s.c_str(), s.size() + 1); }
    void align(std::size_t a) { buf_.resize(align_up(buf_.size(), a)); }
    void set32(std::uint32_t at, std::uint32_t v)
    {
        std::memcpy(buf_.data() + (at - base_), &v, 4);
    }
    const std::vector<std::uint8_t>& bytes() const { return buf_; }

  private:
    std::uint64_t base_;
    std::vector<std::uint8_t> buf_;
};

struct MmapEntry {
    std::uint32_t size;  // of the rest of the entry: 20
    std::uint64_t base;
    std::uint64_t len;
    std::uint32_t type;
} __attribute__((packed));
static_assert(sizeof(MmapEntry) == 24);

void check_placement(const GuestMemory& mem, std::uint64_t gpa, std::uint64_t len, const char* what)
{
    if (len == 0)
        return;
    if (gpa < kBiosAreaHi && gpa + len > kBiosAreaLo)
        fail("{} at [{:#x}, {:#x}) overlaps the BIOS area [{:#x}, {:#x})", what, gpa, gpa + len,
             kBiosAreaLo, kBiosAreaHi);
    if (mem.contains(gpa, len))
        return;
    if (gpa + len > kLowRamTop && gpa < kHighRamBase)
        fail("{} at [{:#x}, {:#x}) overlaps the PCI/APIC hole [{:#x}, 4 GiB)", what, gpa, gpa + len,
             kLowRamTop);
    fail("{} at [{:#x}, {:#x}) does not fit in guest memory ({} MiB)", what, gpa, gpa + len,
         mem.size() >> 20);
}

}  // namespace

std::optional<MultibootHeader> find_multiboot_header(std::span<const std::uint8_t> image)
{
    std::size_t limit = std::min(image.size(), kMultibootSearch);
    for (std::size_t off = 0; off + 12 <= limit; off += 4) {
        if (load32(image, off) != kMultibootMagic)
            continue;
        MultibootHeader h;
        h.offset = off;
        h.flags = load32(image, off + 4);
        std::uint32_t sum = kMultibootMagic + h.flags + load32(image, off + 8);
        if (sum != 0)
            fail("multiboot header at offset {:#x} has a bad checksum", off);
        // Bits 0-15 are requirements: a loader must refuse any it does not understand.
        // We honour 0 (page alignment: modules are page aligned), 1 (memory info) and
        // accept 2 (video mode) as QEMU does, without providing one.
        if (h.flags & 0xfff8)
            fail("multiboot header requires unsupported features (flags {:#x})", h.flags);
        if (h.has_addresses()) {
            if (off + 32 > image.size())
                fail("multiboot header at offset {:#x} is truncated", off);
            h.header_addr = load32(image, off + 12);
            h.load_addr = load32(image, off + 16);
            h.load_end_addr = load32(image, off + 20);
            h.bss_end_addr = load32(image, off + 24);
            h.entry_addr = load32(image, off + 28);
        }
        return h;
    }
    return std::nullopt;
}

LoadPlan plan_multiboot(std::span<const std::uint8_t> image)
{
    auto header = find_multiboot_header(image);
    if (!header)
        fail("not a multiboot image (no header in the first {} bytes)", kMultibootSearch);
    LoadPlan plan;
    plan.header = *header;
    if (header->has_addresses()) {
        plan_aout_kludge(plan, image);
        return plan;
    }
    if (image.size() < EI_NIDENT || std::memcmp(image.data(), ELFMAG, SELFMAG) != 0)
        fail("multiboot image is neither ELF nor has the address fields (flag 16)");
    if (image[EI_CLASS] == ELFCLASS32) {
        plan.format = "elf32";
        plan_elf<Elf32_Ehdr, Elf32_Phdr>(plan, image);
    } else if (image[EI_CLASS] == ELFCLASS64) {
        plan.format = "elf64";
        plan_elf<Elf64_Ehdr, Elf64_Phdr>(plan, image);
    } else {
        fail("ELF class {} is not supported", image[EI_CLASS]);
    }
    return plan;
}

BootInfo load_multiboot(const GuestMemory& mem, std::span<const std::uint8_t> image,
                        const std::string& image_path, const std::string& cmdline,
                        const std::vector<BootModule>& modules)
{
    LoadPlan plan = plan_multiboot(image);
    for (const auto& s : plan.segments)
        check_placement(mem, s.gpa, s.mem_size, "image segment");
    if (plan.entry < plan.lowest || plan.entry >= plan.highest)
        fail("entry point {:#x} is outside the loaded image [{:#x}, {:#x})", plan.entry,
             plan.lowest, plan.highest);
    for (const auto& s : plan.segments) {
        mem.write_checked(s.gpa, image.data() + s.file_offset, s.file_size);
        // The bss: a 1 GiB one must not cost 1 GiB of host memory up front.
        mem.zero(s.gpa + s.file_size, s.mem_size - s.file_size);
    }

    // Modules go page-aligned after the image, then the info structure.
    std::uint64_t next = align_up(plan.highest, kPage);
    struct ModEntry {
        std::uint32_t start, end, string, reserved;
    };
    std::vector<ModEntry> mods;
    for (const auto& m : modules) {
        check_placement(mem, next, std::max<std::uint64_t>(m.data.size(), 1), "boot module");
        mem.write_checked(next, m.data.data(), m.data.size());
        mods.push_back({static_cast<std::uint32_t>(next),
                        static_cast<std::uint32_t>(next + m.data.size()), 0, 0});
        next = align_up(next + m.data.size(), kPage);
    }

    InfoWriter w(next);
    std::vector<std::uint8_t> info(mbi::kSize, 0);
    std::uint32_t info_at = w.put(info.data(), info.size());
    // QEMU: "<image path> <cmdline>", with the space even when the command line is empty.
    std::uint32_t cmdline_at = w.put_string(image_path + " " + cmdline);
    std::uint32_t loader_at = w.put_string("hvaccel");
    for (std::size_t i = 0; i < modules.size(); ++i)
        mods[i].string = w.put_string(modules[i].cmdline);
    w.align(8);
    std::uint32_t mods_at = w.put(mods.data(), mods.size() * sizeof(ModEntry));

    std::vector<MmapEntry> map = {
        {20, 0, kLowMemTop, 1},
        {20, kLowMemTop, 0xa0000 - kLowMemTop, 2},
        {20, 0xe0000, 0x20000, 2},  // ACPI tables and BIOS
        {20, kBiosAreaHi, mem.low_top() - kBiosAreaHi, 1},
    };
    if (mem.regions().size() > 1)
        map.push_back({20, mem.regions()[1].gpa, mem.regions()[1].size, 1});
    std::uint32_t mmap_at = w.put(map.data(), map.size() * sizeof(MmapEntry));

    w.set32(info_at + mbi::kFlags, mbi::kFlagMem | mbi::kFlagBootDev | mbi::kFlagCmdline |
                                       mbi::kFlagMods | mbi::kFlagMmap | mbi::kFlagLoaderName);
    w.set32(info_at + mbi::kMemLower, static_cast<std::uint32_t>(kLowMemTop >> 10));
    w.set32(info_at + mbi::kMemUpper,
            static_cast<std::uint32_t>((mem.low_top() - kBiosAreaHi) >> 10));
    w.set32(info_at + mbi::kBootDevice, 0x8000ffff);  // first BIOS disk, as QEMU reports
    w.set32(info_at + mbi::kCmdline, cmdline_at);
    w.set32(info_at + mbi::kModsCount, static_cast<std::uint32_t>(mods.size()));
    w.set32(info_at + mbi::kModsAddr, mods_at);
    w.set32(info_at + mbi::kMmapLength, static_cast<std::uint32_t>(map.size() * sizeof(MmapEntry)));
    w.set32(info_at + mbi::kMmapAddr, mmap_at);
    w.set32(info_at + mbi::kLoaderName, loader_at);

    check_placement(mem, next, w.bytes().size(), "multiboot information");
    mem.write_checked(next, w.bytes().data(), w.bytes().size());
    return {plan.entry, info_at, plan};
}

std::vector<std::uint8_t> read_file(const std::string& path, std::uint64_t limit)
{
    RegularFile f = open_regular_file(path, path);
    if (f.size > limit)
        fail("{}: {} bytes, larger than guest memory ({} bytes)", path, f.size, limit);
    std::vector<std::uint8_t> data(f.size);
    std::size_t done = 0;
    while (done < data.size()) {
        ssize_t n = ::read(f.fd.get(), data.data() + done, data.size() - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            const int err = errno;
            throw_errno(fmt::format("{}: cannot read", path), err);
        }
        if (n == 0)
            break;
        done += static_cast<std::size_t>(n);
    }
    data.resize(done);
    return data;
}

}  // namespace hv
