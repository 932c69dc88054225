#include "core/devices/irq_device.hpp"

#include <x86intrin.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include "core/base/clock.hpp"
#include <ctime>

namespace hv::dev {

using namespace irqdev;

namespace {

// Raises whose host TSC is kept for the VMM (8 MiB); a guest asking for more is not refused,
// only the first ones are recorded.
constexpr std::size_t kMaxRecorded = 1u << 20;

}  // namespace

IrqDevice::IrqDevice(const GuestMemory& mem, std::uint64_t guest_tsc_offset,
                     MsixTable::Changed changed, MsixTable::Send send)
    : PciFunction(kVendor, kDevice, 0xFF0000), mem_(mem), tsc_offset_(guest_tsc_offset),
      msix_(kEntries, std::move(changed), std::move(send))
{
    add_memory_bar(0, kBarSize, &regs_, kBar0Default);
    add_memory_bar(1, kBarSize, &msix_, kBar1Default);
    msix_cap_ = add_msix_capability(kEntries, 1);  // table and PBA in BAR1
    thread_ = std::thread([this] { burst_loop(); });
}

IrqDevice::~IrqDevice()
{
    {
        std::lock_guard lk(mu_);
        exit_ = true;
    }
    cv_.notify_all();
    thread_.join();
}

void IrqDevice::config_written(unsigned offset, unsigned size)
{
    update_msix_control(msix_cap_, offset, size, msix_);
}

void IrqDevice::quiesce()
{
    std::lock_guard lk(mu_);
    quiesced_ = true;
}

void IrqDevice::resume()
{
    {
        std::lock_guard lk(mu_);
        quiesced_ = false;
    }
    cv_.notify_all();
}

unsigned IrqDevice::entry_for(std::uint64_t i) const
{
    std::uint32_t mask = entry_mask_ & ((1u << kEntries) - 1);
    if (!mask)
        return 0;
    auto n = static_cast<unsigned>(i % static_cast<unsigned>(__builtin_popcount(mask)));
    for (unsigned e = 0; e < kEntries; ++e)
        if ((mask >> e) & 1u) {
            if (n == 0)
                return e;
            --n;
        }
    return 0;
}

// One raise: the TSC is taken first (latency is measured from here), logged for the guest, then
// the function signals the entry (sent now, or pending while masked).
void IrqDevice::raise_one(unsigned entry)
{
    std::uint64_t host_tsc = __rdtsc();
    std::uint64_t guest_tsc = host_tsc + tsc_offset_;
    std::uint32_t i = raised_.load(std::memory_order_relaxed);
    bool master = bus_master();
    {
        std::lock_guard lk(mu_);
        if (raise_tsc_.size() < kMaxRecorded)
            raise_tsc_.push_back(host_tsc);
        if (log_slots_) {
            std::uint64_t gpa = log_base_ + 8ull * (i % log_slots_);
            if (!master || !mem_.write(gpa, &guest_tsc, sizeof guest_tsc))
                log_refused_.fetch_add(1, std::memory_order_relaxed);
        }
    }
    last_guest_tsc_.store(guest_tsc, std::memory_order_relaxed);
    raised_.store(i + 1, std::memory_order_release);
    msix_.raise(entry, master);
}

void IrqDevice::start_burst(bool paced)
{
    {
        std::lock_guard lk(mu_);
        running_ = count_ > 0;
        paced_ = paced;
        ++burst_id_;
        raise_tsc_.clear();
        raise_tsc_.reserve(std::min<std::size_t>(count_, kMaxRecorded));
        raised_.store(0, std::memory_order_relaxed);
        acks_.store(0, std::memory_order_relaxed);
    }
    bursts_.fetch_add(1, std::memory_order_relaxed);
    cv_.notify_all();
}

// The device's own thread: sleeps until a burst starts, then raises COUNT interrupts at absolute
// times start + i * INTERVAL (clock_nanosleep, no busy-wait), or paced by the guest's ACKs.
void IrqDevice::burst_loop()
{
    std::unique_lock lk(mu_);
    while (!exit_) {
        cv_.wait(lk, [&] { return exit_ || (running_ && !quiesced_); });
        if (exit_)
            break;
        std::uint64_t id = burst_id_;
        std::uint64_t next = monotonic_ns();
        for (std::uint64_t i = raised_.load(); i < count_; i = raised_.load()) {
            if (paced_ && i > 0) {
                cv_.wait_for(lk, std::chrono::milliseconds(1), [&] {
                    return exit_ || quiesced_ || burst_id_ != id || !running_ ||
                           acks_.load(std::memory_order_acquire) >= i;
                });
                if (acks_.load(std::memory_order_acquire) < i || quiesced_ || exit_ ||
                    burst_id_ != id || !running_)
                    goto recheck;
                next = monotonic_ns() + interval_ns_;
            }
            if (interval_ns_ && i > 0) {
                lk.unlock();
                timespec ts{static_cast<time_t>(next / 1'000'000'000ull),
                            static_cast<long>(next % 1'000'000'000ull)};
                ::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr);
                lk.lock();
                if (exit_ || quiesced_ || burst_id_ != id || !running_)
                    goto recheck;
            }
            {
                unsigned entry = entry_for(i);
                lk.unlock();
                raise_one(entry);
                lk.lock();
            }
            if (!paced_)
                next += interval_ns_;
            if (exit_ || quiesced_ || burst_id_ != id || !running_)
                goto recheck;
        }
        if (burst_id_ == id)
            running_ = false;
    recheck:;
    }
}

std::uint64_t IrqDevice::Registers::read(std::uint64_t offset, unsigned size)
{
    if (size != 4 || (offset & 3))
        return all_ones(size);
    std::lock_guard lk(dev.mu_);
    switch (offset) {
    case kId:
        return kIdValue;
    case kStatus:
        return dev.running_ ? 1 : 0;
    case kCount:
        return dev.count_;
    case kEntryMask:
        return dev.entry_mask_;
    case kIntervalNs:
        return dev.interval_ns_;
    case kRaised:
        return dev.raised_.load(std::memory_order_acquire);
    case kAck:
        return dev.acks_.load(std::memory_order_acquire);
    case kLogLo:
        return static_cast<std::uint32_t>(dev.log_base_);
    case kLogHi:
        return static_cast<std::uint32_t>(dev.log_base_ >> 32);
    case kLogSlots:
        return dev.log_slots_;
    case kLogRefused:
        return static_cast<std::uint32_t>(dev.log_refused_.load(std::memory_order_relaxed));
    case kLastTscLo:
        return static_cast<std::uint32_t>(dev.last_guest_tsc_.load(std::memory_order_relaxed));
    case kLastTscHi:
        return static_cast<std::uint32_t>(dev.last_guest_tsc_.load(std::memory_order_relaxed) >>
                                          32);
    default:
        return 0;
    }
}

void IrqDevice::Registers::write(std::uint64_t offset, unsigned size, std::uint64_t value)
{
    if (size != 4 || (offset & 3))
        return;
    auto v = static_cast<std::uint32_t>(value);
    switch (offset) {
    case kControl:
        if (v & kControlStop) {
            {
                std::lock_guard lk(dev.mu_);
                dev.running_ = false;
            }
            dev.cv_.notify_all();
        } else if (v & kControlStart) {
            dev.start_burst((v & kControlPaced) != 0);
        }
        return;
    case kAck:
        dev.acks_.fetch_add(1, std::memory_order_acq_rel);
        dev.cv_.notify_all();
        return;
    case kRaiseNow:
        if (v < kEntries)
            dev.raise_one(v);
        return;
    default:
        break;
    }
    std::lock_guard lk(dev.mu_);
    switch (offset) {
    case kCount:
        dev.count_ = v;
        break;
    case kEntryMask:
        dev.entry_mask_ = v;
        break;
    case kIntervalNs:
        dev.interval_ns_ = v;
        break;
    case kLogLo:
        dev.log_base_ = (dev.log_base_ & ~0xFFFF'FFFFull) | v;
        break;
    case kLogHi:
        dev.log_base_ = (dev.log_base_ & 0xFFFF'FFFFull) | (static_cast<std::uint64_t>(v) << 32);
        break;
    case kLogSlots:
        dev.log_slots_ = v;
        break;
    default:
        break;
    }
}

std::vector<std::uint64_t> IrqDevice::raise_tscs() const
{
    std::lock_guard lk(mu_);
    return raise_tsc_;
}

std::string IrqDevice::stats() const
{
    return fmt::format("irqdev: bursts {}, log-refused {}; {}", bursts_.load(), log_refused_.load(),
                       msix_.stats());
}

}  // namespace hv::dev
