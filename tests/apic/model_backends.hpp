// Every model backend configuration — emulated, the apicv option sets, avic, x2AVIC and the
// erratum 1235 mode — and a VM's worth of backends of one of them, for the tests whose rules must
// hold on all of them (the IOAPIC concurrency test, the CR8/TPR conformance tests).
#pragma once

#include <cstddef>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "apic/emulated.hpp"
#include "svm/avic_vm.hpp"
#include "tests/support/model_fakes.hpp"
#include "vmx/apicv_vm.hpp"

namespace hv::apic::test {

// One backend configuration: how to make a VM's worth of backends.
struct Factory {
    enum class Kind : uint8_t { Emulated, Apicv, Avic };
    std::string name;
    Kind kind = Kind::Emulated;
    vmx::ApicvOptions apicv{};
    svm::AvicOptions avic{};
};

inline void PrintTo(const Factory& f, std::ostream* os)
{
    *os << f.name;
}

inline std::vector<Factory> factories()
{
    std::vector<Factory> out;
    out.push_back({"emulated", Factory::Kind::Emulated, {}, {}});
    out.push_back({"apicv", Factory::Kind::Apicv, {}, {}});
    vmx::ApicvOptions no_pi;
    no_pi.ipiv = false;
    no_pi.posted_interrupts = false;
    out.push_back({"apicv_without_posted_interrupts", Factory::Kind::Apicv, no_pi, {}});
    vmx::ApicvOptions tpr_only = no_pi;
    tpr_only.virtual_interrupt_delivery = false;
    out.push_back({"apicv_tpr_shadow_only", Factory::Kind::Apicv, tpr_only, {}});
    out.push_back({"avic", Factory::Kind::Avic, {}, svm::AvicOptions{false, false}});
    out.push_back({"avic_x2avic", Factory::Kind::Avic, {}, svm::AvicOptions{true, false}});
    out.push_back({"avic_erratum1235", Factory::Kind::Avic, {}, svm::AvicOptions{false, true}});
    return out;
}

// `vcpus` backends of one configuration (APIC IDs 0..vcpus-1, vCPU 0 the BSP) over a fake clock
// and the routing platform, which has them attached.
class ModelVm {
  public:
    ModelVm(const Factory& f, std::size_t vcpus)
    {
        if (f.kind == Factory::Kind::Apicv) {
            apicv = std::make_unique<vmx::ApicvVm>(vcpus, f.apicv);
        } else if (f.kind == Factory::Kind::Avic) {
            avic = std::make_unique<svm::AvicVm>(vcpus, f.avic);
        }
        for (std::size_t i = 0; i < vcpus; ++i) {
            notifiers.push_back(std::make_unique<RecordingNotifier>());
            LocalApicConfig cfg;
            cfg.id = static_cast<uint32_t>(i);
            cfg.bsp = i == 0;
            if (apicv) {
                apics.push_back(apicv->make_backend(i, cfg, clock, platform, *notifiers[i]));
            } else if (avic) {
                apics.push_back(avic->make_backend(i, cfg, clock, platform, *notifiers[i]));
            } else {
                apics.push_back(
                    std::make_unique<EmulatedApic>(i, cfg, clock, platform, *notifiers[i]));
            }
            platform.backends.push_back(apics[i].get());
        }
    }
    ~ModelVm()
    {
        apics.clear();  // before the VMs they belong to
    }
    ModelVm(const ModelVm&) = delete;
    ModelVm& operator=(const ModelVm&) = delete;

    FakeClock clock;
    RoutingPlatform platform;
    std::unique_ptr<vmx::ApicvVm> apicv;
    std::unique_ptr<svm::AvicVm> avic;
    std::vector<std::unique_ptr<RecordingNotifier>> notifiers;
    std::vector<std::unique_ptr<ApicBackend>> apics;
};

}  // namespace hv::apic::test
