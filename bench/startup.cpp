// Start-up benchmark: wall time and peak RSS from exec to exit for a guest that boots and exits
// at once, hvaccel beside qemu-system-x86_64 -accel kvm (pc and microvm machines), on the same
// image in the same run. hvaccel's RSS overhead is its peak RSS minus the guest RAM it touched
// (reported by --stats). Prints a Markdown table; asserts nothing.
//
//   hv_bench_startup [--runs N] [--image PATH] [--no-qemu]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "tests/support/process.hpp"

namespace {

struct Sample {
    double ms;
    long rss_kib;
    std::string err;
};

// One run with stdin and stdout on /dev/null and stderr (hvaccel's --stats) kept.
Sample run_once(const std::vector<std::string>& argv)
{
    hv::support::ProcessOptions opt;
    opt.out = hv::support::Sink::null();
    auto r = hv::support::run_process(argv, opt);
    return {r.seconds * 1e3, r.max_rss_kib, r.err};
}

long guest_resident_kib(const std::string& stats)
{
    auto p = stats.find("guest RAM resident: ");
    return p == std::string::npos ? 0 : std::atol(stats.c_str() + p + 20);
}

void report(const char* name, std::vector<Sample> s, bool hvaccel)
{
    std::sort(s.begin(), s.end(), [](const Sample& a, const Sample& b) { return a.ms < b.ms; });
    long rss = 0, guest = 0;
    for (const auto& x : s) {
        rss = std::max(rss, x.rss_kib);
        guest = std::max(guest, guest_resident_kib(x.err));
    }
    std::printf(
        "| %-26s | %8.1f | %8.1f | %8.1f | %9ld | %s |\n", name, s.front().ms, s[s.size() / 2].ms,
        s.back().ms, rss,
        hvaccel ? (std::to_string(rss - guest) + " (guest " + std::to_string(guest) + ")").c_str()
                : "-");
}

}  // namespace

int main(int argc, char** argv)
{
    int runs = 10;
    std::string image = HV_GUEST_DIR "/hello.elf";
    bool qemu = true;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--runs") && i + 1 < argc)
            runs = std::max(1, std::atoi(argv[++i]));
        else if (!std::strcmp(argv[i], "--image") && i + 1 < argc)
            image = argv[++i];
        else if (!std::strcmp(argv[i], "--no-qemu"))
            qemu = false;
        else {
            std::fprintf(stderr, "usage: %s [--runs N] [--image PATH] [--no-qemu]\n", argv[0]);
            return 2;
        }
    }
    const std::string mem = "128";
    std::vector<std::pair<const char*, std::vector<std::string>>> cmds = {
        {"hvaccel", {HV_BINARY, "run", image, "--memory", mem, "--serial", "none", "--stats"}},
    };
    if (qemu && !hv::support::find_in_path("qemu-system-x86_64").empty()) {
        for (const char* m : {"microvm", "pc"})
            cmds.push_back({m[0] == 'p' ? "qemu -machine pc" : "qemu -machine microvm",
                            {"qemu-system-x86_64", "-machine", m, "-accel", "kvm", "-cpu", "host",
                             "-m", mem, "-nodefaults", "-display", "none", "-serial", "none",
                             "-kernel", image, "-device", "isa-debug-exit,iobase=0xf4,iosize=4"}});
    }
    std::printf(
        "start-up of %s, %s MiB, %d runs each (wall ms: min, median, max; peak RSS KiB)\n\n",
        image.c_str(), mem.c_str(), runs);
    std::printf("| %-26s | %8s | %8s | %8s | %9s | %s |\n", "VMM", "min", "median", "max",
                "peak RSS", "RSS beyond guest RAM touched (KiB)");
    std::printf("|%s|%s|%s|%s|%s|%s|\n", std::string(28, '-').c_str(), std::string(10, '-').c_str(),
                std::string(10, '-').c_str(), std::string(10, '-').c_str(),
                std::string(11, '-').c_str(), std::string(20, '-').c_str());
    for (const auto& [name, argv_] : cmds) {
        run_once(argv_);  // warm-up: page cache, KVM module state
        std::vector<Sample> s;
        for (int i = 0; i < runs; ++i)
            s.push_back(run_once(argv_));
        report(name, s, std::string(name) == "hvaccel");
    }
    return 0;
}
