// JSON from outside the process (snapshot documents, control-socket requests), parsed with the
// limits nlohmann::json does not apply by itself.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace hv {

// Deeper than anything hvaccel writes (a snapshot nests six levels), shallow enough that every
// recursive walk of a value (dump, diff, comparison, destruction) stays far from the stack's end.
inline constexpr std::size_t kJsonMaxDepth = 32;

// Parses `text` as exactly one JSON value. Refused, with the reason in `why` and a discarded
// value returned: invalid JSON, nesting deeper than `max_depth` arrays and objects, and a NUL
// byte anywhere (the library would take a NUL as the end of the input and ignore what follows).
nlohmann::json parse_json(std::string_view text, std::string& why,
                          std::size_t max_depth = kJsonMaxDepth);

}  // namespace hv
