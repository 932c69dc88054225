#!/usr/bin/env python3
"""Writes the table of docs/conformance.md: every guest check that names its SDM section
("ok 12 - [11.8.6.1] a TPR write shows in CR8") in the conformance guests, with its verdict on
each APIC backend and under QEMU.

    python3 tests/guest/conformance.py BUILD_DIR > docs/conformance.md

BUILD_DIR holds the hvaccel binary and guest/*.elf (build/ after .ci/setup). The backend columns
need /dev/kvm; QEMU runs with KVM where /dev/kvm exists and with TCG otherwise, and the page says
which. A check a run did not reach (x2APIC not offered, a run that ended early) shows as "-".
"""
import os
import re
import subprocess
import sys

IMAGES = [("apic_local", 1), ("apic_rules", 2), ("apic_nmi", 2)]
APICV = ["apicv", "apicv,noipiv", "apicv,noipiv,nopi", "apicv,noipiv,nopi,novid", "apicv,nox2apic"]
AVIC = ["avic", "avic,x2avic", "avic,erratum1235", "avic,x2avic,erratum1235"]
CHECK = re.compile(r"^(ok|not ok) (\d+) - \[([0-9.]+)\] (.*)$")
TIMEOUT_S = 300


def verdicts(argv):
    """{check number: (ok, section, text)} from one run's output."""
    try:
        out = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             timeout=TIMEOUT_S, check=False).stdout
    except subprocess.TimeoutExpired as e:
        out = e.stdout or b""
    found = {}
    for line in out.decode(errors="replace").splitlines():
        m = CHECK.match(line.strip())
        if m:
            text = re.sub(r" \([^()]*\)$", "", m.group(4))  # drop the measured values
            found[int(m.group(2))] = (m.group(1) == "ok", m.group(3), text)
    return found


def cell(results, n):
    """One backend's verdict; several option sets: "ok" only if all passed."""
    seen = [(name, r[n][0]) for name, r in results if n in r]
    if not seen:
        return "-"
    bad = [name for name, ok in seen if not ok]
    if not bad:
        return "ok" if len(seen) == len(results) else "ok (%d of %d ran)" % (len(seen), len(results))
    return "**not ok**" + ("" if len(results) == 1 else ": " + ", ".join(bad))


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: conformance.py BUILD_DIR")
    build = sys.argv[1]
    hvaccel = os.path.join(build, "hvaccel")
    kvm = os.path.exists("/dev/kvm")
    qemu_accel = "kvm" if kvm else "tcg"
    rows = []
    for image, vcpus in IMAGES:
        elf = os.path.join(build, "guest", image + ".elf")
        if not os.path.isfile(elf):
            sys.exit("conformance: %s is missing (build first)" % elf)

        def ours(backend):
            return verdicts([hvaccel, "run", elf, "--vcpus", str(vcpus), "--apic", backend])

        groups = []
        if kvm:
            groups = [[("kernel", ours("kernel"))], [("emulated", ours("emulated"))],
                      [(b, ours(b)) for b in APICV], [(b, ours(b)) for b in AVIC]]
        machine = ["-machine", "microvm", "-cpu", "host"] if kvm else ["-machine", "q35", "-cpu", "max"]
        qemu = verdicts(["qemu-system-x86_64", *machine, "-accel", qemu_accel, "-smp", str(vcpus),
                         "-m", "128", "-nodefaults", "-kernel", elf, "-device",
                         "isa-debug-exit,iobase=0xf4,iosize=4", "-serial", "stdio", "-display",
                         "none"])
        groups.append([("qemu", qemu)])
        numbers = sorted({n for g in groups for _, r in g for n in r})
        for n in numbers:
            section, text = next(r[n][1:] for g in groups for _, r in g if n in r)
            cells = [cell(g, n) for g in groups]
            if not kvm:
                cells = ["not run"] * 4 + cells
            rows.append((section, text, "%s #%d" % (image, n), cells))

    print("<!-- Written by: python3 tests/guest/conformance.py build > docs/conformance.md -->")
    print("# Conformance of the local APIC backends\n")
    print("One row per architectural rule a guest check covers: the SDM Vol3 section, the check "
          "(guest image and check number), and the verdict on each backend and under QEMU "
          "(QEMU with %s). `apicv` is all five option sets (%s), `avic` all four modes (%s); a "
          "failing set is named.%s\n" % (
              "KVM, i.e. KVM's LAPIC" if kvm else "TCG, its own APIC model",
              ", ".join(APICV), ", ".join(AVIC),
              "" if kvm else " The backend columns say \"not run\": the machine that wrote this "
              "table had no /dev/kvm."))
    print("| SDM | rule | check | kernel | emulated | apicv | avic | QEMU |")
    print("|---|---|---|---|---|---|---|---|")
    for section, text, where, cells in rows:
        print("| %s | %s | %s | %s |" % (section, text.replace("|", "\\|"), where, " | ".join(cells)))
    print("\nThe guest tests (tests/guest/test_apic_backends.cpp, test_qemu_peer.cpp) require these "
          "verdicts: every model backend passes every check, and `kernel` and QEMU with KVM agree "
          "with the models except where docs/apic.md lists a KVM deviation. Where there is no "
          "/dev/kvm (CI), the model unit tests hold the same rules on every model backend "
          "without a guest: tests/apic/test_cr8.cpp (CR8 and TPR), test_timer.cpp and "
          "test_mode.cpp (timer mode switches, IDs after reset and mode changes), "
          "test_rules.cpp (the apic_rules checks), test_x2apic_regs.cpp (x2APIC MSR faults).")


if __name__ == "__main__":
    main()
