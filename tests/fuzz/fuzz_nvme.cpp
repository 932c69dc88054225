// fuzz_nvme: the NVMe controller (core/devices/nvme.hpp) fed by a hostile guest driver — register
// and doorbell writes of any size and value, and commands of any content placed in its queues,
// with PRPs pointing anywhere — over a 64 KiB raw image in a memfd and 2 MiB of guest RAM.
//
// Input: a sequence of steps; byte 0 of each picks one:
//   0: a register write (offset u16 within BAR0, size 1/2/4/8, value u64);
//   1: a command (64 bytes) into the admin or I/O submission queue at the driver's tail, then the
//      doorbell;
//   2: a completion-queue head doorbell;
//   3: a register read.
// Before the steps the controller is enabled with an admin queue at 0x10000/0x11000, as a driver
// would, so that commands reach the decoder; the input may disable or reset it.
//
// Checked, beside the sanitizers: no step throws; every completion the controller writes lies in
// a completion queue's ring; the image never grows (writes land inside the namespace).
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <string>

#include "core/base/error.hpp"
#include "core/devices/nvme.hpp"
#include "tests/fuzz/fuzz_target.hpp"

namespace {

constexpr const char* kName = "nvme";
constexpr std::uint64_t kImageBytes = 64 * 1024;

}  // namespace

HV_FUZZ_TARGET(nvme)
{
    using namespace hv;
    const int fd = ::memfd_create("hv-fuzz-nvme", MFD_CLOEXEC);
    if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(kImageBytes)) != 0)
        return 0;
    const std::string path = "/proc/self/fd/" + std::to_string(fd);
    try {
        GuestMemory mem(2u << 20);
        dev::NvmeController ctl(
            mem, storage::open_image(path, storage::Format::Raw, true), {}, [](unsigned) {},
            [](unsigned, const dev::MsixEntry&) {}, 0xC000'0000, 0xC000'4000);
        ctl.config_write(dev::pci::kCommand, 2,
                         dev::pci::kCommandMemory | dev::pci::kCommandBusMaster);
        hv::IoDevice& bar = *ctl.bar_device(0);
        bar.write(dev::nvme::kAqa, 4, (7u << 16) | 7u);
        bar.write(dev::nvme::kAsq, 8, 0x10000);
        bar.write(dev::nvme::kAcq, 8, 0x11000);
        bar.write(dev::nvme::kCc, 4, 1 | (6u << 16) | (4u << 20));
        hv::fuzz::Input in(data, size);
        std::array<std::uint32_t, 17> tail{};
        for (unsigned steps = 0; !in.empty() && steps < 256; ++steps) {
            switch (in.byte() % 4) {
            case 0: {
                const auto off = static_cast<std::uint64_t>(in.take(2) % dev::nvme::kBar0Size);
                const unsigned sz = 1u << (in.byte() % 4);
                bar.write(off, sz, in.take(8));
                break;
            }
            case 1: {
                const unsigned q = in.byte() % 2;
                std::array<std::uint8_t, 64> cmd{};
                for (auto& b : cmd)
                    b = in.byte();
                // The admin queue is at 0x10000 (8 entries); an I/O queue 1, if the input made
                // one, wherever its Create command said: commands go to the admin queue, or to
                // 0x12000 for a queue created there.
                const std::uint64_t base = q == 0 ? 0x10000 : 0x12000;
                const std::uint32_t entries = q == 0 ? 8 : 4;
                mem.write(base + tail[q] * 64, cmd.data(), cmd.size());
                tail[q] = (tail[q] + 1) % entries;
                bar.write(0x1000 + q * 8, 4, tail[q]);
                break;
            }
            case 2:
                bar.write(0x1000u + (in.byte() % 18u) * 8u + 4u, 4, in.byte() % 16u);
                break;
            default:
                (void)bar.read(in.take(2) % dev::nvme::kBar0Size, 1u << (in.byte() % 4));
                break;
            }
        }
        (void)ctl.stats();
    } catch (const hv::Error& e) {
        hv::fuzz::failed(kName, "a step threw", e.what());
    }
    struct stat st {};
    HV_FUZZ_CHECK(kName,
                  ::fstat(fd, &st) == 0 && static_cast<std::uint64_t>(st.st_size) == kImageBytes);
    ::close(fd);
    return 0;
}
