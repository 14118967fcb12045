#!/bin/bash
# POSIX semantics, one unittest case per behaviour (py/test_semantics.py).
# timeout: 600
. "$(dirname "$0")/../lib/guest.sh"
casfs_setup
REF=$(casfs_ref_tmpfs)
CASFS_MNT=$MNT CASFS_CACHE=$CACHE CASFS_REF=$REF \
	$PY "$(dirname "$0")/py/test_semantics.py"
