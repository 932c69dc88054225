// Small, defensive readers for sysfs and procfs files.
//
// Everything hvaccel learns about the host from the file system goes through these helpers, and
// every path is resolved under a caller-supplied root directory so that tests can point the
// readers at fixture trees (tests/host/fixtures/...). Files are read with a size limit: sysfs
// attributes are at most a page, ACPI tables a few KiB; anything larger is treated as garbage.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hv::host {

namespace fs = std::filesystem;

// Joins an absolute host path ("/sys/module") onto root ("/" or a fixture directory).
fs::path under_root(const fs::path& root, std::string_view abs_path);

// Reads a whole file. Throws hv::Error naming the file on failure or when it exceeds max_bytes.
std::string read_file(const fs::path& file, std::size_t max_bytes = 64 * 1024);

// Like read_file, but returns nullopt when the file does not exist.
std::optional<std::string> read_file_if_exists(const fs::path& file,
                                               std::size_t max_bytes = 64 * 1024);

// Strips surrounding ASCII white space (sysfs attributes end with '\n').
std::string_view trim(std::string_view s);

// Parses a hexadecimal number as sysfs prints it ("d2008c40660462", optional "0x").
// Throws hv::Error quoting `what` and the offending text on anything else.
std::uint64_t parse_hex_u64(std::string_view text, std::string_view what);

// Parses a module parameter that the kernel prints as a boolean: "Y"/"N" (bool params) or
// "1"/"0" (older int params). Returns nullopt for anything else (e.g. "-1" for "auto").
std::optional<bool> parse_param_bool(std::string_view text);

// Names of the entries of a directory, sorted; empty when it does not exist.
std::vector<std::string> list_dir(const fs::path& dir);

}  // namespace hv::host
