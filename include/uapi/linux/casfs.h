/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * casfs - the interface between casfs.ko and userspace (casfs-helper,
 * casfsctl, build tools). Shared verbatim by kernel and userspace.
 *
 * Two channels:
 *
 *  1. Generic netlink family CASFS_GENL_NAME, for the helper daemon and
 *     for statistics. Only small control messages travel here; blob bytes
 *     go through the cache directory (DIR/blobs/<sha256 hex>).
 *
 *       helper                          kernel
 *       REGISTER {VERSION,      ---->   (CAP_NET_ADMIN, and BLOBS_FD an fd
 *                 BLOBS_FD}             of a root-owned mode-0700 directory
 *                                       the sender may write: proof that it
 *                                       may publish blobs) becomes the one
 *                               <----   reply REGISTER {VERSION}
 *                               <----   FETCH {REQ_ID, DIGEST, SIZE, UID,
 *                                       DIGEST_FN} for every pending
 *                                       request, then one FETCH per new
 *                                       cache miss (UID, DIGEST_FN: to
 *                                       version 3 helpers; DIGEST_FN also
 *                                       in CANCEL and USED)
 *       PROGRESS {REQ_ID}       ---->   (CAP_NET_ADMIN, version 3) bytes
 *                                       are arriving: readers' timeout=
 *                                       counts again from now
 *                               <----   CANCEL {REQ_ID, DIGEST, SIZE} (to
 *                                       version 3 helpers) the last reader
 *                                       left: the request is withdrawn
 *                               <----   USED {DIGEST, SIZE} (to version 3
 *                                       helpers) a cached blob was opened
 *                                       (at most once a minute per inode),
 *                                       for the helper's LRU eviction
 *       DONE {REQ_ID, STATUS}   ---->   (CAP_NET_ADMIN) STATUS 0: the blob
 *                                       is in DIR/blobs/; else a negative
 *                                       errno, and waiting readers get EIO
 *       GET_STATS               ---->   (anyone)
 *                               <----   reply GET_STATS {STAT_*}
 *
 *     The helper's socket closing unregisters it; pending requests stay
 *     pending (bounded by each mount's timeout=) so that a restarted
 *     helper picks them up on REGISTER.
 *
 *  2. ioctls on casfs files and directories (CASFS_IOC_*), for staging
 *     CAS-backed files. Structures are fixed-size, 64-bit aligned, with
 *     explicit padding that must be zero.
 *
 * A regular file's digest is readable by anyone who may read the file,
 * never settable, through two extended attributes that listxattr does not
 * list (the size is the file's st_size):
 *   CASFS_XATTR_SHA256      the raw 32-byte sha256 (what Bazel's
 *                           --unix_digest_hash_attribute_name reads)
 *   CASFS_XATTR_SHA256_HEX  the same as 64 lowercase hex characters
 */
#ifndef _UAPI_LINUX_CASFS_H
#define _UAPI_LINUX_CASFS_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define CASFS_GENL_NAME		"casfs"
#define CASFS_GENL_VERSION	1	/* genl family version */
#define CASFS_PROTO_VERSION	3	/* REGISTER's VERSION attribute */
/* The oldest a helper may speak: 2 has no UID, PROGRESS or CANCEL. */
#define CASFS_PROTO_VERSION_MIN	2

#define CASFS_SHA256_LEN	32

/*
 * Digest functions. Only SHA-256 is implemented; the field exists in the
 * staging ioctl, the state ioctl and the netlink messages so that others
 * (REv2 also has SHA-512 and BLAKE3) can come without a new ABI. A
 * function other than CASFS_DIGEST_SHA256 is refused with EOPNOTSUPP.
 * One with longer digests will come with a flag in casfs_stage.flags
 * selecting a larger entry.
 */
enum casfs_digest_fn {
	CASFS_DIGEST_SHA256 = 0,
};

#define CASFS_MAX_BLOB_SIZE	(1ULL << 40)	/* 1 TiB: larger is refused */
#define CASFS_SUPER_MAGIC	0x43415346	/* statfs f_type, "CASF" (kmod/casfs.h) */

enum casfs_genl_cmd {
	CASFS_CMD_UNSPEC,
	CASFS_CMD_REGISTER,	/* helper -> kernel, and the reply */
	CASFS_CMD_FETCH,	/* kernel -> helper: please fetch a blob */
	CASFS_CMD_DONE,		/* helper -> kernel: fetch finished */
	CASFS_CMD_GET_STATS,	/* anyone -> kernel, and the reply */
	CASFS_CMD_PROGRESS,	/* helper -> kernel: a fetch is progressing */
	CASFS_CMD_CANCEL,	/* kernel -> helper: a request was withdrawn */
	CASFS_CMD_USED,		/* kernel -> helper: a cached blob was used */
	__CASFS_CMD_MAX,
};

#define CASFS_CMD_MAX (__CASFS_CMD_MAX - 1)

enum casfs_genl_attr {
	CASFS_A_UNSPEC,
	CASFS_A_VERSION,	/* u32: CASFS_PROTO_VERSION */
	CASFS_A_REQ_ID,		/* u32: request id, cyclic, never 0 */
	CASFS_A_DIGEST,		/* binary, exactly CASFS_SHA256_LEN bytes */
	CASFS_A_SIZE,		/* u64: blob size in bytes */
	CASFS_A_STATUS,		/* s32: 0 or a negative errno */
	CASFS_A_STAT_MISSES,	/* u64: reads that found no blob */
	CASFS_A_STAT_FETCHES,	/* u64: FETCH requests sent */
	CASFS_A_STAT_FETCH_BYTES, /* u64: bytes of blobs fetched */
	CASFS_A_STAT_ERRORS,	/* u64: requests that ended in an error */
	CASFS_A_STAT_TIMEOUTS,	/* u64: waits that timed out */
	CASFS_A_STAT_PENDING,	/* u64: requests in flight now */
	CASFS_A_STAT_HELPER,	/* u32: 1 if a helper is registered */
	CASFS_A_PAD,		/* for 64-bit attribute alignment */
	CASFS_A_BLOBS_FD,	/* u32: REGISTER: fd of the cache's blobs/ */
	CASFS_A_STAT_REFETCHES,	/* u64: fetched again: gone between DONE and open */
	CASFS_A_UID,		/* u32: FETCH: the uid charged (init namespace) */
	CASFS_A_STAT_CANCELS,	/* u64: requests withdrawn, their readers gone */
	CASFS_A_DIGEST_FN,	/* u32: enum casfs_digest_fn of DIGEST */
	__CASFS_A_MAX,
};

#define CASFS_A_MAX (__CASFS_A_MAX - 1)

/* Digest xattrs (read-only, unlisted); user.casfs.* is reserved. */
#define CASFS_XATTR_PREFIX	"user.casfs."
#define CASFS_XATTR_SHA256	"user.casfs.sha256"
#define CASFS_XATTR_SHA256_HEX	"user.casfs.sha256hex"

/*
 * CASFS_IOC_STAGE, on a directory fd: create up to CASFS_STAGE_MAX_ENTRIES
 * CAS-backed regular files in that directory in one call, all or nothing.
 *
 * Each entry names its file by (name_off, name_len) into the caller's
 * name buffer. Names must not be empty, ".", "..", contain '/' or NUL, or
 * be longer than 255 bytes; no two entries may share a name, and no name
 * may exist in the directory. mode holds permission and sticky bits only
 * (01777): setuid and setgid are refused. The caller's umask applies, as
 * for creat(2), and so do the LSMs, audit and fsnotify. size is at most
 * CASFS_MAX_BLOB_SIZE. A bad entry fails the whole call with EINVAL
 * (EEXIST for an existing name, EACCES/EPERM from an LSM, ENOSPC past
 * nr_inodes=, EOPNOTSUPP for a digest_fn other than SHA-256), reports
 * its index in bad_index, and creates nothing.
 */
#define CASFS_STAGE_MAX_ENTRIES	65536
#define CASFS_STAGE_MAX_NAMES	(16U << 20)	/* bytes of names per call */

struct casfs_stage_entry {
	__u8	sha256[CASFS_SHA256_LEN];
	__u64	size;
	__u32	mode;
	__u32	name_off;
	__u32	name_len;
	__u32	digest_fn;	/* enum casfs_digest_fn; was "reserved, 0" */
};

struct casfs_stage {
	__u64	entries;	/* user pointer to struct casfs_stage_entry[] */
	__u64	names;		/* user pointer to the name buffer */
	__u32	count;		/* number of entries */
	__u32	names_len;	/* bytes in the name buffer */
	__u32	flags;		/* must be 0 */
	__u32	bad_index;	/* out: index of the failing entry, or ~0 */
};

/*
 * CASFS_IOC_STATE, on a regular file: is it CAS-backed, and is its blob
 * present in the cache? Never fetches.
 *
 * version identifies the file's bytes: it is unique within the mount
 * (never reused, whatever the inode) and changes whenever the bytes may
 * have changed (write, truncate, fallocate, copy-up...) and when the last
 * writer of the file closes it (a writable mmap changes bytes without a
 * write call). Two reads giving the same version, with
 * CASFS_STATE_WRITERS clear in both, saw the same bytes. The old 48-byte
 * form of the struct (without version) is still served under its own
 * ioctl number, CASFS_IOC_STATE_V1.
 */
#define CASFS_STATE_CAS		0x1	/* has a digest, bytes in the CAS */
#define CASFS_STATE_PRESENT	0x2	/* its blob is in the cache now */
#define CASFS_STATE_LOCAL	0x4	/* written locally (copied up) */
#define CASFS_STATE_WRITERS	0x8	/* open for writing now */

struct casfs_state {
	__u8	sha256[CASFS_SHA256_LEN];	/* zero for local files */
	__u64	size;
	__u32	flags;		/* CASFS_STATE_* */
	__u32	digest_fn;	/* enum casfs_digest_fn of sha256[] */
	__u64	version;	/* see above */
};

#define CASFS_IOC_MAGIC		0xCA
#define CASFS_IOC_STAGE		_IOWR(CASFS_IOC_MAGIC, 1, struct casfs_stage)
#define CASFS_IOC_STATE		_IOR(CASFS_IOC_MAGIC, 2, struct casfs_state)
/* The first form: struct casfs_state without version (48 bytes). */
#define CASFS_IOC_STATE_V1	_IOC(_IOC_READ, CASFS_IOC_MAGIC, 2, 48)

/* Cache layout, relative to the mount's cache= directory. */
#define CASFS_CACHE_BLOBS_DIR	"blobs"	/* blobs/<64 lowercase hex> */
#define CASFS_CACHE_TMP_DIR	"tmp"	/* helper's staging area */

#endif /* _UAPI_LINUX_CASFS_H */
