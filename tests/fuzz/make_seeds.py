#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/<target>/.

    python3 tests/fuzz/make_seeds.py [--guest build/guest/hello.elf] [--snapshot FILE]

Seeds are small meaningful inputs in each target's input format (see the comment at the top of
tests/fuzz/fuzz_<target>.cpp). --guest adds a real guest image (< 64 KiB) to the loader's seeds;
--snapshot trims a real snapshot (`hvaccel run build/guest/idle.elf --memory 2 --snapshot-on USR2
FILE`) to its JSON, the XSAVE blob and one memory page, and adds it to the snapshot's seeds.
Without them the hand-built seeds are written and the existing ones are kept.
"""
import argparse
import json
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    assert len(data) < 64 * 1024, (target, name, len(data))
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# --- loader: byte 0 options, byte 1 module size / 64, then the image -------------------------
MB_MAGIC = 0x1BADB002


def mb_header(flags, addrs=()):
    h = struct.pack("<III", MB_MAGIC, flags, (-(MB_MAGIC + flags)) & 0xFFFFFFFF)
    return h + b"".join(struct.pack("<I", a) for a in addrs)


def elf32(load=0x100000, code=b"\xf4" * 16):
    body = mb_header(0x3) + code  # page-align modules, memory info
    ehsize, phsize = 52, 32
    off = ehsize + phsize
    eh = b"\x7fELF" + bytes([1, 1, 1]) + bytes(9)
    eh += struct.pack("<HHIIIIIHHHHHH", 2, 3, 1, load + len(mb_header(0x3)), ehsize, 0, 0,
                      ehsize, phsize, 1, 40, 0, 0)
    ph = struct.pack("<IIIIIIII", 1, off, load, load, len(body), len(body) + 0x1000, 7, 0x1000)
    return eh + ph + body


def elf64(load=0x200000, code=b"\xf4" * 16):
    body = mb_header(0x3) + code
    ehsize, phsize = 64, 56
    off = ehsize + phsize
    eh = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    eh += struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, load + len(mb_header(0x3)), ehsize, 0, 0,
                      ehsize, phsize, 1, 64, 0, 0)
    ph = struct.pack("<IIQQQQQQ", 1, 7, off, load, load, len(body), len(body) + 0x2000, 0x1000)
    return eh + ph + body


def aout_kludge(load=0x100000):
    hdr = mb_header(0x10003, (load, load, 0, load + 0x3000, load + 32))
    return hdr + b"\x90" * (32 - len(hdr) % 32) + b"\xf4" * 64


def loader_seeds(guest):
    put("loader", "elf32_min", bytes([0, 0]) + elf32())
    put("loader", "elf32_modules_cmdline", bytes([2 | (5 << 3), 3]) + elf32())
    put("loader", "elf64_min", bytes([4, 0]) + elf64())
    put("loader", "aout_kludge", bytes([1, 1]) + aout_kludge())
    put("loader", "aout_kludge_high_ram", bytes([4 | 2, 2]) + aout_kludge(0x400000))
    if guest:
        with open(guest, "rb") as f:
            put("loader", "guest_" + os.path.basename(guest), bytes([1 | (3 << 3), 1]) + f.read())


# --- snapshot: byte 0 mode (0 file, 1 file with CRC fixed, 2 JSON in a container) ------------
def container(doc, blobs):
    js = json.dumps(doc, indent=1).encode()
    blob_off = (48 + len(js) + 4095) & ~4095
    head = bytearray(blob_off)
    head[0:8] = b"HVACSNAP"
    struct.pack_into("<IIIIQQQ", head, 8, 1, 0, 0, 0, len(js), blob_off, len(blobs))
    head[48:48 + len(js)] = js
    data = bytes(head) + blobs
    crc = zlib.crc32(data[24:]) & 0xFFFFFFFF
    return data[:16] + struct.pack("<I", crc) + data[20:]


def snapshot_seeds(path):
    with open(path, "rb") as f:
        b = f.read()
    jl, bo, bl = struct.unpack("<QQQ", b[24:48])
    doc = json.loads(b[48:48 + jl])
    blobs = b[bo:]
    secs = doc["sections"]
    xs = secs["vcpu/0"]["data"]["xsave"]
    xsave = blobs[xs["blob"]:xs["blob"] + xs["length"]]
    run = secs["memory"]["data"]["runs"][0]
    page = blobs[run["blob"]:run["blob"] + 0x1000]
    # One vCPU's XSAVE at 0, one memory page at 4096: the layout fuzz_snapshot's mode 2 offers.
    xs["blob"] = 0
    secs["memory"]["data"]["runs"] = [{"blob": 4096, "gpa": run["gpa"], "length": "0x1000"}]
    secs["machine"]["data"]["image"] = "idle.elf"
    file = container(doc, xsave + page)
    put("snapshot", "idle_file", b"\x00" + file)
    put("snapshot", "idle_file_crc_fixed", b"\x01" + file)
    put("snapshot", "idle_json", b"\x02" + json.dumps(doc, indent=1).encode())
    # A second vCPU in an x2APIC state with a pending interrupt and a running timer.
    apic = json.loads(json.dumps(secs["apic/0"]))
    put("snapshot", "idle_json_compact", b"\x02" + json.dumps(doc, separators=(",", ":")).encode())
    del apic


def snapshot_hand_seeds():
    put("snapshot", "bad_magic", b"\x00" + b"NOTASNAP" + bytes(40))
    put("snapshot", "empty_doc", b"\x02" + b"{}")
    put("snapshot", "no_sections", b"\x02" + b'{"hvaccel":{"format":"1.0"},"sections":{}}')
    idle = os.path.join(CORPUS, "snapshot", "idle_json")
    if os.path.exists(idle):
        with open(idle, "rb") as f:
            crafted_snapshot_seeds(json.loads(f.read()[1:]))


def crafted_snapshot_seeds(doc):
    """Documents an attacker made: each must be refused in one line, without a crash."""
    def edited(edit):
        d = json.loads(json.dumps(doc))
        edit(d["sections"])
        return b"\x02" + json.dumps(d, separators=(",", ":")).encode()

    def deep_optional(secs):
        secs["extra"] = {"version": 1, "min_version": 1, "optional": True, "data": {}}
    text = edited(deep_optional)
    text = text.replace(b'"data":{}', b'"data":{"x":' + b"[" * 5000 + b"]" * 5000 + b"}")
    put("snapshot", "crafted_deep_optional_section", text)
    put("snapshot", "crafted_bytes_after_nul", edited(lambda s: None) + b'\x00{"junk":1}')

    def octal(secs):
        secs["vcpu/0"]["data"]["regs"]["rflags"] = "010"
    put("snapshot", "crafted_octal_string", edited(octal))

    def shared_blob(secs):
        run = secs["memory"]["data"]["runs"][0]
        twin = dict(run, gpa=hex(int(run["gpa"], 16) + 0x2000))
        secs["memory"]["data"]["runs"].append(twin)
    put("snapshot", "crafted_runs_sharing_a_blob", edited(shared_blob))

    def bsp_waits(secs):
        secs["apic/0"]["data"]["run_state"] = "wait-for-sipi"
    put("snapshot", "crafted_bsp_waits_for_sipi", edited(bsp_waits))
    file = bytearray(b"HVACSNAP" + struct.pack("<IIIIQQQ", 1, 0, 0, 1, 2, 4096, 0))
    file += b"{}" + bytes(4096 - len(file) - 2)
    put("snapshot", "crafted_reserved_field", b"\x01" + bytes(file))


# --- devices: operations as fuzz_devices.cpp step() decodes them -----------------------------
# Port selector byte: base index = sel % 8 (COM1, debug-exit, fw_cfg, PIC1, PIC2, PM timer,
# testdev, PCI 0xcf8), offset = (sel >> 3) % 0x1a; sizes 0 -> 1, 1 -> 2, 2 -> 4.
COM1, EXIT, FWCFG, PIC1, PIC2, PMT, TESTDEV, PCI = range(8)


def port(base, off=0):
    return bytes([base | (off << 3)])


def pwrite(base, off, size_code, value):
    return bytes([0]) + port(base, off) + bytes([size_code]) + struct.pack("<I", value)


def pread(base, off, size_code):
    return bytes([1]) + port(base, off) + bytes([size_code])


def mmio(offset, size_log2, write, value=0):  # IOAPIC window
    return bytes([2, 0x00]) + struct.pack("<H", offset) + bytes([size_log2, 1 if write else 0]) + \
        struct.pack("<Q", value)


def devices_seeds():
    s = b"".join(pwrite(COM1, 0, 0, c) for c in b"hello\n") + pread(COM1, 5, 0) + \
        pwrite(COM1, 3, 0, 0x80) + pwrite(COM1, 0, 0, 1) + pwrite(COM1, 1, 0, 0) + \
        pwrite(COM1, 3, 0, 0x03) + pread(COM1, 2, 0) + pwrite(COM1, 2, 0, 0xc7) + \
        pread(COM1, 2, 0) + pwrite(COM1, 4, 0, 0x10) + pread(COM1, 6, 0) + bytes([7])
    put("devices", "uart", s)
    s = bytes([4, 0x00, 8]) + bytes([4, 0x19, 70]) + bytes([4, 0x20, 20]) + \
        bytes([4, 0x03, 8]) + bytes([4, 0x05, 2]) + bytes([4, 0x44]) + struct.pack("<H", 0x1234) + \
        bytes([4]) + pread(FWCFG, 0, 1) + pwrite(FWCFG, 0, 0, 0x19) + pread(FWCFG, 1, 2)
    put("devices", "fw_cfg", s)
    s = pwrite(PIC1, 0, 0, 0x11) + pwrite(PIC1, 1, 0, 0x20) + pwrite(PIC1, 1, 0, 4) + \
        pwrite(PIC1, 1, 0, 1) + pwrite(PIC1, 1, 0, 0xfb) + pread(PIC1, 1, 0) + \
        pwrite(PIC2, 0, 0, 0x11) + pwrite(PIC2, 1, 0, 0x28) + pwrite(PIC2, 1, 0, 2) + \
        pwrite(PIC2, 1, 0, 1) + pwrite(PIC2, 1, 0, 0xff) + pread(PIC2, 1, 0) + \
        bytes([8, 0xfe, 0x71]) + pread(PMT, 0, 2) + bytes([5]) + struct.pack("<I", 0xfffffff0) + \
        pread(PMT, 0, 2) + pread(PMT, 1, 1)
    put("devices", "pic_pm_timer", s)
    # IOAPIC: redirection entry 4 -> vector 0x34 level, unmasked; raise testdev line 4; EOI.
    s = mmio(0x00, 2, True, 0x18) + mmio(0x10, 2, True, 0x8034) + mmio(0x00, 2, True, 0x19) + \
        mmio(0x10, 2, True, 0x01000000) + mmio(0x10, 2, False) + \
        pwrite(TESTDEV, 4, 0, 1) + bytes([6, 0x34]) + pwrite(TESTDEV, 4, 0, 0) + \
        mmio(0x40, 2, True, 0x34) + mmio(0x00, 2, True, 0x01) + mmio(0x10, 2, False) + \
        mmio(0x10, 0, False) + mmio(0x13, 2, False)
    put("devices", "ioapic_testdev", s)
    # Probes attached at the bus's edges, accesses across their ends, the debug-exit port.
    s = bytes([9, 0]) + struct.pack("<H", 0x10) + struct.pack("<H", 0x100) + bytes([1]) + \
        bytes([9, 1]) + struct.pack("<Q", 0xfffffffffffff000) + struct.pack("<H", 0xfff) + bytes([1]) + \
        bytes([9, 1]) + struct.pack("<Q", 0xd0000100) + struct.pack("<H", 0x10) + bytes([1]) + \
        bytes([3, 0xc0]) + struct.pack("<H", 0xfe) + bytes([2, 1]) + struct.pack("<Q", 0x55) + \
        bytes([3, 0xc1]) + struct.pack("<H", 0x100) + bytes([3, 0]) + struct.pack("<Q", 0) + \
        bytes([3, 0xf0]) + struct.pack("<Q", 0xfffffffffffffffc) + bytes([3, 0]) + \
        pwrite(EXIT, 0, 0, 0x21) + pwrite(PCI, 0, 2, 0x80000000) + pread(PCI, 4, 2)
    put("devices", "bus_probes_exit", s)
    # PCI: read the IDs and BARs of slots 0-3, size and move the test function's BAR0 and the
    # IrqDevice's BAR0/BAR1 (memory decoding on), touch them, then MSI-X entry 0 and RAISE_NOW.
    def cfg_read(slot, reg, size_code=2):
        return bytes([10, 0x80, slot, reg, size_code])
    def cfg_write(slot, reg, value, size_code=2):
        return bytes([10, 0xa0, slot, reg, size_code]) + struct.pack("<I", value)
    def move_bar(slot, bar, page):  # op 11: 0xC0000000 + page << 8, memory on
        return bytes([11, 0x40 | (bar << 1) | (slot - 1)]) + struct.pack("<H", page)
    def win(addr, size_log2, write, value=0):  # MMIO anywhere (selector >= 0xe0)
        return bytes([2, 0xf0]) + struct.pack("<Q", addr) + bytes([size_log2, 1 if write else 0]) + \
            struct.pack("<Q", value)
    s = b"".join(cfg_read(slot, reg) for slot in range(4) for reg in (0x00, 0x08, 0x10, 0x14, 0x34))
    s += move_bar(1, 0, 0x100) + win(0xC0010010, 2, False) + win(0xC0010ffe, 1, True, 7) + \
        win(0xC0010ffe, 2, False) + move_bar(1, 1, 0x100) + win(0xC0010000, 2, False)
    s += move_bar(2, 0, 0x200) + move_bar(2, 1, 0x210) + win(0xC0020000, 2, False) + \
        cfg_write(2, 0x04, 0x6) + cfg_write(2, 0x40, 0x80000000) + \
        win(0xC0021000, 2, True, 0xFEE00000) + win(0xC0021008, 2, True, 0x41) + \
        win(0xC002100c, 2, True, 0) + win(0xC0020020, 2, True, 0x100000) + \
        win(0xC0020028, 2, True, 4) + win(0xC0020030, 2, True, 0) + win(0xC0020018, 2, False) + \
        win(0xC0021800, 3, False) + cfg_read(2, 0x40) + cfg_read(0, 0x00, 0) + \
        bytes([10, 0x40, 0x10, 0x00, 2]) + struct.pack("<I", 0x00010000)
    put("devices", "pci_bars_msix", s)


# --- apic_diff: byte 0 = BSP, then operations as fuzz_apic_diff.cpp step() decodes them -------
def reg(off):  # register offset -> mmio_offset() encoding
    return struct.pack("<H", off >> 4)


def w(off, value):
    return bytes([0]) + reg(off) + bytes([0]) + struct.pack("<I", value)


def r(off, size=0):
    return bytes([2]) + reg(off) + bytes([size])


def msr_w(index, value):
    return bytes([3, index]) + struct.pack("<I", value)


def msr_w64(index, value):
    return bytes([3 | 0x80, index]) + struct.pack("<Q", value)


def msr_r(index):
    return bytes([4, index])


def deliver(vector, mode=0, level=False, source=1):
    return bytes([7, mode | (0x10 if level else 0) | (source << 6), vector])


ACK, EVENTS = bytes([9]), bytes([13])
EOI = bytes([11])


def advance(ns):
    return bytes([12]) + struct.pack("<H", ns)


def apic_diff_seeds():
    enable = w(0xF0, 0x1FF)
    s = b"\x01" + enable + deliver(0x41) + deliver(0x52) + deliver(0x33, level=True) + \
        r(0x200) + r(0x100) + ACK + r(0x100) + ACK + w(0x80, 0x50) + ACK + EOI + ACK + EOI + \
        EOI + r(0x180) + w(0x80, 0) + ACK + EOI + r(0x0A0) + r(0x280)
    put("apic_diff", "xapic_deliver_ack_eoi", s)
    s = b"\x01" + enable + w(0x3E0, 0x3) + w(0x320, 0x20045) + w(0x380, 100) + advance(900) + \
        r(0x390) + ACK + EOI + advance(3000) + ACK + EOI + w(0x320, 0x10045) + w(0x380, 0) + \
        w(0x320, 0x40046) + bytes([6]) + struct.pack("<H", 500) + advance(1000) + ACK + \
        bytes([15, 3]) + r(0x390)
    put("apic_diff", "xapic_timers_migrate", s)
    s = b"\x01" + enable + w(0x310, 0) + w(0x300, 0x4061) + ACK + w(0x300, 0x44062) + \
        w(0x300, 0x84063) + w(0x300, 0xC4064) + ACK + EOI + ACK + EOI + w(0x300, 0x4500) + \
        EVENTS + deliver(0x10, 6) + EVENTS + deliver(0, 4) + EVENTS + w(0x350, 0x700) + \
        deliver(0x20, 7) + EVENTS + w(0x280, 0) + r(0x280) + w(0x300, 0x4005) + w(0x280, 0) + \
        r(0x280)
    put("apic_diff", "xapic_ipis_init_sipi_esr", s)
    x2 = bytes([5, 0x03])  # IA32_APIC_BASE: enable + x2APIC
    s = b"\x01" + x2 + msr_w(0x0F, 0x1FF) + msr_r(0x02) + msr_r(0x0D) + msr_w(0x3F, 0x71) + \
        ACK + msr_w(0x0B, 0) + msr_w64(0x30, (0 << 32) | 0x4072) + msr_w(0x08, 0x80) + ACK + \
        msr_w(0x08, 0) + ACK + msr_w(0x0B, 0) + msr_w(0x32, 0x40080) + bytes([6]) + \
        struct.pack("<H", 300) + advance(2000) + ACK + msr_w(0x0B, 0) + msr_r(0x08) + \
        msr_r(0x30) + msr_w(0x0B, 1) + bytes([5, 0x01]) + bytes([5, 0x00]) + bytes([5, 0x01])
    put("apic_diff", "x2apic", s)
    s = b"\x00" + enable + bytes([14, 0]) + deliver(0x45) + bytes([14, 1]) + ACK + EOI + \
        bytes([14, 0]) + bytes([14, 0]) + deliver(0x46) + bytes([14, 0]) + bytes([14, 1]) + \
        ACK + deliver(0x47, level=True) + bytes([14, 0]) + bytes([14, 0]) + EOI + ACK + EOI
    put("apic_diff", "sched_block_wake", s)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--guest")
    ap.add_argument("--snapshot")
    a = ap.parse_args()
    loader_seeds(a.guest)
    snapshot_hand_seeds()
    if a.snapshot:
        snapshot_seeds(a.snapshot)
    devices_seeds()
    apic_diff_seeds()


if __name__ == "__main__":
    main()
