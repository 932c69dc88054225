// ACPI DMAR/IVRS parsing on fixture tables (tests/host/fixtures/acpi, see make_acpi.py).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/base/error.hpp"
#include "core/host/acpi.hpp"
#include "core/host/sysfs.hpp"

namespace hv::host {
namespace {

std::string table(const char* name)
{
    return read_file(std::string(HV_HOST_FIXTURES) + "/acpi/" + name);
}

template <typename F> std::string error_text(F&& f)
{
    try {
        f();
    } catch (const hv::Error& e) {
        return e.what();
    }
    return "(no error)";
}

TEST(AcpiDmar, ParsesUnitsAndFlags)
{
    const AcpiDmar d = parse_dmar(table("DMAR.good"));
    EXPECT_EQ(d.host_address_width, 45);
    EXPECT_TRUE(d.intr_remap());
    EXPECT_FALSE(d.x2apic_opt_out());
    ASSERT_EQ(d.drhds.size(), 2u);
    EXPECT_EQ(d.drhds[0].register_base, 0xFED90000u);
    EXPECT_EQ(d.drhds[1].register_base, 0xFED91000u);
    EXPECT_EQ(d.drhds[1].flags & 1, 1);
    EXPECT_EQ(d.other_structures, 1u);  // the RMRR
}

TEST(AcpiDmar, RejectsBrokenTables)
{
    EXPECT_EQ(error_text([] { parse_dmar(table("DMAR.truncated")); }),
              "ACPI DMAR: truncated: header says 120 bytes, only 60 present");
    EXPECT_NE(error_text([] { parse_dmar(table("DMAR.badsum")); }).find("checksum mismatch"),
              std::string::npos);
    EXPECT_EQ(error_text([] { parse_dmar(table("DMAR.zerolen")); }),
              "ACPI DMAR: sub-structure at offset 48 has length 0 (< 4)");
    EXPECT_EQ(error_text([] { parse_dmar(table("DMAR.shortdrhd")); }),
              "ACPI DMAR: DRHD at offset 48 has length 8 (< 16)");
    EXPECT_EQ(error_text([] { parse_dmar(table("IVRS.good")); }),
              "ACPI DMAR: bad signature (not a DMAR table)");
    EXPECT_EQ(error_text([] { parse_dmar(""); }),
              "ACPI DMAR: truncated: 0 bytes, the header alone is 36");
}

TEST(AcpiIvrs, ParsesIvhdBlocksAndGaSupport)
{
    const AcpiIvrs r = parse_ivrs(table("IVRS.good"));
    EXPECT_EQ(r.ivinfo, 0x00203041u);
    ASSERT_EQ(r.ivhds.size(), 2u);
    EXPECT_EQ(r.ivhds[0].type, 0x10);
    EXPECT_EQ(r.ivhds[0].base, 0xFD200000u);
    EXPECT_TRUE(r.ivhds[0].ga_support());  // feature reporting bit 6
    EXPECT_FALSE(r.ivhds[0].efr);
    EXPECT_EQ(r.ivhds[1].type, 0x11);
    ASSERT_TRUE(r.ivhds[1].efr);
    EXPECT_TRUE(r.ivhds[1].ga_support());  // EFR bit 7

    const AcpiIvrs n = parse_ivrs(table("IVRS.noga"));
    ASSERT_EQ(n.ivhds.size(), 1u);
    EXPECT_FALSE(n.ivhds[0].ga_support());
}

TEST(AcpiIvrs, RejectsBrokenTables)
{
    EXPECT_EQ(error_text([] { parse_ivrs(table("IVRS.truncated")); }),
              "ACPI IVRS: truncated: header says 112 bytes, only 50 present");
    // Random bytes after the signature: the length field is nonsense.
    EXPECT_NE(error_text([] { parse_ivrs(table("IVRS.garbage")); }).find("ACPI IVRS:"),
              std::string::npos);
    EXPECT_EQ(error_text([] { parse_ivrs(table("IVRS.shortivhd")); }),
              "ACPI IVRS: IVHD type 0x11 at offset 48 has length 24 (< 40)");
}

TEST(AcpiFuzzish, EveryPrefixOfAGoodTableFailsCleanly)
{
    // No prefix may crash or read out of bounds; all but the full table must be rejected.
    for (const char* name : {"DMAR.good", "IVRS.good"}) {
        const std::string t = table(name);
        for (std::size_t n = 0; n < t.size(); ++n) {
            const std::string prefix = t.substr(0, n);
            if (name[0] == 'D')
                EXPECT_THROW(parse_dmar(prefix), hv::Error) << name << " " << n;
            else
                EXPECT_THROW(parse_ivrs(prefix), hv::Error) << name << " " << n;
        }
    }
}

}  // namespace
}  // namespace hv::host

namespace hv::host {
namespace {

// Deterministic pseudo-random mutations of good tables (with the checksum fixed up so the
// parser goes past the header): every outcome is either an hv::Error naming the table, or a
// parse whose every field matches an independent walk of the bytes.
std::string fix_checksum(std::string t)
{
    if (t.size() < 36)
        return t;
    unsigned sum = 0;
    const auto length = static_cast<std::size_t>(static_cast<unsigned char>(t[4]) |
                                                 (static_cast<unsigned char>(t[5]) << 8));
    const std::size_t n = std::min(t.size(), length);
    for (std::size_t i = 0; i < n; ++i)
        if (i != 9)
            sum += static_cast<unsigned char>(t[i]);
    t[9] = static_cast<char>((0x100 - (sum & 0xFF)) & 0xFF);
    return t;
}

// Little-endian field of `t`; the caller has checked the bounds.
std::uint64_t le(const std::string& t, std::size_t off, std::size_t n)
{
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i)
        v |= static_cast<std::uint64_t>(static_cast<unsigned char>(t[off + i])) << (8 * i);
    return v;
}

// The reference walk: (offset, length) of each sub-structure from offset 48 to the declared
// length. A table that parsed must tile its body exactly with sub-structures of >= 4 bytes.
std::vector<std::pair<std::size_t, std::size_t>> substructures(const std::string& t)
{
    const std::size_t length = le(t, 4, 4);
    std::vector<std::pair<std::size_t, std::size_t>> subs;
    std::size_t off = 48;
    while (off < length) {
        EXPECT_LE(off + 4, length) << "stray bytes at " << off;
        if (off + 4 > length)
            break;
        const std::size_t len = le(t, off + 2, 2);
        EXPECT_GE(len, 4u) << "at " << off;
        EXPECT_LE(off + len, length) << "at " << off;
        if (len < 4 || off + len > length)
            break;
        subs.emplace_back(off, len);
        off += len;
    }
    return subs;
}

void expect_dmar_matches(const AcpiDmar& d, const std::string& t)
{
    EXPECT_EQ(t.compare(0, 4, "DMAR"), 0);
    const std::size_t length = le(t, 4, 4);
    ASSERT_GE(length, 48u);
    ASSERT_LE(length, t.size());
    EXPECT_EQ(d.host_address_width, le(t, 36, 1));
    EXPECT_EQ(d.flags, le(t, 37, 1));
    std::size_t drhd = 0, other = 0;
    for (auto [off, len] : substructures(t)) {
        if (le(t, off, 2) != 0) {
            ++other;
            continue;
        }
        ASSERT_GE(len, 16u) << "a DRHD shorter than 16 bytes was accepted at " << off;
        ASSERT_LT(drhd, d.drhds.size());
        EXPECT_EQ(d.drhds[drhd].flags, le(t, off + 4, 1));
        EXPECT_EQ(d.drhds[drhd].segment, le(t, off + 6, 2));
        EXPECT_EQ(d.drhds[drhd].register_base, le(t, off + 8, 8));
        ++drhd;
    }
    EXPECT_EQ(d.drhds.size(), drhd);
    EXPECT_EQ(d.other_structures, other);
}

void expect_ivrs_matches(const AcpiIvrs& r, const std::string& t)
{
    EXPECT_EQ(t.compare(0, 4, "IVRS"), 0);
    const std::size_t length = le(t, 4, 4);
    ASSERT_GE(length, 48u);
    ASSERT_LE(length, t.size());
    EXPECT_EQ(r.ivinfo, le(t, 36, 4));
    std::size_t ivhd = 0, other = 0;
    for (auto [off, len] : substructures(t)) {
        const auto type = static_cast<std::uint8_t>(le(t, off, 1));
        if (type != 0x10 && type != 0x11 && type != 0x40) {
            ++other;
            continue;
        }
        ASSERT_GE(len, type == 0x10 ? 24u : 40u) << "a short IVHD was accepted at " << off;
        ASSERT_LT(ivhd, r.ivhds.size());
        const auto& h = r.ivhds[ivhd++];
        EXPECT_EQ(h.type, type);
        EXPECT_EQ(h.flags, le(t, off + 1, 1));
        EXPECT_EQ(h.device_id, le(t, off + 4, 2));
        EXPECT_EQ(h.base, le(t, off + 8, 8));
        EXPECT_EQ(h.segment, le(t, off + 16, 2));
        EXPECT_EQ(h.feature_info, le(t, off + 20, 4));
        EXPECT_EQ(h.efr.has_value(), type != 0x10);
        if (h.efr) {
            EXPECT_EQ(*h.efr, le(t, off + 24, 8));
        }
    }
    EXPECT_EQ(r.ivhds.size(), ivhd);
    EXPECT_EQ(r.other_blocks, other);
}

TEST(AcpiFuzzish, MutatedTablesParseConsistentlyOrFailWithTheTableNamed)
{
    std::uint32_t x = 12345;
    const auto next = [&] {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        return x;
    };
    for (const char* name : {"DMAR.good", "IVRS.good"}) {
        const bool dmar = name[0] == 'D';
        const std::string good = table(name);
        unsigned parsed = 0, rejected = 0;
        for (int round = 0; round < 2000; ++round) {
            std::string t = good;
            const unsigned flips = 1 + next() % 4;
            for (unsigned f = 0; f < flips; ++f)
                t[next() % t.size()] = static_cast<char>(next() & 0xFF);
            t = fix_checksum(t);
            SCOPED_TRACE(testing::Message() << name << " round " << round);
            try {
                if (dmar)
                    expect_dmar_matches(parse_dmar(t), t);
                else
                    expect_ivrs_matches(parse_ivrs(t), t);
                ++parsed;
            } catch (const hv::Error& e) {
                // Rejected: one line that names the table.
                const std::string what = e.what();
                EXPECT_EQ(what.rfind(dmar ? "ACPI DMAR: " : "ACPI IVRS: ", 0), 0u) << what;
                EXPECT_EQ(what.find('\n'), std::string::npos) << what;
                ++rejected;
            }
        }
        // Both outcomes were exercised (the mutations hit both the framing and the payload).
        EXPECT_GT(parsed, 100u) << name;
        EXPECT_GT(rejected, 100u) << name;
    }
}

}  // namespace
}  // namespace hv::host
