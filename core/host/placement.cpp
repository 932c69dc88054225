#include "core/host/placement.hpp"

#include <algorithm>
#include <charconv>
#include <set>
#include <tuple>

#include <pthread.h>
#include <sched.h>

#include "core/base/error.hpp"
#include "core/host/sysfs.hpp"

namespace hv::host {

namespace {

constexpr unsigned kMaxCpu = 1u << 16;  // far beyond any host; stops "0-4000000000"

unsigned parse_cpu(std::string_view s, std::string_view whole)
{
    unsigned v = 0;
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || p != s.data() + s.size())
        fail("--pin: '{}' in '{}' is not a CPU number", s, whole);
    if (v >= kMaxCpu)
        fail("--pin: CPU {} in '{}' is out of range", v, whole);
    return v;
}

PinEntry entry_for(unsigned vcpu, const HostPu& pu)
{
    return {vcpu, pu.os_index, pu.core, pu.thread, pu.package, pu.numa_node, pu.apic_id};
}

std::string cpus_text(const std::vector<PinEntry>& e)
{
    std::string s;
    for (const auto& x : e)
        s += fmt::format("{}{}", s.empty() ? "" : ",", x.host_cpu);
    return s;
}

}  // namespace

PinRequest parse_pin(std::string_view text)
{
    const std::string_view t = trim(text);
    PinRequest r;
    if (t.empty() || t == "none")
        return r;
    if (t == "auto") {
        r.mode = PinRequest::Mode::Auto;
        return r;
    }
    r.mode = PinRequest::Mode::List;
    std::string_view rest = t;
    while (true) {
        const auto comma = rest.find(',');
        const std::string_view item = rest.substr(0, comma);
        const auto dash = item.find('-');
        if (dash == std::string_view::npos) {
            r.cpus.push_back(parse_cpu(item, t));
        } else {
            const unsigned lo = parse_cpu(item.substr(0, dash), t);
            const unsigned hi = parse_cpu(item.substr(dash + 1), t);
            if (hi < lo)
                fail("--pin: range '{}' in '{}' runs backwards", item, t);
            for (unsigned c = lo; c <= hi; ++c)
                r.cpus.push_back(c);
        }
        if (comma == std::string_view::npos)
            break;
        rest = rest.substr(comma + 1);
    }
    return r;
}

PinPlan make_pin_plan(const Topology& topo, unsigned vcpus, const PinRequest& req,
                      std::optional<int> memory_node)
{
    PinPlan plan;
    if (req.mode == PinRequest::Mode::None) {
        plan.summary = "not pinned";
        return plan;
    }
    if (req.mode == PinRequest::Mode::List) {
        if (req.cpus.size() != vcpus)
            fail("--pin: {} host CPUs listed for {} vCPUs; give exactly one per vCPU",
                 req.cpus.size(), vcpus);
        std::set<unsigned> seen;
        for (unsigned i = 0; i < vcpus; ++i) {
            const unsigned cpu = req.cpus[i];
            if (!seen.insert(cpu).second)
                fail("--pin: host CPU {} listed twice", cpu);
            const HostPu* pu = topo.find_pu(cpu);
            if (pu == nullptr)
                fail("--pin: host CPU {} is not online (online CPUs: {})", cpu, [&] {
                    std::string s;
                    for (const auto& p : topo.pu_list)
                        s += fmt::format("{}{}", s.empty() ? "" : ",", p.os_index);
                    return s;
                }());
            plan.entries.push_back(entry_for(i, *pu));
        }
        plan.summary =
            fmt::format("pinned as listed: vCPU i -> host CPU [{}]", cpus_text(plan.entries));
        return plan;
    }

    // Mode::Auto.
    if (vcpus > topo.pu_list.size())
        fail("--pin auto: {} vCPUs but only {} online host CPUs; use fewer vCPUs or no pinning",
             vcpus, topo.pu_list.size());
    const bool numa = topo.numa_nodes.size() > 1;
    int home = memory_node.value_or(-1);
    if (numa && home < 0 && !topo.pu_list.empty())
        home = topo.pu_list.front().numa_node;
    std::vector<HostPu> order = topo.pu_list;
    // Home node first (guest memory is local there), then first threads of every core before
    // any sibling thread, then by package/core so consecutive vCPUs share caches.
    std::stable_sort(order.begin(), order.end(), [&](const HostPu& a, const HostPu& b) {
        const bool a_far = numa && a.numa_node != home;
        const bool b_far = numa && b.numa_node != home;
        return std::tie(a_far, a.thread, a.numa_node, a.package, a.core, a.os_index) <
               std::tie(b_far, b.thread, b.numa_node, b.package, b.core, b.os_index);
    });
    for (unsigned i = 0; i < vcpus; ++i)
        plan.entries.push_back(entry_for(i, order[i]));
    const bool siblings = std::any_of(plan.entries.begin(), plan.entries.end(),
                                      [](const PinEntry& e) { return e.thread != 0; });
    plan.summary = fmt::format("pinned auto: host CPUs [{}], {}{}", cpus_text(plan.entries),
                               siblings ? "cores then sibling threads" : "one vCPU per core",
                               numa ? fmt::format(", NUMA node {} first", home) : "");
    return plan;
}

void pin_current_thread(const PinEntry& entry)
{
    if (entry.host_cpu >= CPU_SETSIZE)
        fail("pin vCPU {}: host CPU {} is beyond CPU_SETSIZE", entry.vcpu, entry.host_cpu);
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(entry.host_cpu, &set);
    const int rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    if (rc != 0)
        throw_errno(fmt::format("pin vCPU {} to host CPU {} (pthread_setaffinity_np)", entry.vcpu,
                                entry.host_cpu),
                    rc);
}

}  // namespace hv::host
