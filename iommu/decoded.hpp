// Decoded<T, E>: a decoded hardware structure or the reason it was refused. Decoders in iommu/
// never throw: their inputs (MSI writes, table entries) are guest- or device-controlled, and the
// refusal reason is what the hardware would log (a VT-d fault reason, an MSI format error).
#pragma once

#include <optional>

namespace hv::iommu {

template <typename T, typename E> struct Decoded {
    T value{};
    std::optional<E> error;

    bool ok() const { return !error.has_value(); }
    explicit operator bool() const { return ok(); }
};

}  // namespace hv::iommu
