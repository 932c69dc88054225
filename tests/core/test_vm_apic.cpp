// The VM's APIC backend object: `--apic` parsing, one object per backend answering the
// questions the VM asks (where the LAPICs live, which options, what it is called), and the
// refusals that reach the user as one line.
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "core/backend/vm_apic.hpp"
#include "core/base/error.hpp"
#include "core/host/backend.hpp"

namespace hv {
namespace {

using host::ApicKind;
using host::ApicSpec;
using host::parse_apic_spec;

std::string error_of(const std::function<void()>& f)
{
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    return {};
}

TEST(ApicSpec, NamesAndOptions)
{
    EXPECT_FALSE(parse_apic_spec("auto").kind.has_value());
    EXPECT_EQ(parse_apic_spec("kernel").kind, ApicKind::Kernel);
    EXPECT_EQ(parse_apic_spec("emulated").kind, ApicKind::Emulated);

    const ApicSpec avic = parse_apic_spec("avic,x2avic,erratum1235");
    EXPECT_EQ(avic.kind, ApicKind::Avic);
    EXPECT_TRUE(avic.x2avic);
    EXPECT_TRUE(avic.erratum_1235);

    const ApicSpec apicv = parse_apic_spec("apicv,noipiv,nopi,novid,nox2apic");
    EXPECT_EQ(apicv.kind, ApicKind::Apicv);
    EXPECT_FALSE(apicv.ipiv);
    EXPECT_FALSE(apicv.posted);
    EXPECT_FALSE(apicv.vid);
    EXPECT_FALSE(apicv.x2apic_virt);
    EXPECT_TRUE(parse_apic_spec("apicv").ipiv);
}

TEST(ApicSpec, BadNamesAndOptionsAreOneLineErrors)
{
    EXPECT_NE(error_of([] { parse_apic_spec("x2avic"); }).find("unknown APIC backend"),
              std::string::npos);
    EXPECT_NE(error_of([] { parse_apic_spec(""); }).find("unknown APIC backend"),
              std::string::npos);
    // An option belongs to its backend only.
    EXPECT_NE(error_of([] { parse_apic_spec("apicv,x2avic"); }).find("unknown option 'x2avic'"),
              std::string::npos);
    EXPECT_NE(error_of([] { parse_apic_spec("kernel,nopi"); }).find("unknown option 'nopi'"),
              std::string::npos);
    EXPECT_NE(error_of([] { parse_apic_spec("avic,"); }).find("unknown option ''"),
              std::string::npos);
    for (const char* bad : {"x2avic", "apicv,x2avic", "avic,"})
        EXPECT_EQ(error_of([&] { parse_apic_spec(bad); }).find('\n'), std::string::npos) << bad;
}

TEST(ApicSpec, NamesMapToKindsBothWays)
{
    for (auto k : {ApicKind::Kernel, ApicKind::Apicv, ApicKind::Avic, ApicKind::Emulated})
        EXPECT_EQ(host::backend_kind(host::backend_name(k)), k);
    EXPECT_FALSE(host::backend_kind("auto").has_value());
}

TEST(VmApic, OneObjectPerBackend)
{
    for (auto k : {ApicKind::Kernel, ApicKind::Apicv, ApicKind::Avic, ApicKind::Emulated}) {
        auto a = make_vm_apic(k, ApicSpec{}, 2, "why");
        EXPECT_EQ(a->kind(), k);
        EXPECT_EQ(a->name(), host::backend_name(k));
        // Only KVM's own LAPIC halts and parks vCPUs out of hvaccel's sight.
        EXPECT_EQ(a->lapic_in_kvm(), k == ApicKind::Kernel);
        EXPECT_EQ(a->reason().rfind("why", 0), 0u) << a->reason();
    }
}

TEST(VmApic, ReasonNamesTheModelOptions)
{
    auto apicv = make_vm_apic(ApicKind::Apicv, parse_apic_spec("apicv,noipiv"), 1, "apicv");
    EXPECT_NE(apicv->reason().find("IPIv off, posted interrupts on"), std::string::npos)
        << apicv->reason();
    auto avic = make_vm_apic(ApicKind::Avic, parse_apic_spec("avic,x2avic,erratum1235"), 1, "avic");
    EXPECT_NE(avic->reason().find("x2AVIC"), std::string::npos) << avic->reason();
    EXPECT_NE(avic->reason().find("erratum 1235 mode"), std::string::npos) << avic->reason();
}

TEST(VmApic, ImpossibleModelOptionsAreRefused)
{
    // IPIv without posted interrupts exists on no CPU (SDM Vol3 31.1 "IPI virtualization"
    // requires posted-interrupt processing).
    const std::string e =
        error_of([] { make_vm_apic(ApicKind::Apicv, parse_apic_spec("apicv,nopi"), 1, "r"); });
    EXPECT_EQ(e.rfind("--apic: apicv: ", 0), 0u) << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
}

TEST(VmApic, ChoiceReportsBadSpecsBeforeTheHost)
{
    // A bad spec is reported as such whatever the host (no /dev/kvm needed to say so).
    EXPECT_NE(error_of([] { choose_vm_apic("avic,noipiv", 1); }).find("unknown option 'noipiv'"),
              std::string::npos);
}

}  // namespace
}  // namespace hv
