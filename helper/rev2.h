/* SPDX-License-Identifier: GPL-2.0 */
/*
 * casfs userspace: the Remote Execution API v2 calls casfs makes, on the
 * gRPC client core (grpc/grpc.h) with protobuf-c messages (proto/).
 *
 * Two halves:
 *  - encode/decode helpers, pure and fuzzable: resource names, requests,
 *    status mapping (gRPC code -> errno, transient or not, RetryInfo);
 *  - a blocking client (struct rev2) for casfsctl: capabilities, reading
 *    small blobs (BatchReadBlobs, or ByteStream for large ones) verified
 *    against their digest, FindMissingBlobs, paged GetTree and
 *    GetActionResult.
 * casfs-helper's asynchronous backend (backend_grpc.c) uses the first half
 * and drives its own calls on the same grpc_conn.
 */
#ifndef CASFS_REV2_H
#define CASFS_REV2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common.h"
#include "grpc/grpc.h"

struct rev2_digest {
	uint8_t sha256[CASFS_SHA256_LEN];
	uint64_t size;
};

/* Method paths. */
#define REV2_CAS "/build.bazel.remote.execution.v2.ContentAddressableStorage/"
#define REV2_M_CAPS "/build.bazel.remote.execution.v2.Capabilities/GetCapabilities"
#define REV2_M_FIND_MISSING REV2_CAS "FindMissingBlobs"
#define REV2_M_BATCH_READ REV2_CAS "BatchReadBlobs"
#define REV2_M_GET_TREE REV2_CAS "GetTree"
#define REV2_M_GET_AC "/build.bazel.remote.execution.v2.ActionCache/GetActionResult"
#define REV2_M_BS_READ "/google.bytestream.ByteStream/Read"

/*
 * Stay well under the 4 MiB message size every gRPC server enforces by
 * default, whatever max_batch_total_size_bytes says: room for the
 * per-blob framing (digest, status) of the response.
 */
#define REV2_MSG_LIMIT ((uint64_t)4 * 1024 * 1024)
#define REV2_BATCH_SLACK ((uint64_t)64 * 1024)
/* Blobs at most this big go through BatchReadBlobs; bigger ones stream. */
#define REV2_BATCH_BLOB_MAX ((uint64_t)1024 * 1024)
/* Digests per BatchReadBlobs / FindMissingBlobs request. */
#define REV2_BATCH_MAX_DIGESTS 1000
#define REV2_FIND_MISSING_MAX 10000
/*
 * Directories per GetTree page we ask for: a 100-entry Directory is about
 * 9 KiB, so this keeps ordinary pages far below the 4 MiB message cap.
 */
#define REV2_TREE_PAGE_SIZE 100

struct rev2_caps {
	bool sha256;		/* SHA256 among cache_capabilities.digest_functions */
	uint64_t max_batch;	/* usable batch bytes: min(server's, REV2_MSG_LIMIT) - slack */
	bool zstd;		/* ZSTD among supported compressors */
	uint32_t api_major, api_minor;	/* high_api_version */
};

/* "<instance>/blobs/<hex>/<size>", or without "<instance>/" if empty. */
int rev2_resource_name(char *out, size_t len, const char *instance,
		       const struct rev2_digest *d);

/* ---- status mapping ---- */

struct rev2_err {
	int err;		/* negative errno */
	bool transient;		/* worth retrying */
	uint64_t retry_after_ms;	/* from a google.rpc.RetryInfo, else 0 */
};
/*
 * NOT_FOUND -> -ENOENT (permanent); PERMISSION_DENIED/UNAUTHENTICATED ->
 * -EACCES; INVALID_ARGUMENT/FAILED_PRECONDITION/OUT_OF_RANGE -> -EINVAL;
 * UNIMPLEMENTED -> -EPROTONOSUPPORT (all permanent); DEADLINE_EXCEEDED ->
 * -ETIMEDOUT; UNAVAILABLE, RESOURCE_EXHAUSTED, ABORTED, INTERNAL, UNKNOWN,
 * CANCELLED, DATA_LOSS and anything from the transport -> -EAGAIN/-EIO
 * (transient). details, if any, are a google.rpc.Status whose RetryInfo
 * sets retry_after_ms (capped at 60 s).
 */
struct rev2_err rev2_map_status(int code, bool transport,
				const uint8_t *details, size_t details_len);

/* Parse a ServerCapabilities message. 0 or -EINVAL (malformed). */
int rev2_parse_caps(const uint8_t *msg, size_t len, struct rev2_caps *caps);

/* ---- request encoding, response decoding (no I/O) ---- */

/* Packed requests (malloc'ed into *out). 0 or -ENOMEM/-EINVAL. */
int rev2_pack_batch_read(const char *instance, const struct rev2_digest *d,
			 size_t n, uint8_t **out, size_t *len);
int rev2_pack_bs_read(const char *instance, const struct rev2_digest *d,
		      uint64_t offset, uint8_t **out, size_t *len);

/*
 * A BatchReadBlobsResponse: fn(ud, digest, grpc code, details (a packed
 * google.rpc.Status or NULL), data) for each entry, in order. A non-zero
 * return from fn stops and is returned. -EINVAL: malformed message or
 * digest. The data is not verified here.
 */
typedef int (*rev2_blob_fn)(void *ud, const struct rev2_digest *d, int code,
			    const char *message, const uint8_t *data, size_t len);
int rev2_parse_batch_read(const uint8_t *msg, size_t len, rev2_blob_fn fn, void *ud);

/*
 * A ByteStream ReadResponse, without copying: *data points into msg
 * (field 10; *dlen 0 if absent). -EINVAL if malformed.
 */
int rev2_parse_bs_chunk(const uint8_t *msg, size_t len, const uint8_t **data,
			size_t *dlen);

/* ---- blocking client (casfsctl) ---- */

struct rev2_opts {
	const char *url;	/* grpc://host:port or grpcs://host:port */
	const char *instance;	/* may be NULL or "" */
	const char *ca_file, *cert_file, *key_file;
	const char *header_file;	/* "name: value" lines (grpc_md_load_file) */
	int64_t timeout_ms;	/* per call; 0: 60 s */
};

struct rev2;

/* Connects lazily; 0 or -errno with a message in err. */
int rev2_open(struct rev2 **out, const struct rev2_opts *o, char *err, size_t errlen);
void rev2_close(struct rev2 *c);
const char *rev2_instance(const struct rev2 *c);

/*
 * Each call below returns 0 or a negative errno, with a one-line reason in
 * err ("GetTree: NOT_FOUND: ..."). Transient failures (UNAVAILABLE,
 * RESOURCE_EXHAUSTED, broken streams) are retried a few times with
 * backoff inside the call before they are reported.
 */
int rev2_get_caps(struct rev2 *c, struct rev2_caps *caps, char *err, size_t errlen);

/*
 * Read one blob into memory (at most max bytes, else -EFBIG before any
 * transfer), verified: *buf (malloc'ed, *len == d->size) is returned only
 * if its sha256 and size match d; a mismatch is -EIO. Uses BatchReadBlobs
 * when it fits, else ByteStream.Read (resuming with read_offset).
 */
int rev2_read_blob(struct rev2 *c, const struct rev2_digest *d, size_t max,
		   uint8_t **buf, size_t *len, char *err, size_t errlen);

/* missing[i] is set for each d[i] the CAS does not have (batched). */
int rev2_find_missing(struct rev2 *c, const struct rev2_digest *d, size_t n,
		      bool *missing, char *err, size_t errlen);

/*
 * GetTree from root, following next_page_token: page() gets each
 * GetTreeResponse message, raw (valid during the call); non-zero stops
 * with that value. The bytes are the server's: the caller must hash each
 * Directory it uses (see tree.h) rather than trust the response.
 */
int rev2_get_tree(struct rev2 *c, const struct rev2_digest *root,
		  int (*page)(void *ud, const uint8_t *msg, size_t len), void *ud,
		  char *err, size_t errlen);

/*
 * GetActionResult for an action digest: *buf is the raw ActionResult
 * message (malloc'ed). NOT_FOUND is -ENOENT.
 */
int rev2_get_action_result(struct rev2 *c, const struct rev2_digest *action,
			   uint8_t **buf, size_t *len, char *err, size_t errlen);

/* "HEX/SIZE" or "HEX SIZE" (as Bazel prints digests). 0 or -EINVAL. */
int rev2_parse_digest(const char *s, struct rev2_digest *d);

#endif
