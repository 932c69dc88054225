#include "core/devices/pic.hpp"

namespace hv::dev {

std::uint64_t Pic8259::read(std::uint64_t offset, unsigned /*size*/)
{
    std::lock_guard lk(mu_);
    return offset == 1 ? imr_ : 0;  // command port: IRR/ISR (OCW3 selects) — always empty
}

void Pic8259::write(std::uint64_t offset, unsigned /*size*/, std::uint64_t value)
{
    std::lock_guard lk(mu_);
    auto v = static_cast<std::uint8_t>(value);
    if (offset == 0) {
        if (v & 0x10) {  // ICW1 starts initialisation; IMR cleared (8259A datasheet)
            icw4_needed_ = v & 0x01;
            single_ = v & 0x02;
            imr_ = 0;
            init_step_ = 2;
        }
        return;  // OCW2 (EOI/rotate) and OCW3 need no state without routed interrupts
    }
    switch (init_step_) {
    case 2:
        base_ = v & 0xf8;
        init_step_ = single_ ? (icw4_needed_ ? 4 : 0) : 3;
        break;
    case 3:
        init_step_ = icw4_needed_ ? 4 : 0;
        break;
    case 4:
        init_step_ = 0;
        break;
    default:
        imr_ = v;  // OCW1
        break;
    }
}

std::uint8_t Pic8259::mask() const
{
    std::lock_guard lk(mu_);
    return imr_;
}

void Pic8259::set_state(std::uint8_t mask, std::uint8_t vector_base)
{
    std::lock_guard lk(mu_);
    imr_ = mask;
    base_ = vector_base & 0xf8;
    init_step_ = 0;
}

std::uint8_t Pic8259::vector_base() const
{
    std::lock_guard lk(mu_);
    return base_;
}

}  // namespace hv::dev
