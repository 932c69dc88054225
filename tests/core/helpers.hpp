// Helpers shared by the core tests that meet files and errors.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <functional>
#include <string>

#include "core/base/error.hpp"

namespace hvtest {

// A private directory under /tmp, removed with everything in it.
class TempDir {
  public:
    TempDir()
    {
        char tmpl[] = "/tmp/hvaccel-test-XXXXXX";
        path_ = ::mkdtemp(tmpl);
    }
    ~TempDir() { std::filesystem::remove_all(path_); }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::string& path() const { return path_; }
    std::string operator/(const std::string& name) const { return path_ + "/" + name; }

  private:
    std::string path_;
};

// The hv::Error message `f` throws, or "" when it throws none.
inline std::string message_of(const std::function<void()>& f)
{
    try {
        f();
    } catch (const hv::Error& e) {
        return e.what();
    }
    return "";
}

}  // namespace hvtest
