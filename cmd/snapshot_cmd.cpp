#include "cmd/snapshot_cmd.hpp"

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "cmd/options.hpp"
#include "cmd/session.hpp"
#include "core/base/error.hpp"
#include "core/snapshot/file.hpp"
#include "core/snapshot/state.hpp"
#include "core/vm/vm.hpp"

int cmd_restore(int argc, char** argv)
{
    hv::VmConfig cfg;
    hv::cli::SessionOptions session;
    hv::cli::Options o;
    std::uint64_t clock_offset = 0;
    bool allow_tsc = false, allow_jump = false;
    hv::cli::add_session_options(o, cfg, session);
    o.value("--clock-offset", [&](const std::string& v) {
        clock_offset = hv::cli::parse_uint(v, "--clock-offset", 0, 1ull << 62);
    });
    o.flag("--allow-tsc-mismatch", [&] { allow_tsc = true; });
    o.flag("--allow-clock-jump", [&] { allow_jump = true; });
    auto pos = o.parse(argc, argv, 1);
    if (pos.size() != 1)
        hv::fail("restore needs exactly one snapshot FILE (got {})", pos.size());
    // The whole file is read, checked and parsed before anything is created.
    hv::snapshot::Reader reader(pos[0]);
    hv::RestoreSource src{reader, hv::snapshot::from_json(reader), clock_offset, allow_tsc,
                          allow_jump};
    cfg.vcpus = src.state.machine.vcpus;
    cfg.memory_mib = src.state.machine.memory_mib;
    cfg.image = src.state.machine.image;
    if (const char* dev = std::getenv("HVACCEL_KVM_DEVICE"))
        cfg.kvm_path = dev;
    return hv::cli::run_session(session, [&] { return std::make_unique<hv::Vm>(cfg, &src); });
}

namespace {

// Shortened for a terminal line.
std::string brief(const nlohmann::json& v)
{
    std::string text = v.dump();
    if (text.size() > 100)
        text = text.substr(0, 97) + "...";
    return text;
}

// The document has passed snapshot::from_json: the required sections are well formed; an
// optional section unknown to this hvaccel is only known to be an object.
void print_inspect(const hv::snapshot::Reader& r)
{
    const auto& doc = r.doc();
    std::printf("snapshot %s: format %s\n", r.name().c_str(),
                doc["hvaccel"]["format"].get_ref<const std::string&>().c_str());
    for (const auto& [name, sec] : doc["sections"].items()) {
        auto version = sec.find("version");
        auto optional = sec.find("optional");
        std::printf("[%s] version %s%s\n", name.c_str(),
                    version != sec.end() ? brief(*version).c_str() : "?",
                    optional != sec.end() && *optional == true ? " (optional)" : "");
        auto data = sec.find("data");
        if (data == sec.end())
            continue;
        if (!data->is_object()) {
            std::printf("  %s\n", brief(*data).c_str());
            continue;
        }
        for (const auto& [k, v] : data->items())
            std::printf("  %s = %s\n", k.c_str(), brief(v).c_str());
    }
}

}  // namespace

int cmd_snapshot(int argc, char** argv)
{
    if (argc < 2)
        hv::fail("snapshot needs a subcommand: inspect FILE [--json] | diff A B");
    std::string sub = argv[1];
    hv::cli::Options o;
    bool json = false;
    o.flag("--json", [&] { json = true; });
    auto pos = o.parse(argc, argv, 2);
    if (sub == "inspect") {
        if (pos.size() != 1)
            hv::fail("snapshot inspect needs exactly one FILE");
        hv::snapshot::Reader r(pos[0]);
        hv::snapshot::from_json(r);  // validates every section
        if (json)
            std::printf("%s\n", r.doc().dump(2).c_str());
        else
            print_inspect(r);
        return 0;
    }
    if (sub == "diff") {
        if (pos.size() != 2)
            hv::fail("snapshot diff needs two FILEs");
        hv::snapshot::Reader a(pos[0]), b(pos[1]);
        hv::snapshot::from_json(a);  // both validated: the sections below are well formed
        hv::snapshot::from_json(b);
        auto d = hv::snapshot::diff(a.doc()["sections"], b.doc()["sections"]);
        for (const auto& line : d)
            std::printf("%s\n", line.c_str());
        std::printf("%zu difference(s)\n", d.size());
        return d.empty() ? 0 : 1;
    }
    hv::fail("unknown snapshot subcommand '{}' (inspect, diff)", sub);
}
