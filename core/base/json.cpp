#include "core/base/json.hpp"

#include <fmt/format.h>

namespace hv {

namespace {

// The nesting depth is found by a linear scan before the library parses anything: its value
// tree, and every recursive walk of it, then never gets deeper than the bound.
bool scan(std::string_view text, std::size_t max_depth, std::string& why)
{
    std::size_t depth = 0;
    bool in_string = false, escaped = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '\0') {
            why = fmt::format("a NUL byte at offset {}", i);
            return false;
        }
        if (in_string) {
            if (escaped)
                escaped = false;
            else if (c == '\\')
                escaped = true;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            if (++depth > max_depth) {
                why = fmt::format("nested deeper than {} levels", max_depth);
                return false;
            }
        } else if ((c == '}' || c == ']') && depth > 0) {
            --depth;
        }
    }
    return true;
}

}  // namespace

nlohmann::json parse_json(std::string_view text, std::string& why, std::size_t max_depth)
{
    why.clear();
    if (!scan(text, max_depth, why))
        return nlohmann::json::value_t::discarded;
    nlohmann::json j = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
    if (j.is_discarded())
        why = "not valid JSON";
    return j;
}

}  // namespace hv
