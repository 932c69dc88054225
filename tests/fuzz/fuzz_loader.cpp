// fuzz_loader: the multiboot v1 loader (core/boot/loader.hpp) on arbitrary images.
//
// Input: byte 0 = options (bit 0-1 number of boot modules, bit 2 guest RAM 2 or 6 MiB, bits 3-7
// command-line length / 4), byte 1 = module size in 64-byte units, then the image.
//
// Checked: load_multiboot either throws hv::Error (anything else fails the target) or succeeds
// with a plan that agrees with plan_multiboot(), every segment inside RAM and outside the BIOS
// area, the entry point inside the image, the info structure after the image and modules, the
// segments' bytes as the file says — and no guest page written outside the segments, modules
// and info structure: before each run guest RAM is discarded (MADV_DONTNEED), afterwards
// mincore() lists the pages the loader touched. ASan covers reads of the image itself.
#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/base/error.hpp"
#include "core/boot/loader.hpp"
#include "core/bus/memory.hpp"
#include "tests/fuzz/fuzz_target.hpp"

namespace {

constexpr const char* kName = "loader";
constexpr std::uint64_t kPage = 4096;

hv::GuestMemory& memory(bool large)
{
    static hv::GuestMemory small(2ull << 20);
    static hv::GuestMemory big(6ull << 20);
    return large ? big : small;
}

void discard(const hv::GuestMemory& mem)
{
    for (const auto& r : mem.regions())
        ::madvise(r.host, r.size, MADV_DONTNEED);
}

void check_success(const hv::GuestMemory& mem, const hv::BootInfo& info, const std::uint8_t* image,
                   std::size_t size, std::uint64_t info_bound)
{
    const hv::LoadPlan& plan = info.plan;
    const hv::LoadPlan again = hv::plan_multiboot({image, size});
    HV_FUZZ_CHECK(kName, again.segments.size() == plan.segments.size());
    HV_FUZZ_CHECK(kName, again.entry == plan.entry && again.lowest == plan.lowest &&
                             again.highest == plan.highest);
    HV_FUZZ_CHECK(kName, !plan.segments.empty());
    HV_FUZZ_CHECK(kName, info.entry == plan.entry);
    HV_FUZZ_CHECK(kName, plan.entry >= plan.lowest && plan.entry < plan.highest);
    bool overlap = false;
    for (std::size_t i = 0; i < plan.segments.size(); ++i) {
        const hv::LoadSegment& s = plan.segments[i];
        HV_FUZZ_CHECK(kName, mem.contains(s.gpa, s.mem_size));
        HV_FUZZ_CHECK(kName, s.gpa + s.mem_size <= 0xa0000 || s.gpa >= 0x100000);
        HV_FUZZ_CHECK(kName, s.file_size <= s.mem_size);
        HV_FUZZ_CHECK(kName, s.file_offset <= size && s.file_size <= size - s.file_offset);
        HV_FUZZ_CHECK(kName, s.gpa >= plan.lowest && s.gpa + s.mem_size <= plan.highest);
        for (std::size_t j = 0; j < i; ++j) {
            const hv::LoadSegment& o = plan.segments[j];
            overlap |= s.gpa < o.gpa + o.mem_size && o.gpa < s.gpa + s.mem_size;
        }
    }
    HV_FUZZ_CHECK(kName, info.info_addr >= ((plan.highest + kPage - 1) & ~(kPage - 1)));
    HV_FUZZ_CHECK(kName, mem.contains(info.info_addr, 0x80));

    // Pages the loader wrote: only segments, and [end of image, end of info structure).
    const std::uint64_t tail_lo = plan.highest & ~(kPage - 1);
    for (const auto& r : mem.regions()) {
        std::vector<unsigned char> vec(r.size / kPage);
        if (::mincore(r.host, r.size, vec.data()) != 0)
            continue;
        for (std::size_t p = 0; p < vec.size(); ++p) {
            if (!(vec[p] & 1))
                continue;
            const std::uint64_t lo = r.gpa + p * kPage, hi = lo + kPage;
            bool allowed = lo < info_bound && hi > tail_lo;
            for (const auto& s : plan.segments)
                allowed |= lo < s.gpa + s.mem_size && s.gpa < hi;
            if (!allowed)
                hv::fuzz::failed(kName, "guest page written outside the image, modules and info");
        }
    }
    // The bytes: file contents then zero fill (skipped when segments overlap: the last wins).
    if (overlap)
        return;
    for (const auto& s : plan.segments) {
        const std::uint8_t* g = mem.ptr(s.gpa, s.mem_size);
        HV_FUZZ_CHECK(kName, g != nullptr);
        HV_FUZZ_CHECK(kName, std::memcmp(g, image + s.file_offset, s.file_size) == 0);
        HV_FUZZ_CHECK(kName, std::all_of(g + s.file_size, g + s.mem_size,
                                         [](std::uint8_t b) { return b == 0; }));
    }
}

}  // namespace

HV_FUZZ_TARGET(loader)
{
    hv::fuzz::Input in(data, size);
    const std::uint8_t opts = in.byte();
    const unsigned module_units = in.byte();
    std::size_t image_size = 0;
    const std::uint8_t* image = in.rest(image_size);

    const hv::GuestMemory& mem = memory((opts & 4) != 0);
    discard(mem);
    std::vector<hv::BootModule> modules;
    std::uint64_t strings = 0;
    for (unsigned i = 0; i < (opts & 3u); ++i) {
        modules.push_back(
            {"/boot/mod" + std::to_string(i) + " arg=" + std::to_string(opts),
             std::vector<std::uint8_t>(module_units * 64u, static_cast<std::uint8_t>(i + 1))});
        strings += modules.back().cmdline.size() + 1 + 16;
    }
    const std::string cmdline(static_cast<std::size_t>(opts >> 3) * 4, 'c');
    const std::string path = "/fuzz/image.elf";
    strings += cmdline.size() + path.size() + 2 + 8;
    try {
        hv::BootInfo info = hv::load_multiboot(mem, {image, image_size}, path, cmdline, modules);
        // Info structure: 0x80 bytes, the strings, the module list and at most 5 memory-map
        // entries of 24 bytes, with alignment padding.
        const std::uint64_t bound = info.info_addr + 0x80 + strings + 5 * 24 + 16;
        check_success(mem, info, image, image_size, bound);
        hv::fuzz::note(kName, "loaded", info.plan.format);
    } catch (const hv::Error& e) {
        hv::fuzz::note(kName, "refused:", e.what());
        // Refused with a one-line reason: the expected outcome for almost every input.
    }
    return 0;
}
