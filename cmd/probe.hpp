// `hvaccel probe [--json] [--apic NAME] [--pin auto|LIST --vcpus N]`: the host profile, the
// errata that apply, and the APIC backend (and optionally the vCPU placement) a VM would get.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

// argv[0] is the command name ("probe"); options follow. Returns 0, 1 (probe failed) or 2
// (bad usage), printing one line to stderr for errors.
int cmd_probe(int argc, char** argv);

namespace hv::cli {

// The same, in-process: `args` excludes the command name. Used by cmd_probe and by tests.
int run_probe(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace hv::cli
