// Pin plans from topologies (synthetic hwloc descriptions) and pinning the calling thread.
#include <gtest/gtest.h>

#include <sched.h>

#include <thread>

#include "core/base/error.hpp"
#include "core/host/placement.hpp"
#include "core/host/topology.hpp"

namespace hv::host {
namespace {

std::vector<unsigned> cpus_of(const PinPlan& p)
{
    std::vector<unsigned> v;
    for (const auto& e : p.entries)
        v.push_back(e.host_cpu);
    return v;
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

TEST(Topology, SyntheticCountsAndCaches)
{
    const Topology t = read_topology_synthetic("pack:2 l3:1 core:4 l1d:1 pu:2");
    EXPECT_EQ(t.packages, 2u);
    EXPECT_EQ(t.cores, 8u);
    EXPECT_EQ(t.pus, 16u);
    ASSERT_EQ(t.pu_list.size(), 16u);
    // hwloc numbers PUs depth-first: cpu 0 and 1 are the two threads of core 0.
    EXPECT_EQ(t.pu_list[0].core, t.pu_list[1].core);
    EXPECT_EQ(t.pu_list[0].thread, 0u);
    EXPECT_EQ(t.pu_list[1].thread, 1u);
    EXPECT_EQ(t.pu_list[8].package, 1u);
    ASSERT_EQ(t.caches.size(), 2u);
    EXPECT_EQ(t.caches[0].level, 1u);
    EXPECT_EQ(t.caches[0].count, 8u);
    EXPECT_EQ(t.caches[1].level, 3u);
    EXPECT_EQ(t.caches[1].pus_per_instance, 8u);
    EXPECT_THROW(read_topology_synthetic("pack:banana"), hv::Error);
}

TEST(ParsePin, Syntax)
{
    EXPECT_EQ(parse_pin("none").mode, PinRequest::Mode::None);
    EXPECT_EQ(parse_pin("").mode, PinRequest::Mode::None);
    EXPECT_EQ(parse_pin("auto").mode, PinRequest::Mode::Auto);
    EXPECT_EQ(parse_pin("0,1").cpus, (std::vector<unsigned>{0, 1}));
    EXPECT_EQ(parse_pin("0-3").cpus, (std::vector<unsigned>{0, 1, 2, 3}));
    EXPECT_EQ(parse_pin("4,0-1").cpus, (std::vector<unsigned>{4, 0, 1}));
    EXPECT_EQ(error_text([] { parse_pin("0,,1"); }), "--pin: '' in '0,,1' is not a CPU number");
    EXPECT_EQ(error_text([] { parse_pin("3-1"); }), "--pin: range '3-1' in '3-1' runs backwards");
    EXPECT_EQ(error_text([] { parse_pin("x"); }), "--pin: 'x' in 'x' is not a CPU number");
    EXPECT_EQ(error_text([] { parse_pin("0-4000000000"); }),
              "--pin: CPU 4000000000 in '0-4000000000' is out of range");
    EXPECT_EQ(error_text([] { parse_pin("-1"); }), "--pin: '' in '-1' is not a CPU number");
}

TEST(PinPlan, AutoOneVcpuPerCoreFirst)
{
    const Topology t = read_topology_synthetic("pack:1 core:4 pu:2");
    const PinPlan four = make_pin_plan(t, 4, parse_pin("auto"));
    EXPECT_EQ(cpus_of(four), (std::vector<unsigned>{0, 2, 4, 6}));
    for (const auto& e : four.entries)
        EXPECT_EQ(e.thread, 0u);
    EXPECT_NE(four.summary.find("one vCPU per core"), std::string::npos) << four.summary;

    const PinPlan six = make_pin_plan(t, 6, parse_pin("auto"));
    EXPECT_EQ(cpus_of(six), (std::vector<unsigned>{0, 2, 4, 6, 1, 3}));
    EXPECT_NE(six.summary.find("cores then sibling threads"), std::string::npos);
}

TEST(PinPlan, AutoPrefersTheGuestMemoryNode)
{
    // Two NUMA nodes of 2 cores x 2 threads: cpus 0-3 on node 0, 4-7 on node 1.
    const Topology t = read_topology_synthetic("numa:2 core:2 pu:2");
    ASSERT_EQ(t.numa_nodes.size(), 2u);
    EXPECT_EQ(cpus_of(make_pin_plan(t, 2, parse_pin("auto"), 1)), (std::vector<unsigned>{4, 6}));
    // Node-local siblings come before the far node's cores.
    EXPECT_EQ(cpus_of(make_pin_plan(t, 4, parse_pin("auto"), 1)),
              (std::vector<unsigned>{4, 6, 5, 7}));
    EXPECT_EQ(cpus_of(make_pin_plan(t, 5, parse_pin("auto"), 1)),
              (std::vector<unsigned>{4, 6, 5, 7, 0}));
    // Without a memory node, the first node is home.
    const PinPlan p = make_pin_plan(t, 2, parse_pin("auto"));
    EXPECT_EQ(cpus_of(p), (std::vector<unsigned>{0, 2}));
    EXPECT_NE(p.summary.find("NUMA node 0 first"), std::string::npos);
}

TEST(PinPlan, ExplicitListsAreValidated)
{
    const Topology t = read_topology_synthetic("pack:1 core:2 pu:1");
    const PinPlan p = make_pin_plan(t, 2, parse_pin("1,0"));
    EXPECT_EQ(cpus_of(p), (std::vector<unsigned>{1, 0}));
    EXPECT_EQ(p.entries[0].vcpu, 0u);
    EXPECT_EQ(error_text([&] { make_pin_plan(t, 2, parse_pin("0,5")); }),
              "--pin: host CPU 5 is not online (online CPUs: 0,1)");
    EXPECT_EQ(error_text([&] { make_pin_plan(t, 2, parse_pin("1,1")); }),
              "--pin: host CPU 1 listed twice");
    EXPECT_EQ(error_text([&] { make_pin_plan(t, 2, parse_pin("0-1,0")); }),
              "--pin: 3 host CPUs listed for 2 vCPUs; give exactly one per vCPU");
    EXPECT_EQ(error_text([&] { make_pin_plan(t, 3, parse_pin("auto")); }),
              "--pin auto: 3 vCPUs but only 2 online host CPUs; use fewer vCPUs or no pinning");
    EXPECT_TRUE(make_pin_plan(t, 8, parse_pin("none")).entries.empty());
}

TEST(PinPlan, EntriesCarryHostApicIds)
{
    Topology t = read_topology_synthetic("pack:1 core:2 pu:1");
    t.pu_list[1].apic_id = 6;
    const PinPlan p = make_pin_plan(t, 2, parse_pin("auto"));
    EXPECT_FALSE(p.entries[0].host_apic_id);
    EXPECT_EQ(p.entries[1].host_apic_id, 6u);
}

TEST(PinThread, PinsTheCallingThread)
{
    const Topology live = read_topology();
    ASSERT_FALSE(live.pu_list.empty());
    const unsigned target = live.pu_list.back().os_index;
    int ran_on = -1;
    std::thread th([&] {
        pin_current_thread({0, target, 0, 0, 0, -1, std::nullopt});
        ran_on = sched_getcpu();
    });
    th.join();
    EXPECT_EQ(ran_on, static_cast<int>(target));

    std::string err;
    std::thread bad([&] {
        err = error_text([] { pin_current_thread({3, 1000, 0, 0, 0, -1, std::nullopt}); });
    });
    bad.join();
    EXPECT_EQ(err, "pin vCPU 3 to host CPU 1000 (pthread_setaffinity_np): Invalid argument");
}

}  // namespace
}  // namespace hv::host
