#include <gtest/gtest.h>

#include "cmd/options.hpp"
#include "core/base/error.hpp"

namespace {
std::vector<std::string> parse(hv::cli::Options& o, std::vector<std::string> args)
{
    std::vector<char*> argv;
    for (auto& a : args)
        argv.push_back(a.data());
    return o.parse(static_cast<int>(argv.size()), argv.data(), 0);
}
}  // namespace

TEST(Options, ValuesFlagsAndPositionals)
{
    hv::cli::Options o;
    std::string mem, mod;
    bool stats = false;
    o.value("--memory", [&](const std::string& v) { mem = v; });
    o.value("--module", [&](const std::string& v) { mod = v; });
    o.flag("--stats", [&] { stats = true; });
    auto pos = parse(o, {"img", "--memory", "64", "--module=a b", "--stats", "--", "--x"});
    EXPECT_EQ(mem, "64");
    EXPECT_EQ(mod, "a b");
    EXPECT_TRUE(stats);
    EXPECT_EQ(pos, (std::vector<std::string>{"img", "--x"}));
}

TEST(Options, BadInputIsAnError)
{
    hv::cli::Options o;
    o.value("--memory", [](const std::string&) {});
    o.flag("--stats", [] {});
    EXPECT_THROW(parse(o, {"--bogus"}), hv::Error);
    EXPECT_THROW(parse(o, {"--memory"}), hv::Error);
    EXPECT_THROW(parse(o, {"--stats=1"}), hv::Error);
    EXPECT_THROW(hv::cli::parse_uint("12x", "--vcpus", 1, 10), hv::Error);
    EXPECT_THROW(hv::cli::parse_uint("", "--vcpus", 1, 10), hv::Error);
    EXPECT_THROW(hv::cli::parse_uint("-1", "--vcpus", 1, 10), hv::Error);
    EXPECT_THROW(hv::cli::parse_uint("0", "--vcpus", 1, 10), hv::Error);
    EXPECT_THROW(hv::cli::parse_uint("99999999999999999999", "--vcpus", 1, 10), hv::Error);
    EXPECT_EQ(hv::cli::parse_uint("10", "--vcpus", 1, 10), 10u);
}
