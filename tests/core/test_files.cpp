// Files hvaccel is handed by name: what it reads must be a regular file (a FIFO or a device is
// refused at once, never waited on), what it writes is never reached through something another
// user planted at the path (a symlink, a hard link, a FIFO, a file of theirs). And JSON from
// outside is bounded in depth.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <future>
#include <string>

#include "core/base/error.hpp"
#include "core/base/file.hpp"
#include "core/base/json.hpp"
#include "core/boot/loader.hpp"
#include "core/snapshot/file.hpp"
#include "tests/core/helpers.hpp"

namespace fs = std::filesystem;

namespace {

using hvtest::message_of;
using hvtest::TempDir;

// Runs `f` on another thread and returns its error message. A FIFO's open() that blocked would
// never return: after a generous bound (only there to turn a hang into a failure) the FIFO is
// opened from this side, which releases the blocked open.
std::string refused_without_blocking(const std::string& fifo, const std::function<void()>& f)
{
    auto done = std::async(std::launch::async, [&] { return message_of(f); });
    if (done.wait_for(std::chrono::seconds(60)) == std::future_status::timeout) {
        ADD_FAILURE() << "blocked on the FIFO " << fifo;
        int fd = ::open(fifo.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
        std::string m = done.get();
        if (fd >= 0)
            ::close(fd);
        return m;
    }
    return done.get();
}

std::string contents(const std::string& path)
{
    hv::RegularFile f = hv::open_regular_file(path, path);
    std::string s(f.size, '\0');
    EXPECT_EQ(::read(f.fd.get(), s.data(), s.size()), static_cast<ssize_t>(s.size()));
    return s;
}

void put(const std::string& path, const std::string& text)
{
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0) << path;
    ASSERT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
    ::close(fd);
}

}  // namespace

TEST(InputFiles, FifosAndDevicesAreRefusedWithoutBlocking)
{
    TempDir t;
    const std::string fifo = t / "fifo";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    // The guest image and --module, `restore` and `snapshot inspect`/`diff`.
    EXPECT_NE(refused_without_blocking(fifo, [&] { hv::read_file(fifo, 1 << 20); })
                  .find("not a regular file"),
              std::string::npos);
    EXPECT_NE(refused_without_blocking(fifo, [&] { hv::snapshot::Reader r(fifo); })
                  .find("snapshot " + fifo + ": not a regular file"),
              std::string::npos);
    EXPECT_NE(message_of([] { hv::read_file("/dev/zero", 1 << 20); }).find("not a regular file"),
              std::string::npos);
    EXPECT_NE(message_of([] { hv::snapshot::Reader r("/dev/null"); }).find("not a regular file"),
              std::string::npos);
    EXPECT_NE(message_of([&] { hv::snapshot::Reader r(t / "missing"); }).find("cannot open"),
              std::string::npos);
}

TEST(InputFiles, SnapshotHeaderIsCheckedBeforeTheFileIsRead)
{
    // 1 GiB, sparse, not a snapshot: refused on its first bytes, without reading the rest
    // (the process's peak memory does not grow by the file's size).
    TempDir t;
    const std::string big = t / "big";
    put(big, "NOTASNAPSHOT");
    ASSERT_EQ(::truncate(big.c_str(), 1ll << 30), 0);
    struct rusage before {};
    ::getrusage(RUSAGE_SELF, &before);
    EXPECT_NE(message_of([&] { hv::snapshot::Reader r(big); }).find("bad magic"),
              std::string::npos);
    struct rusage after {};
    ::getrusage(RUSAGE_SELF, &after);
    EXPECT_LT(after.ru_maxrss - before.ru_maxrss, 256 * 1024);  // KiB
}

TEST(OutputFiles, NewFilesAreCreatedPrivateAndOwnFilesReused)
{
    TempDir t;
    const std::string log = t / "serial.log";
    {
        hv::Fd fd = hv::open_output_file(log, "--serial " + log);
        ASSERT_TRUE(fd.valid());
        ASSERT_EQ(::write(fd.get(), "first run\n", 10), 10);
    }
    struct stat st {};
    ASSERT_EQ(::stat(log.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    EXPECT_EQ(contents(log), "first run\n");
    {
        // A second run with the same path: the user's own file is truncated and reused.
        hv::Fd fd = hv::open_output_file(log, "--serial " + log);
        ASSERT_EQ(::write(fd.get(), "2\n", 2), 2);
    }
    EXPECT_EQ(contents(log), "2\n");
    hv::write_output_file(log, "a report\n", "--json " + log);  // bench --json, --plot
    EXPECT_EQ(contents(log), "a report\n");
    EXPECT_NE(message_of([] { hv::open_output_file("", "--serial"); }).find("empty path"),
              std::string::npos);
}

TEST(OutputFiles, WhatOthersPlantAtThePathIsRefusedNotFollowed)
{
    TempDir t;
    const std::string victim = t / "victim";
    put(victim, "precious");

    const std::string link = t / "symlink.log";
    ASSERT_EQ(::symlink(victim.c_str(), link.c_str()), 0);
    EXPECT_NE(message_of([&] { hv::open_output_file(link, "--serial " + link); }).find("symlink"),
              std::string::npos);

    const std::string hard = t / "hardlink.log";
    ASSERT_EQ(::link(victim.c_str(), hard.c_str()), 0);
    EXPECT_NE(message_of([&] { hv::open_output_file(hard, "--serial " + hard); }).find("links"),
              std::string::npos);
    EXPECT_EQ(contents(victim), "precious");

    const std::string fifo = t / "fifo.log";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0666), 0);
    EXPECT_NE(refused_without_blocking(fifo, [&] { hv::open_output_file(fifo, "--serial"); })
                  .find("not a regular file"),
              std::string::npos);

    // A file that belongs to another user (planted in a shared directory) is not taken over.
    if (::geteuid() != 0)
        GTEST_SKIP() << "giving a file to another user needs root";
    const std::string theirs = t / "theirs.log";
    put(theirs, "theirs");
    ASSERT_EQ(::chown(theirs.c_str(), 65534, 65534), 0);
    EXPECT_NE(message_of([&] { hv::open_output_file(theirs, "--serial"); }).find("belongs to uid"),
              std::string::npos);
    EXPECT_EQ(contents(theirs), "theirs");
}

TEST(Json, DepthAndNulBytesAreBounded)
{
    std::string why;
    EXPECT_TRUE(hv::parse_json(R"({"a":[1,{"b":"[[[{{{"}]})", why).is_object()) << why;
    const std::string deep(100000, '[');
    EXPECT_TRUE(hv::parse_json(deep + std::string(100000, ']'), why).is_discarded());
    EXPECT_NE(why.find("nested deeper than 32"), std::string::npos) << why;
    std::string at_limit = std::string(32, '[') + std::string(32, ']');
    EXPECT_TRUE(hv::parse_json(at_limit, why).is_array()) << why;
    EXPECT_TRUE(hv::parse_json("[" + at_limit + "]", why).is_discarded());
    // The library alone would stop at the NUL and accept {} followed by anything.
    const std::string nul("{}\0garbage", 10);
    EXPECT_TRUE(hv::parse_json(nul, why).is_discarded());
    EXPECT_NE(why.find("NUL byte at offset 2"), std::string::npos) << why;
    EXPECT_TRUE(hv::parse_json("{", why).is_discarded());
    EXPECT_EQ(why, "not valid JSON");
    EXPECT_TRUE(hv::parse_json("{} {}", why).is_discarded());
}
