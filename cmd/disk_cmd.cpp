// `hvaccel disk info`: the image checks a disk gets when it is opened, and what it holds.
#include "cmd/disk_cmd.hpp"

#include <cstdio>
#include <optional>
#include <string>

#include "cmd/options.hpp"
#include "core/base/error.hpp"
#include "core/storage/image.hpp"

int cmd_disk(int argc, char** argv)
{
    if (argc < 2)
        hv::fail("disk needs a subcommand: info FILE [--format raw|qcow2]");
    const std::string sub = argv[1];
    std::optional<hv::storage::Format> format;
    hv::cli::Options o;
    o.value("--format", [&](const std::string& v) { format = hv::storage::parse_format(v); });
    auto pos = o.parse(argc, argv, 2);
    if (sub != "info")
        hv::fail("unknown disk subcommand '{}' (info)", sub);
    if (pos.size() != 1)
        hv::fail("disk info needs exactly one FILE");
    auto img = hv::storage::open_image(pos[0], format);
    std::printf("%s: %s\n", pos[0].c_str(), img->describe().c_str());
    std::printf("allocated: %llu bytes\n", static_cast<unsigned long long>(img->allocated_bytes()));
    for (const hv::storage::Image* b = img->backing(); b; b = b->backing())
        std::printf("backing: %s\n", b->describe().c_str());
    return 0;
}
