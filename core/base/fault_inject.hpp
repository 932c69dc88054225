// Test-only fault injection (docs/reliability.md "Fault injection"). HV_FAULT_INJECT names the
// faults to inject, comma-separated, and is read once per process:
//   snapshot_write_short   every write(2) of a snapshot moves at most 4 KiB (a correct writer
//                          loops: the snapshot must still come out whole)
//   snapshot_write_eio     the snapshot's data writes fail with EIO after its first 64 KiB
//   snapshot_fsync_eio     the fsync of the temporary file fails with EIO
//   snapshot_rename_eio    the rename over the target fails with EIO
//   vcpu_throw=N           vCPU N's run loop throws after its first handled exit
//   disk_exit_after=N      the process ends (_exit, as if killed) just before the Nth pwrite()
//                          to a disk image, so every prefix of an image update can be checked
// Unset (the normal case), every check is one load of a cached flag.
#pragma once

#include <algorithm>
#include <cstdlib>
#include <string>
#include <string_view>

namespace hv {

// The value of fault `name` in a spec "a,b=2,...": "" when absent, "1" for a bare name.
inline std::string fault_value_in(std::string_view spec, std::string_view name)
{
    while (!spec.empty()) {
        std::string_view item = spec.substr(0, spec.find(','));
        spec.remove_prefix(std::min(spec.size(), item.size() + 1));
        std::string_view key = item.substr(0, item.find('='));
        if (!key.empty() && key == name)
            return key.size() == item.size() ? "1" : std::string(item.substr(key.size() + 1));
    }
    return {};
}

// The value of fault `name` in this process's HV_FAULT_INJECT (read once).
inline std::string fault_value(std::string_view name)
{
    static const std::string spec = [] {
        const char* v = std::getenv("HV_FAULT_INJECT");
        return std::string(v ? v : "");
    }();
    return spec.empty() ? std::string() : fault_value_in(spec, name);
}

inline bool fault_injected(std::string_view name)
{
    return !fault_value(name).empty();
}

}  // namespace hv
