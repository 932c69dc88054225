#include "svm/apic_id_tables.hpp"

#include <bit>

namespace hv::svm {

std::optional<uint32_t> logical_index_of(uint32_t ldr, uint32_t dfr)
{
    const uint32_t id = ldr >> 24;
    if (id == 0) {
        return std::nullopt;
    }
    switch (dfr >> 28) {
    case 0xF:  // APM Vol2 15.29.3.2: flat, the index is the bit position
        return flat_index(static_cast<unsigned>(std::countr_zero(id)));
    case 0x0: {
        const uint32_t cluster = id >> 4;
        const uint32_t bits = id & 0xFu;
        if (cluster > logical::kMaxCluster || !std::has_single_bit(bits)) {
            return std::nullopt;
        }
        return cluster_index(cluster, static_cast<unsigned>(std::countr_zero(bits)));
    }
    default:
        return std::nullopt;
    }
}

}  // namespace hv::svm
