// The AVIC backing page: one 4 KiB page per vCPU with the APIC register layout
// (apic/apic_page.hpp), which the CPU reads for accelerated register reads and in which the CPU
// (for IPIs) and the IOMMU (GA mode, iommu/) set IRR bits.
//
// APM Vol2 15.29.2 "AVIC Backing Page": "The backing page is a 4-Kbyte page ... the format is the
// same as the local APIC register space"; 15.29.4.3 / 15.29.8: IRR bits are set with locked
// read-modify-writes by other processors and by the IOMMU while the owner runs, so every dword
// here is an atomic (the model's stand-in for `lock or`). Only the owning vCPU writes the other
// registers; they are atomics too so a concurrent reader is well defined.
//
// Addresses: backing pages are host memory the model owns. The "host physical address" written
// into a physical APIC ID table entry is a model page-frame number (AvicVm assigns
// kBackingFrameBase + vCPU index), resolved back to the page by AvicVm::page_at_frame(); any
// other frame is an invalid backing page (AVIC_INCOMPLETE_IPI cause 3).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "apic/apic_page.hpp"
#include "apic/ipi.hpp"
#include "apic/regs.hpp"
#include "apic/vector_bits.hpp"

namespace hv::svm {

inline constexpr std::size_t kPageBytes = 4096;

struct alignas(kPageBytes) BackingPage {
    std::array<std::atomic<uint32_t>, kPageBytes / 4> dword{};

    // Register at an xAPIC offset (16-byte aligned; bytes 4-15 of a slot are padding).
    std::atomic<uint32_t>& at(uint32_t offset) { return dword[(offset & 0xFF0u) / 4]; }
    const std::atomic<uint32_t>& at(uint32_t offset) const { return dword[(offset & 0xFF0u) / 4]; }
    uint32_t load(uint32_t offset) const { return at(offset).load(std::memory_order_acquire); }
    void store(uint32_t offset, uint32_t v) { at(offset).store(v, std::memory_order_release); }

    // IRR word i holds vectors 32*i..32*i+31 (APIC page layout, 0x200 + 0x10 * i).
    std::atomic<uint32_t>& irr_word(uint8_t vector)
    {
        return at(apic::reg::kIrr + 0x10u * (vector >> 5));
    }
    apic::VectorWords irr() const;
    bool test_irr(uint8_t vector) const;
    // Clears one IRR bit (the CPU's IRR -> ISR move, or a refused vector).
    void clear_irr(uint8_t vector);

    // Copy to / from the register codec's 1 KiB page (every register lives in the first 0x400).
    apic::ApicRegisterPage snapshot() const;
    // Writes every register of `p` except IRR; IRR is ORed in (`replace_irr`: stored) so a
    // concurrent post is never lost by a register update.
    void write_registers(const apic::ApicRegisterPage& p, bool replace_irr);
};

// APM Vol2 15.29.2: the page is 4 KiB aligned; atomics must add nothing to the dword layout.
static_assert(sizeof(BackingPage) == kPageBytes);
static_assert(alignof(BackingPage) == kPageBytes);
static_assert(sizeof(std::atomic<uint32_t>) == 4 && std::atomic<uint32_t>::is_always_lock_free);
static_assert(apic::reg::kIrr / 4 == 0x80 && apic::reg::kTpr / 4 == 0x20);

// The posting primitive shared by AVIC IPIs, hypervisor device delivery and the AMD IOMMU's GA
// mode (AMD IOMMU 2.2.5 "Interrupt Virtualization": "the IOMMU sets the vector's IRR bit in the
// backing page"): an atomic OR of the IRR bit. Returns true when the bit was newly set (false:
// it coalesced with one already pending). Vectors 0-15 are not posted (false).
bool post_to_backing_page(BackingPage& page, uint8_t vector);

}  // namespace hv::svm
