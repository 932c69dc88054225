#include "cmd/demo.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "cmd/options.hpp"
#include "core/error.hpp"
#include "core/kvm/fd.hpp"
#include "core/vm.hpp"

// The demo guest, linked in by cmd/embed_guest.S.
extern "C" const unsigned char hv_demo_guest[];
extern "C" const unsigned char hv_demo_guest_end[];

namespace {

// The embedded image as a file the loader can open: a sealed memfd under /proc/self/fd.
hv::Fd image_memfd()
{
    hv::Fd fd(::memfd_create("hvaccel-demo-guest", MFD_CLOEXEC));
    if (!fd.valid())
        hv::throw_errno("memfd_create for the demo guest");
    auto size = static_cast<std::size_t>(hv_demo_guest_end - hv_demo_guest);
    if (::write(fd.get(), hv_demo_guest, size) != static_cast<ssize_t>(size))
        hv::throw_errno("writing the demo guest");
    return fd;
}

}  // namespace

int cmd_demo(int argc, char** argv)
{
    hv::VmConfig cfg;
    cfg.vcpus = 2;
    cfg.memory_mib = 64;
    hv::cli::Options o;
    o.value("--vcpus", [&](const std::string& v) {
        cfg.vcpus = static_cast<unsigned>(hv::cli::parse_uint(v, "--vcpus", 1, hv::kMaxVcpus));
    });
    auto pos = o.parse(argc, argv, 1);
    if (!pos.empty())
        hv::fail("demo takes no arguments (got '{}')", pos[0]);
    hv::Fd fd = image_memfd();
    cfg.image = "/proc/self/fd/" + std::to_string(fd.get());
    std::printf("hvaccel demo: booting the embedded guest on %u vCPUs, %llu MiB\n", cfg.vcpus,
                static_cast<unsigned long long>(cfg.memory_mib));
    std::fflush(stdout);
    hv::Vm vm(cfg);
    int status = vm.run();
    // The guest reports success as debug-exit value 0, i.e. status (0 << 1) | 1.
    bool ok = status == 1;
    std::fputs(vm.stats_report().c_str(), stdout);
    std::printf("hvaccel demo: guest %s (exit status %d)\n", ok ? "passed" : "FAILED", status);
    return ok ? 0 : 1;
}
