// Restoring the guest TSC: the value is read back, a host that ignores the MSR write is
// corrected through the TSC offset, and a host that takes neither continues from its own TSC
// when that is ahead and is refused in one line when it is behind.
#include <gtest/gtest.h>

#include <functional>
#include <optional>
#include <string>

#include "core/base/error.hpp"
#include "core/kvm/tsc.hpp"
#include "tests/core/helpers.hpp"

namespace {

using hvtest::message_of;

// A vCPU's TSC as KVM models it: guest TSC = host TSC + offset. `takes_msr` false: the MSR
// write is accepted and ignored (as seen on a host); `has_offset` false: no offset attribute;
// `takes_offset` false: the attribute is there but changes nothing.
class FakeTsc final : public hv::kvm::TscAccess {
  public:
    bool takes_msr = true, has_offset = true, takes_offset = true;
    std::uint64_t host = 5'000'000'000, offset_ = 0;
    unsigned msr_writes = 0, offset_writes = 0;

    void write_msr(std::uint64_t value) override
    {
        ++msr_writes;
        if (takes_msr)
            offset_ = value - host;
    }
    std::uint64_t read_msr() override
    {
        host += 1000;  // time passes between any two accesses
        return host + offset_;
    }
    std::optional<std::uint64_t> offset() override
    {
        if (!has_offset)
            return std::nullopt;
        return offset_;
    }
    void set_offset(std::uint64_t offset) override
    {
        ++offset_writes;
        if (takes_offset)
            offset_ = offset;
    }
};

constexpr std::uint64_t kSecond = 2'000'000'000;  // a second of ticks at 2 GHz

}  // namespace

TEST(GuestTsc, AWriteKvmTakesIsLeftAlone)
{
    FakeTsc t;
    EXPECT_EQ(hv::kvm::set_guest_tsc(t, 900'000'000'000, kSecond, 0), hv::kvm::TscPath::Msr);
    EXPECT_EQ(t.offset_writes, 0u);
    EXPECT_NEAR(static_cast<double>(t.read_msr()), 900'000'000'000.0, 10'000.0);
}

TEST(GuestTsc, AnIgnoredWriteIsCorrectedThroughTheOffset)
{
    FakeTsc t;
    t.takes_msr = false;
    EXPECT_EQ(hv::kvm::set_guest_tsc(t, 900'000'000'000, kSecond, 1), hv::kvm::TscPath::Offset);
    EXPECT_EQ(t.offset_writes, 1u);
    EXPECT_NEAR(static_cast<double>(t.read_msr()), 900'000'000'000.0, 10'000.0);
    // Backwards as well: a guest TSC below the host's (a negative offset, modulo 2^64).
    FakeTsc back;
    back.takes_msr = false;
    back.host = 800'000'000'000;
    EXPECT_EQ(hv::kvm::set_guest_tsc(back, 1'000'000, kSecond, 0), hv::kvm::TscPath::Offset);
    EXPECT_NEAR(static_cast<double>(back.read_msr()), 1'000'000.0, 10'000.0);
}

// Neither path takes, and the host's TSC is behind the snapshot's: the guest clock would run
// backwards, with or without an offset attribute.
TEST(GuestTsc, AHostThatTakesNeitherAndIsBehindIsRefused)
{
    FakeTsc no_attr;
    no_attr.takes_msr = false;
    no_attr.has_offset = false;
    const std::string a =
        message_of([&] { hv::kvm::set_guest_tsc(no_attr, 900'000'000'000, kSecond, 2); });
    EXPECT_NE(a.find("vCPU 2: KVM keeps the guest TSC at"), std::string::npos) << a;
    EXPECT_NE(a.find("would run backwards"), std::string::npos) << a;

    FakeTsc deaf;
    deaf.takes_msr = false;
    deaf.takes_offset = false;
    const std::string b =
        message_of([&] { hv::kvm::set_guest_tsc(deaf, 900'000'000'000, kSecond, 0); });
    EXPECT_NE(b.find("takes neither a TSC write nor an offset"), std::string::npos) << b;
    EXPECT_EQ(deaf.offset_writes, 1u);
}

// Neither path takes and the host's TSC is ahead (a snapshot restored on the host that took it,
// some time later): the guest continues with the host's TSC, as after a pause.
TEST(GuestTsc, AHostThatTakesNeitherAndIsAheadContinuesForward)
{
    FakeTsc deaf;
    deaf.takes_msr = false;
    deaf.takes_offset = false;
    deaf.host = 900'000'000'000 + 3 * kSecond;
    EXPECT_EQ(hv::kvm::set_guest_tsc(deaf, 900'000'000'000, kSecond, 0), hv::kvm::TscPath::Ahead);
    EXPECT_GT(deaf.read_msr(), 900'000'000'000 + 3 * kSecond);

    FakeTsc no_attr;
    no_attr.takes_msr = false;
    no_attr.has_offset = false;
    no_attr.host = 900'000'000'000 + 2 * kSecond;
    EXPECT_EQ(hv::kvm::set_guest_tsc(no_attr, 900'000'000'000, kSecond, 0),
              hv::kvm::TscPath::Ahead);
    // Within the tolerance ahead is simply taken.
    FakeTsc close;
    close.takes_msr = false;
    close.has_offset = false;
    close.host = 900'000'000'000 + kSecond / 2;
    EXPECT_EQ(hv::kvm::set_guest_tsc(close, 900'000'000'000, kSecond, 0), hv::kvm::TscPath::Msr);
}
