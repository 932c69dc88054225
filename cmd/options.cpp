#include "cmd/options.hpp"

#include <charconv>

#include "core/base/error.hpp"

namespace hv::cli {

void Options::value(const std::string& name, std::function<void(const std::string&)> handler)
{
    opts_.push_back({name, true, std::move(handler)});
}

void Options::flag(const std::string& name, std::function<void()> handler)
{
    opts_.push_back({name, false, [h = std::move(handler)](const std::string&) { h(); }});
}

void Options::pair(const std::string& name,
                   std::function<void(const std::string&, const std::string&)> handler)
{
    opts_.push_back({name, true, {}, std::move(handler)});
}

std::vector<std::string> Options::parse(int argc, char** argv, int first) const
{
    std::vector<std::string> positional;
    bool only_positional = false;
    for (int i = first; i < argc; ++i) {
        std::string arg = argv[i];
        if (only_positional || arg.size() < 2 || arg[0] != '-') {
            positional.push_back(arg);
            continue;
        }
        if (arg == "--") {
            only_positional = true;
            continue;
        }
        std::string name = arg, val;
        bool has_eq = false;
        if (auto eq = arg.find('='); eq != std::string::npos) {
            name = arg.substr(0, eq);
            val = arg.substr(eq + 1);
            has_eq = true;
        }
        const Opt* opt = nullptr;
        for (const auto& o : opts_)
            if (o.name == name)
                opt = &o;
        if (!opt)
            fail("unknown option '{}' (see --help)", name);
        if (opt->handler2) {
            if (has_eq || i + 2 >= argc)
                fail("option '{}' needs two values", name);
            std::string a = argv[i + 1], b = argv[i + 2];
            i += 2;
            opt->handler2(a, b);
            continue;
        }
        if (opt->takes_value && !has_eq) {
            if (i + 1 >= argc)
                fail("option '{}' needs a value", name);
            val = argv[++i];
        } else if (!opt->takes_value && has_eq) {
            fail("option '{}' takes no value", name);
        }
        opt->handler(val);
    }
    return positional;
}

std::uint64_t parse_uint(const std::string& s, const char* what, std::uint64_t lo, std::uint64_t hi)
{
    std::uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || p != s.data() + s.size())
        fail("{} '{}' is not a number", what, s);
    if (v < lo || v > hi)
        fail("{} {} out of range ({} to {})", what, v, lo, hi);
    return v;
}

}  // namespace hv::cli
