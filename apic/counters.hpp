// CounterTable: a small fixed table of named event counters, indexed by an enum, safe to bump
// from any thread (relaxed atomics: counters are statistics, not synchronisation).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace hv::apic {

struct CounterEntry {
    std::string_view name;
    uint64_t value = 0;
    bool operator==(const CounterEntry&) const = default;
};
using CounterList = std::vector<CounterEntry>;

// Looks a counter up by name; 0 when absent.
inline uint64_t counter_value(const CounterList& list, std::string_view name)
{
    for (const auto& e : list) {
        if (e.name == name) {
            return e.value;
        }
    }
    return 0;
}

template <typename Enum, std::size_t N> class CounterTable {
  public:
    explicit CounterTable(const std::array<std::string_view, N>& names) : names_(names) {}

    void add(Enum e, uint64_t n = 1)
    {
        const auto i = static_cast<std::size_t>(e);
        if (i < N) {
            c_[i].fetch_add(n, std::memory_order_relaxed);
        }
    }
    uint64_t get(Enum e) const
    {
        const auto i = static_cast<std::size_t>(e);
        return i < N ? c_[i].load(std::memory_order_relaxed) : 0;
    }
    void append_to(CounterList& out) const
    {
        for (std::size_t i = 0; i < N; ++i) {
            out.push_back(CounterEntry{names_[i], c_[i].load(std::memory_order_relaxed)});
        }
    }

  private:
    std::array<std::string_view, N> names_;
    std::array<std::atomic<uint64_t>, N> c_{};
};

}  // namespace hv::apic
