// Snapshot and restore times: 1 vCPU / 128 MiB and 2 vCPUs / 1 GiB, with guest memory mostly
// zero (idle guest) and mostly dirty (memfill), on the kernel and emulated backends. Snapshot
// time is the control-socket round trip of {"cmd":"snapshot"} (pause, state, write, fsync,
// rename, resume); restore time is from the start of `hvaccel restore`'s VM construction (the
// file already read, CRC-checked and parsed) to every vCPU thread running (`--stats`), and the
// wall time from exec to the control socket answering is shown beside it. QEMU's own save
// (`migrate` to a file, its "total time") and load (`-incoming`, exec until `info status` says
// running) of the same guest are measured in the same run for the 1-vCPU cases. Reports only.
//
//   hv_bench_snapshot [--dir DIR]
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "tests/support/control.hpp"
#include "tests/support/process.hpp"

namespace {

double now_ms()
{
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

namespace support = hv::support;

// Starts argv with stdin and stdout on /dev/null and stderr to the file `err`.
pid_t spawn(const std::vector<std::string>& argv, const std::string& err)
{
    support::ProcessOptions opt;
    opt.out = support::Sink::null();
    opt.err = support::Sink::to_file(err);
    return support::spawn_process(argv, opt);
}

bool wait_text(const std::string& path, const std::string& text)
{
    return support::wait_for_text(path, text, 30);
}

std::string control(const std::string& sock, const std::string& req)
{
    return support::control_request(sock, req, 10);
}

double first_run_ms(const std::string& stats)
{
    auto p = stats.find("vCPUs running ");
    return p == std::string::npos ? -1 : std::atof(stats.c_str() + p + 14);
}

// Talks to a QEMU HMP monitor socket: sends `cmd` and reads until the next "(qemu)" prompt.
std::string hmp(const std::string& sock, const std::string& cmd)
{
    int fd = support::connect_unix(sock, 10);
    if (fd < 0)
        return {};
    std::string out;
    char buf[4096];
    auto until_prompt = [&] {
        while (out.find("(qemu)") == std::string::npos) {
            ssize_t n = read(fd, buf, sizeof buf);
            if (n <= 0)
                break;
            out.append(buf, static_cast<std::size_t>(n));
        }
    };
    until_prompt();  // the greeting
    out.clear();
    if (support::send_line(fd, cmd))
        until_prompt();
    else
        out.clear();
    close(fd);
    return out;
}

// QEMU's own save and load of the same guest: HMP `migrate exec:cat>FILE` (waits for the end)
// and `-incoming exec:cat FILE` until `info status` says running.
void qemu_row(const char* name, const char* mib, const char* image, const char* cmdline,
              const char* ready, const std::string& dir)
{
    std::string mon = dir + "/qmon.sock", out = dir + "/q.out", mig = dir + "/q.mig",
                err = dir + "/q.err";
    unlink(out.c_str());
    std::vector<std::string> base = {"qemu-system-x86_64",
                                     "-machine",
                                     "microvm",
                                     "-accel",
                                     "kvm",
                                     "-cpu",
                                     "host",
                                     "-m",
                                     mib,
                                     "-nodefaults",
                                     "-display",
                                     "none",
                                     "-monitor",
                                     "unix:" + mon + ",server,nowait"};
    auto boot = base;
    boot.insert(boot.end(), {"-kernel", std::string(HV_GUEST_DIR) + "/" + image + ".elf", "-append",
                             cmdline, "-serial", "file:" + out});
    pid_t q = spawn(boot, err);
    if (!wait_text(out, ready)) {
        std::printf("| %s | qemu microvm | guest did not start |\n", name);
        support::kill_process(q);
        return;
    }
    hmp(mon, "migrate \"exec:cat > " + mig + "\"");
    // QEMU's own account of the migration ("total time"), once it has completed.
    double save_ms = -1;
    for (int i = 0; i < 20000; ++i) {
        std::string info = hmp(mon, "info migrate");
        auto p = info.find("total time: ");
        if (info.find("completed") != std::string::npos && p != std::string::npos) {
            save_ms = std::atof(info.c_str() + p + 12);
            break;
        }
        usleep(1000);
    }
    hmp(mon, "quit");
    support::wait_process(q, 0);
    struct stat st {};
    stat(mig.c_str(), &st);
    auto load = base;
    load.insert(load.end(), {"-kernel", std::string(HV_GUEST_DIR) + "/" + image + ".elf", "-serial",
                             "null", "-incoming", "exec:cat " + mig});
    double r0 = now_ms();
    pid_t r = spawn(load, err);
    double run_ms = -1;
    for (int i = 0; i < 4000 && waitpid(r, nullptr, WNOHANG) == 0; ++i) {
        if (hmp(mon, "info status").find("running") != std::string::npos) {
            run_ms = now_ms() - r0;
            break;
        }
        usleep(1000);
    }
    hmp(mon, "quit");
    support::wait_process(r, 0);
    std::printf("| %s | qemu microvm (migrate to a file) | %.1f | %.1f | - | %.1f |\n", name,
                save_ms, static_cast<double>(st.st_size) / (1 << 20), run_ms);
    unlink(mig.c_str());
}

}  // namespace

int main(int argc, char** argv)
{
    std::string dir = "/tmp";
    if (argc == 3 && !std::strcmp(argv[1], "--dir"))
        dir = argv[2];
    else if (argc != 1) {
        std::fprintf(stderr, "usage: %s [--dir DIR]\n", argv[0]);
        return 2;
    }
    struct Case {
        const char* name;
        const char* vcpus;
        const char* mib;
        const char* image;
        const char* cmdline;
        const char* ready;
    } cases[] = {
        {"1 vCPU, 128 MiB, mostly zero", "1", "128", "idle", "", "idle"},
        {"1 vCPU, 128 MiB, mostly dirty", "1", "128", "memfill", "fill=100", "filled"},
        {"2 vCPUs, 1 GiB, mostly zero", "2", "1024", "idle", "", "idle"},
        {"2 vCPUs, 1 GiB, mostly dirty", "2", "1024", "memfill", "fill=960", "filled"},
    };
    std::printf(
        "| case | backend | snapshot ms | file MiB | restore: VM built to vCPUs running ms | "
        "exec to control socket answering ms |\n|---|---|---|---|---|---|\n");
    for (const auto& c : cases) {
        for (const char* backend : {"kernel", "emulated"}) {
            std::string sock = dir + "/hvbench.sock", out = dir + "/hvbench.out",
                        snap = dir + "/hvbench.snap", err = dir + "/hvbench.err";
            unlink(out.c_str());
            pid_t vm = spawn({HV_BINARY, "run", std::string(HV_GUEST_DIR) + "/" + c.image + ".elf",
                              "--vcpus", c.vcpus, "--memory", c.mib, "--cmdline", c.cmdline,
                              "--apic", backend, "--control", sock, "--serial", out},
                             err);
            if (!wait_text(out, c.ready)) {
                std::printf("| %s | %s | guest did not start |\n", c.name, backend);
                support::kill_process(vm);
                continue;
            }
            double t0 = now_ms();
            std::string reply = control(sock, "{\"cmd\":\"snapshot\",\"path\":\"" + snap + "\"}");
            double snap_ms = now_ms() - t0;
            control(sock, "{\"cmd\":\"quit\"}");
            support::wait_process(vm, 0);
            struct stat st {};
            stat(snap.c_str(), &st);
            // Restore, let it start, stop it: --stats reports the time to the first KVM_RUN.
            double r0 = now_ms();
            pid_t rp = spawn({HV_BINARY, "restore", snap, "--apic", backend, "--allow-clock-jump",
                              "--stats", "--serial", "none", "--control", sock},
                             err);
            control(sock, "{\"cmd\":\"stats\"}");  // returns once the VM runs
            double exec_ms = now_ms() - r0;
            control(sock, "{\"cmd\":\"quit\"}");
            support::wait_process(rp, 0);
            double first = first_run_ms(support::slurp(err));
            std::printf("| %s | %s | %.1f | %.1f | %.2f | %.1f |\n", c.name, backend, snap_ms,
                        static_cast<double>(st.st_size) / (1 << 20), first, exec_ms);
            std::fflush(stdout);
            unlink(snap.c_str());
        }
        if (std::string(c.vcpus) == "1" && !support::find_in_path("qemu-system-x86_64").empty())
            qemu_row(c.name, c.mib, c.image, c.cmdline, c.ready, dir);
    }
    return 0;
}
