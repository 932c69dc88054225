#include "process.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace hvtest {

Result run(const std::vector<std::string>& argv, int timeout_s, const std::vector<std::string>& env)
{
    hv::support::ProcessOptions opt;
    opt.timeout_s = timeout_s;
    opt.env = env;
    return hv::support::run_process(argv, opt);
}

Background spawn(const std::vector<std::string>& argv, const std::string& out_path,
                 const std::string& err_path)
{
    hv::support::ProcessOptions opt;
    opt.out = hv::support::Sink::to_file(out_path);
    opt.err = hv::support::Sink::to_file(err_path);
    opt.stdin_null = false;
    return {hv::support::spawn_process(argv, opt)};
}

std::string hvaccel()
{
    return HV_BINARY;
}

std::string guest(const std::string& name)
{
    return std::string(HV_GUEST_DIR) + "/" + name + ".elf";
}

std::string kvm_unavailable()
{
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return strerror(errno);
    close(fd);
    return {};
}

}  // namespace hvtest
