// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320, as zlib's crc32), streamable:
// crc32(b, n2, crc32(a, n1)) == crc32(a ++ b).
#pragma once

#include <cstddef>
#include <cstdint>

namespace hv::snapshot {

std::uint32_t crc32(const void* data, std::size_t len, std::uint32_t crc = 0);

}  // namespace hv::snapshot
