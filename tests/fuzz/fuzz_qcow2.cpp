// fuzz_qcow2: disk images as hvaccel opens them (core/storage/image.hpp) — the QCOW2 header
// check, the L1/L2 walk, compressed clusters and zero clusters.
//
// Input: the whole image file. It is put in a memfd and opened through /proc/self/fd as QCOW2
// (the format given, as a VM's --disk would); a QCOW2 image that validates is then read — its
// first 256 KiB, its last 64 KiB and a few clusters in between — and its allocated size counted.
// Backing files are never reached: the path the image names does not exist in the memfd's
// directory, and opening it fails with hv::Error like any other refusal.
//
// Then the same file is opened writable and written at three places.
//
// Checked: every input is refused or read with hv::Error or succeeds (any other exception or a
// sanitizer report fails the target); a validated image reads the same bytes twice, before and
// after writes (whose bytes a damaged image need not give back: two offsets may share a cluster;
// the image's own metadata is never overwritten by data, see qcow2_write.cpp).
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "core/base/error.hpp"
#include "core/storage/image.hpp"
#include "tests/fuzz/fuzz_target.hpp"

namespace {

constexpr const char* kName = "qcow2";

void read_some(hv::storage::Image& img, std::uint64_t at, std::size_t len,
               std::vector<std::uint8_t>& out)
{
    if (at >= img.size())
        return;
    out.resize(static_cast<std::size_t>(std::min<std::uint64_t>(len, img.size() - at)));
    img.read(at, out);
}

}  // namespace

HV_FUZZ_TARGET(qcow2)
{
    const int fd = ::memfd_create("hv-fuzz-qcow2", MFD_CLOEXEC);
    if (fd < 0)
        return 0;
    std::size_t done = 0;
    while (done < size) {
        const ssize_t n = ::write(fd, data + done, size - done);
        if (n <= 0)
            break;
        done += static_cast<std::size_t>(n);
    }
    const std::string path = "/proc/self/fd/" + std::to_string(fd);
    try {
        auto img = hv::storage::open_image(path, hv::storage::Format::Qcow2);
        std::vector<std::uint8_t> a, b;
        const std::uint64_t sz = img->size();
        for (std::uint64_t at : {std::uint64_t{0}, sz > 65536 ? sz - 65536 : 0, sz / 3, sz / 2}) {
            read_some(*img, at, 256 * 1024, a);
            read_some(*img, at, 256 * 1024, b);
            HV_FUZZ_CHECK(kName, a == b);
        }
        (void)img->allocated_bytes();
        (void)img->describe();
        hv::fuzz::note(kName, "read", img->describe().c_str());
    } catch (const hv::Error& e) {
        hv::fuzz::note(kName, "refused", e.what());
    }
    // Written (through the same bytes): what a write returned must read back.
    try {
        auto img = hv::storage::open_image(path, hv::storage::Format::Qcow2, true);
        const std::uint64_t sz = img->size();
        std::vector<std::uint8_t> w(700), back(700);
        for (std::uint64_t at : {sz / 2, std::uint64_t{0}, sz > 700 ? sz - 700 : 0}) {
            if (sz < w.size())
                break;
            for (std::size_t i = 0; i < w.size(); ++i)
                w[i] = static_cast<std::uint8_t>(at + i * 7);
            img->write(at, w);
            // A damaged image may map two disk offsets to one cluster, so the bytes need not
            // come back; reading them must work, and give the same bytes twice.
            std::vector<std::uint8_t> again(back.size());
            img->read(at, back);
            img->read(at, again);
            HV_FUZZ_CHECK(kName, back == again);
        }
        hv::fuzz::note(kName, "written", img->describe().c_str());
    } catch (const hv::Error& e) {
        hv::fuzz::note(kName, "not written", e.what());
    }
    ::close(fd);
    return 0;
}
