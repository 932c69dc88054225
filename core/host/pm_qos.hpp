// An RAII hold on the CPU DMA latency PM QoS request (/dev/cpu_dma_latency).
//
// While the file stays open with a 0 µs latency written to it, the kernel's cpuidle governors
// keep every CPU out of deep C-states (Documentation/power/pm_qos_interface.rst). That is the
// opt-in workaround for early Ryzen idle lockups (bugzilla 196683) and a way to keep the host
// out of C6 on parts with the BDX99/SKX100/CLX30 erratum. Closing the file drops the request.
#pragma once

#include <cstdint>
#include <filesystem>

namespace hv::host {

class PmQosHold {
  public:
    // Opens `device`, writes `latency_us` as a binary int32 and keeps the fd open.
    // Throws hv::Error naming the device and the OS error (e.g. EACCES: needs root).
    explicit PmQosHold(const std::filesystem::path& device = "/dev/cpu_dma_latency",
                       std::int32_t latency_us = 0);
    ~PmQosHold();
    PmQosHold(PmQosHold&& other) noexcept;
    PmQosHold& operator=(PmQosHold&& other) noexcept;
    PmQosHold(const PmQosHold&) = delete;
    PmQosHold& operator=(const PmQosHold&) = delete;

    bool held() const { return fd_ >= 0; }
    std::int32_t latency_us() const { return latency_us_; }
    void release();

  private:
    int fd_ = -1;
    std::int32_t latency_us_ = 0;
};

}  // namespace hv::host
