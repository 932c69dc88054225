// The control socket as another local user meets it: the file is 0600 whatever the umask, a
// peer whose uid is not allowed is refused (tried as `nobody`, in a child process), a second
// server cannot take a live socket over, a server removes only its own socket at exit, and a
// snapshot request cannot replace the socket or escape the temporary file with a NUL byte.
// The server acts on a fake target here; tests/guest/ runs it around real VMs.
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "core/base/error.hpp"
#include "core/snapshot/file.hpp"
#include "core/vm/control.hpp"
#include "tests/core/helpers.hpp"

namespace fs = std::filesystem;

namespace {

using hvtest::message_of;
using hvtest::TempDir;

constexpr uid_t kNobody = 65534;

class FakeTarget final : public hv::ControlTarget {
  public:
    void pause() override { ++pauses; }
    void resume() override {}
    // Writes a real (tiny) snapshot file: the writer's own checks are what is tested.
    void snapshot(const std::string& path) override
    {
        hv::snapshot::Writer w;
        w.commit(path, nlohmann::json{{"sections", nlohmann::json::object()}});
    }
    std::string stats_report() const override
    {
        ++stats;
        return "fake stats";
    }
    void quit(const std::string&) override {}

    std::atomic<int> pauses{0};
    mutable std::atomic<int> stats{0};
};

// Connects to `socket`, sends one request line and returns the reply line ("" when the
// connection failed).
std::string request(const std::string& socket, const std::string& line)
{
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, socket.c_str(), socket.size());
    std::string reply;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
        // The server may answer (a refusal) and close before the request is even sent: no
        // SIGPIPE, and the reply is read either way.
        std::string out = line + "\n";
        [[maybe_unused]] auto sent = ::send(fd, out.data(), out.size(), MSG_NOSIGNAL);
        char c = 0;
        while (::read(fd, &c, 1) == 1 && c != '\n')
            reply += c;
    }
    ::close(fd);
    return reply;
}

// The same from a child process running as `uid` (as a hostile local user would).
std::string request_as(uid_t uid, const std::string& socket, const std::string& line)
{
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0)
        return "pipe failed";
    pid_t pid = ::fork();
    if (pid == 0) {
        ::close(p[0]);
        if (::setgroups(0, nullptr) != 0)
            ::_exit(3);
        if (::setresgid(uid, uid, uid) != 0)
            ::_exit(4);
        if (::setresuid(uid, uid, uid) != 0)
            ::_exit(5);
        std::string reply = request(socket, line);
        if (reply.empty())
            reply = "connect failed";
        [[maybe_unused]] auto n = ::write(p[1], reply.data(), reply.size());
        ::_exit(0);
    }
    ::close(p[1]);
    std::string reply;
    char buf[512];
    for (ssize_t n; (n = ::read(p[0], buf, sizeof buf)) > 0;)
        reply.append(buf, static_cast<std::size_t>(n));
    ::close(p[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (reply.empty())
        reply = "child status " + std::to_string(status);
    return reply;
}

}  // namespace

TEST(ControlSocket, IsPrivateWhateverTheUmask)
{
    TempDir t;
    FakeTarget target;
    const mode_t old = ::umask(0);
    {
        hv::ControlServer server(target, t / "vm.sock");
        struct stat st {};
        ASSERT_EQ(::lstat((t / "vm.sock").c_str(), &st), 0);
        EXPECT_TRUE(S_ISSOCK(st.st_mode));
        EXPECT_EQ(st.st_mode & 0777, 0600u);
        EXPECT_EQ(request(t / "vm.sock", R"({"cmd":"stats"})"),
                  R"({"ok":true,"stats":"fake stats"})");
    }
    ::umask(old);
    EXPECT_FALSE(fs::exists(t / "vm.sock"));  // removed at exit
}

TEST(ControlSocket, PeersOfOtherUsersAreRefused)
{
    if (::geteuid() != 0)
        GTEST_SKIP() << "connecting as another user needs root";
    TempDir t;
    FakeTarget target;
    const std::string sock = t / "vm.sock";
    // Open the way to the socket file (as a careless umask or a shared directory would): the
    // peer check alone must keep `nobody` out.
    ASSERT_EQ(::chmod(t.path().c_str(), 0711), 0);
    {
        hv::ControlServer server(target, sock);
        ASSERT_EQ(::chmod(sock.c_str(), 0666), 0);
        const std::string reply = request_as(kNobody, sock, R"({"cmd":"pause"})");
        EXPECT_NE(reply.find("permission denied"), std::string::npos) << reply;
        EXPECT_EQ(target.pauses.load(), 0);
        EXPECT_EQ(request(sock, R"({"cmd":"pause"})"), R"({"ok":true,"state":"paused"})");
        EXPECT_EQ(target.pauses.load(), 1);
    }
    {
        hv::ControlServer server(target, sock, {kNobody});  // --control-allow-uid 65534
        ASSERT_EQ(::chmod(sock.c_str(), 0666), 0);
        EXPECT_EQ(request_as(kNobody, sock, R"({"cmd":"pause"})"),
                  R"({"ok":true,"state":"paused"})");
        EXPECT_EQ(target.pauses.load(), 2);
    }
}

TEST(ControlSocket, ALiveSocketIsNotTakenOverAndOnlyOwnSocketsAreRemoved)
{
    TempDir t;
    FakeTarget first_vm, second_vm;
    const std::string sock = t / "vm.sock";
    auto first = std::make_unique<hv::ControlServer>(first_vm, sock);
    EXPECT_NE(message_of([&] {
                  hv::ControlServer again(second_vm, sock);
              }).find("another process is listening"),
              std::string::npos);
    EXPECT_EQ(request(sock, R"({"cmd":"stats"})"), R"({"ok":true,"stats":"fake stats"})");
    EXPECT_EQ(first_vm.stats.load(), 1);

    // The path is given to another server after the first one's file was removed by hand: the
    // first server's exit must leave the second one's socket alone.
    ASSERT_EQ(::unlink(sock.c_str()), 0);
    hv::ControlServer second(second_vm, sock);
    first.reset();
    EXPECT_EQ(request(sock, R"({"cmd":"stats"})"), R"({"ok":true,"stats":"fake stats"})");
    EXPECT_EQ(second_vm.stats.load(), 1);
}

TEST(ControlSocket, AStaleSocketIsReplacedAndOtherFilesAreNot)
{
    TempDir t;
    FakeTarget target;
    const std::string sock = t / "vm.sock";
    {
        // A socket file nobody listens on: what a killed VM leaves behind.
        int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::memcpy(addr.sun_path, sock.c_str(), sock.size());
        ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
        ::close(fd);
    }
    {
        hv::ControlServer server(target, sock);
        EXPECT_EQ(request(sock, R"({"cmd":"stats"})"), R"({"ok":true,"stats":"fake stats"})");
    }
    const std::string file = t / "file";
    ::close(::open(file.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
    EXPECT_NE(message_of([&] { hv::ControlServer s(target, file); }).find("not a socket"),
              std::string::npos);
    EXPECT_NE(message_of([&] { hv::ControlServer s(target, ""); }).find("socket path"),
              std::string::npos);
    EXPECT_NE(message_of([&] {
                  hv::ControlServer s(target, std::string("a\0b", 3));
              }).find("cannot hold a NUL byte"),
              std::string::npos);
}

TEST(ControlSocket, SnapshotsCannotReplaceTheSocketOrDropTheTemporaryFile)
{
    TempDir t;
    FakeTarget target;
    const std::string sock = t / "vm.sock";
    hv::ControlServer server(target, sock);
    const std::string onto_socket =
        server.handle(nlohmann::json{{"cmd", "snapshot"}, {"path", sock}}.dump());
    EXPECT_NE(onto_socket.find("exists and is not a regular file"), std::string::npos)
        << onto_socket;
    EXPECT_EQ(request(sock, R"({"cmd":"stats"})"), R"({"ok":true,"stats":"fake stats"})");

    // "DIR/a\u0000b": the kernel would see "DIR/a" and the file would be written in place.
    const std::string with_nul = server.handle(
        nlohmann::json{{"cmd", "snapshot"}, {"path", t / std::string("a\0b", 3)}}.dump());
    EXPECT_NE(with_nul.find("NUL byte"), std::string::npos) << with_nul;
    EXPECT_FALSE(fs::exists(t / "a"));

    EXPECT_EQ(server.handle(nlohmann::json{{"cmd", "snapshot"}, {"path", t / "ok.snap"}}.dump()),
              nlohmann::json({{"ok", true}, {"path", t / "ok.snap"}}).dump());
    EXPECT_NO_THROW(hv::snapshot::Reader r(t / "ok.snap"));
}

TEST(ControlSocket, DeeplyNestedRequestsAreRefused)
{
    TempDir t;
    FakeTarget target;
    hv::ControlServer server(target, t / "vm.sock");
    const std::string deep =
        R"({"cmd":"stats","x":)" + std::string(30000, '[') + std::string(30000, ']') + "}";
    const std::string reply = server.handle(deep);
    EXPECT_NE(reply.find("nested deeper than"), std::string::npos) << reply;
    EXPECT_EQ(target.stats.load(), 0);
}
