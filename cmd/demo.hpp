// `hvaccel demo`: boots the guest image embedded in the binary (guest/tests/hello.c) on two
// vCPUs and shows what it printed and the VMM's counters. Later issues extend it into a tour of
// every APIC backend.
#pragma once

int cmd_demo(int argc, char** argv);
