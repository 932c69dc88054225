#include "core/host/acpi.hpp"

#include "core/base/error.hpp"

namespace hv::host {

namespace {

// ACPI 6.5 5.2.6 "System Description Table Header": 36 bytes, signature at 0, length at 4.
constexpr std::size_t kHeaderSize = 36;
// Both DMAR and IVRS put their first sub-structure at offset 48.
constexpr std::size_t kBodyOffset = 48;

class Bytes {
  public:
    Bytes(std::string_view b, std::string_view table) : b_(b), table_(table) {}
    std::uint64_t le(std::size_t off, std::size_t n) const
    {
        if (off > b_.size() || n > b_.size() - off)
            fail("ACPI {}: field at offset {} ({} bytes) runs past the table end ({} bytes)",
                 table_, off, n, b_.size());
        std::uint64_t v = 0;
        for (std::size_t i = 0; i < n; ++i)
            v |= static_cast<std::uint64_t>(static_cast<unsigned char>(b_[off + i])) << (8 * i);
        return v;
    }
    std::uint8_t u8(std::size_t off) const { return static_cast<std::uint8_t>(le(off, 1)); }
    std::uint16_t u16(std::size_t off) const { return static_cast<std::uint16_t>(le(off, 2)); }
    std::uint32_t u32(std::size_t off) const { return static_cast<std::uint32_t>(le(off, 4)); }
    std::uint64_t u64(std::size_t off) const { return le(off, 8); }
    std::size_t size() const { return b_.size(); }

  private:
    std::string_view b_;
    std::string_view table_;
};

// Checks signature, length and checksum; returns the table's bytes cut to its declared length.
std::string_view check_header(std::string_view bytes, std::string_view sig)
{
    if (bytes.size() < kHeaderSize)
        fail("ACPI {}: truncated: {} bytes, the header alone is {}", sig, bytes.size(),
             kHeaderSize);
    if (bytes.substr(0, 4) != sig)
        fail("ACPI {}: bad signature (not a {} table)", sig, sig);
    const Bytes b(bytes, sig);
    const std::uint32_t length = b.u32(4);
    if (length < kBodyOffset)
        fail("ACPI {}: header length {} is shorter than the fixed part ({} bytes)", sig, length,
             kBodyOffset);
    if (length > bytes.size())
        fail("ACPI {}: truncated: header says {} bytes, only {} present", sig, length,
             bytes.size());
    unsigned sum = 0;
    for (std::size_t i = 0; i < length; ++i)
        sum += static_cast<unsigned char>(bytes[i]);
    if ((sum & 0xFF) != 0)
        fail("ACPI {}: checksum mismatch (byte sum 0x{:02x}, expected 0)", sig, sum & 0xFF);
    return bytes.substr(0, length);
}

// Walks the type/length sub-structures from kBodyOffset. Both tables keep a u16 length at +2
// (the type is a u16 in DMAR and a u8 in IVRS); a length that could not advance is an error.
template <typename F> void walk(const Bytes& b, std::string_view sig, std::size_t min_len, F&& each)
{
    std::size_t off = kBodyOffset;
    while (off < b.size()) {
        if (b.size() - off < 4)
            fail("ACPI {}: {} stray bytes at offset {}", sig, b.size() - off, off);
        const std::uint16_t len = b.u16(off + 2);
        if (len < min_len)
            fail("ACPI {}: sub-structure at offset {} has length {} (< {})", sig, off, len,
                 min_len);
        if (len > b.size() - off)
            fail("ACPI {}: sub-structure at offset {} (length {}) runs past the table end", sig,
                 off, len);
        each(off, len);
        off += len;
    }
}

}  // namespace

bool AcpiIvrs::Ivhd::ga_support() const
{
    if (type == 0x10)
        return ((feature_info >> 6) & 1u) != 0;
    return efr && ((*efr >> 7) & 1u) != 0;
}

AcpiDmar parse_dmar(std::string_view bytes)
{
    const std::string_view t = check_header(bytes, "DMAR");
    const Bytes b(t, "DMAR");
    AcpiDmar d;
    d.host_address_width = b.u8(36);
    d.flags = b.u8(37);
    // VT-d 8.3: DRHD is Type(2) Length(2) Flags(1) Size(1) Segment(2) Base(8), then scopes.
    walk(b, "DMAR", 4, [&](std::size_t off, std::uint16_t len) {
        const std::uint16_t type = b.u16(off);
        if (type != 0) {
            ++d.other_structures;
            return;
        }
        if (len < 16)
            fail("ACPI DMAR: DRHD at offset {} has length {} (< 16)", off, len);
        d.drhds.push_back({b.u8(off + 4), b.u16(off + 6), b.u64(off + 8)});
    });
    return d;
}

AcpiIvrs parse_ivrs(std::string_view bytes)
{
    const std::string_view t = check_header(bytes, "IVRS");
    const Bytes b(t, "IVRS");
    AcpiIvrs r;
    r.ivinfo = b.u32(36);
    // AMD IOMMU spec 48882 "IVHD" block formats: type 10h has a 24-byte header; 11h and 40h have 40
    // with the EFR image at offset 18h.
    walk(b, "IVRS", 4, [&](std::size_t off, std::uint16_t len) {
        const std::uint8_t type = b.u8(off);
        if (type != 0x10 && type != 0x11 && type != 0x40) {
            ++r.other_blocks;
            return;
        }
        const std::size_t need = type == 0x10 ? 24 : 40;
        if (len < need)
            fail("ACPI IVRS: IVHD type 0x{:02x} at offset {} has length {} (< {})", type, off, len,
                 need);
        AcpiIvrs::Ivhd h;
        h.type = type;
        h.flags = b.u8(off + 1);
        h.device_id = b.u16(off + 4);
        h.base = b.u64(off + 8);
        h.segment = b.u16(off + 16);
        h.feature_info = b.u32(off + 20);
        if (type != 0x10)
            h.efr = b.u64(off + 24);
        r.ivhds.push_back(h);
    });
    return r;
}

}  // namespace hv::host
