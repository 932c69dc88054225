// `hvaccel demo`: a tour of hvaccel on the guest embedded in the binary (the IPI ping-pong
// workload, guest/tests/bench_ipi_pingpong.c), in well under a minute:
//  1. boot it on 2 vCPUs (--vcpus N) in this process and show its output and the VMM's counters;
//  2. the IPI ping-pong (and the device MSI workload, where the device is built) briefly on every
//     APIC backend this host can run and under QEMU+KVM, as child processes;
//  3. snapshot it mid-run on one backend (apicv) through the control socket and restore it on
//     another (avic), where it must finish with every IPI counted exactly once;
//  4. the latency / exits table of step 2.
#pragma once

int cmd_demo(int argc, char** argv);
