// Walking PRP entries and lists (nvme_prp.hpp).
#include "core/devices/nvme_prp.hpp"

#include <algorithm>

namespace hv::dev::nvme {
namespace {

struct Walker {
    const GuestMemory& mem;
    std::uint64_t page;
    PrpWalk out;

    bool add(std::uint64_t gpa, std::uint64_t len)
    {
        if (!mem.contains(gpa, len)) {
            out.status = status::kDataTransferError;
            return false;
        }
        if (!out.segments.empty() && out.segments.back().gpa + out.segments.back().len == gpa)
            out.segments.back().len += len;
        else
            out.segments.push_back({gpa, len});
        return true;
    }
    bool fail(std::uint16_t s)
    {
        out.status = s;
        out.segments.clear();
        return false;
    }
};

}  // namespace

PrpWalk walk_prps(const GuestMemory& mem, std::uint64_t prp1, std::uint64_t prp2,
                  std::uint64_t length, unsigned page_shift)
{
    Walker w{mem, std::uint64_t{1} << page_shift, {}};
    const std::uint64_t mask = w.page - 1;
    if (length == 0)
        return w.out;
    if (prp1 & 3) {
        w.fail(status::kPrpOffsetInvalid);
        return w.out;
    }
    const std::uint64_t first = std::min(length, w.page - (prp1 & mask));
    if (!w.add(prp1, first)) {
        w.out.segments.clear();
        return w.out;
    }
    std::uint64_t left = length - first;
    if (left == 0)
        return w.out;
    if (left <= w.page) {
        // The second and last page: PRP2 is its address.
        if (prp2 & mask)
            w.fail(status::kPrpOffsetInvalid);
        else if (!w.add(prp2, left))
            w.out.segments.clear();
        return w.out;
    }
    // PRP2 is a list pointer; entries run to the end of its page, whose last entry chains on
    // when more than one entry is still needed.
    if (prp2 & 7) {
        w.fail(status::kPrpOffsetInvalid);
        return w.out;
    }
    std::uint64_t entry = prp2;
    // Each list page holds at least one data entry before its chain entry, so a well-formed list
    // chains at most once per data page; more is a loop in a hostile list.
    std::uint64_t chains_left = length / w.page + 1;
    while (left > 0) {
        const bool last_in_page = ((entry + 8) & mask) == 0;
        std::uint64_t e = 0;
        if (!mem.read_obj(entry, e)) {
            w.fail(status::kDataTransferError);
            return w.out;
        }
        if (last_in_page && left > w.page) {
            // A chain to the next list page.
            if (e & 7) {
                w.fail(status::kPrpOffsetInvalid);
                return w.out;
            }
            if (chains_left-- == 0) {
                w.fail(status::kDataTransferError);
                return w.out;
            }
            entry = e;
            continue;
        }
        if (e & mask) {
            w.fail(status::kPrpOffsetInvalid);
            return w.out;
        }
        const std::uint64_t n = std::min(left, w.page);
        if (!w.add(e, n)) {
            w.out.segments.clear();
            return w.out;
        }
        left -= n;
        entry += 8;
    }
    return w.out;
}

}  // namespace hv::dev::nvme
