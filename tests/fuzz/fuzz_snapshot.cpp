// fuzz_snapshot: the snapshot container reader (core/snapshot/file.hpp) and the document's
// validation (snapshot::from_json, core/snapshot/state.hpp).
//
// Input: byte 0 selects how the rest is used —
//   0: a whole file, as is (header, sizes and CRC checks);
//   1: a whole file whose CRC is recomputed first, so mutations reach the JSON and the sections;
//   2: a JSON document, wrapped in a valid container with an 8 KiB blob area of pattern bytes
//      (enough for one vCPU's XSAVE area and a page of memory).
// The file goes through both Reader constructors: the one `hvaccel restore` uses (mmap of a
// path, here a memfd) and the one from bytes; they must agree.
//
// Checked: every input is rejected with hv::Error or parses and validates (any other exception
// or a sanitizer report fails the target). A document that validates must survive a round trip:
// to_json() of the parsed state, written into a new container with the same blobs, parses and
// validates again to the same document and the same XSAVE bytes — a snapshot hvaccel accepts is
// one it can write again.
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "core/base/error.hpp"
#include "core/snapshot/crc32.hpp"
#include "core/snapshot/file.hpp"
#include "core/snapshot/state.hpp"
#include "tests/fuzz/fuzz_target.hpp"

namespace {

namespace snap = hv::snapshot;
constexpr const char* kName = "snapshot";
constexpr std::size_t kBlobArea = 8192;

void put_u32(std::vector<std::uint8_t>& b, std::size_t at, std::uint32_t v)
{
    std::memcpy(&b[at], &v, 4);
}
void put_u64(std::vector<std::uint8_t>& b, std::size_t at, std::uint64_t v)
{
    std::memcpy(&b[at], &v, 8);
}

void fix_crc(std::vector<std::uint8_t>& file)
{
    if (file.size() >= snap::kHeaderSize)
        put_u32(file, 16, snap::crc32(&file[24], file.size() - 24));
}

// A valid container around `json` and `blobs` (the layout Writer::commit produces).
std::vector<std::uint8_t> container(const std::string& json, const std::vector<std::uint8_t>& blobs)
{
    const std::uint64_t blob_off = (snap::kHeaderSize + json.size() + 4095) & ~std::uint64_t{4095};
    std::vector<std::uint8_t> file(blob_off, 0);
    std::memcpy(file.data(), snap::kMagic, sizeof snap::kMagic);
    put_u32(file, 8, snap::kFormatMajor);
    put_u32(file, 12, snap::kFormatMinor);
    put_u64(file, 24, json.size());
    put_u64(file, 32, blob_off);
    put_u64(file, 40, blobs.size());
    std::memcpy(&file[snap::kHeaderSize], json.data(), json.size());
    file.insert(file.end(), blobs.begin(), blobs.end());
    fix_crc(file);
    return file;
}

// The path of a memfd holding `bytes` (one memfd, rewritten for every input).
std::string as_file(const std::vector<std::uint8_t>& bytes)
{
    static const int fd = ::memfd_create("fuzz_snapshot", MFD_CLOEXEC);
    if (fd < 0)
        hv::fuzz::failed(kName, "memfd_create");
    if (::ftruncate(fd, 0) != 0 || (!bytes.empty() && ::pwrite(fd, bytes.data(), bytes.size(), 0) !=
                                                          static_cast<ssize_t>(bytes.size())))
        hv::fuzz::failed(kName, "memfd write");
    return "/proc/self/fd/" + std::to_string(fd);
}

struct Parsed {
    nlohmann::json doc;
    std::optional<snap::VmState> state;  // nullopt: from_json refused it
};

// Reads `file` from bytes; nullopt when the container is refused.
std::optional<Parsed> read(const std::vector<std::uint8_t>& file)
{
    try {
        snap::Reader r(file, "fuzz");
        Parsed p{r.doc(), std::nullopt};
        try {
            p.state = snap::from_json(r);
            hv::fuzz::note(kName, "valid snapshot");
        } catch (const hv::Error& e) {
            hv::fuzz::note(kName, "document refused:", e.what());
        }
        return p;
    } catch (const hv::Error& e) {
        hv::fuzz::note(kName, "file refused:", e.what());
        return std::nullopt;
    }
}

void round_trip(const std::vector<std::uint8_t>& file, const snap::VmState& s)
{
    // The blob area of `file` (its header passed the reader's checks), then each vCPU's XSAVE.
    std::uint64_t blob_off = 0;
    std::memcpy(&blob_off, &file[32], 8);
    std::vector<std::uint8_t> blobs(file.begin() + static_cast<std::ptrdiff_t>(blob_off),
                                    file.end());
    std::vector<std::uint64_t> xsave_at;
    for (const auto& v : s.vcpus) {
        xsave_at.push_back(blobs.size());
        blobs.insert(blobs.end(), v.xsave.begin(), v.xsave.end());
    }
    const nlohmann::json doc = snap::to_json(s, xsave_at);
    const auto again = read(container(doc.dump(1), blobs));
    HV_FUZZ_CHECK(kName, again.has_value());
    if (!again->state)
        hv::fuzz::failed(kName,
                         "a validated snapshot written again is refused:", doc.dump().c_str());
    HV_FUZZ_CHECK(kName, snap::to_json(*again->state, xsave_at) == doc);
    HV_FUZZ_CHECK(kName, again->state->vcpus.size() == s.vcpus.size());
    for (std::size_t i = 0; i < s.vcpus.size(); ++i)
        HV_FUZZ_CHECK(kName, again->state->vcpus[i].xsave == s.vcpus[i].xsave);
}

}  // namespace

HV_FUZZ_TARGET(snapshot)
{
    hv::fuzz::Input in(data, size);
    const unsigned mode = in.byte() % 3;
    std::size_t n = 0;
    const std::uint8_t* p = in.rest(n);
    std::vector<std::uint8_t> file;
    if (mode == 2) {
        std::vector<std::uint8_t> blobs(kBlobArea);
        for (std::size_t i = 0; i < blobs.size(); ++i)
            blobs[i] = static_cast<std::uint8_t>(i * 7 + 1);
        file = container(std::string(reinterpret_cast<const char*>(p), n), blobs);
    } else {
        file.assign(p, p + n);
        if (mode == 1)
            fix_crc(file);
    }

    const std::optional<Parsed> parsed = read(file);
    // The path constructor (mmap) must agree with the bytes constructor.
    bool mapped_ok = false;
    try {
        snap::Reader r(as_file(file));
        mapped_ok = true;
        HV_FUZZ_CHECK(kName, parsed.has_value() && r.doc() == parsed->doc);
    } catch (const hv::Error&) {
    }
    HV_FUZZ_CHECK(kName, mapped_ok == parsed.has_value());
    if (parsed && parsed->state)
        round_trip(file, *parsed->state);
    return 0;
}
