// ACPI DMAR/IVRS parsing on fixture tables (tests/host/fixtures/acpi, see make_acpi.py).
#include <gtest/gtest.h>

#include "core/base/error.hpp"
#include "core/host/acpi.hpp"
#include "core/host/sysfs.hpp"

namespace hv::host {
namespace {

std::string table(const char* name)
{
    return read_file(std::string(HV_HOST_FIXTURES) + "/acpi/" + name);
}

template <typename F>
std::string error_text(F&& f)
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
// parser goes past the header): every outcome is a parsed table or an hv::Error.
std::string fix_checksum(std::string t)
{
    if (t.size() < 36)
        return t;
    unsigned sum = 0;
    const std::size_t n = std::min<std::size_t>(t.size(), static_cast<unsigned char>(t[4]) |
                                                              (static_cast<unsigned char>(t[5]) << 8));
    for (std::size_t i = 0; i < n; ++i)
        if (i != 9)
            sum += static_cast<unsigned char>(t[i]);
    t[9] = static_cast<char>((0x100 - (sum & 0xFF)) & 0xFF);
    return t;
}

TEST(AcpiFuzzish, MutatedTablesNeverCrash)
{
    std::uint32_t x = 12345;
    const auto next = [&] {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        return x;
    };
    for (const char* name : {"DMAR.good", "IVRS.good"}) {
        const std::string good = table(name);
        for (int round = 0; round < 2000; ++round) {
            std::string t = good;
            const unsigned flips = 1 + next() % 4;
            for (unsigned f = 0; f < flips; ++f)
                t[next() % t.size()] = static_cast<char>(next() & 0xFF);
            t = fix_checksum(t);
            try {
                if (name[0] == 'D')
                    (void)parse_dmar(t);
                else
                    (void)parse_ivrs(t);
            } catch (const hv::Error&) {
                // rejected with a message: fine
            }
        }
    }
}

}  // namespace
}  // namespace hv::host
