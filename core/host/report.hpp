// Human and machine renderings of a host profile, for `hvaccel probe [--json]`.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "core/host/backend.hpp"
#include "core/host/profile.hpp"

namespace hv::host {

// 64-bit register values are rendered as "0x..." strings: JSON numbers lose precision above
// 2^53 in most readers.
nlohmann::json profile_to_json(const HostProfile& profile, const BackendChoice& auto_choice);
std::string profile_to_text(const HostProfile& profile, const BackendChoice& auto_choice);

}  // namespace hv::host
