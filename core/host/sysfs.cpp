#include "core/host/sysfs.hpp"

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <system_error>

#include "core/base/error.hpp"

namespace hv::host {

fs::path under_root(const fs::path& root, std::string_view abs_path)
{
    std::string_view rel = abs_path;
    while (!rel.empty() && rel.front() == '/')
        rel.remove_prefix(1);
    return root / fs::path(rel);
}

std::string read_file(const fs::path& file, std::size_t max_bytes)
{
    std::ifstream in(file, std::ios::binary);
    if (!in)
        throw_errno(fmt::format("open {}", file.string()));
    std::string data;
    char buf[4096];
    while (in.read(buf, sizeof buf) || in.gcount() > 0) {
        data.append(buf, static_cast<std::size_t>(in.gcount()));
        if (data.size() > max_bytes)
            fail("read {}: larger than {} bytes, not a plausible sysfs/ACPI file", file.string(),
                 max_bytes);
    }
    if (in.bad())
        throw_errno(fmt::format("read {}", file.string()));
    return data;
}

std::optional<std::string> read_file_if_exists(const fs::path& file, std::size_t max_bytes)
{
    std::error_code ec;
    if (!fs::exists(file, ec))
        return std::nullopt;
    return read_file(file, max_bytes);
}

std::string_view trim(std::string_view s)
{
    constexpr std::string_view ws = " \t\r\n";
    const auto b = s.find_first_not_of(ws);
    if (b == std::string_view::npos)
        return {};
    const auto e = s.find_last_not_of(ws);
    return s.substr(b, e - b + 1);
}

std::uint64_t parse_hex_u64(std::string_view text, std::string_view what)
{
    std::string_view t = trim(text);
    if (t.size() > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X'))
        t.remove_prefix(2);
    if (t.empty())
        fail("{}: empty value, expected a hexadecimal number", what);
    if (t.size() > 16)
        fail("{}: '{}' is longer than 64 bits", what, t.substr(0, 40));
    std::uint64_t v = 0;
    for (char c : t) {
        unsigned d;
        if (c >= '0' && c <= '9')
            d = static_cast<unsigned>(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = static_cast<unsigned>(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            d = static_cast<unsigned>(c - 'A' + 10);
        else
            fail("{}: '{}' is not a hexadecimal number", what, t.substr(0, 40));
        v = (v << 4) | d;
    }
    return v;
}

std::optional<bool> parse_param_bool(std::string_view text)
{
    const std::string_view t = trim(text);
    if (t == "Y" || t == "y" || t == "1")
        return true;
    if (t == "N" || t == "n" || t == "0")
        return false;
    return std::nullopt;
}

std::vector<std::string> list_dir(const fs::path& dir)
{
    std::vector<std::string> names;
    std::error_code ec;
    fs::directory_iterator it(dir, ec);
    if (ec)
        return names;
    for (const auto& entry : it)
        names.push_back(entry.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
}

}  // namespace hv::host
