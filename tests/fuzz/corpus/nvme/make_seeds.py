#!/usr/bin/env python3
"""Writes the nvme fuzz target's seeds beside this script: step sequences (see
tests/fuzz/fuzz_nvme.cpp) that identify the controller, create an I/O queue pair, write and
read through PRP1, PRP2 and a PRP list, and reset the controller."""
import os
import struct

def cmd(opcode, cid, nsid=0, prp1=0, prp2=0, cdw10=0, cdw11=0, cdw12=0):
    dw = [opcode | (cid << 16), nsid, 0, 0, 0, 0, prp1 & 0xffffffff, prp1 >> 32,
          prp2 & 0xffffffff, prp2 >> 32, cdw10, cdw11, cdw12, 0, 0, 0]
    return struct.pack("<16I", *dw)

def submit(q, c):
    return bytes([1, q]) + c

def reg(off, size_log2, value):
    return bytes([0]) + struct.pack("<HB", off, size_log2) + struct.pack("<Q", value)

def cq_head(qid, head):
    return bytes([2, qid, head])

queues = (submit(0, cmd(0x05, 1, prp1=0x13000, cdw10=1 | (3 << 16), cdw11=3 | (1 << 16))) +
          submit(0, cmd(0x01, 2, prp1=0x12000, cdw10=1 | (3 << 16), cdw11=1 | (1 << 16))))
seeds = {
    "identify": submit(0, cmd(0x06, 1, prp1=0x20000, cdw10=1)) +
                submit(0, cmd(0x06, 2, nsid=1, prp1=0x20800, prp2=0x21000, cdw10=0)),
    "write_read": queues +
                  submit(1, cmd(0x01, 3, nsid=1, prp1=0x20000, cdw10=0, cdw12=7)) +
                  submit(1, cmd(0x02, 4, nsid=1, prp1=0x20200, prp2=0x21000, cdw10=8, cdw12=15)) +
                  submit(1, cmd(0x02, 5, nsid=1, prp1=0x20000, prp2=0x10008, cdw10=16, cdw12=31)) +
                  cq_head(1, 3),
    "features_logs_reset": submit(0, cmd(0x09, 1, cdw10=7, cdw11=3 | (3 << 16))) +
                           submit(0, cmd(0x02, 2, nsid=0xffffffff, prp1=0x20000,
                                         cdw10=2 | (127 << 16))) +
                           submit(0, cmd(0x0c, 3)) + reg(0x14, 2, 0) +
                           reg(0x14, 2, 1 | (6 << 16) | (4 << 20)) + reg(0x14, 2, 1 << 14),
}
here = os.path.dirname(os.path.abspath(__file__))
for name, data in seeds.items():
    with open(os.path.join(here, name), "wb") as f:
        f.write(data)
