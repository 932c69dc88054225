#include <elf.h>
#include <gtest/gtest.h>

#include <cstring>

#include "core/base/error.hpp"
#include "core/boot/loader.hpp"
#include "core/bus/memory.hpp"

namespace {

using Bytes = std::vector<std::uint8_t>;

void put32(Bytes& b, std::size_t off, std::uint32_t v)
{
    if (b.size() < off + 4)
        b.resize(off + 4);
    std::memcpy(b.data() + off, &v, 4);
}

// A multiboot header at `off` with the given flags (and address fields when flag 16 is set).
void header(Bytes& b, std::size_t off, std::uint32_t flags, std::uint32_t header_addr = 0,
            std::uint32_t load = 0, std::uint32_t load_end = 0, std::uint32_t bss_end = 0,
            std::uint32_t entry = 0)
{
    put32(b, off, hv::kMultibootMagic);
    put32(b, off + 4, flags);
    put32(b, off + 8, static_cast<std::uint32_t>(-(hv::kMultibootMagic + flags)));
    if (flags & (1u << 16)) {
        put32(b, off + 12, header_addr);
        put32(b, off + 16, load);
        put32(b, off + 20, load_end);
        put32(b, off + 24, bss_end);
        put32(b, off + 28, entry);
    }
}

// A flat a.out-kludge image: header at file offset 0, loaded at `load`.
Bytes aout(std::uint32_t load, std::uint32_t size, std::uint32_t bss_end = 0)
{
    Bytes b(size, 0x90);
    header(b, 0, 0x10003, load, load, 0, bss_end, load + 32);
    return b;
}

// An ELF32 image with one PT_LOAD segment holding a multiboot header.
Bytes elf32(std::uint32_t paddr, std::uint32_t filesz, std::uint32_t memsz, std::uint32_t entry)
{
    Bytes b(0x1000 + filesz, 0);
    Elf32_Ehdr eh{};
    std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = ELFCLASS32;
    eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_ident[EI_VERSION] = EV_CURRENT;
    eh.e_type = ET_EXEC;
    eh.e_machine = EM_386;
    eh.e_version = EV_CURRENT;
    eh.e_entry = entry;
    eh.e_phoff = sizeof eh;
    eh.e_ehsize = sizeof eh;
    eh.e_phentsize = sizeof(Elf32_Phdr);
    eh.e_phnum = 1;
    std::memcpy(b.data(), &eh, sizeof eh);
    Elf32_Phdr ph{};
    ph.p_type = PT_LOAD;
    ph.p_offset = 0x1000;
    ph.p_vaddr = paddr;
    ph.p_paddr = paddr;
    ph.p_filesz = filesz;
    ph.p_memsz = memsz;
    std::memcpy(b.data() + sizeof eh, &ph, sizeof ph);
    header(b, 0x1000, 0x3);
    for (std::size_t i = 0x1000 + 12; i < b.size(); ++i)
        b[i] = 0xaa;
    return b;
}

Bytes elf64_kludge(std::uint32_t load, std::uint32_t size)
{
    Bytes b(0x1000 + size, 0xcc);
    Elf64_Ehdr eh{};
    std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = ELFCLASS64;
    eh.e_machine = EM_X86_64;
    std::memcpy(b.data(), &eh, sizeof eh);
    // The file from offset 0x1000 is loaded at `load`; the header sits at its start.
    header(b, 0x1000, 0x10003, load, load, load + size, load + size + 0x1000, load + 0x40);
    return b;
}

std::string message_of(const std::function<void()>& f)
{
    try {
        f();
    } catch (const hv::Error& e) {
        return e.what();
    }
    return "(no error)";
}

}  // namespace

TEST(Loader, Elf32SegmentsAreLoadedAndBssZeroed)
{
    hv::GuestMemory mem(8 << 20);
    std::memset(mem.ptr(0x200000, 0x3000), 0xee, 0x3000);
    auto img = elf32(0x200000, 0x800, 0x1800, 0x200010);
    auto boot = hv::load_multiboot(mem, img, "/images/k.elf", "a=1 b", {});
    EXPECT_STREQ(boot.plan.format, "elf32");
    EXPECT_EQ(boot.entry, 0x200010u);
    EXPECT_EQ(mem.ptr(0x200000, 4)[0], 0x02);  // first byte of the multiboot magic
    EXPECT_EQ(mem.ptr(0x200000 + 0x7ff, 1)[0], 0xaa);
    EXPECT_EQ(mem.ptr(0x200000 + 0x800, 1)[0], 0x00);  // bss
    EXPECT_EQ(mem.ptr(0x200000 + 0x17ff, 1)[0], 0x00);
    EXPECT_EQ(mem.ptr(0x200000 + 0x1800, 1)[0], 0xee);  // untouched past memsz
    // The info structure: flags, cmdline "<path> <cmdline>", memory bounds, mmap.
    std::uint32_t flags, cmdline, mem_lower, mem_upper, mmap_len;
    mem.read(boot.info_addr, &flags, 4);
    mem.read(boot.info_addr + 4, &mem_lower, 4);
    mem.read(boot.info_addr + 8, &mem_upper, 4);
    mem.read(boot.info_addr + 16, &cmdline, 4);
    mem.read(boot.info_addr + 44, &mmap_len, 4);
    EXPECT_EQ(flags & 0x24f, 0x24fu);
    EXPECT_EQ(mem_lower, 639u);
    EXPECT_EQ(mem_upper, (8u << 10) - 1024u);
    EXPECT_STREQ(reinterpret_cast<const char*>(mem.ptr(cmdline, 1)), "/images/k.elf a=1 b");
    EXPECT_EQ(mmap_len % 24, 0u);
    EXPECT_GE(boot.info_addr, 0x202000u);
    EXPECT_EQ(boot.info_addr % 4096, 0u);
}

TEST(Loader, EmptyCommandLineKeepsQemusTrailingSpace)
{
    hv::GuestMemory mem(4 << 20);
    auto boot = hv::load_multiboot(mem, aout(0x100000, 0x1000), "k", "", {});
    std::uint32_t cmdline;
    mem.read(boot.info_addr + 16, &cmdline, 4);
    EXPECT_STREQ(reinterpret_cast<const char*>(mem.ptr(cmdline, 1)), "k ");
}

TEST(Loader, AoutKludgeFlatImageAndElf64)
{
    hv::GuestMemory mem(8 << 20);
    auto flat = aout(0x100000, 0x1800, 0x104000);
    auto plan = hv::plan_multiboot(flat);
    EXPECT_STREQ(plan.format, "a.out-kludge");
    ASSERT_EQ(plan.segments.size(), 1u);
    EXPECT_EQ(plan.segments[0].file_size, 0x1800u);
    EXPECT_EQ(plan.segments[0].mem_size, 0x4000u);
    EXPECT_EQ(plan.entry, 0x100020u);

    auto e64 = elf64_kludge(0x300000, 0x2000);
    auto boot = hv::load_multiboot(mem, e64, "k64", "", {});
    EXPECT_STREQ(boot.plan.format, "a.out-kludge");
    EXPECT_EQ(boot.entry, 0x300040u);
    EXPECT_EQ(boot.plan.segments[0].file_offset, 0x1000u);
    EXPECT_EQ(mem.ptr(0x300000 + 32, 1)[0], 0xcc);
    EXPECT_EQ(mem.ptr(0x302000, 1)[0], 0x00);  // bss
}

TEST(Loader, ModulesArePageAlignedAfterTheImage)
{
    hv::GuestMemory mem(8 << 20);
    std::vector<hv::BootModule> mods = {{"/tmp/m1 arg", {'a', 'b', 'c'}},
                                        {"/tmp/m2", Bytes(5000, 7)}};
    auto boot = hv::load_multiboot(mem, aout(0x100000, 0x1000), "k", "", mods);
    std::uint32_t count, addr;
    mem.read(boot.info_addr + 20, &count, 4);
    mem.read(boot.info_addr + 24, &addr, 4);
    ASSERT_EQ(count, 2u);
    std::uint32_t m[8];
    mem.read(addr, m, sizeof m);
    EXPECT_EQ(m[0], 0x101000u);
    EXPECT_EQ(m[1], 0x101003u);
    EXPECT_STREQ(reinterpret_cast<const char*>(mem.ptr(m[2], 1)), "/tmp/m1 arg");
    EXPECT_EQ(mem.ptr(m[0], 1)[0], 'a');
    EXPECT_EQ(m[4], 0x102000u);
    EXPECT_EQ(m[5] - m[4], 5000u);
}

TEST(Loader, MalformedHeadersAreRefusedWithAReason)
{
    Bytes none(9000, 0);
    EXPECT_NE(message_of([&] { hv::plan_multiboot(none); }).find("not a multiboot image"),
              std::string::npos);
    Bytes late(9000, 0);
    header(late, 8192, 0x3);  // beyond the 8 KiB the spec searches
    EXPECT_THROW(hv::plan_multiboot(late), hv::Error);

    Bytes badsum(64, 0);
    header(badsum, 0, 0x3);
    put32(badsum, 8, 0);
    EXPECT_NE(message_of([&] { hv::plan_multiboot(badsum); }).find("checksum"), std::string::npos);

    Bytes unsupported(64, 0);
    header(unsupported, 0, 0x8);  // bit 3: a requirement nobody defines
    EXPECT_NE(message_of([&] { hv::plan_multiboot(unsupported); }).find("unsupported"),
              std::string::npos);

    Bytes neither(64, 0);
    header(neither, 0, 0x3);
    EXPECT_NE(message_of([&] { hv::plan_multiboot(neither); }).find("neither ELF"),
              std::string::npos);

    Bytes truncated(20, 0);
    header(truncated, 0, 0x10003);
    truncated.resize(20);
    EXPECT_NE(message_of([&] { hv::plan_multiboot(truncated); }).find("truncated"),
              std::string::npos);
}

TEST(Loader, InconsistentAoutFieldsAreRefused)
{
    Bytes b(0x1000, 0);
    header(b, 0, 0x10003, 0x100000, 0x100100, 0, 0, 0x100000);  // header below load
    EXPECT_THROW(hv::plan_multiboot(b), hv::Error);
    header(b, 0, 0x10003, 0x100100, 0x100000, 0, 0, 0x100000);  // header before file start
    EXPECT_THROW(hv::plan_multiboot(b), hv::Error);
    header(b, 0, 0x10003, 0x100000, 0x100000, 0xff000, 0, 0x100000);  // load_end < load
    EXPECT_THROW(hv::plan_multiboot(b), hv::Error);
    header(b, 0, 0x10003, 0x100000, 0x100000, 0x100800, 0x100400, 0x100000);  // bss < end
    EXPECT_THROW(hv::plan_multiboot(b), hv::Error);
    header(b, 0, 0x10003, 0x100000, 0x100000, 0x200000, 0, 0x100000);  // beyond the file
    EXPECT_NE(message_of([&] { hv::plan_multiboot(b); }).find("beyond the file"),
              std::string::npos);
    header(b, 0, 0x10003, 0xfffff000, 0xfffff000, 0, 0x00001000, 0xfffff000);  // wraps 4 GiB
    EXPECT_THROW(hv::plan_multiboot(b), hv::Error);
}

TEST(Loader, TruncatedElfIsRefused)
{
    auto img = elf32(0x200000, 0x800, 0x800, 0x200000);
    for (std::size_t cut : {std::size_t{60}, std::size_t{0x1000 + 0x10}, img.size() - 1}) {
        Bytes t(img.begin(), img.begin() + static_cast<std::ptrdiff_t>(cut));
        if (cut <= 0x1000 + 12)
            continue;  // header itself cut: covered by "not a multiboot image"
        EXPECT_THROW(hv::plan_multiboot(t), hv::Error) << "cut at " << cut;
    }
    Bytes with_header = img;
    put32(with_header, 28, 0x40000);  // e_phoff beyond the end of the file
    EXPECT_NE(message_of([&] { hv::plan_multiboot(with_header); }).find("beyond the end"),
              std::string::npos);
}

TEST(Loader, PlacementIsCheckedAgainstGuestMemory)
{
    hv::GuestMemory small(4 << 20);
    auto big = aout(0x100000, 5 << 20);
    EXPECT_NE(message_of([&] {
                  hv::load_multiboot(small, big, "k", "", {});
              }).find("does not fit in guest memory"),
              std::string::npos);
    auto bios = aout(0xf0000, 0x1000);
    EXPECT_NE(message_of([&] { hv::load_multiboot(small, bios, "k", "", {}); }).find("BIOS"),
              std::string::npos);
    auto entry_outside = aout(0x100000, 0x1000);
    header(entry_outside, 0, 0x10003, 0x100000, 0x100000, 0, 0, 0x300000);
    EXPECT_NE(message_of([&] {
                  hv::load_multiboot(small, entry_outside, "k", "", {});
              }).find("entry point"),
              std::string::npos);
    hv::GuestMemory large(4ull << 30);
    auto in_hole = aout(0xbffff000, 0x2000);
    EXPECT_NE(message_of([&] { hv::load_multiboot(large, in_hole, "k", "", {}); }).find("hole"),
              std::string::npos);
    auto above_ram = aout(0x100000, 0x1000);
    EXPECT_NO_THROW(hv::load_multiboot(large, above_ram, "k", "", {}));
}

TEST(Loader, BssIsZeroWithoutCostingHostMemory)
{
    // A 256 MiB bss over guest memory that holds stale bytes: the bss reads as zero, the byte
    // after it is untouched, and the load did not back the bss with host memory.
    hv::GuestMemory mem(512ull << 20);
    std::memset(mem.ptr(0x100000, 0x3000), 0xee, 0x3000);
    const std::uint64_t bss_end = 0x100000 + (std::uint64_t{256} << 20) + 0x123;
    std::memset(mem.ptr(bss_end - 0x10, 0x20), 0xee, 0x20);
    const std::uint64_t before = mem.resident_bytes();
    auto img = aout(0x100000, 0x1800, static_cast<std::uint32_t>(bss_end));
    hv::load_multiboot(mem, img, "k", "", {});
    EXPECT_EQ(mem.ptr(0x100000 + 0x17ff, 1)[0], 0x90);
    for (std::uint64_t gpa : {std::uint64_t{0x101800}, std::uint64_t{0x101fff},
                              std::uint64_t{0x102000}, std::uint64_t{0x102fff}, bss_end - 1})
        EXPECT_EQ(mem.ptr(gpa, 1)[0], 0x00) << std::hex << gpa;
    EXPECT_EQ(mem.ptr(bss_end, 1)[0], 0xee);
    EXPECT_LT(mem.resident_bytes(), before + (16ull << 20));
}

TEST(Loader, ReadFileReportsMissingAndOversizedFiles)
{
    EXPECT_NE(message_of([] {
                  hv::read_file("/nonexistent/image", 1 << 20);
              }).find("/nonexistent/image: cannot open"),
              std::string::npos);
    EXPECT_NE(message_of([] { hv::read_file("/proc/self", 1 << 20); }).find("not a regular file"),
              std::string::npos);
    EXPECT_NE(message_of([] { hv::read_file("/etc/passwd", 4); }).find("larger than"),
              std::string::npos);
}
