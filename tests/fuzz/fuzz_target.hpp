// What every fuzz target shares: the entry-point macro, a reader of the fuzzer's bytes and the
// invariant check.
//
// One source per target defines its body with HV_FUZZ_TARGET(name). Built as a libFuzzer
// executable (-DHV_FUZZ_LIBFUZZER, clang, -fsanitize=fuzzer) the body is LLVMFuzzerTestOneInput;
// built into the normal test suite (tests/fuzz/test_fuzz_seeds.cpp, any compiler) it is the plain
// function hv_fuzz_<name>, which the gtest calls with every seed in tests/fuzz/corpus/<target>/
// and a few thousand deterministic pseudo-random inputs. So a target that stops compiling or
// starts failing on its seeds breaks ctest, not only the fuzz job.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#ifdef HV_FUZZ_LIBFUZZER
#define HV_FUZZ_TARGET(name)                                                                       \
    extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
#else
#define HV_FUZZ_TARGET(name) int hv_fuzz_##name(const std::uint8_t* data, std::size_t size)
#endif

namespace hv::fuzz {

// Little-endian values taken from the front of the input; past its end every value is 0, so any
// input, however short, is a complete sequence.
class Input {
  public:
    Input(const std::uint8_t* data, std::size_t size) : p_(data), end_(data + size) {}
    bool empty() const { return p_ == end_; }
    std::size_t left() const { return static_cast<std::size_t>(end_ - p_); }
    std::uint64_t take(unsigned bytes)
    {
        std::uint64_t v = 0;
        for (unsigned i = 0; i < bytes && p_ != end_; ++i)
            v |= static_cast<std::uint64_t>(*p_++) << (8 * i);
        return v;
    }
    std::uint8_t byte() { return static_cast<std::uint8_t>(take(1)); }
    std::uint32_t u32() { return static_cast<std::uint32_t>(take(4)); }
    // The rest of the input (consumed).
    const std::uint8_t* rest(std::size_t& n)
    {
        n = left();
        const std::uint8_t* p = p_;
        p_ = end_;
        return p;
    }

  private:
    const std::uint8_t* p_;
    const std::uint8_t* end_;
};

// HV_FUZZ_VERBOSE=1: targets say what became of each input (e.g. the reason it was refused),
// to check that seeds reach what they are meant to.
inline void note(const char* target, const char* what, const char* detail = "")
{
    static const bool verbose = std::getenv("HV_FUZZ_VERBOSE") != nullptr;
    if (verbose)
        std::fprintf(stderr, "fuzz %s: %s %s\n", target, what, detail);
}

// An invariant failed: say which and abort, so that libFuzzer saves the input as a crash and the
// gtest dies with the message.
[[noreturn]] inline void failed(const char* target, const char* what, const char* detail = "")
{
    std::fprintf(stderr, "fuzz %s: invariant failed: %s %s\n", target, what, detail);
    std::fflush(stderr);
    std::abort();
}

}  // namespace hv::fuzz

#define HV_FUZZ_CHECK(target, cond)                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ::hv::fuzz::failed(target, #cond);                                                     \
    } while (0)
