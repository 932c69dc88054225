#include "core/host/topology.hpp"

#include <algorithm>
#include <charconv>

#include <hwloc.h>

#include "core/base/error.hpp"
#include "core/host/sysfs.hpp"

namespace hv::host {

namespace {

// Owns a loaded hwloc topology.
class Hwloc {
  public:
    Hwloc()
    {
        if (hwloc_topology_init(&t_) != 0)
            throw_errno("hwloc_topology_init");
    }
    ~Hwloc() { hwloc_topology_destroy(t_); }
    Hwloc(const Hwloc&) = delete;
    Hwloc& operator=(const Hwloc&) = delete;
    hwloc_topology_t get() const { return t_; }
    void load()
    {
        if (hwloc_topology_load(t_) != 0)
            throw_errno("hwloc_topology_load");
    }

  private:
    hwloc_topology_t t_ = nullptr;
};

std::string_view cache_kind(hwloc_obj_cache_type_t t)
{
    switch (t) {
    case HWLOC_OBJ_CACHE_DATA:
        return "data";
    case HWLOC_OBJ_CACHE_INSTRUCTION:
        return "instruction";
    case HWLOC_OBJ_CACHE_UNIFIED:
        return "unified";
    }
    return "unified";
}

void collect_caches(hwloc_topology_t t, Topology& out)
{
    for (int d = 0; d < hwloc_topology_get_depth(t); ++d) {
        const hwloc_obj_type_t type = hwloc_get_depth_type(t, d);
        if (!hwloc_obj_type_is_cache(type))
            continue;
        const hwloc_obj_t first = hwloc_get_obj_by_depth(t, d, 0);
        if (first == nullptr || first->attr == nullptr)
            continue;
        HostCache c;
        c.level = first->attr->cache.depth;
        c.kind = std::string(cache_kind(first->attr->cache.type));
        c.size = first->attr->cache.size;
        c.count = hwloc_get_nbobjs_by_depth(t, d);
        c.pus_per_instance =
            first->cpuset ? static_cast<unsigned>(std::max(0, hwloc_bitmap_weight(first->cpuset)))
                          : 0;
        out.caches.push_back(c);
    }
    std::sort(out.caches.begin(), out.caches.end(), [](const HostCache& a, const HostCache& b) {
        return a.level != b.level ? a.level < b.level : a.kind < b.kind;
    });
}

Topology collect(hwloc_topology_t t, std::string source)
{
    Topology out;
    out.source = std::move(source);
    out.packages =
        static_cast<unsigned>(std::max(0, hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_PACKAGE)));
    out.cores = static_cast<unsigned>(std::max(0, hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_CORE)));
    out.pus = static_cast<unsigned>(std::max(0, hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_PU)));

    std::vector<hwloc_obj_t> nodes;
    for (hwloc_obj_t n = nullptr; (n = hwloc_get_next_obj_by_type(t, HWLOC_OBJ_NUMANODE, n));) {
        nodes.push_back(n);
        out.numa_nodes.push_back(n->os_index);
    }
    for (hwloc_obj_t pu = nullptr; (pu = hwloc_get_next_obj_by_type(t, HWLOC_OBJ_PU, pu));) {
        HostPu p;
        p.os_index = pu->os_index;
        if (hwloc_obj_t core = hwloc_get_ancestor_obj_by_type(t, HWLOC_OBJ_CORE, pu)) {
            p.core = core->logical_index;
            // Rank among the core's PUs in OS-index order, independent of child layout.
            unsigned rank = 0;
            for (int i = hwloc_bitmap_first(core->cpuset);
                 i >= 0 && static_cast<unsigned>(i) < p.os_index;
                 i = hwloc_bitmap_next(core->cpuset, i))
                ++rank;
            p.thread = rank;
        } else {
            p.core = pu->logical_index;  // no core level: every PU is its own core
        }
        if (hwloc_obj_t pkg = hwloc_get_ancestor_obj_by_type(t, HWLOC_OBJ_PACKAGE, pu))
            p.package = pkg->logical_index;
        for (hwloc_obj_t n : nodes)
            if (n->cpuset && hwloc_bitmap_isset(n->cpuset, pu->os_index))
                p.numa_node = static_cast<int>(n->os_index);
        out.pu_list.push_back(p);
    }
    if (out.cores == 0)
        out.cores = out.pus;
    std::sort(out.pu_list.begin(), out.pu_list.end(),
              [](const HostPu& a, const HostPu& b) { return a.os_index < b.os_index; });
    collect_caches(t, out);
    return out;
}

}  // namespace

const HostPu* Topology::find_pu(unsigned os_index) const
{
    for (const auto& p : pu_list)
        if (p.os_index == os_index)
            return &p;
    return nullptr;
}

Topology read_topology()
{
    Hwloc h;
    h.load();
    return collect(h.get(), "hwloc (this host)");
}

Topology read_topology_synthetic(std::string_view description)
{
    Hwloc h;
    const std::string desc(description);
    if (hwloc_topology_set_synthetic(h.get(), desc.c_str()) != 0)
        fail("hwloc: invalid synthetic topology '{}'", desc);
    h.load();
    return collect(h.get(), fmt::format("hwloc synthetic '{}'", desc));
}

std::map<unsigned, std::uint32_t> parse_cpuinfo_apic_ids(std::string_view cpuinfo)
{
    std::map<unsigned, std::uint32_t> ids;
    std::optional<unsigned> cpu;
    const auto value_of = [](std::string_view line) -> std::optional<std::uint32_t> {
        const auto colon = line.find(':');
        if (colon == std::string_view::npos)
            return std::nullopt;
        const std::string_view v = trim(line.substr(colon + 1));
        std::uint32_t n = 0;
        const auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
        if (ec != std::errc() || p != v.data() + v.size())
            return std::nullopt;
        return n;
    };
    while (!cpuinfo.empty()) {
        const auto nl = cpuinfo.find('\n');
        const std::string_view line = cpuinfo.substr(0, nl);
        cpuinfo = nl == std::string_view::npos ? std::string_view{} : cpuinfo.substr(nl + 1);
        const std::string_view key = trim(line.substr(0, line.find(':')));
        if (key == "processor")
            cpu = value_of(line);
        else if (key == "apicid" && cpu)
            if (auto id = value_of(line))
                ids[*cpu] = *id;
    }
    return ids;
}

std::map<unsigned, std::uint32_t> read_apic_ids(const std::filesystem::path& root)
{
    try {
        if (auto text = read_file_if_exists(under_root(root, "/proc/cpuinfo"), 16 << 20))
            return parse_cpuinfo_apic_ids(*text);
    } catch (const hv::Error&) {
        // cpuinfo is optional decoration; placement works without APIC IDs.
    }
    return {};
}

}  // namespace hv::host
