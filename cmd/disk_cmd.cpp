// `hvaccel disk info`: the image checks a disk gets when it is opened, and what it holds;
// `hvaccel disk snapshot`: a QCOW2 image's internal snapshots, as `qemu-img snapshot` keeps them.
#include "cmd/disk_cmd.hpp"

#include <cstdio>
#include <ctime>
#include <optional>
#include <string>
#include <vector>

#include "cmd/options.hpp"
#include "core/base/error.hpp"
#include "core/storage/image.hpp"

namespace {

int disk_snapshot(const std::vector<std::string>& pos)
{
    // snapshot FILE list | snapshot FILE create|apply|delete NAME
    if (pos.size() < 2)
        hv::fail("disk snapshot needs FILE and list, create NAME, apply NAME or delete NAME");
    const std::string& file = pos[0];
    const std::string& op = pos[1];
    if (op == "list") {
        if (pos.size() != 2)
            hv::fail("disk snapshot FILE list takes nothing more");
        std::printf("%-6s %-24s %12s %s\n", "ID", "TAG", "VM SIZE", "DATE");
        for (const auto& s : hv::storage::list_disk_snapshots(file)) {
            const std::time_t t = s.date_sec;
            char date[32] = "";
            std::strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S", std::localtime(&t));
            std::printf("%-6s %-24s %12u %s\n", s.id.c_str(), s.name.c_str(), s.vm_state_size,
                        date);
        }
        return 0;
    }
    if (pos.size() != 3)
        hv::fail("disk snapshot FILE {} needs exactly one NAME", op);
    if (op == "create")
        hv::storage::create_disk_snapshot(file, pos[2]);
    else if (op == "apply")
        hv::storage::apply_disk_snapshot(file, pos[2]);
    else if (op == "delete")
        hv::storage::delete_disk_snapshot(file, pos[2]);
    else
        hv::fail("unknown disk snapshot operation '{}' (list, create, apply, delete)", op);
    return 0;
}

}  // namespace

int cmd_disk(int argc, char** argv)
{
    if (argc < 2)
        hv::fail("disk needs a subcommand: info FILE [--format raw|qcow2] | snapshot FILE ...");
    const std::string sub = argv[1];
    std::optional<hv::storage::Format> format;
    hv::cli::Options o;
    o.value("--format", [&](const std::string& v) { format = hv::storage::parse_format(v); });
    auto pos = o.parse(argc, argv, 2);
    if (sub == "snapshot")
        return disk_snapshot(pos);
    if (sub != "info")
        hv::fail("unknown disk subcommand '{}' (info, snapshot)", sub);
    if (pos.size() != 1)
        hv::fail("disk info needs exactly one FILE");
    auto img = hv::storage::open_image(pos[0], format);
    std::printf("%s: %s\n", pos[0].c_str(), img->describe().c_str());
    std::printf("allocated: %llu bytes\n", static_cast<unsigned long long>(img->allocated_bytes()));
    for (const hv::storage::Image* b = img->backing(); b; b = b->backing())
        std::printf("backing: %s\n", b->describe().c_str());
    return 0;
}
