// Opening files hvaccel is handed by name, as a careful root process must.
//
// Reading: the file is opened without blocking (a FIFO or a device would otherwise stop
// hvaccel in open() until someone writes to it) and refused unless it is a regular file; its
// size is known before a byte is read, so callers bound what they read by it.
//
// Writing an output file the user names (the serial log): a new file is created exclusively
// (O_EXCL) with mode 0600; an existing one is reused only if it is a regular file with one
// link, owned by this process's user, reached without following a symlink. A symlink, a FIFO,
// a hard link to another file or another user's file planted at the path is refused, never
// followed, waited on or truncated.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/base/fd.hpp"

namespace hv {

struct RegularFile {
    Fd fd;
    std::uint64_t size = 0;
};

// Throws hv::Error "WHAT: cannot open: <os error>" or "WHAT: not a regular file". `writable`:
// opened for reading and writing (a disk image), never created.
RegularFile open_regular_file(const std::string& path, const std::string& what,
                              bool writable = false);

// Throws hv::Error "WHAT: ..." naming why the path was refused.
Fd open_output_file(const std::string& path, const std::string& what);
// open_output_file, then all of `text`.
void write_output_file(const std::string& path, std::string_view text, const std::string& what);

}  // namespace hv
