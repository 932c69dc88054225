// disk_writer IMAGE FORMAT SEED COUNT MAXLEN: opens IMAGE writable and makes COUNT pseudo-random
// writes of at most MAXLEN bytes (SEED decides offsets, lengths and bytes; the same arguments give
// the same writes as hvtest::disk_writes), printing
// "acked N" after write N returned. test_storage runs it under HV_FAULT_INJECT=disk_exit_after=K
// to stop it dead between two pwrite()s of an image update, then checks what the file holds.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "core/storage/image.hpp"
#include "tests/core/disk_writes.hpp"

int main(int argc, char** argv)
{
    if (argc != 6) {
        std::fprintf(stderr, "usage: disk_writer IMAGE raw|qcow2 SEED COUNT MAXLEN\n");
        return 2;
    }
    try {
        auto img = hv::storage::open_image(argv[1], hv::storage::parse_format(argv[2]), true);
        const auto writes = hvtest::disk_writes(img->size(), std::strtoul(argv[3], nullptr, 10),
                                                std::strtoul(argv[4], nullptr, 10),
                                                std::strtoull(argv[5], nullptr, 10));
        for (std::size_t i = 0; i < writes.size(); ++i) {
            img->write(writes[i].offset, writes[i].bytes);
            std::printf("acked %zu\n", i + 1);
            std::fflush(stdout);
        }
        img->flush();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "disk_writer: %s\n", e.what());
        return 1;
    }
    return 0;
}
