// Every fuzz target in the normal suite (any compiler, no libFuzzer): each target's body, built
// as a plain function (fuzz_target.hpp), runs on every file of its seed corpus
// (tests/fuzz/corpus/<target>/), on truncations and byte flips of the seeds, and on
// deterministic pseudo-random inputs. A target aborts on a broken invariant, which kills this
// test with the target's message; an exception other than the ones a target expects fails it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

int hv_fuzz_loader(const std::uint8_t* data, std::size_t size);
int hv_fuzz_snapshot(const std::uint8_t* data, std::size_t size);
int hv_fuzz_devices(const std::uint8_t* data, std::size_t size);
int hv_fuzz_apic_diff(const std::uint8_t* data, std::size_t size);
int hv_fuzz_qcow2(const std::uint8_t* data, std::size_t size);
int hv_fuzz_nvme(const std::uint8_t* data, std::size_t size);
int hv_fuzz_apic(const std::uint8_t* data, std::size_t size);

namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<std::uint8_t>;
using Target = int (*)(const std::uint8_t*, std::size_t);

struct Case {
    const char* name;  // the corpus folder, as the fuzz_<name> executable
    Target fn;
    unsigned random_inputs;
    std::size_t max_len;
};

std::vector<Bytes> seeds(const std::string& name)
{
    std::vector<Bytes> out;
    const fs::path dir = fs::path(HV_FUZZ_CORPUS_DIR) / name;
    if (!fs::is_directory(dir))
        return out;
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(dir))
        if (e.is_regular_file())
            files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
        std::ifstream in(f, std::ios::binary);
        out.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    return out;
}

void run(const Bytes& b, Target fn)
{
    // HV_FUZZ_SAVE=FILE: each input is written to FILE before it runs, so the one that aborts
    // can be replayed (./fuzz_<target> FILE) or minimised (-minimize_crash=1).
    if (const char* save = std::getenv("HV_FUZZ_SAVE")) {
        std::ofstream out(save, std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
    }
    // An empty vector's data() may be null; libFuzzer never passes null.
    static const std::uint8_t kNone = 0;
    fn(b.empty() ? &kNone : b.data(), b.size());
}

// gtest prints a parameter with this (rather than its bytes).
void PrintTo(const Case& c, std::ostream* os)
{
    *os << c.name;
}

class FuzzSeeds : public ::testing::TestWithParam<Case> {};

TEST_P(FuzzSeeds, CorpusReplays)
{
    const Case& c = GetParam();
    const auto corpus = seeds(c.name);
    if (std::string(c.name) != "apic") {  // tests/apic/fuzz_apic.cpp has no corpus of its own
        EXPECT_GE(corpus.size(), 3u) << "seed corpus " << HV_FUZZ_CORPUS_DIR << "/" << c.name;
    }
    for (const Bytes& b : corpus)
        run(b, c.fn);
}

TEST_P(FuzzSeeds, MutatedSeedsAndRandomInputs)
{
    const Case& c = GetParam();
    const auto corpus = seeds(c.name);
    std::mt19937_64 rng(0x5eed0000u + c.max_len);
    for (unsigned i = 0; i < c.random_inputs; ++i) {
        Bytes b;
        if (!corpus.empty() && i % 2 == 0) {
            // A seed with a few bytes changed, sometimes cut short.
            b = corpus[rng() % corpus.size()];
            if (!b.empty()) {
                for (unsigned n = 1 + rng() % 4; n > 0; --n)
                    b[rng() % b.size()] ^= static_cast<std::uint8_t>(1u << (rng() % 8));
                if (rng() % 4 == 0)
                    b.resize(rng() % b.size());
            }
        } else {
            b.resize(rng() % c.max_len);
            for (auto& x : b)
                x = static_cast<std::uint8_t>(rng());
        }
        run(b, c.fn);
    }
}

INSTANTIATE_TEST_SUITE_P(Targets, FuzzSeeds,
                         ::testing::Values(Case{"loader", hv_fuzz_loader, 3000, 512},
                                           Case{"snapshot", hv_fuzz_snapshot, 2000, 512},
                                           Case{"devices", hv_fuzz_devices, 3000, 1024},
                                           Case{"apic_diff", hv_fuzz_apic_diff, 2000, 1024},
                                           Case{"qcow2", hv_fuzz_qcow2, 2000, 1024},
                                           Case{"nvme", hv_fuzz_nvme, 2000, 2048},
                                           Case{"apic", hv_fuzz_apic, 3000, 512}),
                         [](const ::testing::TestParamInfo<Case>& p) {
                             return std::string(p.param.name);
                         });

}  // namespace
