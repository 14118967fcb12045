/* SPDX-License-Identifier: GPL-2.0 */
/*
 * casfs-helper: the generic netlink channel to casfs.ko (libnl-genl-3).
 * See include/uapi/linux/casfs.h for the protocol.
 */
#ifndef CASFS_NETLINK_H
#define CASFS_NETLINK_H

#include <stdbool.h>
#include <stdint.h>
#include "common.h"

struct nlmsghdr;
struct nlh;

/* A FETCH or CANCEL from the kernel. */
struct nlh_req {
	uint32_t req_id;
	uint8_t digest[CASFS_SHA256_LEN];
	uint64_t size;
	uint32_t uid;		/* FETCH from protocol 3; else NLH_UID_NONE */
	uint32_t digest_fn;	/* enum casfs_digest_fn (SHA-256 when absent) */
};
#define NLH_UID_NONE UINT32_MAX

typedef void (*nlh_fetch_fn)(void *arg, const struct nlh_req *r);

/*
 * Open a socket and resolve the family. -ENOENT: family not registered
 * (module not loaded). Other negative errno on failure. blobs_fd, an open
 * fd of the cache's blobs/ directory, goes with every REGISTER: the kernel
 * takes it as proof that this process may publish blobs.
 */
int nlh_open(struct nlh **out, nlh_fetch_fn fn, void *arg, int blobs_fd);
/* CANCEL (protocol 3): the kernel withdrew a request; fn gets it. */
void nlh_on_cancel(struct nlh *h, nlh_fetch_fn fn);
/* USED (protocol 3): a cached blob was read; fn gets it (req_id 0). */
void nlh_on_used(struct nlh *h, nlh_fetch_fn fn);
/*
 * Send REGISTER and wait (up to timeout_ms) for the kernel's reply.
 * Protocol CASFS_PROTO_VERSION first, then CASFS_PROTO_VERSION_MIN if the
 * kernel (an older casfs.ko) refuses it; *kernel_version says which.
 * 0: registered. -EPROTO: the kernel speaks another protocol version
 * (*kernel_version says which if it replied; 0 if it refused ours with
 * EPROTONOSUPPORT). Else -errno (EPERM: no CAP_NET_ADMIN, which
 * GENL_ADMIN_PERM checks, or blobs_fd is not a root-owned 0700 directory
 * this process may write; EBUSY: another helper is registered; ETIMEDOUT).
 */
int nlh_register(struct nlh *h, int timeout_ms, uint32_t *kernel_version);
int nlh_fd(const struct nlh *h);
/*
 * Read and dispatch everything queued on the socket (FETCH -> fn).
 * 0, or -ENOBUFS if messages were lost (the caller should re-register:
 * the kernel then resends every pending FETCH), or another -errno.
 */
int nlh_receive(struct nlh *h);
/* True (once) if messages were lost since the last call, e.g. during
 * nlh_register(): then call nlh_reregister(). */
bool nlh_take_overrun(struct nlh *h);
/* Ask again for the pending list (after an overrun), without waiting. */
int nlh_reregister(struct nlh *h);
int nlh_send_done(struct nlh *h, uint32_t req_id, int32_t status);
/* PROGRESS: bytes of req_id are arriving (readers' timeout restarts).
 * A no-op (0) under protocol 2. */
int nlh_send_progress(struct nlh *h, uint32_t req_id);
void nlh_close(struct nlh *h);
/* The family id now, or -ENOENT; uses a short-lived socket. */
int nlh_resolve_family(void);
int nlh_family(const struct nlh *h);

/*
 * Validate a FETCH message from the family `family`: genl header, cmd,
 * REQ_ID u32 != 0, DIGEST exactly 32 bytes, SIZE u64 <= CASFS_MAX_BLOB_SIZE,
 * UID u32 if present.
 * 0 or -EINVAL (with a reason in *why).
 */
int nlh_parse_fetch(struct nlmsghdr *nlh, int family, struct nlh_req *r,
		    const char **why);
/* Validate a CANCEL: the same attributes as FETCH but UID. */
int nlh_parse_cancel(struct nlmsghdr *nlh, int family, struct nlh_req *r,
		     const char **why);
/* Validate a USED: DIGEST and SIZE only. */
int nlh_parse_used(struct nlmsghdr *nlh, int family, struct nlh_req *r,
		   const char **why);
/* Validate a REGISTER reply: 0 and *version, or -EINVAL. */
int nlh_parse_register(struct nlmsghdr *nlh, int family, uint32_t *version,
		       const char **why);

#endif
