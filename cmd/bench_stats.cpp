#include "cmd/bench_stats.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <string_view>

namespace hv::bench {

double percentile(const std::vector<double>& sorted, double p)
{
    // Nearest rank: the smallest value with at least p of the samples at or below it.
    auto n = sorted.size();
    auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(n)));
    return sorted[std::clamp<std::size_t>(rank, 1, n) - 1];
}

Summary summarise(std::vector<double> v)
{
    Summary s;
    if (v.empty())
        return s;
    std::sort(v.begin(), v.end());
    s.count = v.size();
    s.min = v.front();
    s.max = v.back();
    s.p50 = percentile(v, 0.50);
    s.p99 = percentile(v, 0.99);
    s.p999 = percentile(v, 0.999);
    return s;
}

Series parse_series(const std::string& out)
{
    Series r;
    std::istringstream in(out);
    std::string line;
    while (std::getline(in, line)) {
        auto colon = line.find(": ");
        if (colon == std::string::npos || colon == 0)
            continue;
        std::string name = line.substr(0, colon);
        if (name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") != std::string::npos)
            continue;
        std::string rest = line.substr(colon + 2);
        if (rest.rfind("skipped", 0) == 0) {
            r.skipped[name] = rest;
            continue;
        }
        if (name.size() > 5 && name.compare(name.size() - 5, 5, "_note") == 0) {
            r.notes[name] = rest;
            continue;
        }
        if (rest.empty() || rest.find_first_not_of("0123456789,") != std::string::npos)
            continue;  // not a sample line ("ok 1 - ..." never matches: it has spaces)
        auto& v = r.samples[name];
        std::istringstream nums(rest);
        std::string tok;
        while (std::getline(nums, tok, ','))
            if (!tok.empty())
                v.push_back(std::stoull(tok));
    }
    return r;
}

Counters parse_counters(const std::string& stats)
{
    Counters c;
    std::istringstream in(stats);
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream l(line);
        std::string kind, name;
        long long n = 0;
        if (l >> kind >> name >> n && (kind == "exit" || kind == "apic"))
            c[kind + " " + name] += n;
    }
    return c;
}

bool is_architectural_exit(const std::string& name)
{
    static const std::string_view kExact[] = {
        // apic/emulated.cpp: every access traps
        "xapic_read", "xapic_write", "x2apic_read", "x2apic_write", "other_apic_msr",
        // vmx/apicv_hypervisor.cpp
        "external_interrupt", "msr_read", "msr_write", "tpr_below_threshold", "apic_access",
        "eoi_induced", "apic_write",
        // svm/avic_backend.cpp (besides the avic_* reasons)
        "msr", "hlt"};
    if (name.rfind("avic_", 0) == 0)
        return true;
    return std::find(std::begin(kExact), std::end(kExact), name) != std::end(kExact);
}

ExitRates exit_rates(const Counters& small, const Counters& big, double serial_bytes, double irqs)
{
    ExitRates r;
    if (irqs <= 0)
        return r;
    for (const auto& [key, n] : big) {
        auto it = small.find(key);
        double d = static_cast<double>(n - (it == small.end() ? 0 : it->second));
        bool exit = key.rfind("exit ", 0) == 0;
        std::string name = key.substr(5);
        if (exit && name == "io")
            d -= serial_bytes;
        if (d < 0.5 * irqs / 1000.0)  // below 0.5 per 1,000: noise of a different boot
            continue;
        double per_k = 1000.0 * d / irqs;
        if (exit)
            r.userspace[name] = per_k;
        else if (is_architectural_exit(name))
            r.architectural[name] = per_k;
    }
    return r;
}

std::string format_rates(const std::map<std::string, double>& rates, int decimals)
{
    // A counter that breaks another down by register (AVIC's "avic_noaccel_trap_tmict" under
    // "avic_noaccel_trap") is shown inside its parent: "avic_noaccel_trap 1000 (tmict 1000)".
    auto parent_of = [&](const std::string& name) -> std::string {
        for (const auto& [p, v] : rates)
            if (name.size() > p.size() + 1 && name.compare(0, p.size(), p) == 0 &&
                name[p.size()] == '_')
                return p;
        return {};
    };
    std::string s;
    for (const auto& [name, v] : rates) {
        if (!parent_of(name).empty())
            continue;
        char buf[96];
        std::snprintf(buf, sizeof buf, "%s%s %.*f", s.empty() ? "" : ", ", name.c_str(), decimals,
                      v);
        s += buf;
        std::string parts;
        for (const auto& [child, cv] : rates)
            if (parent_of(child) == name) {
                std::snprintf(buf, sizeof buf, "%s%s %.*f", parts.empty() ? "" : ", ",
                              child.c_str() + name.size() + 1, decimals, cv);
                parts += buf;
            }
        if (!parts.empty())
            s += " (" + parts + ")";
    }
    return s.empty() ? "0" : s;
}

}  // namespace hv::bench
