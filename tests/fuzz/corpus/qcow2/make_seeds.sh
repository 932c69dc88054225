#!/usr/bin/env bash
# Writes the qcow2 fuzz target's seeds beside this script with qemu-img and qemu-io (Debian:
# qemu-utils): small images with 512-byte and 4 KiB clusters, version 2 and 3, data, a zero
# cluster, compressed clusters, a backing-file name and an internal snapshot. Re-run it to
# refresh them.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
head -c 16384 /dev/zero | tr '\0' 'h' > "$tmp/data.raw"
qemu-img create -q -f qcow2 -o cluster_size=512 v3_data_zero "64K"
qemu-io -f qcow2 -c "write -P 0x5a 0 1k" -c "write -z 2k 512" -c "write -P 0x33 60k 1k" v3_data_zero >/dev/null
qemu-img create -q -f qcow2 -o cluster_size=512,compat=0.10 v2_data "32K"
qemu-io -f qcow2 -c "write -P 0x77 512 1536" v2_data >/dev/null
qemu-img convert -q -c -f raw -O qcow2 -o cluster_size=4096 "$tmp/data.raw" compressed
qemu-img create -q -f qcow2 -u -o cluster_size=512 -b missing-base.raw -F raw with_backing_name "16K"
qemu-img create -q -f qcow2 -o cluster_size=512 with_snapshot "16K"
qemu-io -f qcow2 -c "write -P 0x21 0 1k" with_snapshot >/dev/null
qemu-img snapshot -c first with_snapshot
qemu-io -f qcow2 -c "write -P 0x22 512 1k" with_snapshot >/dev/null
# regress_*: inputs the fuzzer found, kept as they are (not made here).
