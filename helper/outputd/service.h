/* SPDX-License-Identifier: GPL-2.0 */
/*
 * casfs-outputd: the six BazelOutputService RPCs (Bazel 7.2+'s output
 * service, /work/shared notes in docs/design.md) on one root directory.
 * Each handler is a grpc_unary_fn: it runs on the server's worker
 * threads, decodes its request with protobuf-c, and answers with a status
 * code that Bazel understands (it retries UNAVAILABLE and friends, so
 * every RPC is idempotent).
 */
#ifndef CASFS_OUTPUTD_SERVICE_H
#define CASFS_OUTPUTD_SERVICE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "grpc/grpc.h"
#include "outpath.h"

struct cas;

struct service_opts {
	const char *root;		/* absolute path of the root directory */
	/*
	 * The same directory as Bazel names it, when Bazel runs in another
	 * mount namespace or chroot (NULL: Bazel sees root): StartBuild's
	 * output_path_prefix must be this string, rather than a path that
	 * stat()s to root.
	 */
	const char *bazel_root;
	const struct outpath_fs *fs;	/* outpath_fs_casfs in the daemon */
	struct cas *cas;		/* FindMissingBlobs; owned by caller */
	uid_t uid;			/* the only uid served */
	size_t max_artifacts;		/* per request; 0: 1,000,000 */
	size_t max_response;		/* BatchStat's budget; 0: 3.5 MiB */
	/* One line per RPC (method, code, time) when set. */
	void (*log)(const char *line);
};

struct service;

int service_new(struct service **out, const struct service_opts *o,
		char *err, size_t errlen);
/* Saves every output base's records (as FinalizeBuild would), frees. */
void service_free(struct service *s);
/* Register the six methods on a server; its accept_peer is
 * service_accept_peer with s as accept_ud. */
int service_register(struct service *s, struct grpc_server *srv);
int service_accept_peer(void *ud, const struct grpc_peer *peer);
/*
 * Call method idx (0 Clean, 1 StartBuild, 2 StageArtifacts,
 * 3 FinalizeArtifacts, 4 FinalizeBuild, 5 BatchStat) directly, as the
 * server would for a peer of the service's uid: for the fuzzer.
 */
#define SERVICE_METHODS 6
int service_call(struct service *s, unsigned idx, const uint8_t *req,
		 size_t len, uint8_t **resp, size_t *resp_len, char **msg);

#define BOS_METHOD(m) "/bazel_output_service.BazelOutputService/" m
#define BOS_LOCATOR_URL \
	"type.googleapis.com/bazel_output_service_rev2.FileArtifactLocator"
#define BOS_ARGS_URL \
	"type.googleapis.com/bazel_output_service_rev2.StartBuildArgs"

#endif
