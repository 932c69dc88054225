// Opening QCOW2 images (qcow2.cpp) and the file helpers the image layer shares (image.cpp).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "core/base/file.hpp"
#include "core/storage/image.hpp"

namespace hv::storage {

// pread() / pwrite() of exactly the span; throw hv::Error "WHAT: read|write at OFFSET: ...".
void pread_exact(int fd, std::uint64_t offset, std::span<std::uint8_t> out,
                 const std::string& what);
void pwrite_exact(int fd, std::uint64_t offset, std::span<const std::uint8_t> data,
                  const std::string& what);
// fdatasync(); throws hv::Error "WHAT: flush: ...".
void sync_file(int fd, const std::string& what);
// [offset, offset + len) lies inside a disk of `size` bytes; throws hv::Error otherwise.
void check_range(std::uint64_t offset, std::size_t len, std::uint64_t size,
                 const std::string& what);

// `guessed`: the format came from the file's content, so the image may not name a backing file.
// `depth`: how far down a backing chain this image is.
std::unique_ptr<Image> open_qcow2(RegularFile file, const std::string& path, bool guessed,
                                  unsigned depth, bool writable);

// Opens the backing image at `depth` of a chain (open_image() is depth 0).
std::unique_ptr<Image> open_backing(const std::string& path, std::optional<Format> format,
                                    unsigned depth);

}  // namespace hv::storage
