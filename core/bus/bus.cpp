#include "core/bus/bus.hpp"

#include <algorithm>

#include "core/base/error.hpp"

namespace hv {

void Bus::attach(std::uint64_t base, std::uint64_t len, IoDevice* dev, std::string dev_name)
{
    if (len == 0 || base + len < base)
        fail("{} bus: bad range for {} at {:#x} length {:#x}", name_, dev_name, base, len);
    for (const auto& r : ranges_) {
        if (base < r.base + r.len && r.base < base + len)
            fail("{} bus: {} at [{:#x}, {:#x}) overlaps {} at [{:#x}, {:#x})", name_, dev_name,
                 base, base + len, r.name, r.base, r.base + r.len);
    }
    ranges_.push_back({base, len, dev, std::move(dev_name)});
    std::sort(ranges_.begin(), ranges_.end(),
              [](const Range& a, const Range& b) { return a.base < b.base; });
}

const Bus::Range* Bus::find(std::uint64_t addr, unsigned size) const
{
    auto it = std::upper_bound(ranges_.begin(), ranges_.end(), addr,
                               [](std::uint64_t a, const Range& r) { return a < r.base; });
    if (it == ranges_.begin())
        return nullptr;
    --it;
    std::uint64_t off = addr - it->base;
    if (off >= it->len || size > it->len - off)
        return nullptr;  // straddles the end of the range: treat as unclaimed
    return &*it;
}

bool Bus::read(std::uint64_t addr, unsigned size, std::uint64_t& value)
{
    if (const Range* r = find(addr, size)) {
        value = r->dev->read(addr - r->base, size) & all_ones(size);
        return true;
    }
    unclaimed_reads_.fetch_add(1, std::memory_order_relaxed);
    value = all_ones(size);
    return false;
}

bool Bus::write(std::uint64_t addr, unsigned size, std::uint64_t value)
{
    if (const Range* r = find(addr, size)) {
        r->dev->write(addr - r->base, size, value & all_ones(size));
        return true;
    }
    unclaimed_writes_.fetch_add(1, std::memory_order_relaxed);
    return false;
}

}  // namespace hv
