// SPDX-License-Identifier: GPL-2.0
/*
 * A small client of casfs-outputd's BazelOutputService for
 * bench/guest/40-bazel-outputd.sh: one HTTP/2 connection (the repo's gRPC
 * client core, helper/grpc), protobuf-c messages from
 * proto/bazel_output_service. Timings are wall clock around each unary
 * call, on loopback, so they are the service time plus the client's
 * (small) encode/decode and the kernel's loopback.
 *
 *   outputd_rpc URL start PREFIX BASE_ID BUILD_ID
 *   outputd_rpc URL stage BUILD_ID LIST BATCH
 *       LIST: "path sha256hex size" lines; stages them BATCH per
 *       StageArtifacts; prints "stage N files in C calls: T s, U us/file"
 *   outputd_rpc URL stat BUILD_ID PATH N
 *       N one-path BatchStat calls; prints median, p99, min, max (us)
 *       and whether the path had a locator
 *   outputd_rpc URL finalize BUILD_ID
 *   outputd_rpc URL clean BASE_ID
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grpc/grpc.h"
#include "bazel_output_service/bazel_output_service.pb-c.h"
#include "bazel_output_service/bazel_output_service_rev2.pb-c.h"
#include "build/bazel/remote/execution/v2/remote_execution.pb-c.h"

#define METHOD(m) "/bazel_output_service.BazelOutputService/" m
#define LOCATOR_URL "type.googleapis.com/bazel_output_service_rev2.FileArtifactLocator"
#define TIMEOUT_MS 120000

static struct grpc_conn *conn;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *msg)
{
	fprintf(stderr, "outputd_rpc: %s: %s\n", what, msg);
	exit(1);
}

/* One unary call; exits on any failure. *resp is malloc'ed. */
static void call(const char *method, const uint8_t *req, size_t len,
		 uint8_t **resp, size_t *resp_len)
{
	struct grpc_status st;
	int code;

	memset(&st, 0, sizeof(st));
	code = grpc_unary(conn, method, req, len, TIMEOUT_MS, resp, resp_len, &st);
	if (code != GRPC_OK) {
		fprintf(stderr, "outputd_rpc: %s: %s: %s\n", method,
			grpc_code_name(code), st.message ? st.message : "");
		exit(1);
	}
	grpc_status_free(&st);
}

static uint8_t *pack(const ProtobufCMessage *m, size_t *len)
{
	uint8_t *buf;

	*len = protobuf_c_message_get_packed_size(m);
	buf = malloc(*len ? *len : 1);
	if (!buf)
		die("pack", "out of memory");
	protobuf_c_message_pack(m, buf);
	return buf;
}

static int cmd_start(char **av)
{
	BazelOutputService__StartBuildRequest r =
		BAZEL_OUTPUT_SERVICE__START_BUILD_REQUEST__INIT;
	BazelOutputService__StartBuildResponse *out;
	uint8_t *req, *resp = NULL;
	size_t len, rlen = 0;

	r.version = 1;
	r.output_path_prefix = av[0];
	r.output_base_id = av[1];
	r.build_id = av[2];
	req = pack(&r.base, &len);
	call(METHOD("StartBuild"), req, len, &resp, &rlen);
	out = bazel_output_service__start_build_response__unpack(NULL, rlen, resp);
	if (!out)
		die("StartBuild", "malformed response");
	printf("%s\n", out->output_path_suffix);
	bazel_output_service__start_build_response__free_unpacked(out, NULL);
	free(req);
	free(resp);
	return 0;
}

struct art {
	char *path;
	char hash[65];
	long long size;
};

static int cmd_stage(char **av)
{
	const char *build_id = av[0];
	long batch = strtol(av[2], NULL, 10);
	FILE *f = fopen(av[1], "r");
	struct art *v = NULL;
	size_t n = 0, cap = 0, calls = 0, bad = 0;
	char line[4200], path[4097];
	double total = 0;

	if (!f)
		die(av[1], strerror(errno));
	if (batch < 1)
		die("stage", "BATCH must be at least 1");
	while (fgets(line, sizeof(line), f)) {
		struct art a;

		if (sscanf(line, "%4096s %64s %lld", path, a.hash, &a.size) != 3)
			die(av[1], "want 'path sha256hex size' lines");
		a.path = strdup(path);
		if (!a.path)
			die("stage", "out of memory");
		if (n == cap) {
			cap = cap ? 2 * cap : 1024;
			v = realloc(v, cap * sizeof(*v));
			if (!v)
				die("stage", "out of memory");
		}
		v[n++] = a;
	}
	fclose(f);

	for (size_t i = 0; i < n; i += (size_t)batch) {
		size_t k = n - i < (size_t)batch ? n - i : (size_t)batch;
		BazelOutputService__StageArtifactsRequest r =
			BAZEL_OUTPUT_SERVICE__STAGE_ARTIFACTS_REQUEST__INIT;
		BazelOutputService__StageArtifactsRequest__Artifact *arts, **ap;
		BazelOutputServiceRev2__FileArtifactLocator *locs;
		Build__Bazel__Remote__Execution__V2__Digest *dig;
		Google__Protobuf__Any *any;
		BazelOutputService__StageArtifactsResponse *out;
		uint8_t **lbuf, *req, *resp = NULL;
		size_t len, rlen = 0;
		double t0;

		arts = calloc(k, sizeof(*arts));
		ap = calloc(k, sizeof(*ap));
		locs = calloc(k, sizeof(*locs));
		dig = calloc(k, sizeof(*dig));
		any = calloc(k, sizeof(*any));
		lbuf = calloc(k, sizeof(*lbuf));
		if (!arts || !ap || !locs || !dig || !any || !lbuf)
			die("stage", "out of memory");
		for (size_t j = 0; j < k; j++) {
			size_t ll;

			build__bazel__remote__execution__v2__digest__init(&dig[j]);
			dig[j].hash = v[i + j].hash;
			dig[j].size_bytes = v[i + j].size;
			bazel_output_service_rev2__file_artifact_locator__init(&locs[j]);
			locs[j].digest = &dig[j];
			lbuf[j] = pack(&locs[j].base, &ll);
			google__protobuf__any__init(&any[j]);
			any[j].type_url = (char *)LOCATOR_URL;
			any[j].value.data = lbuf[j];
			any[j].value.len = ll;
			bazel_output_service__stage_artifacts_request__artifact__init(&arts[j]);
			arts[j].path = v[i + j].path;
			arts[j].locator = &any[j];
			ap[j] = &arts[j];
		}
		r.build_id = (char *)build_id;
		r.n_artifacts = k;
		r.artifacts = ap;
		req = pack(&r.base, &len);
		t0 = now();
		call(METHOD("StageArtifacts"), req, len, &resp, &rlen);
		total += now() - t0;
		calls++;
		out = bazel_output_service__stage_artifacts_response__unpack(NULL, rlen, resp);
		if (!out)
			die("StageArtifacts", "malformed response");
		if (out->n_responses != k)
			die("StageArtifacts", "wrong number of responses");
		for (size_t j = 0; j < k; j++) {
			Google__Rpc__Status *s = out->responses[j]->status;

			if (s && s->code != 0) {
				if (bad++ < 5)
					fprintf(stderr, "outputd_rpc: stage %s: code %d %s\n",
						v[i + j].path, s->code,
						s->message ? s->message : "");
			}
		}
		bazel_output_service__stage_artifacts_response__free_unpacked(out, NULL);
		for (size_t j = 0; j < k; j++)
			free(lbuf[j]);
		free(lbuf);
		free(any);
		free(dig);
		free(locs);
		free(ap);
		free(arts);
		free(req);
		free(resp);
	}
	printf("stage %zu files in %zu calls: %.3f s, %.1f us/file, %zu failed\n",
	       n, calls, total, n ? total / n * 1e6 : 0.0, bad);
	for (size_t i = 0; i < n; i++)
		free(v[i].path);
	free(v);
	return bad ? 1 : 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int cmd_stat(char **av)
{
	BazelOutputService__BatchStatRequest r =
		BAZEL_OUTPUT_SERVICE__BATCH_STAT_REQUEST__INIT;
	char *paths[1] = { av[1] };
	long n = strtol(av[2], NULL, 10);
	double *t;
	uint8_t *req;
	size_t len;
	int located = -1;

	if (n < 1)
		die("stat", "N must be at least 1");
	t = calloc((size_t)n, sizeof(*t));
	if (!t)
		die("stat", "out of memory");
	r.build_id = av[0];
	r.n_paths = 1;
	r.paths = paths;
	req = pack(&r.base, &len);
	for (long i = 0; i < n; i++) {
		BazelOutputService__BatchStatResponse *out;
		uint8_t *resp = NULL;
		size_t rlen = 0;
		double t0 = now();

		call(METHOD("BatchStat"), req, len, &resp, &rlen);
		t[i] = now() - t0;
		if (i == 0) {
			out = bazel_output_service__batch_stat_response__unpack(NULL, rlen, resp);
			if (!out || out->n_responses != 1)
				die("BatchStat", "malformed response");
			located = out->responses[0]->stat &&
				  out->responses[0]->stat->type_case ==
					  BAZEL_OUTPUT_SERVICE__STAT__TYPE_FILE &&
				  out->responses[0]->stat->file->locator;
			bazel_output_service__batch_stat_response__free_unpacked(out, NULL);
		}
		free(resp);
	}
	qsort(t, (size_t)n, sizeof(*t), cmp_double);
	printf("batchstat %ld calls: median %.1f us, p99 %.1f us, min %.1f us, max %.1f us, locator %s\n",
	       n, t[n / 2] * 1e6, t[(size_t)((n - 1) * 0.99)] * 1e6, t[0] * 1e6,
	       t[n - 1] * 1e6, located ? "yes" : "no");
	free(t);
	free(req);
	return 0;
}

static int cmd_finalize(char **av)
{
	BazelOutputService__FinalizeBuildRequest r =
		BAZEL_OUTPUT_SERVICE__FINALIZE_BUILD_REQUEST__INIT;
	uint8_t *req, *resp = NULL;
	size_t len, rlen = 0;

	r.build_id = av[0];
	r.build_successful = 1;
	req = pack(&r.base, &len);
	call(METHOD("FinalizeBuild"), req, len, &resp, &rlen);
	free(req);
	free(resp);
	return 0;
}

static int cmd_clean(char **av)
{
	BazelOutputService__CleanRequest r = BAZEL_OUTPUT_SERVICE__CLEAN_REQUEST__INIT;
	uint8_t *req, *resp = NULL;
	size_t len, rlen = 0;

	r.output_base_id = av[0];
	req = pack(&r.base, &len);
	call(METHOD("Clean"), req, len, &resp, &rlen);
	free(req);
	free(resp);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int nargs;
		int (*fn)(char **av);
	} cmds[] = {
		{ "start", 3, cmd_start },
		{ "stage", 3, cmd_stage },
		{ "stat", 3, cmd_stat },
		{ "finalize", 1, cmd_finalize },
		{ "clean", 1, cmd_clean },
	};
	struct grpc_conn_opts o;
	char err[256];
	int rc;

	if (argc < 3) {
		fprintf(stderr, "usage: outputd_rpc URL start|stage|stat|finalize|clean ARGS...\n");
		return 2;
	}
	memset(&o, 0, sizeof(o));
	o.url = argv[1];
	o.transparent_retries = -1;
	conn = grpc_conn_new(&o, err, sizeof(err));
	if (!conn)
		die(argv[1], err);
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(argv[2], cmds[i].name))
			continue;
		if (argc - 3 != cmds[i].nargs) {
			fprintf(stderr, "outputd_rpc: %s takes %d arguments\n",
				cmds[i].name, cmds[i].nargs);
			return 2;
		}
		rc = cmds[i].fn(argv + 3);
		grpc_conn_free(conn);
		return rc;
	}
	fprintf(stderr, "outputd_rpc: unknown command %s\n", argv[2]);
	return 2;
}
