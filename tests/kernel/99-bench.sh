#!/bin/bash
# TEMPORARY benchmark, to be deleted
t() { local s=$EPOCHREALTIME; "$@" >/dev/null 2>&1; local rc=$?; awk -v a=$s -v b=$EPOCHREALTIME -v n="$*" -v rc=$rc 'BEGIN{printf "BENCH %-50s %.3fs rc=%d\n", n, b-a, rc}'; }
grep ' / \| /host ' /proc/mounts
cat /proc/cmdline
t /usr/bin/python3 -c 'print(1)'
t /usr/bin/python3 -c 'print(1)'
t /usr/bin/python3 -c 'import json, subprocess, hashlib, urllib.request'
t /usr/bin/true
t bash -c 'for i in $(seq 100); do /bin/true; done'
t cat /work/vmbench/big.bin
t cat /work/vmbench/big.bin
t dd if=/work/vmbench/big.bin of=/dev/null bs=1M
s=$(sha256sum /work/vmbench/big.bin | cut -d' ' -f1); [[ $s == $(cat /work/vmbench/big.sha) ]] && echo BENCH sha OK || echo BENCH sha MISMATCH
t find /usr/lib/python3 -type f
t find /usr/lib/python3 -type f
t dd if=/dev/zero of=/tmp/z bs=1M count=50
rm -f /tmp/z
t gcc --version
cat /proc/sys/kernel/random/entropy_avail
exit 0
