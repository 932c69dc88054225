#include "core/devices/fw_cfg.hpp"

#include <algorithm>
#include <cstring>

#include "core/base/error.hpp"

namespace hv::dev {

namespace {

template <typename T> std::vector<std::uint8_t> le(T v)
{
    std::vector<std::uint8_t> out(sizeof(T));
    for (std::size_t i = 0; i < sizeof(T); ++i)
        out[i] = static_cast<std::uint8_t>(static_cast<std::uint64_t>(v) >> (8 * i));
    return out;
}

void put_be(std::vector<std::uint8_t>& out, std::uint64_t v, unsigned bytes)
{
    for (unsigned i = bytes; i-- > 0;)
        out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

}  // namespace

FwCfg::FwCfg(std::uint64_t ram_bytes, std::uint16_t cpus, std::uint16_t max_cpus)
{
    set_item(kSignature, {'Q', 'E', 'M', 'U'});
    set_item(kId, le<std::uint32_t>(1));  // bit 0: traditional interface; no DMA
    set_item(kUuid, std::vector<std::uint8_t>(16, 0));
    set_item(kRamSize, le<std::uint64_t>(ram_bytes));
    set_item(kNoGraphic, le<std::uint16_t>(1));
    set_item(kNbCpus, le<std::uint16_t>(cpus));
    set_item(kMaxCpus, le<std::uint16_t>(max_cpus));
    rebuild_dir();
}

void FwCfg::set_item(std::uint16_t key, std::vector<std::uint8_t> data)
{
    items_[key] = std::move(data);
}

std::uint16_t FwCfg::add_file(const std::string& name, std::vector<std::uint8_t> data)
{
    if (name.empty() || name.size() >= kFileNameMax)
        fail("fw_cfg: file name '{}' must be 1 to {} characters", name, kFileNameMax - 1);
    std::lock_guard lk(mu_);
    for (const auto& f : files_)
        if (f.first == name)
            fail("fw_cfg: duplicate file '{}'", name);
    auto key = static_cast<std::uint16_t>(kFileFirst + files_.size());
    files_.emplace_back(name, key);
    set_item(key, std::move(data));
    rebuild_dir();
    return key;
}

// The directory: a big-endian count, then per file {be32 size, be16 select, be16 reserved,
// char name[56]}, sorted by name as QEMU keeps it.
void FwCfg::rebuild_dir()
{
    auto sorted = files_;
    std::sort(sorted.begin(), sorted.end());
    std::vector<std::uint8_t> dir;
    put_be(dir, sorted.size(), 4);
    for (const auto& [name, key] : sorted) {
        put_be(dir, items_[key].size(), 4);
        put_be(dir, key, 2);
        put_be(dir, 0, 2);
        std::uint8_t buf[kFileNameMax] = {};
        std::memcpy(buf, name.data(), name.size());
        dir.insert(dir.end(), buf, buf + kFileNameMax);
    }
    set_item(kFileDir, std::move(dir));
}

std::uint64_t FwCfg::read(std::uint64_t offset, unsigned size)
{
    std::lock_guard lk(mu_);
    if (offset == 0)
        return selector_;
    // Data port: each byte read advances; a wider read returns successive bytes (little endian).
    std::uint64_t v = 0;
    auto it = items_.find(selector_);
    for (unsigned i = 0; i < size; ++i) {
        std::uint8_t b = 0;
        if (it != items_.end() && offset_ < it->second.size())
            b = it->second[offset_++];
        v |= static_cast<std::uint64_t>(b) << (8 * i);
    }
    return v;
}

void FwCfg::write(std::uint64_t offset, unsigned /*size*/, std::uint64_t value)
{
    std::lock_guard lk(mu_);
    if (offset == 0) {
        selector_ = static_cast<std::uint16_t>(value);
        offset_ = 0;
    }
    // Writes to the data port are ignored, as QEMU does since 2.4.
}

}  // namespace hv::dev
