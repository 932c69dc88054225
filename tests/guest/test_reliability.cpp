// Reliability of a running hvaccel (docs/reliability.md):
//  - --sandbox: guests run to completion on every APIC backend, snapshots through the control
//    socket still work, the process runs as nobody with NO_NEW_PRIVS and a filter on every
//    thread, and forbidden calls kill it with SIGSYS (a self-test proves the check would see a
//    missing filter);
//  - fault injection: snapshot writes failing (disk full, short writes, EIO at write, fsync and
//    rename) keep the previous snapshot and leave no temporary file, with one clear line, while
//    the VM keeps running; a vCPU thread that fails ends the VM cleanly;
//  - the control socket survives malformed, oversized and binary requests, half-written lines,
//    abrupt disconnects, idle and flooding clients, many clients at once — and still answers;
//  - confinement: guest physical addresses outside RAM are refused and counted.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/snapshot/file.hpp"
#include "process.hpp"

using hvtest::guest;
using hvtest::hvaccel;
using namespace std::chrono_literals;

namespace {

// A scratch directory that `nobody` may use too (a sandboxed hvaccel run by root is nobody).
struct Tmp {
    std::string dir;
    Tmp()
    {
        char d[] = "/tmp/hvaccel-rel-XXXXXX";
        dir = mkdtemp(d);
        chmod(dir.c_str(), 0777);
    }
    ~Tmp() { std::system(("rm -rf " + dir).c_str()); }
    std::string operator/(const std::string& f) const { return dir + "/" + f; }
};

std::vector<std::string> entries(const std::string& dir)
{
    std::vector<std::string> out;
    if (DIR* d = opendir(dir.c_str())) {
        while (dirent* e = readdir(d))
            if (std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, ".."))
                out.emplace_back(e->d_name);
        closedir(d);
    }
    std::sort(out.begin(), out.end());
    return out;
}

void write_file(const std::string& path, const std::string& bytes)
{
    std::ofstream(path, std::ios::binary) << bytes;
}

std::string snapshot_request(const std::string& path)
{
    return "{\"cmd\":\"snapshot\",\"path\":\"" + path + "\"}";
}

// A raw client of the control socket.
struct Client {
    int fd = -1;
    explicit Client(const std::string& path)
    {
        for (int i = 0; i < 1000 && fd < 0; ++i) {
            fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
            sockaddr_un a{};
            a.sun_family = AF_UNIX;
            std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
            if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
                close(fd);
                fd = -1;
                usleep(10000);
            }
        }
    }
    ~Client() { hangup(); }
    void hangup()
    {
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    // Sends what it can (the server may drop us mid-way); returns the bytes sent.
    std::size_t send_raw(const std::string& bytes)
    {
        std::size_t done = 0;
        while (done < bytes.size()) {
            ssize_t n = ::send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
            if (n <= 0)
                break;
            done += static_cast<std::size_t>(n);
        }
        return done;
    }
    // One reply line (without the newline), "" on EOF or after `timeout_ms`.
    std::string line(int timeout_ms = 10000)
    {
        std::string s;
        char c;
        for (;;) {
            pollfd p{fd, POLLIN, 0};
            if (poll(&p, 1, timeout_ms) <= 0 || read(fd, &c, 1) != 1 || c == '\n')
                return s;
            s.push_back(c);
        }
    }
    std::string request(const std::string& req)
    {
        send_raw(req + "\n");
        return line();
    }
};

bool is_error(const std::string& reply, const std::string& what)
{
    return reply.rfind("{\"error\":", 0) == 0 && reply.find("\"ok\":false") != std::string::npos &&
           reply.find(what) != std::string::npos;
}

// An hvaccel running `image` in the background with a control socket; quits it at the end.
struct Running {
    const Tmp& t;
    hvtest::Background bg;
    std::string ctl;
    Running(const Tmp& tmp, std::vector<std::string> args, const std::string& ready,
            const std::vector<std::string>& env = {})
        : t(tmp), ctl(tmp / "ctl")
    {
        std::vector<std::string> argv;
        if (!env.empty()) {
            argv.push_back("env");
            argv.insert(argv.end(), env.begin(), env.end());
        }
        argv.push_back(hvaccel());
        argv.insert(argv.end(), args.begin(), args.end());
        argv.insert(argv.end(), {"--control", ctl, "--serial", tmp / "serial"});
        bg = hvtest::spawn(argv, tmp / "stdout", tmp / "stderr");
        EXPECT_TRUE(hvtest::wait_for_text(tmp / "serial", ready, 60)) << stderr_text();
    }
    std::string stderr_text() const { return hvtest::slurp(t / "stderr"); }
    std::string request(const std::string& req) { return hvtest::control(ctl, req); }
    int quit()
    {
        EXPECT_EQ(request("{\"cmd\":\"quit\"}"), "{\"ok\":true}");
        return bg.wait(60);
    }
};

// A guest's check lines ("ok N - ...", "not ok N - ...", "N passed, N failed"), without the
// informational lines whose numbers vary from run to run.
std::string checks(const std::string& out)
{
    std::string kept;
    std::size_t at = 0;
    while (at < out.size()) {
        std::size_t nl = out.find('\n', at);
        std::string line = out.substr(at, nl == std::string::npos ? std::string::npos : nl - at);
        at = nl == std::string::npos ? out.size() : nl + 1;
        if (line.rfind("ok ", 0) == 0 || line.rfind("not ok ", 0) == 0 ||
            line.find(" passed, ") != std::string::npos)
            kept += line + "\n";
    }
    return kept;
}

int status_of_signal(int sig)
{
    return 128 + sig;
}

}  // namespace

// ---- --sandbox ---------------------------------------------------------------------------------

// The same guest, with and without --sandbox, ends the same way with the same output: SMP IPIs,
// the IOAPIC, the MSI-X device. (The kernel backend fails a check or two of apic_ioapic on this
// host either way.)
TEST(Sandbox, GuestRunsToCompletionOnEveryBackend)
{
    REQUIRE_KVM();
    for (const char* apic : {"kernel", "emulated", "apicv", "avic", "avic,x2avic"}) {
        for (const char* image : {"apic_smp", "apic_ioapic", "msix_device"}) {
            std::vector<std::string> argv = {hvaccel(), "run",    guest(image), "--vcpus",
                                             "3",       "--apic", apic,         "--stats"};
            if (std::string(image) == "msix_device")
                argv.push_back("--irqdev");  // a device thread, eventfds, KVM_IRQFD routes
            auto plain = hvtest::run(argv, 120);
            argv.push_back("--sandbox");
            auto boxed = hvtest::run(argv, 120);
            EXPECT_EQ(boxed.status, plain.status) << image << " on " << apic << "\n" << boxed.err;
            EXPECT_EQ(checks(boxed.out), checks(plain.out)) << image << " on " << apic;
            EXPECT_NE(boxed.err.find("hvaccel statistics"), std::string::npos) << apic;
            if (std::string(image) == "apic_smp") {
                EXPECT_EQ(boxed.status, hvtest::guest_status(0)) << apic << "\n" << boxed.out;
            }
        }
    }
}

// /proc/PID/task/TID/status of every thread of a sandboxed VM, once its vCPU, timer and watcher
// threads have started.
std::vector<std::pair<std::string, std::string>> sandboxed_thread_status(const Running& vm)
{
    std::this_thread::sleep_for(200ms);
    std::string task_dir = "/proc/" + std::to_string(vm.bg.pid) + "/task";
    std::vector<std::pair<std::string, std::string>> threads;
    for (const auto& tid : entries(task_dir))
        threads.emplace_back(tid, hvtest::slurp(task_dir + "/" + tid + "/status"));
    return threads;
}

TEST(Sandbox, EveryThreadIsFiltered)
{
    REQUIRE_KVM();
    Tmp t;
    Running vm(t, {"run", guest("idle"), "--vcpus", "2", "--sandbox"}, "idle");
    auto threads = sandboxed_thread_status(vm);
    EXPECT_GE(threads.size(), 5u) << "main, control, watcher, timer, 2 vCPUs";
    for (const auto& [tid, st] : threads) {
        EXPECT_NE(st.find("Seccomp:\t2"), std::string::npos) << "thread " << tid << "\n" << st;
        EXPECT_NE(st.find("NoNewPrivs:\t1"), std::string::npos) << "thread " << tid;
    }
    EXPECT_EQ(vm.quit(), 0) << vm.stderr_text();
}

TEST(Sandbox, EveryThreadRunsWithoutPrivileges)
{
    REQUIRE_KVM();
    if (geteuid() != 0)
        GTEST_SKIP() << "--sandbox drops root to nobody (uid/gid 65534, no capabilities) only "
                        "when hvaccel starts as root; this test runs as uid "
                     << geteuid();
    Tmp t;
    Running vm(t, {"run", guest("idle"), "--vcpus", "2", "--sandbox"}, "idle");
    auto threads = sandboxed_thread_status(vm);
    EXPECT_GE(threads.size(), 5u) << "main, control, watcher, timer, 2 vCPUs";
    for (const auto& [tid, st] : threads) {
        EXPECT_NE(st.find("Uid:\t65534\t65534\t65534\t65534"), std::string::npos)
            << "thread " << tid << "\n"
            << st;
        EXPECT_NE(st.find("Gid:\t65534\t65534\t65534\t65534"), std::string::npos)
            << "thread " << tid;
        EXPECT_NE(st.find("CapEff:\t0000000000000000"), std::string::npos) << "thread " << tid;
    }
    EXPECT_EQ(vm.quit(), 0) << vm.stderr_text();
}

TEST(Sandbox, SnapshotThroughTheControlSocketAndRestoreStillWork)
{
    REQUIRE_KVM();
    Tmp t;
    std::string snap = t / "s.snap";
    {
        Running vm(t,
                   {"run", guest("snap_work"), "--vcpus", "3", "--apic", "emulated", "--sandbox"},
                   "running");
        std::this_thread::sleep_for(50ms);
        EXPECT_EQ(vm.request(snapshot_request(snap)), "{\"ok\":true,\"path\":\"" + snap + "\"}")
            << vm.stderr_text();
        EXPECT_TRUE(
            is_error(vm.request(snapshot_request("/nonexistent-dir/s.snap")), "cannot create"));
        EXPECT_EQ(vm.quit(), 0) << vm.stderr_text();
    }
    for (const char* apic : {"kernel", "emulated", "apicv", "avic"}) {
        auto r = hvtest::run(
            {hvaccel(), "restore", snap, "--apic", apic, "--allow-clock-jump", "--sandbox"}, 120);
        EXPECT_EQ(r.status, hvtest::guest_status(0)) << apic << "\n" << r.out << r.err;
    }
}

TEST(Sandbox, SnapshotOnSignalWorks)
{
    REQUIRE_KVM();
    Tmp t;
    std::string snap = t / "sig.snap";
    auto bg = hvtest::spawn({hvaccel(), "run", guest("idle"), "--sandbox", "--snapshot-on", "USR2",
                             snap, "--serial", t / "serial"},
                            t / "o", t / "e");
    ASSERT_TRUE(hvtest::wait_for_text(t / "serial", "idle")) << hvtest::slurp(t / "e");
    kill(bg.pid, SIGUSR2);
    EXPECT_TRUE(hvtest::wait_for_text(t / "e", "snapshot written to")) << hvtest::slurp(t / "e");
    kill(bg.pid, SIGTERM);
    EXPECT_EQ(bg.wait(), 130) << hvtest::slurp(t / "e");
    EXPECT_NO_THROW(hv::snapshot::Reader r(snap));
}

TEST(Signals, StopAndSnapshotSignalsWorkWithTheControlSocket)
{
    // The control server's thread must not take a signal with its default action: SIGUSR2
    // writes the snapshot, SIGTERM ends the VM with its line, and the socket file goes away.
    REQUIRE_KVM();
    Tmp t;
    const std::string snap = t / "sig.snap", sock = t / "vm.sock";
    auto bg = hvtest::spawn({hvaccel(), "run", guest("idle"), "--control", sock, "--snapshot-on",
                             "USR2", snap, "--serial", t / "serial"},
                            t / "o", t / "e");
    ASSERT_TRUE(hvtest::wait_for_text(t / "serial", "idle")) << hvtest::slurp(t / "e");
    kill(bg.pid, SIGUSR2);
    EXPECT_TRUE(hvtest::wait_for_text(t / "e", "snapshot written to")) << hvtest::slurp(t / "e");
    kill(bg.pid, SIGTERM);
    EXPECT_EQ(bg.wait(), 130) << hvtest::slurp(t / "e");
    EXPECT_NE(hvtest::slurp(t / "e").find("stopped by signal"), std::string::npos);
    EXPECT_FALSE(std::filesystem::exists(sock));
    EXPECT_NO_THROW(hv::snapshot::Reader r(snap));
}

TEST(Sandbox, ForbiddenCallsAreKilledBySigsys)
{
    REQUIRE_KVM();
    for (const char* call : {"execve", "socket", "open"}) {
        std::string env = std::string("HVACCEL_SANDBOX_SELFTEST=") + call;
        auto r = hvtest::run({hvaccel(), "run", guest("idle"), "--sandbox", "--serial", "none"}, 60,
                             {env});
        EXPECT_EQ(r.status, status_of_signal(SIGSYS)) << call << ": " << r.err;
        EXPECT_EQ(r.err.find("not blocked"), std::string::npos) << r.err;
        // The same self-test without the filter: the call goes through and says so, which is
        // what this test would see if --sandbox installed nothing.
        auto open = hvtest::run({hvaccel(), "run", guest("idle"), "--serial", "none"}, 60, {env});
        EXPECT_EQ(open.status, 3) << call << ": " << open.err;
        EXPECT_NE(open.err.find(std::string("sandbox self-test: ") + call + " was not blocked"),
                  std::string::npos)
            << open.err;
    }
}

TEST(Sandbox, RefusesPmQosWithOneLine)
{
    REQUIRE_KVM();
    auto r = hvtest::run({hvaccel(), "run", guest("hello"), "--sandbox", "--pm-qos"}, 60);
    EXPECT_EQ(r.status, 2);
    EXPECT_NE(r.err.find("--sandbox and --pm-qos cannot be combined"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
}

// ---- fault injection ---------------------------------------------------------------------------

TEST(FaultInjection, FullDiskKeepsThePreviousSnapshotAndTheVmRuns)
{
    REQUIRE_KVM();
    Tmp t;
    std::string disk = t / "disk";
    mkdir(disk.c_str(), 0777);
    if (mount("tmpfs", disk.c_str(), "tmpfs", 0, "size=1m,mode=0777") != 0)
        GTEST_SKIP() << "cannot mount a 1 MiB tmpfs (" << std::strerror(errno)
                     << "): needs root or CAP_SYS_ADMIN";
    struct Unmount {
        std::string d;
        ~Unmount() { umount2(d.c_str(), MNT_DETACH); }
    } unmount{disk};
    std::string snap = disk + "/s.snap";
    Running vm(t, {"run", guest("memfill"), "--cmdline", "fill=0"}, "filled 0 MiB");
    ASSERT_EQ(vm.request(snapshot_request(snap)), "{\"ok\":true,\"path\":\"" + snap + "\"}");
    std::string before = hvtest::slurp(snap);
    // Fill the disk, then give back 16 KiB: the next snapshot's first write is short, then fails.
    {
        std::string chunk(64 << 10, 'x');
        int fd = open((disk + "/filler").c_str(), O_WRONLY | O_CREAT, 0644);
        while (write(fd, chunk.data(), chunk.size()) > 0) {
        }
        off_t end = lseek(fd, 0, SEEK_END);
        ASSERT_EQ(ftruncate(fd, end > (16 << 10) ? end - (16 << 10) : 0), 0);
        close(fd);
    }
    std::string reply = vm.request(snapshot_request(snap));
    EXPECT_TRUE(is_error(reply, "snapshot " + snap + ": write: No space left on device")) << reply;
    EXPECT_EQ(hvtest::slurp(snap), before) << "the previous snapshot changed";
    EXPECT_NO_THROW(hv::snapshot::Reader r(snap));
    EXPECT_EQ(entries(disk), (std::vector<std::string>{"filler", "s.snap"}));
    // The VM goes on; with room again, the next snapshot succeeds.
    EXPECT_NE(vm.request("{\"cmd\":\"stats\"}").find("\"ok\":true"), std::string::npos);
    unlink((disk + "/filler").c_str());
    EXPECT_EQ(vm.request(snapshot_request(snap)), "{\"ok\":true,\"path\":\"" + snap + "\"}");
    EXPECT_EQ(vm.quit(), 0) << vm.stderr_text();
}

TEST(FaultInjection, ShortWritesStillGiveAWholeSnapshot)
{
    REQUIRE_KVM();
    Tmp t;
    std::string snap = t / "s.snap";
    {
        Running vm(t, {"run", guest("snap_work"), "--vcpus", "3", "--apic", "emulated"}, "running",
                   {"HV_FAULT_INJECT=snapshot_write_short"});
        std::this_thread::sleep_for(50ms);
        EXPECT_EQ(vm.request(snapshot_request(snap)), "{\"ok\":true,\"path\":\"" + snap + "\"}");
        EXPECT_EQ(vm.quit(), 0) << vm.stderr_text();
    }
    auto r =
        hvtest::run({hvaccel(), "restore", snap, "--apic", "kernel", "--allow-clock-jump"}, 120);
    EXPECT_EQ(r.status, hvtest::guest_status(0)) << r.out << r.err;
}

TEST(FaultInjection, IoErrorsAtEveryStepKeepThePreviousSnapshot)
{
    REQUIRE_KVM();
    const struct {
        const char* fault;
        const char* step;
    } cases[] = {{"snapshot_write_eio", "write"},
                 {"snapshot_fsync_eio", "fsync"},
                 {"snapshot_rename_eio", "rename"}};
    for (const auto& c : cases) {
        Tmp t;
        std::string snap = t / "s.snap";
        const std::string previous = "the previous snapshot, whatever it holds";
        write_file(snap, previous);
        Running vm(t, {"run", guest("memfill"), "--cmdline", "fill=0"}, "filled 0 MiB",
                   {std::string("HV_FAULT_INJECT=") + c.fault});
        std::string reply = vm.request(snapshot_request(snap));
        EXPECT_TRUE(is_error(reply, "snapshot " + snap + ": " + c.step + ": Input/output error"))
            << c.fault << ": " << reply;
        EXPECT_EQ(hvtest::slurp(snap), previous) << c.fault;
        auto left = entries(t.dir);
        for (const auto& f : left)
            EXPECT_EQ(f.find(".tmp."), std::string::npos) << c.fault << " left " << f;
        EXPECT_NE(vm.request("{\"cmd\":\"stats\"}").find("\"ok\":true"), std::string::npos);
        EXPECT_EQ(vm.quit(), 0) << vm.stderr_text();
    }
}

TEST(FaultInjection, FailingVcpuThreadEndsTheVmWithOneLine)
{
    REQUIRE_KVM();
    const struct {
        const char* apic;
        const char* vcpu;
    } cases[] = {{"kernel", "0"}, {"emulated", "0"}, {"emulated", "1"},
                 {"apicv", "1"},  {"avic", "1"},     {"avic,x2avic", "0"}};
    for (const auto& c : cases) {
        auto r =
            hvtest::run({hvaccel(), "run", guest("apic_smp"), "--vcpus", "3", "--apic", c.apic}, 60,
                        {std::string("HV_FAULT_INJECT=vcpu_throw=") + c.vcpu});
        EXPECT_FALSE(r.timed_out) << c.apic;
        EXPECT_EQ(r.status, 4) << c.apic << " vCPU " << c.vcpu << ": " << r.err;
        std::string line = std::string("hvaccel: vCPU ") + c.vcpu +
                           ": injected failure (HV_FAULT_INJECT=vcpu_throw=" + c.vcpu + ")\n";
        EXPECT_NE(r.err.find(line), std::string::npos) << c.apic << ": " << r.err;
    }
}

// ---- the control socket ------------------------------------------------------------------------

TEST(ControlSocket, SurvivesMalformedOversizedAndBinaryRequests)
{
    REQUIRE_KVM();
    Tmp t;
    Running vm(t, {"run", guest("idle"), "--vcpus", "2"}, "idle");
    {
        Client c(vm.ctl);
        EXPECT_TRUE(is_error(c.request("{"), "not a JSON object"));
        EXPECT_TRUE(is_error(c.request("[]"), "not a JSON object"));
        EXPECT_TRUE(is_error(c.request("null"), "not a JSON object"));
        EXPECT_TRUE(is_error(c.request(""), "not a JSON object"));
        EXPECT_TRUE(is_error(c.request("{\"cmd\":5}"), "no \\\"cmd\\\" string"));
        EXPECT_TRUE(is_error(c.request("{\"cmd\":\"reboot\"}"), "unknown command"));
        EXPECT_TRUE(is_error(c.request("{\"cmd\":\"snapshot\"}"), "needs a \\\"path\\\""));
        EXPECT_TRUE(is_error(c.request("{\"cmd\":\"snapshot\",\"path\":7}"), "needs a"));
        EXPECT_TRUE(is_error(c.request("{\"cmd\":\"\xff\xfe\"}"), "not a JSON object"));
        EXPECT_TRUE(is_error(c.request(std::string(30000, '[') + std::string(30000, ']')),
                             "not a JSON object"));
        std::string binary;
        for (int i = 0; i < 4096; ++i) {
            auto b = static_cast<char>((i * 7919) & 0xff);
            binary.push_back(b == '\n' ? 'x' : b);
        }
        EXPECT_TRUE(is_error(c.request(binary), "not a JSON object"));
        // Several requests in one write, the last one split across two writes.
        c.send_raw("{\"cmd\":\"stats\"}\n{\"cmd\":\"pause\"}\n{\"cmd\":\"res");
        EXPECT_NE(c.line().find("\"ok\":true"), std::string::npos);
        EXPECT_EQ(c.line(), "{\"ok\":true,\"state\":\"paused\"}");
        c.send_raw("ume\"}\n");
        EXPECT_EQ(c.line(), "{\"ok\":true,\"state\":\"running\"}");
    }
    {
        // 10 MiB without a newline: one error line, then the server hangs up on us.
        Client c(vm.ctl);
        std::thread writer([&] { c.send_raw(std::string(10 << 20, 'A')); });
        std::string reply = c.line();
        writer.join();
        EXPECT_TRUE(reply.empty() || is_error(reply, "request too long")) << reply;
        EXPECT_EQ(c.line(1000), "") << "the server ends an oversized client";
    }
    EXPECT_NE(vm.request("{\"cmd\":\"stats\"}").find("\"ok\":true"), std::string::npos);
    EXPECT_EQ(vm.quit(), 0) << vm.stderr_text();
}

TEST(ControlSocket, SurvivesDisconnectsIdleFloodingAndManyClients)
{
    REQUIRE_KVM();
    Tmp t;
    Running vm(t, {"run", guest("idle"), "--vcpus", "2"}, "idle");
    for (int i = 0; i < 20; ++i) {
        Client c(vm.ctl);
        c.send_raw(i % 2 ? "{\"cmd\":\"sta" : "{\"cmd\":\"stats\"}\n");  // then gone
    }
    {
        // A snapshot asked for by a client that leaves before the reply.
        Client c(vm.ctl);
        c.send_raw(snapshot_request(t / "gone.snap") + "\n");
    }
    {
        // Idle clients do not hold the server: another client is answered meanwhile.
        std::vector<std::unique_ptr<Client>> idle;
        for (int i = 0; i < 8; ++i)
            idle.push_back(std::make_unique<Client>(vm.ctl));
        Client c(vm.ctl);
        EXPECT_NE(c.request("{\"cmd\":\"stats\"}").find("\"ok\":true"), std::string::npos);
        // More than 16 at once: the extra ones are told so and closed.
        for (int i = 0; i < 12; ++i)
            idle.push_back(std::make_unique<Client>(vm.ctl));
        std::string refused = idle.back()->line(5000);
        EXPECT_TRUE(is_error(refused, "too many clients")) << refused;
    }
    {
        // A client that sends requests and never reads the replies is dropped; nobody waits.
        Client flood(vm.ctl);
        std::string many;
        for (int i = 0; i < 2000; ++i)
            many += "{\"cmd\":\"stats\"}\n";
        std::thread writer([&] {
            for (int i = 0; i < 20 && flood.send_raw(many) == many.size(); ++i) {
            }
        });
        Client c(vm.ctl);
        EXPECT_NE(c.request("{\"cmd\":\"stats\"}").find("\"ok\":true"), std::string::npos);
        writer.join();
    }
    {
        // Many clients at once, each with a few requests.
        std::vector<std::thread> threads;
        std::atomic<int> ok{0};
        for (int i = 0; i < 12; ++i)
            threads.emplace_back([&] {
                Client c(vm.ctl);
                for (int k = 0; k < 5; ++k)
                    ok += c.request("{\"cmd\":\"stats\"}").find("\"ok\":true") != std::string::npos;
            });
        for (auto& th : threads)
            th.join();
        EXPECT_EQ(ok.load(), 60);
    }
    EXPECT_NE(vm.request("{\"cmd\":\"stats\"}").find("\"ok\":true"), std::string::npos);
    EXPECT_EQ(vm.quit(), 0) << vm.stderr_text();
}

// ---- confinement -------------------------------------------------------------------------------

// Guest physical addresses outside RAM reach no host memory: reads give all-ones, writes go
// nowhere, each one is counted exactly (guest/tests/confine.c); the PCI window counts its own.
TEST(Confinement, GuestAddressesOutsideRamAreRefusedAndCounted)
{
    REQUIRE_KVM();
    for (const char* apic : {"kernel", "emulated", "apicv", "avic"}) {
        auto r = hvtest::run(
            {hvaccel(), "run", guest("confine"), "--memory", "64", "--apic", apic, "--stats"}, 60);
        EXPECT_EQ(r.status, hvtest::guest_status(0)) << apic << "\n" << r.out << r.err;
        EXPECT_NE(r.out.find("confine: 10 outside-RAM reads, 5 writes"), std::string::npos)
            << r.out;
        EXPECT_NE(r.err.find("unclaimed: port reads 0 writes 0, MMIO reads 10 writes 5"),
                  std::string::npos)
            << apic << "\n"
            << r.err;
        EXPECT_NE(r.err.find("window-unclaimed 2"), std::string::npos) << apic << "\n" << r.err;
    }
}
