// An NVMe controller (NVM Express Base Specification 1.4) with one namespace on a disk image
// (core/storage): a PCI function whose BAR0 holds the controller registers and doorbells
// (16 KiB, doorbell stride 0 — some drivers refuse a smaller BAR) and whose BAR2 holds the MSI-X
// table and PBA.
//
// Admin commands: Identify (controller, namespace, active namespace list), Create/Delete I/O
// Submission and Completion Queue, Get/Set Features (arbitration, power management, temperature
// threshold, error recovery, volatile write cache, number of queues, interrupt coalescing and
// vector configuration, write atomicity, asynchronous event configuration), Get Log Page (error
// information, SMART / health, firmware slot), Abort (answers "not aborted": commands complete
// as they are submitted) and Asynchronous Event Request (held; no event is reported yet).
// I/O commands: Read, Write, Flush, Write Zeroes, Dataset Management (deallocate is accepted and
// changes nothing: DLFEAT says so). Data pointers are PRPs (nvme_prp.hpp), bounds-checked against
// guest RAM; SGLs are refused (SGLS = 0, a PSDT other than 0 is an invalid field).
//
// Queues live in guest RAM (contiguous, CAP.CQR = 1), checked when created. A doorbell write
// processes the submission queue up to the new tail at once, on the writing vCPU's thread;
// completions go to the completion queue with the phase tag, and a completion queue with
// interrupts enabled raises its MSI-X vector once per doorbell write. A submission waits while
// its completion queue is full and resumes when the host moves that queue's head.
//
// Image errors complete the command with a media status (Write Fault, Unrecovered Read Error);
// FLUSH is fdatasync of the image; a shutdown notification (CC.SHN) flushes it too.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/bus/memory.hpp"
#include "core/devices/msix.hpp"
#include "core/devices/nvme_prp.hpp"
#include "core/devices/pci.hpp"
#include "core/storage/image.hpp"

namespace hv::dev {

namespace nvme {
inline constexpr std::uint16_t kVendor = 0x1b36;  // the ID QEMU's NVMe controller uses too
inline constexpr std::uint16_t kDevice = 0x0010;
inline constexpr std::uint32_t kClass = 0x010802;  // mass storage, NVM, NVM Express
inline constexpr std::uint32_t kBar0Size = 0x4000;
inline constexpr std::uint32_t kMsixBarSize = 0x1000;
inline constexpr unsigned kVectors = 17;       // one per queue pair and the admin queue
inline constexpr unsigned kMaxQueues = 17;     // queue IDs 0 (admin) to 16
inline constexpr unsigned kMaxEntries = 1024;  // CAP.MQES + 1
inline constexpr unsigned kPageShift = 12;     // CAP.MPSMIN = MPSMAX = 0: 4 KiB
inline constexpr unsigned kMdts = 5;           // 2^5 pages: 128 KiB per command
inline constexpr unsigned kBlockShift = 9;     // 512-byte logical blocks

// Controller registers (1.4, 3.1).
enum Reg : std::uint32_t {
    kCap = 0x00,
    kVs = 0x08,
    kIntms = 0x0C,
    kIntmc = 0x10,
    kCc = 0x14,
    kCsts = 0x1C,
    kAqa = 0x24,
    kAsq = 0x28,
    kAcq = 0x30,
    kDoorbells = 0x1000,
};
}  // namespace nvme

class NvmeController : public PciFunction {
  public:
    struct Options {
        std::string serial = "HVACCEL0001";
        bool read_only = false;
        unsigned queues = nvme::kMaxQueues - 1;  // I/O queue pairs offered, 1 to 16
    };
    // The image's size must be a whole number of 512-byte blocks (hv::Error otherwise).
    NvmeController(const GuestMemory& mem, std::unique_ptr<storage::Image> image, Options options,
                   MsixTable::Changed changed, MsixTable::Send send, std::uint32_t bar0,
                   std::uint32_t bar2);
    ~NvmeController() override;

    MsixTable& msix() { return msix_; }
    unsigned msix_capability() const { return msix_cap_; }

    struct Counters {
        std::uint64_t commands = 0, completions = 0, interrupts = 0;
        std::uint64_t read_bytes = 0, written_bytes = 0, errors = 0, bad_doorbells = 0;
    };
    Counters counters() const;
    std::string stats() const;

  protected:
    void config_written(unsigned offset, unsigned size) override;

  private:
    struct Queue {
        bool live = false;
        std::uint64_t base = 0;
        std::uint32_t size = 0;  // entries
        std::uint32_t head = 0, tail = 0;
        std::uint16_t cqid = 0;    // submission queues: their completion queue
        bool phase = true;         // completion queues: the phase of the next entry
        bool interrupts = false;   // completion queues
        std::uint16_t vector = 0;  // completion queues
    };
    struct Command {
        std::array<std::uint32_t, 16> dw{};
        std::uint8_t opcode() const { return static_cast<std::uint8_t>(dw[0]); }
        std::uint16_t cid() const { return static_cast<std::uint16_t>(dw[0] >> 16); }
        std::uint64_t prp1() const { return dw[6] | (std::uint64_t{dw[7]} << 32); }
        std::uint64_t prp2() const { return dw[8] | (std::uint64_t{dw[9]} << 32); }
    };
    struct Result {
        std::uint16_t status = nvme::status::kSuccess;
        std::uint32_t dw0 = 0;
        bool post = true;  // false: held (Asynchronous Event Request)
    };

    struct Regs : IoDevice {
        NvmeController& c;
        explicit Regs(NvmeController& ctl) : c(ctl) {}
        std::uint64_t read(std::uint64_t offset, unsigned size) override;
        void write(std::uint64_t offset, unsigned size, std::uint64_t value) override;
    };

    std::uint64_t read_reg(std::uint64_t offset, unsigned size);
    // Returns the MSI-X vectors to raise once the lock is released.
    std::vector<unsigned> write_reg(std::uint64_t offset, unsigned size, std::uint64_t value);
    std::vector<unsigned> doorbell(unsigned index, std::uint32_t value);
    void enable();
    void reset();
    void process(std::uint16_t sqid, std::vector<unsigned>& raise);
    bool post(std::uint16_t sqid, const Command& cmd, const Result& r);

    Result admin(const Command& c);
    Result io(const Command& c);
    Result identify(const Command& c);
    Result create_cq(const Command& c);
    Result create_sq(const Command& c);
    Result delete_queue(const Command& c, bool completion);
    Result features(const Command& c, bool set);
    Result log_page(const Command& c);
    Result read_write(const Command& c, bool write);
    Result write_zeroes(const Command& c);
    Result dataset_management(const Command& c);
    Result flush();
    // Copies `data` to the command's PRPs.
    std::uint16_t to_guest(const Command& c, const std::vector<std::uint8_t>& data);
    // Copies between the guest memory a PRP walk found and `data` (its length); a status.
    std::uint16_t copy_to_guest(const nvme::PrpWalk& w, std::span<const std::uint8_t> data) const;
    std::uint16_t copy_from_guest(const nvme::PrpWalk& w, std::span<std::uint8_t> data) const;
    bool queue_memory_ok(std::uint64_t base, std::uint64_t bytes) const;

    const GuestMemory& mem_;
    std::unique_ptr<storage::Image> image_;
    Options opts_;
    std::uint64_t blocks_ = 0;
    Regs regs_{*this};
    MsixTable msix_;
    unsigned msix_cap_ = 0;

    mutable std::mutex mu_;
    std::uint32_t cc_ = 0, csts_ = 0, aqa_ = 0, intms_ = 0;
    std::uint64_t asq_ = 0, acq_ = 0;
    std::array<Queue, nvme::kMaxQueues> sq_{}, cq_{};
    std::vector<std::uint16_t> held_aers_;
    std::uint32_t features_[0x0C] = {};
    bool write_cache_ = true;
    Counters counters_;
};

}  // namespace hv::dev
