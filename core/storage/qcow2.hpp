// QCOW2 images (qcow2.cpp) and the helpers the image layer shares.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "core/base/file.hpp"
#include "core/storage/image.hpp"

namespace hv::storage {

// pread() of exactly out.size() bytes; throws hv::Error "WHAT: read at OFFSET: ..." otherwise.
void pread_exact(int fd, std::uint64_t offset, std::span<std::uint8_t> out,
                 const std::string& what);

// `guessed`: the format came from the file's content, so the image may not name a backing file.
// `depth`: how far down a backing chain this image is.
std::unique_ptr<Image> open_qcow2(RegularFile file, const std::string& path, bool guessed,
                                  unsigned depth);

// Opens the backing image at `depth` of a chain (open_image() is depth 0).
std::unique_ptr<Image> open_backing(const std::string& path, std::optional<Format> format,
                                    unsigned depth);

}  // namespace hv::storage
