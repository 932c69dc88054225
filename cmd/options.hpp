// A small command-line option parser: "--name VALUE", "--name=VALUE" and flags. Unknown options
// and missing or malformed values throw hv::Error with a one-line message.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace hv::cli {

class Options {
  public:
    // `handler` receives the value ("" for flags).
    void value(const std::string& name, std::function<void(const std::string&)> handler);
    void flag(const std::string& name, std::function<void()> handler);
    // An option followed by two values ("--snapshot-on SIGNAL PATH").
    void pair(const std::string& name,
              std::function<void(const std::string&, const std::string&)> handler);
    // Parses argv[first..argc); returns the positional arguments.
    std::vector<std::string> parse(int argc, char** argv, int first) const;

  private:
    struct Opt {
        std::string name;
        bool takes_value;
        std::function<void(const std::string&)> handler;
        std::function<void(const std::string&, const std::string&)> handler2 = {};
    };
    std::vector<Opt> opts_;
};

// Parses an unsigned decimal number within [lo, hi]; throws naming `what`.
std::uint64_t parse_uint(const std::string& s, const char* what, std::uint64_t lo,
                         std::uint64_t hi);

}  // namespace hv::cli
