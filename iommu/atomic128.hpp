// A 128-bit word read and written only with `lock cmpxchg16b`: the one primitive an IRTE that is
// (or becomes) posted may be accessed with (VT-d 9.10 "Interrupt Remapping Table Entry (IRTE)
// for Posted Interrupts": "software must use 128-bit atomic operations (e.g. CMPXCHG16B) to
// modify a posted IRTE"; Linux amd_iommu_update_ga / modify_irte_ga do the same for AMD GA
// IRTEs).
//
// Implementation: the GCC/Clang __sync builtins on unsigned __int128, compiled with -mcx16 (see
// iommu/CMakeLists.txt), are inlined as `lock cmpxchg16b` — no libatomic and no lock. A load is a
// compare-exchange of 0 with 0 (it writes 0 over 0 or fails; either way it returns the current
// value atomically), so the word must live in writable memory. ThreadSanitizer instruments these
// builtins (__tsan_atomic128_compare_exchange_*), so races on entries stay visible to it.
#pragma once

#include <cstdint>

namespace hv::iommu {

__extension__ typedef unsigned __int128 u128;

constexpr u128 make_u128(uint64_t lo, uint64_t hi)
{
    return (static_cast<u128>(hi) << 64) | lo;
}
constexpr uint64_t lo_of(u128 v)
{
    return static_cast<uint64_t>(v);
}
constexpr uint64_t hi_of(u128 v)
{
    return static_cast<uint64_t>(v >> 64);
}

struct alignas(16) Atomic128 {
    u128 word = 0;

    u128 load()
    {
        return __sync_val_compare_and_swap(&word, static_cast<u128>(0), static_cast<u128>(0));
    }
    // Replaces `expected` with `desired` if the word still holds `expected`; otherwise loads the
    // current value into `expected` and returns false (std::atomic::compare_exchange semantics).
    bool compare_exchange(u128& expected, u128 desired)
    {
        const u128 seen = __sync_val_compare_and_swap(&word, expected, desired);
        if (seen == expected) {
            return true;
        }
        expected = seen;
        return false;
    }
    void store(u128 v)
    {
        u128 cur = load();
        while (!compare_exchange(cur, v)) {
        }
    }
};
static_assert(sizeof(Atomic128) == 16 && alignof(Atomic128) == 16);

}  // namespace hv::iommu
