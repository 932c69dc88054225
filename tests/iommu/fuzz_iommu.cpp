// libFuzzer target for the interrupt-remapping units: the input is a sequence of operations on a
// VT-d remapper and an AMD remapper (GA mode and legacy) — raw and well-formed table writes,
// remaps of arbitrary MSIs, IsRun updates, log drains. Invariants:
//   - nothing crashes (the target is built with ASan + UBSan);
//   - decode(encode(x)) == x for every entry and MSI that decodes;
//   - the Faulted counter equals the number of Blocked results, and the VT-d fault log holds
//     exactly the results marked recorded (plus the counted overflows).
// Build: cmake -DHV_FUZZ=ON with clang (tests/iommu/CMakeLists.txt). test_fuzz_seeds.cpp runs
// run_fuzz_input() over seed inputs in the normal test build.
#include <cstdlib>
#include <cstring>

#include "fakes.hpp"
#include "fuzz_iommu.hpp"
#include "iommu/amd_remapper.hpp"
#include "iommu/vtd_remapper.hpp"

namespace hv::iommu::test {
namespace {

class Reader {
  public:
    Reader(const uint8_t* d, std::size_t n) : d_(d), n_(n) {}
    bool empty() const { return i_ >= n_; }
    template <typename T> T get()
    {
        T v{};
        uint8_t buf[sizeof(T)] = {};
        for (std::size_t k = 0; k < sizeof(T) && i_ < n_; ++k) {
            buf[k] = d_[i_++];
        }
        std::memcpy(&v, buf, sizeof(T));
        return v;
    }

  private:
    const uint8_t* d_;
    std::size_t n_;
    std::size_t i_ = 0;
};

MsiMessage read_msi(Reader& in)
{
    const auto kind = in.get<uint8_t>();
    MsiMessage m;
    m.address = in.get<uint32_t>();
    m.data = in.get<uint32_t>();
    if ((kind & 1u) != 0) {  // mostly inside the interrupt window
        m.address = msi::kWindow | (m.address & 0xFFFFF);
    }
    if ((kind & 2u) != 0) {  // small handles, so the table is hit
        m.address =
            (m.address & ~msi::kHandleLowMask) | ((m.address & 0x1E0) & msi::kHandleLowMask);
        m.data &= 0xFF;
    }
    if (kind == 0xFF) {
        m.address |= 1ULL << 40;
    }
    return m;
}

bool roundtrips(const VtdIrte& e)
{
    for (bool x2 : {false, true}) {
        if (const auto d = VtdRemappedIrte::decode(e, x2)) {
            const auto again = VtdRemappedIrte::decode(d.value.encode(), x2);
            if (!again || !(again.value == d.value)) {
                return false;
            }
        }
    }
    if (const auto p = VtdPostedIrte::decode(e)) {
        const auto again = VtdPostedIrte::decode(p.value.encode());
        if (!again || !(again.value == p.value)) {
            return false;
        }
    }
    return true;
}

bool roundtrips(const AmdGaIrte& e)
{
    if (const auto r = AmdGaRemapIrte::decode(e)) {
        const auto again = AmdGaRemapIrte::decode(r.value.encode());
        if (!again || !(again.value == r.value)) {
            return false;
        }
    }
    if (const auto v = AmdGaVapicIrte::decode(e)) {
        const auto again = AmdGaVapicIrte::decode(v.value.encode());
        if (!again || !(again.value == v.value)) {
            return false;
        }
    }
    const auto l = AmdLegacyIrte::decode(static_cast<uint32_t>(e.lo));
    return !l || AmdLegacyIrte::decode(l.value.encode()).value == l.value;
}

bool roundtrips(const MsiMessage& m)
{
    if (const auto c = CompatMsi::decode(m)) {
        const auto again = CompatMsi::decode(c.value.encode());
        if (!again || !(again.value == c.value)) {
            return false;
        }
    }
    if (const auto r = RemappableMsi::decode(m)) {
        const auto again = RemappableMsi::decode(r.value.encode());
        if (!again || !(again.value == r.value)) {
            return false;
        }
    }
    return true;
}

struct Harness {
    FakePostingSink pids;
    FakeGaSink pages;
    VtdRemapper vtd;
    AmdRemapper ga;
    AmdRemapper legacy;
    uint64_t vtd_blocked = 0, vtd_recorded = 0, ga_blocked = 0, legacy_blocked = 0;

    explicit Harness(uint8_t mode)
        : vtd(VtdConfig{.size_log2 = 4u + (mode & 3u),
                        .x2apic_mode = (mode & 4u) != 0,
                        .compat_passthrough = (mode & 8u) != 0,
                        .posting = (mode & 16u) == 0,
                        .fault_log_size = 8},
              pids),
          ga(amd_config(true, (mode & 32u) != 0, 4, 8), pages),
          legacy(amd_config(false, true, 4, 8), pages)
    {
        for (uint16_t dev = 0; dev < 4; ++dev) {
            ga.set_table(dev, dev + 1u);
            legacy.set_table(dev, dev + 2u);
        }
    }

    bool step(Reader& in)
    {
        switch (in.get<uint8_t>() % 10) {
        case 0: {  // raw VT-d entry
            const auto idx = in.get<uint8_t>();
            const VtdIrte e{in.get<uint64_t>(), in.get<uint64_t>()};
            vtd.set_entry(idx, e);
            return roundtrips(e);
        }
        case 1: {  // a posted entry with a real PDA
            VtdPostedIrte p;
            const auto idx = in.get<uint8_t>();
            const auto f = in.get<uint8_t>();
            p.present = (f & 1u) != 0;
            p.fpd = (f & 2u) != 0;
            p.urgent = (f & 4u) != 0;
            p.vector = in.get<uint8_t>();
            p.pda = pids.pda((f >> 4) % FakePostingSink::kPids);
            p.source = {in.get<uint16_t>(), static_cast<uint8_t>((f >> 3) & 1u),
                        static_cast<VtdSvt>((f >> 6) % 3)};
            vtd.set_entry(idx, p.encode());
            return VtdPostedIrte::decode(p.encode()).value == p;
        }
        case 2: {  // VT-d remap
            const auto sid = in.get<uint16_t>();
            const MsiMessage m = read_msi(in);
            const VtdRemapResult r = vtd.remap(sid, m);
            vtd_blocked += r.outcome == VtdOutcome::Blocked;
            vtd_recorded += r.recorded;
            if (r.outcome == VtdOutcome::Posted && r.notified && !r.post.notify) {
                return false;
            }
            return roundtrips(m);
        }
        case 3: {  // raw AMD GA entry
            const auto dev = in.get<uint8_t>();
            const auto idx = in.get<uint16_t>();
            const AmdGaIrte e{in.get<uint64_t>(), in.get<uint64_t>()};
            ga.set_entry(dev & 3u, idx & 0x7FFu, e);
            legacy.set_legacy_entry(dev & 3u, idx & 0x7FFu, static_cast<uint32_t>(e.lo));
            return roundtrips(e);
        }
        case 4: {  // a vAPIC entry with a real backing page
            AmdGaVapicIrte v;
            const auto dev = in.get<uint8_t>();
            const auto f = in.get<uint8_t>();
            v.remap_en = (f & 1u) != 0;
            v.sup_iopf = (f & 2u) != 0;
            v.ga_log_intr = (f & 4u) != 0;
            v.is_run = (f & 8u) != 0;
            v.vector = in.get<uint8_t>();
            v.dest = in.get<uint32_t>();
            v.ga_tag = in.get<uint32_t>();
            v.ga_root_ptr = FakeGaSink::frame((f >> 4) % FakeGaSink::kPages);
            ga.set_entry(dev & 3u, (dev >> 2) & 1u, v.encode());
            return AmdGaVapicIrte::decode(v.encode()).value == v;
        }
        case 5: {  // AMD remaps
            const auto dev = in.get<uint16_t>() & 7u;
            const MsiMessage m = read_msi(in);
            ga_blocked += ga.remap(static_cast<uint16_t>(dev), m).outcome == AmdOutcome::Blocked;
            legacy_blocked +=
                legacy.remap(static_cast<uint16_t>(dev), m).outcome == AmdOutcome::Blocked;
            return true;
        }
        case 6: {  // vCPU load/put
            const auto dev = in.get<uint8_t>();
            const auto dest = in.get<uint32_t>();
            ga.set_is_run(dev & 3u, (dev >> 2) & 3u, (dev & 0x80u) != 0, dest);
            return true;
        }
        case 7:  // the hypervisor drains the GA log
            ga.drain_ga_log();
            ga.clear_ga_log_overflow();
            return true;
        case 8: {  // CPU side: take PIR, clear IRR
            const auto i = in.get<uint8_t>();
            vmx::take_pir(pids.pid(i % FakePostingSink::kPids));
            pages.page(i % FakeGaSink::kPages).clear_irr(in.get<uint8_t>());
            return true;
        }
        default: {  // PID control: SN / NV / NDST
            const auto i = in.get<uint8_t>();
            vmx::update_control(
                pids.pid(i % FakePostingSink::kPids),
                {.nv = in.get<uint8_t>(), .ndst = in.get<uint32_t>(), .sn = (i & 0x80u) != 0});
            return true;
        }
        }
    }

    bool counters_agree() const
    {
        return vtd.counter(IommuStat::Faulted) == vtd_blocked &&
               vtd.faults().size() == vtd_recorded &&
               ga.counter(IommuStat::Faulted) == ga_blocked &&
               legacy.counter(IommuStat::Faulted) == legacy_blocked;
    }
};

}  // namespace

bool run_fuzz_input(const uint8_t* data, std::size_t size)
{
    Reader in(data, size);
    Harness h(in.get<uint8_t>());
    for (int ops = 0; !in.empty() && ops < 4096; ++ops) {
        if (!h.step(in)) {
            return false;
        }
    }
    return h.counters_agree();
}

}  // namespace hv::iommu::test

#ifndef HV_IOMMU_FUZZ_IN_TESTS
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size)
{
    if (!hv::iommu::test::run_fuzz_input(data, size)) {
        std::abort();
    }
    return 0;
}
#endif
