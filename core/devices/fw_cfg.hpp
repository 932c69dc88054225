// QEMU's fw_cfg interface on ports 0x510 (16-bit selector) and 0x511 (8-bit data), with QEMU's
// key numbers (docs/specs/fw_cfg.rst in QEMU): signature, ID, RAM size, CPU counts, the file
// directory and named files from key 0x20 on. Unknown keys, and reads past an item's end, read
// as zeros. DMA (ID bit 1) is not offered.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "core/bus/bus.hpp"

namespace hv::dev {

class FwCfg : public IoDevice {
  public:
    static constexpr std::uint16_t kPort = 0x510;
    static constexpr unsigned kPorts = 2;

    enum Key : std::uint16_t {
        kSignature = 0x00,
        kId = 0x01,
        kUuid = 0x02,
        kRamSize = 0x03,
        kNoGraphic = 0x04,
        kNbCpus = 0x05,
        kMaxCpus = 0x0f,
        kFileDir = 0x19,
        kFileFirst = 0x20,
    };
    static constexpr std::size_t kFileNameMax = 56;

    FwCfg(std::uint64_t ram_bytes, std::uint16_t cpus, std::uint16_t max_cpus);

    // Adds a named file (e.g. "opt/hvaccel/config"); returns its key. Throws on a too-long name
    // or a duplicate.
    std::uint16_t add_file(const std::string& name, std::vector<std::uint8_t> data);

    std::uint64_t read(std::uint64_t offset, unsigned size) override;
    void write(std::uint64_t offset, unsigned size, std::uint64_t value) override;

  private:
    void set_item(std::uint16_t key, std::vector<std::uint8_t> data);
    void rebuild_dir();

    std::mutex mu_;
    std::map<std::uint16_t, std::vector<std::uint8_t>> items_;
    std::vector<std::pair<std::string, std::uint16_t>> files_;
    std::uint16_t selector_ = 0;
    std::size_t offset_ = 0;
};

}  // namespace hv::dev
