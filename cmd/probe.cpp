#include "cmd/probe.hpp"

#include <charconv>
#include <iostream>
#include <optional>

#include <fmt/format.h>

#include "core/base/error.hpp"
#include "core/host/backend.hpp"
#include "core/host/placement.hpp"
#include "core/host/profile.hpp"
#include "core/host/report.hpp"

namespace hv::cli {

namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitBadUsage = 2;

constexpr const char* kProbeUsage =
    "usage: hvaccel probe [--json] [--apic auto|kernel|apicv|avic|emulated]\n"
    "                     [--pin auto|LIST --vcpus N]\n";

struct ProbeArgs {
    bool json = false;
    bool help = false;
    std::string apic = "auto";
    std::optional<std::string> pin;
    unsigned vcpus = 1;
};

// Accepts "--name VALUE" and "--name=VALUE". Throws hv::Error with one line on bad usage.
ProbeArgs parse_args(const std::vector<std::string>& args)
{
    ProbeArgs a;
    for (std::size_t i = 0; i < args.size(); ++i) {
        std::string name = args[i];
        std::optional<std::string> value;
        if (const auto eq = name.find('='); name.rfind("--", 0) == 0 && eq != std::string::npos) {
            value = name.substr(eq + 1);
            name.resize(eq);
        }
        const auto take = [&]() -> std::string {
            if (value)
                return *value;
            if (i + 1 >= args.size())
                fail("probe: option {} needs a value", name);
            return args[++i];
        };
        if (name == "--json" && !value) {
            a.json = true;
        } else if ((name == "--help" || name == "-h") && !value) {
            a.help = true;
        } else if (name == "--apic") {
            a.apic = take();
        } else if (name == "--pin") {
            a.pin = take();
        } else if (name == "--vcpus") {
            const std::string v = take();
            unsigned n = 0;
            const auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
            if (v.empty() || ec != std::errc() || p != v.data() + v.size() || n == 0 || n > 4096)
                fail("probe: --vcpus '{}' is not a number between 1 and 4096", v);
            a.vcpus = n;
        } else if (name.rfind("-", 0) == 0) {
            fail("probe: unknown option '{}' (see hvaccel probe --help)", args[i]);
        } else {
            fail("probe: unexpected argument '{}' (see hvaccel probe --help)", args[i]);
        }
    }
    return a;
}

nlohmann::json pin_json(const host::PinPlan& plan)
{
    nlohmann::json entries = nlohmann::json::array();
    for (const auto& e : plan.entries)
        entries.push_back({{"vcpu", e.vcpu},
                           {"host_cpu", e.host_cpu},
                           {"core", e.core},
                           {"thread", e.thread},
                           {"numa_node", e.numa_node},
                           {"host_apic_id", e.host_apic_id ? nlohmann::json(*e.host_apic_id)
                                                           : nlohmann::json(nullptr)}});
    return {{"summary", plan.summary}, {"entries", entries}};
}

}  // namespace

int run_probe(const std::vector<std::string>& args, std::ostream& out, std::ostream& err)
{
    ProbeArgs a;
    try {
        a = parse_args(args);
    } catch (const std::exception& e) {
        err << "hvaccel: " << e.what() << '\n';
        return kExitBadUsage;
    }
    if (a.help) {
        out << kProbeUsage;
        return kExitOk;
    }
    if (a.apic != host::kAutoBackend && !host::is_backend_name(a.apic)) {
        err << "hvaccel: probe: unknown APIC backend '" << a.apic
            << "' (expected auto, kernel, apicv, avic or emulated)\n";
        return kExitBadUsage;
    }
    try {
        const host::HostProfile profile = host::probe_host();
        const host::BackendChoice auto_choice = host::choose_backend(profile, host::kAutoBackend);
        std::optional<host::BackendChoice> requested;
        if (a.apic != host::kAutoBackend)
            requested = host::choose_backend(profile, a.apic);
        std::optional<host::PinPlan> plan;
        if (a.pin)
            plan = host::make_pin_plan(profile.topology, a.vcpus, host::parse_pin(*a.pin));
        if (a.json) {
            nlohmann::json j = host::profile_to_json(profile, auto_choice);
            if (requested)
                j["apic_requested"] = {{"name", a.apic},
                                       {"refused", requested->refused},
                                       {"backend", requested->backend},
                                       {"reason", requested->reason},
                                       {"errata_applied", requested->errata_applied},
                                       {"notes", requested->notes}};
            if (plan)
                j["pin"] = pin_json(*plan);
            out << j.dump(2) << '\n';
        } else {
            std::string text = host::profile_to_text(profile, auto_choice);
            if (requested) {
                text += fmt::format("APIC backend for --apic {}\n  {}{}\n", a.apic,
                                    requested->refused ? "refused: " : "", requested->reason);
                for (const auto& id : requested->errata_applied)
                    text += fmt::format("  erratum applied: {}\n", id);
                for (const auto& n : requested->notes)
                    text += fmt::format("  note: {}\n", n);
            }
            if (plan)
                text += fmt::format("Placement for --pin {} with {} vCPU(s)\n  {}\n", *a.pin,
                                    a.vcpus, plan->summary);
            out << text;
        }
        // A refused explicit request answers the question asked, but scripts want to know.
        return requested && requested->refused ? kExitFailed : kExitOk;
    } catch (const std::exception& e) {
        err << "hvaccel: probe: " << e.what() << '\n';
        return kExitFailed;
    }
}

}  // namespace hv::cli

int cmd_probe(int argc, char** argv)
{
    std::vector<std::string> args;
    for (int i = 1; i < argc; ++i)
        args.emplace_back(argv[i]);
    return hv::cli::run_probe(args, std::cout, std::cerr);
}
