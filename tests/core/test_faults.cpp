// Snapshot writes that fail: a full disk (a 1 MiB tmpfs), a target that cannot be replaced, a
// missing directory. Each failure throws one line naming the target, the step and the OS error,
// leaves the previous file byte for byte, and leaves no temporary file behind. Also the
// HV_FAULT_INJECT spec parser (core/fault_inject.hpp).
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/base/error.hpp"
#include "core/base/fault_inject.hpp"
#include "core/snapshot/file.hpp"

using hv::snapshot::Reader;
using hv::snapshot::Writer;

namespace {

struct TmpDir {
    std::string dir;
    TmpDir()
    {
        char d[] = "/tmp/hvaccel-faults-XXXXXX";
        dir = ::mkdtemp(d);
    }
    ~TmpDir() { std::system(("rm -rf " + dir).c_str()); }
    std::string operator/(const std::string& f) const { return dir + "/" + f; }
};

// A tmpfs of `size` mounted on a fresh directory; empty() when mounting is not permitted.
struct Tmpfs {
    TmpDir base;
    std::string dir, why;
    explicit Tmpfs(const char* size)
    {
        std::string d = base / "disk";
        ::mkdir(d.c_str(), 0755);
        std::string opts = std::string("size=") + size;
        if (::mount("tmpfs", d.c_str(), "tmpfs", 0, opts.c_str()) == 0)
            dir = d;
        else
            why = std::strerror(errno);
    }
    ~Tmpfs()
    {
        if (!dir.empty())
            ::umount2(dir.c_str(), MNT_DETACH);
    }
};

std::string slurp(const std::string& path)
{
    std::ifstream f(path, std::ios::binary);
    std::ostringstream s;
    s << f.rdbuf();
    return s.str();
}

std::vector<std::string> entries(const std::string& dir)
{
    std::vector<std::string> out;
    if (DIR* d = ::opendir(dir.c_str())) {
        while (dirent* e = ::readdir(d))
            if (std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, ".."))
                out.emplace_back(e->d_name);
        ::closedir(d);
    }
    return out;
}

const nlohmann::json kDoc = {{"hvaccel", {{"format", "1.0"}}},
                             {"sections", nlohmann::json::object()}};

std::string commit_error(const std::string& path, const std::vector<std::uint8_t>& blob)
{
    Writer w;
    w.add_blob(blob.data(), blob.size());
    try {
        w.commit(path, kDoc);
    } catch (const hv::Error& e) {
        return e.what();
    }
    return {};
}

}  // namespace

TEST(FaultSpec, NamesValuesAndAbsence)
{
    EXPECT_EQ(hv::fault_value_in("", "snapshot_write_eio"), "");
    EXPECT_EQ(hv::fault_value_in("snapshot_write_eio", "snapshot_write_eio"), "1");
    EXPECT_EQ(hv::fault_value_in("a,vcpu_throw=3,b", "vcpu_throw"), "3");
    EXPECT_EQ(hv::fault_value_in("vcpu_throw_x=3", "vcpu_throw"), "");
    EXPECT_EQ(hv::fault_value_in("snapshot_write", "snapshot_write_eio"), "");
    EXPECT_EQ(hv::fault_value_in(",,=,=1,", "x"), "");
    EXPECT_EQ(hv::fault_value_in("x=", "x"), "");
}

TEST(SnapshotWriteFaults, FullDiskKeepsThePreviousFileAndLeavesNoTemporary)
{
    Tmpfs fs("1m");
    if (fs.dir.empty())
        GTEST_SKIP() << "cannot mount a tmpfs here (" << fs.why << "): needs root or CAP_SYS_ADMIN";
    std::string path = fs.dir + "/vm.snap";
    std::vector<std::uint8_t> small(200 << 10, 0x5a), large(2 << 20, 0xa5);
    ASSERT_EQ(commit_error(path, small), "");
    std::string before = slurp(path);
    ASSERT_GT(before.size(), small.size());

    std::string err = commit_error(path, large);
    EXPECT_NE(err.find("snapshot " + path + ": write: No space left on device"), std::string::npos)
        << err;
    EXPECT_EQ(err.find('\n'), std::string::npos) << "one line";
    EXPECT_EQ(slurp(path), before) << "the previous snapshot changed";
    EXPECT_NO_THROW(Reader r(path));
    EXPECT_EQ(entries(fs.dir), std::vector<std::string>{"vm.snap"}) << "a temporary file was left";

    // The disk has room again once the failed write is gone: the next snapshot goes through.
    ASSERT_EQ(commit_error(path, small), "");
    EXPECT_NO_THROW(Reader r(path));
}

TEST(SnapshotWriteFaults, TargetThatCannotBeReplacedIsLeftAsItWas)
{
    TmpDir t;
    // A non-empty directory at the target path: refused before anything is written (only a
    // regular file is ever replaced; the rename's own failure is injected in the tests above).
    std::string target = t / "vm.snap";
    ASSERT_EQ(::mkdir(target.c_str(), 0755), 0);
    std::ofstream(target + "/keep") << "keep";
    std::vector<std::uint8_t> blob(8192, 1);
    std::string err = commit_error(target, blob);
    EXPECT_NE(err.find("snapshot " + target + ": exists and is not a regular file"),
              std::string::npos)
        << err;
    EXPECT_EQ(slurp(target + "/keep"), "keep");
    EXPECT_EQ(entries(t.dir), std::vector<std::string>{"vm.snap"}) << "a temporary file was left";
}

TEST(SnapshotWriteFaults, MissingDirectoryNamesTheTemporaryFile)
{
    std::vector<std::uint8_t> blob(16, 1);
    std::string err = commit_error("/nonexistent-hvaccel/dir/vm.snap", blob);
    EXPECT_NE(err.find("snapshot /nonexistent-hvaccel/dir/vm.snap: cannot create "
                       "/nonexistent-hvaccel/dir/vm.snap.tmp."),
              std::string::npos)
        << err;
    EXPECT_NE(err.find("No such file or directory"), std::string::npos) << err;
}
