#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "core/base/error.hpp"
#include "core/bus/memory.hpp"
#include "core/devices/acpi_tables.hpp"
#include "core/devices/debug_exit.hpp"
#include "core/devices/fw_cfg.hpp"
#include "core/devices/pic.hpp"
#include "core/devices/pm_timer.hpp"
#include "core/devices/uart.hpp"

namespace {

struct Pipe {
    int fds[2];
    Pipe() { EXPECT_EQ(::pipe(fds), 0); }
    ~Pipe()
    {
        ::close(fds[0]);
        ::close(fds[1]);
    }
    std::string drain()
    {
        char buf[256];
        std::string out;
        // Non-blocking read of what is there.
        while (true) {
            fd_set s;
            FD_ZERO(&s);
            FD_SET(fds[0], &s);
            timeval tv{0, 0};
            if (select(fds[0] + 1, &s, nullptr, nullptr, &tv) <= 0)
                break;
            ssize_t n = ::read(fds[0], buf, sizeof buf);
            if (n <= 0)
                break;
            out.append(buf, static_cast<std::size_t>(n));
        }
        return out;
    }
};

std::string fw_cfg_item(hv::dev::FwCfg& f, std::uint16_t key, std::size_t n)
{
    f.write(0, 2, key);
    std::string s;
    for (std::size_t i = 0; i < n; ++i)
        s.push_back(static_cast<char>(f.read(1, 1)));
    return s;
}

}  // namespace

TEST(Uart, TransmitsLinesAndBuffersPartialOnes)
{
    Pipe p;
    hv::dev::Uart16550 u(p.fds[1]);
    for (char c : std::string("hel"))
        u.write(0, 1, static_cast<std::uint8_t>(c));
    EXPECT_EQ(p.drain(), "");  // no newline yet
    for (char c : std::string("lo\n"))
        u.write(0, 1, static_cast<std::uint8_t>(c));
    EXPECT_EQ(p.drain(), "hello\n");
    u.write(0, 1, 'x');
    u.flush();
    EXPECT_EQ(p.drain(), "x");
    EXPECT_EQ(u.bytes_out(), 7u);
}

TEST(Uart, RegistersBehaveAsA16550)
{
    Pipe p;
    hv::dev::Uart16550 u(p.fds[1]);
    EXPECT_EQ(u.read(5, 1) & 0x60, 0x60u);  // LSR: THRE and TEMT
    EXPECT_EQ(u.read(5, 1) & 0x01, 0u);     // no received data
    EXPECT_EQ(u.read(2, 1), 0x01u);         // IIR: no interrupt pending
    u.write(2, 1, 0x01);                    // enable FIFOs
    EXPECT_EQ(u.read(2, 1), 0xc1u);
    u.write(7, 1, 0x5a);
    EXPECT_EQ(u.read(7, 1), 0x5au);  // scratch
    u.write(3, 1, 0x83);             // DLAB
    u.write(0, 1, 0x0c);
    u.write(1, 1, 0x00);
    EXPECT_EQ(u.divisor(), 12u);  // 9600 baud
    EXPECT_EQ(u.read(0, 1), 0x0cu);
    u.write(3, 1, 0x03);
    EXPECT_EQ(u.read(3, 1), 0x03u);
    u.write(1, 1, 0xff);
    EXPECT_EQ(u.read(1, 1), 0x0fu);  // IER keeps 4 bits
    u.write(4, 1, 0x1f);             // loopback: MSR mirrors MCR
    EXPECT_EQ(u.read(6, 1), 0xf0u);
    u.write(0, 1, 'z');  // loopback: nothing goes out
    u.write(0, 1, '\n');
    u.flush();
    EXPECT_EQ(p.drain(), "");
    EXPECT_EQ(p.drain(), "");
    EXPECT_EQ(u.bytes_out(), 0u);
}

TEST(DebugExit, StatusIsValueShiftedLeftOrOne)
{
    int got = -1;
    hv::dev::DebugExit d([&](int s) { got = s; });
    d.write(0, 4, 0);
    EXPECT_EQ(got, 1);
    d.write(0, 1, 0x46);
    EXPECT_EQ(got, 141);
    EXPECT_EQ(hv::dev::DebugExit::status_for(0x7f), 255);
}

TEST(FwCfg, QemuKeys)
{
    hv::dev::FwCfg f(256ull << 20, 2, 4);
    EXPECT_EQ(fw_cfg_item(f, 0x00, 4), "QEMU");
    std::string id = fw_cfg_item(f, 0x01, 4);
    EXPECT_EQ(id[0], 1);
    std::string ram = fw_cfg_item(f, 0x03, 8);
    std::uint64_t r = 0;
    std::memcpy(&r, ram.data(), 8);
    EXPECT_EQ(r, 256ull << 20);
    std::string cpus = fw_cfg_item(f, 0x05, 2), max = fw_cfg_item(f, 0x0f, 2);
    EXPECT_EQ(cpus[0], 2);
    EXPECT_EQ(max[0], 4);
    // Unknown keys and reads past the end read as zeros.
    EXPECT_EQ(fw_cfg_item(f, 0x1234, 4), std::string(4, '\0'));
    EXPECT_EQ(fw_cfg_item(f, 0x00, 6), std::string("QEMU\0\0", 6));
    // Selecting again restarts at offset 0; wider reads return successive bytes.
    f.write(0, 2, 0x00);
    EXPECT_EQ(f.read(1, 4), 0x554d4551u);  // "QEMU" little endian
    EXPECT_EQ(f.read(0, 2), 0u);           // selector reads back
    f.write(1, 1, 0xff);                   // data writes are ignored
    f.write(0, 2, 0x00);
    EXPECT_EQ(f.read(1, 1), 'Q');
}

TEST(FwCfg, FileDirectoryIsBigEndianAndSorted)
{
    hv::dev::FwCfg f(64ull << 20, 1, 1);
    auto kb = f.add_file("opt/b", {1, 2, 3});
    auto ka = f.add_file("opt/a", {9});
    EXPECT_EQ(kb, 0x20);
    EXPECT_EQ(ka, 0x21);
    std::string dir = fw_cfg_item(f, 0x19, 4 + 2 * 64);
    EXPECT_EQ(dir.substr(0, 4), std::string("\0\0\0\2", 4));
    EXPECT_EQ(dir.substr(4, 4), std::string("\0\0\0\1", 4));  // opt/a: 1 byte
    EXPECT_EQ(dir.substr(8, 2), std::string("\0\x21", 2));
    EXPECT_EQ(dir.substr(12, 5), "opt/a");
    EXPECT_EQ(dir.substr(68, 4), std::string("\0\0\0\3", 4));  // opt/b: 3 bytes
    EXPECT_EQ(fw_cfg_item(f, kb, 3), std::string("\1\2\3", 3));
    EXPECT_THROW(f.add_file("opt/a", {}), hv::Error);
    EXPECT_THROW(f.add_file(std::string(56, 'x'), {}), hv::Error);
    EXPECT_THROW(f.add_file("", {}), hv::Error);
}

TEST(Pic, InitialisationSequenceAndMask)
{
    hv::dev::Pic8259 pic;
    EXPECT_EQ(pic.mask(), 0xffu);
    pic.write(0, 1, 0x11);  // ICW1: cascade, ICW4 needed
    EXPECT_EQ(pic.mask(), 0u);
    pic.write(1, 1, 0x20);  // ICW2: vector base
    pic.write(1, 1, 0x04);  // ICW3
    pic.write(1, 1, 0x01);  // ICW4
    EXPECT_EQ(pic.vector_base(), 0x20u);
    EXPECT_EQ(pic.mask(), 0u);  // ICWs did not touch the mask
    pic.write(1, 1, 0xfb);      // OCW1
    EXPECT_EQ(pic.read(1, 1), 0xfbu);
    EXPECT_EQ(pic.read(0, 1), 0u);
    pic.write(0, 1, 0x20);  // OCW2 EOI: no effect on the mask
    EXPECT_EQ(pic.mask(), 0xfbu);
}

TEST(PmTimer, TicksAt3579545Hz)
{
    EXPECT_EQ(hv::dev::PmTimer::ticks_for_ns(1'000'000'000), 3579545u);
    EXPECT_EQ(hv::dev::PmTimer::ticks_for_ns(1'000'000), 3579u);
    // Past 2^32 ticks the 32-bit counter wraps.
    std::uint64_t ns = 1200ull * 1'000'000'000ull;
    EXPECT_EQ(hv::dev::PmTimer::ticks_for_ns(ns), static_cast<std::uint32_t>(1200ull * 3579545ull));
    hv::dev::PmTimer t;
    auto a = t.read(0, 4);
    usleep(2000);
    auto b = t.read(0, 4);
    EXPECT_GT(b, a);
}

TEST(Acpi, TablesAreValidAndListEveryCpu)
{
    hv::GuestMemory mem(4 << 20);
    hv::dev::AcpiConfig cfg;
    cfg.cpus = 3;
    cfg.ioapic_id = 3;
    hv::dev::write_acpi_tables(mem, cfg);
    const std::uint8_t* rsdp = mem.ptr(hv::dev::kRsdpAddr, 36);
    ASSERT_EQ(std::memcmp(rsdp, "RSD PTR ", 8), 0);
    EXPECT_EQ(hv::dev::acpi_checksum(rsdp, 20), 0);
    EXPECT_EQ(hv::dev::acpi_checksum(rsdp, 36), 0);
    std::uint32_t rsdt_at;
    std::memcpy(&rsdt_at, rsdp + 16, 4);
    const std::uint8_t* rsdt = mem.ptr(rsdt_at, 36);
    std::uint32_t len;
    std::memcpy(&len, rsdt + 4, 4);
    ASSERT_EQ(len, 36u + 8);
    EXPECT_EQ(hv::dev::acpi_checksum(mem.ptr(rsdt_at, len), len), 0);
    unsigned lapics = 0, ioapics = 0;
    for (int i = 0; i < 2; ++i) {
        std::uint32_t t;
        std::memcpy(&t, rsdt + 36 + 4 * i, 4);
        const std::uint8_t* h = mem.ptr(t, 36);
        std::uint32_t tl;
        std::memcpy(&tl, h + 4, 4);
        EXPECT_EQ(hv::dev::acpi_checksum(mem.ptr(t, tl), tl), 0);
        if (std::memcmp(h, "FACP", 4) == 0) {
            EXPECT_EQ(tl, 244u);
            std::uint32_t tmr;
            std::memcpy(&tmr, h + 76, 4);
            EXPECT_EQ(tmr, 0x608u);
        }
        if (std::memcmp(h, "APIC", 4) == 0) {
            const std::uint8_t* p = mem.ptr(t, tl);
            for (std::uint32_t off = 44; off + 2 <= tl; off += p[off + 1]) {
                if (p[off] == 0) {
                    EXPECT_EQ(p[off + 3], lapics);  // APIC ID
                    ++lapics;
                }
                if (p[off] == 1)
                    ++ioapics;
            }
        }
    }
    EXPECT_EQ(lapics, 3u);
    EXPECT_EQ(ioapics, 1u);
    cfg.cpus = 0;
    EXPECT_THROW(hv::dev::write_acpi_tables(mem, cfg), hv::Error);
}
