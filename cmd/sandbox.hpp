// `--sandbox`: once the VM is built and before its vCPUs run, hvaccel drops what a running VM
// does not need. As root it becomes `nobody` (setgroups, setresgid, setresuid; the /dev/kvm,
// serial and control-socket descriptors stay open), sets PR_SET_NO_NEW_PRIVS, and installs a
// seccomp filter (libseccomp) on every thread that allows only the system calls of a running VM
// (the table in sandbox.cpp; docs/reliability.md says why each one is there). Any other system
// call kills the whole process with SIGSYS (SCMP_ACT_KILL_PROCESS): a sandboxed VMM that tries
// something it never does is compromised or broken, and neither should go on. The kernel's audit
// log (dmesg: "audit: type=1326 ... syscall=N") names the call.
#pragma once

namespace hv {
class Vm;
}

namespace hv::cli {

struct SandboxPolicy {
    bool control = false;    // --control: accept4/poll/sendto on the control socket
    bool snapshots = false;  // --control or --snapshot-on: create, sync and rename snapshot files
};

// Drops privileges and installs the filter for the calling process (all threads). Throws
// hv::Error naming the step that failed; nothing is half-applied that would let the VM run
// unconfined (the caller ends the process on error).
void enter_sandbox(Vm& vm, const SandboxPolicy& policy);

// Test hook: with HVACCEL_SANDBOX_SELFTEST=execve|socket|open set, right after enter_sandbox()
// hvaccel tries that forbidden call. The filter kills the process (SIGSYS); without a filter the
// call returns and hvaccel exits with status 3 and "sandbox self-test: ... was not blocked".
void sandbox_selftest();

}  // namespace hv::cli
