#!/bin/bash
# Filesystem benchmark, run inside the QEMU guest (bench/run.sh boots it).
# timeout: 1800
# Each measurement runs on casfs (cache on tmpfs) and on tmpfs, alternating,
# REPS times; the median of each is reported with the ratio casfs/tmpfs
# (for throughput: >1 means casfs is faster; for time: <1 means faster).
set -euo pipefail
. "$CASFS_REPO/tests/lib/guest.sh"
FSB=$CASFS_BIN/fsbench
REPS=${CASFS_BENCH_REPS:-3}
NFILES=${CASFS_BENCH_NFILES:-50000}
MIB=${CASFS_BENCH_MIB:-512}
NRAND=${CASFS_BENCH_NRAND:-200000}

casfs_setup 2g
REF=$(casfs_ref_tmpfs)
mount -o remount,size=2g "$REF"

median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

# run_pair NAME FIELD ARGS-with-@DIR@: field 2 = seconds, 3 = rate
run_pair() {
	local name=$1 field=$2
	shift 2
	local c=() t=() i out
	for i in $(seq "$REPS"); do
		for fs in casfs tmpfs; do
			local dir=$MNT
			[ $fs = tmpfs ] && dir=$REF
			out=$("$FSB" "${@//@DIR@/$dir}")
			if [ $fs = casfs ]; then c+=("$out"); else t+=("$out"); fi
		done
	done
	local cm tm
	cm=$(printf '%s\n' "${c[@]}" | awk -v f="$field" '{print $f}' | median)
	tm=$(printf '%s\n' "${t[@]}" | awk -v f="$field" '{print $f}' | median)
	awk -v n="$name" -v c="$cm" -v t="$tm" -v f="$field" 'BEGIN {
		unit = (f == 2) ? "s" : "/s"; scale = 1;
		if (n ~ /bytes/) { unit = " MiB/s"; scale = 1048576 }
		printf "BENCH %-36s casfs %10.2f%s  tmpfs %10.2f%s  ratio casfs/tmpfs %.3f\n",
			n, c / scale, unit, t / scale, unit, c / t }'
}

mkdir -p "$MNT/meta" "$REF/meta"
run_pair "create+stat+unlink $NFILES files" 2 meta @DIR@/meta "$NFILES"
run_pair "sequential write ${MIB} MiB (bytes)" 3 write @DIR@/big "$MIB"
run_pair "sequential read ${MIB} MiB (bytes)" 3 read @DIR@/big
run_pair "random 4 KiB reads (ops)" 3 rand @DIR@/big "$NRAND"
echo "BENCH done: median of $REPS runs each, same guest, same kernel"
