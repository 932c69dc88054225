#include "core/devices/msix.hpp"

#include <fmt/format.h>

#include "core/base/error.hpp"

namespace hv::dev {

MsixTable::MsixTable(unsigned entries, Changed changed, Send send)
    : changed_(std::move(changed)), send_(std::move(send)), table_(entries), pending_(entries)
{
    if (entries == 0 || entries > kMaxEntries || entries * kEntryBytes > kPbaOffset)
        throw Error(fmt::format("MSI-X: {} entries do not fit before the PBA", entries));
}

bool MsixTable::enabled() const
{
    std::lock_guard lk(mu_);
    return enabled_;
}

bool MsixTable::function_masked() const
{
    std::lock_guard lk(mu_);
    return function_masked_;
}

MsixEntry MsixTable::entry(unsigned n) const
{
    std::lock_guard lk(mu_);
    return table_.at(n);
}

bool MsixTable::pending(unsigned n) const
{
    std::lock_guard lk(mu_);
    return pending_.at(n);
}

void MsixTable::raise(unsigned n, bool may_send)
{
    counters_.raised.fetch_add(1, std::memory_order_relaxed);
    MsixEntry msg;
    {
        std::lock_guard lk(mu_);
        if (n >= table_.size() || !enabled_ || !may_send) {
            // 6.8.2.3: with MSI-X disabled the function may not send MSI-X messages; without
            // bus mastering it may not write memory at all. Nothing is latched either.
            counters_.dropped.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        if (function_masked_ || table_[n].masked) {
            if (pending_[n])
                counters_.coalesced.fetch_add(1, std::memory_order_relaxed);
            else
                counters_.pended.fetch_add(1, std::memory_order_relaxed);
            pending_[n] = true;
            return;
        }
        msg = table_[n];
    }
    counters_.sent.fetch_add(1, std::memory_order_relaxed);
    send_(n, msg);
}

std::vector<unsigned> MsixTable::take_releasable()
{
    std::vector<unsigned> out;
    if (!enabled_ || function_masked_)
        return out;
    for (unsigned n = 0; n < table_.size(); ++n) {
        if (pending_[n] && !table_[n].masked) {
            pending_[n] = false;
            out.push_back(n);
        }
    }
    return out;
}

void MsixTable::send_released(const std::vector<unsigned>& entries)
{
    for (unsigned n : entries) {
        MsixEntry msg = entry(n);
        counters_.sent.fetch_add(1, std::memory_order_relaxed);
        send_(n, msg);
    }
}

void MsixTable::notify_all_changed()
{
    for (unsigned n = 0; n < size(); ++n)
        changed_(n);
}

void MsixTable::set_control(bool enable, bool function_mask)
{
    std::vector<unsigned> release;
    bool changed = false;
    {
        std::lock_guard lk(mu_);
        changed = enable != enabled_ || function_mask != function_masked_;
        enabled_ = enable;
        function_masked_ = function_mask;
        release = take_releasable();
    }
    // Routes first (the IRTE must be in place), then the messages that were held back.
    if (changed)
        notify_all_changed();
    send_released(release);
}

std::uint32_t MsixTable::read_dword(std::uint64_t offset) const
{
    std::lock_guard lk(mu_);
    if (offset >= kPbaOffset) {
        std::uint64_t bit0 = (offset - kPbaOffset) * 8;
        std::uint32_t v = 0;
        for (unsigned i = 0; i < 32; ++i)
            if (bit0 + i < pending_.size() && pending_[bit0 + i])
                v |= 1u << i;
        return v;
    }
    auto n = static_cast<unsigned>(offset / kEntryBytes);
    if (n >= table_.size())
        return 0;
    const MsixEntry& e = table_[n];
    switch (offset % kEntryBytes) {
    case 0:
        return static_cast<std::uint32_t>(e.address);
    case 4:
        return static_cast<std::uint32_t>(e.address >> 32);
    case 8:
        return e.data;
    default:
        return e.masked ? kVectorMasked : 0;
    }
}

bool MsixTable::write_dword(std::uint64_t offset, std::uint32_t value)
{
    std::lock_guard lk(mu_);
    if (offset >= kPbaOffset)
        return false;  // 6.8.2.10: the PBA is read-only
    auto n = static_cast<unsigned>(offset / kEntryBytes);
    if (n >= table_.size())
        return false;
    MsixEntry& e = table_[n];
    MsixEntry before = e;
    switch (offset % kEntryBytes) {
    case 0:
        e.address = (e.address & ~0xFFFF'FFFFull) | (value & ~3u);  // bits 1:0 read as zero
        break;
    case 4:
        e.address = (e.address & 0xFFFF'FFFFull) | (static_cast<std::uint64_t>(value) << 32);
        break;
    case 8:
        e.data = value;
        break;
    default:
        e.masked = (value & kVectorMasked) != 0;  // reserved bits 31:1 are read-only zero
        break;
    }
    return !(e == before);
}

std::uint64_t MsixTable::read(std::uint64_t offset, unsigned size)
{
    if ((size != 4 && size != 8) || (offset & (size - 1)))
        return all_ones(size);
    std::uint64_t v = read_dword(offset);
    if (size == 8)
        v |= static_cast<std::uint64_t>(read_dword(offset + 4)) << 32;
    return v;
}

void MsixTable::write(std::uint64_t offset, unsigned size, std::uint64_t value)
{
    if ((size != 4 && size != 8) || (offset & (size - 1)))
        return;
    auto n = static_cast<unsigned>(offset / kEntryBytes);
    bool changed = write_dword(offset, static_cast<std::uint32_t>(value));
    if (size == 8)
        changed |= write_dword(offset + 4, static_cast<std::uint32_t>(value >> 32));
    if (!changed)
        return;
    changed_(n);
    std::vector<unsigned> release;
    {
        std::lock_guard lk(mu_);
        release = take_releasable();
    }
    send_released(release);
}

MsixTable::State MsixTable::state() const
{
    std::lock_guard lk(mu_);
    return {table_, pending_, enabled_, function_masked_};
}

void MsixTable::restore(const State& s)
{
    {
        std::lock_guard lk(mu_);
        if (s.entries.size() != table_.size() || s.pending.size() != pending_.size())
            throw Error(fmt::format("MSI-X state has {} entries, the device {}", s.entries.size(),
                                    table_.size()));
        table_ = s.entries;
        pending_ = s.pending;
        enabled_ = s.enabled;
        function_masked_ = s.function_masked;
    }
    notify_all_changed();
}

std::string MsixTable::stats() const
{
    return fmt::format("msi-x: raised {}, sent {}, pended {}, coalesced {}, dropped {}",
                       counters_.raised.load(), counters_.sent.load(), counters_.pended.load(),
                       counters_.coalesced.load(), counters_.dropped.load());
}

}  // namespace hv::dev
