#include "cmd/sandbox.hpp"

#include <fcntl.h>
#include <grp.h>
#include <linux/kvm.h>
#include <pwd.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/base/error.hpp"
#include "core/kvm/uapi.hpp"
#include "core/vm/vm.hpp"

namespace hv::cli {

namespace {

// What every running VM needs, whatever its options (docs/reliability.md "--sandbox" repeats
// this table with the reasons).
constexpr const char* kAlways[] = {
    "read", "write",  // UART output, the control pipe, stdio
    "close",          // fds closed at exit (vCPUs, guest memory, pipes)
    "futex",          // mutexes and condition variables (vCPU sleep/wake, timer)
    "clock_gettime", "clock_nanosleep", "nanosleep", "gettimeofday",  // where the vDSO falls back
    "rt_sigreturn",                                       // the kick signal's handler returns
    "rt_sigprocmask", "rt_sigaction", "rt_sigtimedwait",  // vCPU threads unblock the kick signal;
                                                          // the signal-watcher thread waits
    "restart_syscall",   // a futex wait interrupted by the kick signal
    "getpid", "gettid",  // pthread_kill() names its own process
    "sched_yield", "sched_getaffinity", "sched_setaffinity",  // --pin of vCPU threads
    "set_robust_list", "rseq",                                // every new thread (glibc)
    "exit", "exit_group", "madvise", "munmap", "brk",
    "mincore",                       // malloc, thread stacks; --stats resident RAM
    "newfstatat", "fstat", "lseek",  // stdio on the first write to a stream
};

// Thread creation: only threads (CLONE_THREAD), never processes. clone3 passes its flags in
// memory a filter cannot read: it fails with ENOSYS and glibc falls back to clone.
void allow_threads(scmp_filter_ctx ctx);
// mmap/mprotect: never executable memory (PROT_EXEC), so no new code can appear.
void allow_memory(scmp_filter_ctx ctx);
// ioctl: KVM ioctls on the vCPU fds; on the VM fd only the interrupt-routing ones a running VM
// issues (not KVM_CREATE_VCPU or KVM_SET_USER_MEMORY_REGION, which would change the machine);
// TCGETS (isatty from stdio) fails with ENOTTY; nothing on /dev/kvm itself.
void allow_ioctls(scmp_filter_ctx ctx, Vm& vm);

void check(int rc, const char* what)
{
    if (rc < 0)
        throw_errno(fmt::format("--sandbox: {}", what), -rc);
}

int nr(const char* name)
{
    int n = seccomp_syscall_resolve_name(name);
    if (n == __NR_SCMP_ERROR)
        fail("--sandbox: unknown system call '{}'", name);
    return n;
}

scmp_arg_cmp arg(unsigned index, scmp_compare op, scmp_datum_t a, scmp_datum_t b = 0)
{
    return scmp_arg_cmp{index, op, a, b};
}

void allow(scmp_filter_ctx ctx, const char* name, std::vector<scmp_arg_cmp> cmps = {})
{
    check(seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr(name), static_cast<unsigned>(cmps.size()),
                                 cmps.data()),
          name);
}

void allow_threads(scmp_filter_ctx ctx)
{
    allow(ctx, "clone", {arg(0, SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD)});
    check(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr("clone3"), 0), "clone3");
    // pthread_kill(): tgkill(own pid, tid, sig) only.
    allow(ctx, "tgkill", {arg(0, SCMP_CMP_EQ, static_cast<scmp_datum_t>(::getpid()))});
}

void allow_memory(scmp_filter_ctx ctx)
{
    allow(ctx, "mmap", {arg(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)});
    allow(ctx, "mprotect", {arg(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)});
}

void allow_ioctls(scmp_filter_ctx ctx, Vm& vm)
{
    // The kernel reads the request as 32 bits: compare the low 32 only.
    constexpr scmp_datum_t kLow32 = 0xffffffffu;
    for (unsigned i = 0; i < vm.vcpu_count(); ++i)
        allow(ctx, "ioctl",
              {arg(0, SCMP_CMP_EQ, static_cast<scmp_datum_t>(vm.vcpu(i).kvm().fd())),
               arg(1, SCMP_CMP_MASKED_EQ, 0xff00, KVMIO << 8)});
    const unsigned long vm_ioctls[] = {KVM_SIGNAL_MSI, kvm::uapi::kSetGsiRouting,
                                       KVM_IRQ_LINE,   KVM_IRQ_LINE_STATUS,
                                       KVM_IRQFD,      KVM_CHECK_EXTENSION};
    for (unsigned long req : vm_ioctls)
        allow(ctx, "ioctl",
              {arg(0, SCMP_CMP_EQ, static_cast<scmp_datum_t>(vm.kvm().fd())),
               arg(1, SCMP_CMP_MASKED_EQ, kLow32, req)});
    check(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOTTY), nr("ioctl"), 1,
                           arg(1, SCMP_CMP_MASKED_EQ, kLow32, TCGETS)),
          "ioctl TCGETS");
}

// The control socket's server thread: poll, accept, check the peer's uid (SO_PEERCRED),
// read (allowed above), reply.
void allow_control(scmp_filter_ctx ctx)
{
    for (const char* name :
         {"poll", "ppoll", "accept4", "getsockopt", "recvfrom", "sendto", "shutdown"})
        allow(ctx, name);
}

// core/snapshot/file.cpp: a temporary file with a random name (getrandom) created next to the
// target, written, synced, renamed over it (or unlinked on failure), then the directory opened
// and synced. openat is allowed with exactly those two flag sets, so no file can be opened for
// reading and nothing executed. The trade-off: the path itself cannot be checked by a filter; any
// file the process's user may write can be created or replaced (docs/reliability.md).
void allow_snapshots(scmp_filter_ctx ctx)
{
    constexpr scmp_datum_t kFlags = 0xffffffffu;
    allow(ctx, "openat",
          {arg(2, SCMP_CMP_MASKED_EQ, kFlags, static_cast<scmp_datum_t>(snapshot::kTmpFlags))});
    allow(ctx, "openat", {arg(2, SCMP_CMP_MASKED_EQ, kFlags, O_RDONLY | O_DIRECTORY | O_CLOEXEC)});
    // The writer's look at /proc/swaps (fopen "r": flags exactly O_RDONLY) fails instead: it then
    // assumes the host swaps and compares every guest page (slower, same snapshot).
    check(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), nr("openat"), 1,
                           arg(2, SCMP_CMP_MASKED_EQ, kFlags, O_RDONLY)),
          "openat O_RDONLY");
    for (const char* name : {"getrandom", "fsync", "fdatasync", "rename", "unlink"})
        allow(ctx, name);
}

// As root: become `nobody`. The open descriptors (/dev/kvm, the VM, the vCPUs, serial output,
// the control socket) stay usable; nothing new can be opened with root's rights.
void drop_root()
{
    if (::geteuid() != 0)
        return;
    uid_t uid = 65534;
    gid_t gid = 65534;
    if (const passwd* pw = ::getpwnam("nobody")) {
        uid = pw->pw_uid;
        gid = pw->pw_gid;
    }
    if (::setgroups(0, nullptr) != 0)
        throw_errno("--sandbox: setgroups");
    if (::setresgid(gid, gid, gid) != 0)
        throw_errno("--sandbox: setresgid");
    if (::setresuid(uid, uid, uid) != 0)
        throw_errno("--sandbox: setresuid");
    if (::setuid(0) == 0)
        fail("--sandbox: still able to become root after dropping privileges");
}

}  // namespace

void enter_sandbox(Vm& vm, const SandboxPolicy& policy)
{
    if (vm.config().pm_qos)
        fail("--sandbox and --pm-qos cannot be combined: the PM QoS request opens "
             "/dev/cpu_dma_latency (root only) when the vCPUs start");
    std::fflush(stdout);  // what the set-up printed goes out before the filter is in place
    drop_root();
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        throw_errno("--sandbox: PR_SET_NO_NEW_PRIVS");
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
    if (!ctx)
        fail("--sandbox: seccomp_init failed");
    try {
        // Every thread that exists now (the control server's) gets the filter too.
        check(seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1), "SCMP_FLTATR_CTL_TSYNC");
        for (const char* name : kAlways)
            allow(ctx, name);
        allow_threads(ctx);
        allow_memory(ctx);
        allow_ioctls(ctx, vm);
        if (policy.control)
            allow_control(ctx);
        if (policy.snapshots)
            allow_snapshots(ctx);
        check(seccomp_load(ctx), "seccomp_load");
    } catch (...) {
        seccomp_release(ctx);
        throw;
    }
    seccomp_release(ctx);
}

void sandbox_selftest()
{
    const char* what = std::getenv("HVACCEL_SANDBOX_SELFTEST");
    if (!what || !*what)
        return;
    std::string w = what;
    if (w == "execve") {
        char* const argv[] = {const_cast<char*>("/nonexistent/hvaccel-selftest"), nullptr};
        ::execve(argv[0], argv, nullptr);
    } else if (w == "socket") {
        int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        if (fd >= 0)
            ::close(fd);
    } else if (w == "open") {
        int fd = ::open("/etc/passwd", O_RDONLY | O_CLOEXEC);
        if (fd >= 0)
            ::close(fd);
    } else {
        fail("HVACCEL_SANDBOX_SELFTEST={}: execve, socket or open", w);
    }
    std::fprintf(stderr, "hvaccel: sandbox self-test: %s was not blocked\n", what);
    std::_Exit(3);
}

}  // namespace hv::cli
