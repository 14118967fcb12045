// SPDX-License-Identifier: GPL-2.0
/*
 * casfs-outputd's service (outputd/service.c) over real gRPC: the server
 * core on 127.0.0.1:0 and a unix socket, the client core as Bazel's
 * stand-in, the reference REv2 server as the CAS, and the output path on
 * an ordinary filesystem through outpath_fs_fake (the host cannot mount
 * casfs; tests/kernel/95-outputd.sh runs the same service on casfs).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pthread.h>

#include "bazel_output_service/bazel_output_service.pb-c.h"
#include "bazel_output_service/bazel_output_service_rev2.pb-c.h"
#include "grpc/grpc.h"
#include "outputd/cas.h"
#include "outputd/outpath.h"
#include "outputd/service.h"
#include "rev2_server.h"
#include "t.h"

#include "outputd/tests/fake_fs.h"

struct od {
	struct t_rev2 cas_srv;
	char srvroot[512], root[512], sock[600];
	struct cas *cas;
	struct service *svc;
	struct grpc_server *srv;
	pthread_t thr;
	volatile sig_atomic_t stop;
	int port;
	struct grpc_conn *conn;
};

static void *serve(void *p)
{
	struct od *o = p;

	grpc_server_run(o->srv, &o->stop);
	return NULL;
}

static bool od_start(struct od *o)
{
	struct rev2_opts ro = { 0 };
	struct service_opts so = { 0 };
	struct grpc_server_opts gso = { 0 };
	struct grpc_conn_opts co = { 0 };
	char err[256], url[64];
	const char *t = t_tmpdir();

	memset(o, 0, sizeof(*o));
	snprintf(o->srvroot, sizeof(o->srvroot), "%s/cas", t);
	snprintf(o->root, sizeof(o->root), "%s/root", t);
	snprintf(o->sock, sizeof(o->sock), "unix:%s/od.sock", t);
	mkdir(o->srvroot, 0755);
	mkdir(o->root, 0755);
	{
		static const char *const args[] = { "--quiet", NULL };

		if (!t_rev2_start(&o->cas_srv, o->srvroot, args))
			return false;
	}
	ro.url = o->cas_srv.url;
	ro.timeout_ms = 5000;
	if (cas_new(&o->cas, &ro, err, sizeof(err)))
		return false;
	so.root = o->root;
	so.fs = &outpath_fs_fake;
	so.cas = o->cas;
	so.uid = getuid();
	if (service_new(&o->svc, &so, err, sizeof(err)))
		return false;
	gso.workers = 3;
	gso.accept_peer = service_accept_peer;
	gso.accept_ud = o->svc;
	o->srv = grpc_server_new(&gso, err, sizeof(err));
	if (!o->srv || service_register(o->svc, o->srv) ||
	    grpc_server_listen(o->srv, "grpc://127.0.0.1:0", err, sizeof(err)) ||
	    grpc_server_listen(o->srv, o->sock, err, sizeof(err)) ||
	    grpc_server_start(o->srv))
		return false;
	o->port = grpc_server_bound_port(o->srv, 0);
	pthread_create(&o->thr, NULL, serve, o);
	snprintf(url, sizeof(url), "grpc://127.0.0.1:%d", o->port);
	co.url = url;
	o->conn = grpc_conn_new(&co, err, sizeof(err));
	return o->conn != NULL;
}

static void od_stop(struct od *o)
{
	if (o->conn)
		grpc_conn_free(o->conn);
	if (o->srv) {
		o->stop = 1;
		grpc_server_stop(o->srv);
		pthread_join(o->thr, NULL);
		grpc_server_free(o->srv);
	}
	service_free(o->svc);
	cas_free(o->cas);
	t_rev2_stop(&o->cas_srv);
}

/* Put a blob into the CAS server's store; its hex digest into hex. */
static void cas_put(struct od *o, const char *data, char hex[65])
{
	char p[700];

	t_sha256_hex(data, strlen(data), hex);
	snprintf(p, sizeof(p), "%s/cas/%s", o->srvroot, hex);
	t_write_file(p, data, strlen(data), 0644);
}

static int call(struct grpc_conn *c, const char *m, const ProtobufCMessage *req,
		uint8_t **resp, size_t *len, char *msg, size_t msglen)
{
	struct grpc_status st;
	size_t n = protobuf_c_message_get_packed_size(req);
	uint8_t *buf = malloc(n ? n : 1);
	int code;

	protobuf_c_message_pack(req, buf);
	*resp = NULL;
	*len = 0;
	code = grpc_unary(c, m, buf, n, 10000, resp, len, &st);
	if (msg)
		snprintf(msg, msglen, "%s", st.message ? st.message : "");
	grpc_status_free(&st);
	free(buf);
	return code;
}

static int start_build(struct od *o, const char *base, const char *build, int version)
{
	BazelOutputService__StartBuildRequest r = BAZEL_OUTPUT_SERVICE__START_BUILD_REQUEST__INIT;
	BazelOutputService__StartBuildResponse *resp;
	uint8_t *buf;
	size_t len;
	int code;

	r.version = version;
	r.output_base_id = (char *)base;
	r.build_id = (char *)build;
	r.output_path_prefix = o->root;
	code = call(o->conn, BOS_METHOD("StartBuild"), &r.base, &buf, &len, NULL, 0);
	if (code == GRPC_OK) {
		resp = bazel_output_service__start_build_response__unpack(NULL, len, buf);
		CHECK(resp && !strcmp(resp->output_path_suffix, base));
		CHECK(resp && !resp->initial_output_path_contents);
		if (resp)
			bazel_output_service__start_build_response__free_unpacked(resp, NULL);
	}
	free(buf);
	return code;
}

/* A locator Any for hex/size into any (value points into buf). */
static void locator(Google__Protobuf__Any *any, uint8_t buf[128], char *hex, int64_t size)
{
	BazelOutputServiceRev2__FileArtifactLocator l =
		BAZEL_OUTPUT_SERVICE_REV2__FILE_ARTIFACT_LOCATOR__INIT;
	Build__Bazel__Remote__Execution__V2__Digest d =
		BUILD__BAZEL__REMOTE__EXECUTION__V2__DIGEST__INIT;

	d.hash = hex;
	d.size_bytes = size;
	l.digest = &d;
	google__protobuf__any__init(any);
	any->type_url = (char *)BOS_LOCATOR_URL;
	any->value.data = buf;
	any->value.len = bazel_output_service_rev2__file_artifact_locator__pack(&l, buf);
}

/* StageArtifacts of n (path, hex, size); codes[] gets each status. */
static int stage(struct od *o, const char *build, size_t n, const char *const *paths,
		 char (*hex)[65], const int64_t *sizes, int *codes)
{
	BazelOutputService__StageArtifactsRequest r =
		BAZEL_OUTPUT_SERVICE__STAGE_ARTIFACTS_REQUEST__INIT;
	BazelOutputService__StageArtifactsRequest__Artifact *a = calloc(n, sizeof(*a));
	BazelOutputService__StageArtifactsRequest__Artifact **ap = calloc(n, sizeof(*ap));
	Google__Protobuf__Any *any = calloc(n, sizeof(*any));
	uint8_t (*lb)[128] = calloc(n, sizeof(*lb));
	BazelOutputService__StageArtifactsResponse *resp;
	uint8_t *buf;
	size_t len;
	int code;

	for (size_t i = 0; i < n; i++) {
		bazel_output_service__stage_artifacts_request__artifact__init(&a[i]);
		a[i].path = (char *)paths[i];
		locator(&any[i], lb[i], hex[i], sizes[i]);
		a[i].locator = &any[i];
		ap[i] = &a[i];
	}
	r.build_id = (char *)build;
	r.n_artifacts = n;
	r.artifacts = ap;
	code = call(o->conn, BOS_METHOD("StageArtifacts"), &r.base, &buf, &len, NULL, 0);
	if (code == GRPC_OK) {
		resp = bazel_output_service__stage_artifacts_response__unpack(NULL, len, buf);
		CHECK(resp && resp->n_responses == n);
		for (size_t i = 0; resp && i < n && i < resp->n_responses; i++)
			codes[i] = resp->responses[i]->status ? resp->responses[i]->status->code : 0;
		if (resp)
			bazel_output_service__stage_artifacts_response__free_unpacked(resp, NULL);
	}
	free(buf);
	free(a);
	free(ap);
	free(any);
	free(lb);
	return code;
}

/* BatchStat of one path: 0 none, 'f' file (*has_loc), 'l' link, 'd' dir, <0 code. */
static int stat1(struct od *o, const char *build, const char *path, bool *has_loc,
		 char *hex_out)
{
	BazelOutputService__BatchStatRequest r = BAZEL_OUTPUT_SERVICE__BATCH_STAT_REQUEST__INIT;
	BazelOutputService__BatchStatResponse *resp;
	char *paths[1] = { (char *)path };
	uint8_t *buf;
	size_t len;
	int code, ret = 0;

	r.build_id = (char *)build;
	r.n_paths = 1;
	r.paths = paths;
	*has_loc = false;
	code = call(o->conn, BOS_METHOD("BatchStat"), &r.base, &buf, &len, NULL, 0);
	if (code != GRPC_OK) {
		free(buf);
		return -code;
	}
	resp = bazel_output_service__batch_stat_response__unpack(NULL, len, buf);
	free(buf);
	if (!resp || resp->n_responses != 1)
		return -100;
	if (resp->responses[0]->stat) {
		BazelOutputService__Stat *s = resp->responses[0]->stat;

		if (s->type_case == BAZEL_OUTPUT_SERVICE__STAT__TYPE_FILE) {
			ret = 'f';
			if (s->file->locator) {
				BazelOutputServiceRev2__FileArtifactLocator *l =
					bazel_output_service_rev2__file_artifact_locator__unpack(
						NULL, s->file->locator->value.len,
						s->file->locator->value.data);
				*has_loc = l != NULL;
				if (l && hex_out)
					snprintf(hex_out, 65, "%s", l->digest->hash);
				if (l)
					bazel_output_service_rev2__file_artifact_locator__free_unpacked(l, NULL);
			}
		} else if (s->type_case == BAZEL_OUTPUT_SERVICE__STAT__TYPE_SYMLINK) {
			ret = 'l';
		} else {
			ret = 'd';
		}
	}
	bazel_output_service__batch_stat_response__free_unpacked(resp, NULL);
	return ret;
}

static int finalize_build(struct od *o, const char *build)
{
	BazelOutputService__FinalizeBuildRequest r =
		BAZEL_OUTPUT_SERVICE__FINALIZE_BUILD_REQUEST__INIT;
	uint8_t *buf;
	size_t len;
	int code;

	r.build_id = (char *)build;
	r.build_successful = 1;
	code = call(o->conn, BOS_METHOD("FinalizeBuild"), &r.base, &buf, &len, NULL, 0);
	free(buf);
	return code;
}

static int clean(struct od *o, const char *base)
{
	BazelOutputService__CleanRequest r = BAZEL_OUTPUT_SERVICE__CLEAN_REQUEST__INIT;
	uint8_t *buf;
	size_t len;
	int code;

	r.output_base_id = (char *)base;
	code = call(o->conn, BOS_METHOD("Clean"), &r.base, &buf, &len, NULL, 0);
	free(buf);
	return code;
}

#define BASE "0123456789abcdef0123456789abcdef"

static void t_flow(void)
{
	struct od o;
	char hex[3][65], p[900], got[65] = "";
	const char *paths[3] = { "k8-fastbuild/bin/a.txt", "k8-fastbuild/bin/sub/b.txt",
				 "k8-fastbuild/bin/missing" };
	int64_t sizes[3];
	int codes[3] = { -1, -1, -1 };
	bool loc;
	struct stat st;

	REQUIRE(od_start(&o));
	cas_put(&o, "alpha\n", hex[0]);
	cas_put(&o, "beta beta\n", hex[1]);
	t_sha256_hex("never uploaded", 14, hex[2]);
	sizes[0] = 6;
	sizes[1] = 10;
	sizes[2] = 14;

	CHECK_INT(start_build(&o, BASE, "build-1", 2), GRPC_INVALID_ARGUMENT);
	CHECK_INT(start_build(&o, BASE, "build-1", 1), GRPC_OK);
	CHECK_INT(start_build(&o, BASE, "build-1", 1), GRPC_OK);	/* retried */
	CHECK_INT(start_build(&o, "../x", "build-1", 1), GRPC_INVALID_ARGUMENT);
	snprintf(p, sizeof(p), "%s/%s", o.root, BASE);
	CHECK(stat(p, &st) == 0 && S_ISDIR(st.st_mode));

	CHECK_INT(stage(&o, "no-such-build", 3, paths, hex, sizes, codes),
		  GRPC_FAILED_PRECONDITION);
	CHECK_INT(stage(&o, "build-1", 3, paths, hex, sizes, codes), GRPC_OK);
	CHECK_INT(codes[0], GRPC_OK);
	CHECK_INT(codes[1], GRPC_OK);
	CHECK_INT(codes[2], GRPC_NOT_FOUND);
	snprintf(p, sizeof(p), "%s/%s/%s", o.root, BASE, paths[1]);
	/* The fake stores the digest, not the bytes: no st_size check here. */
	CHECK(stat(p, &st) == 0 && (st.st_mode & 07777) == 0555);
	snprintf(p, sizeof(p), "%s/%s/%s", o.root, BASE, paths[2]);
	CHECK(stat(p, &st) != 0);
	/* Idempotent: staged again over itself. */
	CHECK_INT(stage(&o, "build-1", 2, paths, hex, sizes, codes), GRPC_OK);
	CHECK_INT(codes[0], GRPC_OK);

	/* Staged and unchanged: a locator. Directories and nothing. */
	CHECK_INT(stat1(&o, "build-1", paths[0], &loc, got), 'f');
	CHECK(loc);
	CHECK_STR(got, hex[0]);
	CHECK_INT(stat1(&o, "build-1", "k8-fastbuild/bin", &loc, NULL), 'd');
	CHECK_INT(stat1(&o, "build-1", "k8-fastbuild/nothing", &loc, NULL), 0);
	CHECK_INT(stat1(&o, "build-1", "/etc/passwd", &loc, NULL), -GRPC_INVALID_ARGUMENT);
	CHECK_INT(stat1(&o, "build-1", "a/../b", &loc, NULL), -GRPC_INVALID_ARGUMENT);

	/* Changed behind the service's back: no locator any more. */
	snprintf(p, sizeof(p), "%s/%s/%s", o.root, BASE, paths[0]);
	chmod(p, 0755);
	{
		int fd = open(p, O_WRONLY | O_TRUNC);

		CHECK(fd >= 0 && write(fd, "changed", 7) == 7);
		close(fd);
	}
	CHECK_INT(stat1(&o, "build-1", paths[0], &loc, NULL), 'f');
	CHECK(!loc);

	/* A symlink is answered as one. */
	snprintf(p, sizeof(p), "%s/%s/k8-fastbuild/bin/link", o.root, BASE);
	CHECK(symlink("a.txt", p) == 0);
	CHECK_INT(stat1(&o, "build-1", "k8-fastbuild/bin/link", &loc, NULL), 'l');

	CHECK_INT(finalize_build(&o, "build-1"), GRPC_OK);
	CHECK_INT(finalize_build(&o, "build-1"), GRPC_OK);
	CHECK_INT(finalize_build(&o, "nope"), GRPC_FAILED_PRECONDITION);

	/* The next build: what the CAS lost is removed at StartBuild. */
	snprintf(p, sizeof(p), "%s/cas/%s", o.srvroot, hex[1]);
	CHECK(unlink(p) == 0);
	CHECK_INT(start_build(&o, BASE, "build-2", 1), GRPC_OK);
	snprintf(p, sizeof(p), "%s/%s/%s", o.root, BASE, paths[1]);
	CHECK(stat(p, &st) != 0 && errno == ENOENT);
	/* The local (changed) file stays. */
	snprintf(p, sizeof(p), "%s/%s/%s", o.root, BASE, paths[0]);
	CHECK(stat(p, &st) == 0);

	CHECK_INT(clean(&o, BASE), GRPC_OK);
	CHECK_INT(clean(&o, BASE), GRPC_OK);
	snprintf(p, sizeof(p), "%s/%s", o.root, BASE);
	CHECK(t_count_dir(p) <= 0);
	od_stop(&o);
}

static void t_hostile(void)
{
	struct od o;
	char hex[2][65], p[900];
	const char *bad[] = { "/abs", "a/../../x", "a//b", "", "esc/x" };
	int64_t sizes[2] = { 6, 6 };
	int codes[2];
	uint8_t *buf;
	size_t len;

	REQUIRE(od_start(&o));
	cas_put(&o, "alpha\n", hex[0]);
	memcpy(hex[1], hex[0], 65);
	CHECK_INT(start_build(&o, BASE, "b", 1), GRPC_OK);
	/* A symlinked directory pointing outside the output path. */
	snprintf(p, sizeof(p), "%s/%s/esc", o.root, BASE);
	CHECK(symlink(o.srvroot, p) == 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *two[2] = { "fine", bad[i] };

		CHECK_INT(stage(&o, "b", 2, two, hex, sizes, codes), GRPC_INVALID_ARGUMENT);
	}
	/* Nothing was changed: not even the good artifact. */
	snprintf(p, sizeof(p), "%s/%s/fine", o.root, BASE);
	CHECK(access(p, F_OK) != 0);
	snprintf(p, sizeof(p), "%s/x", o.srvroot);
	CHECK(access(p, F_OK) != 0);

	/* Truncated and garbage protobuf. */
	{
		struct grpc_status st;
		static const uint8_t junk[] = { 0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01 };
		const char *methods[] = { "StartBuild", "StageArtifacts", "BatchStat",
					  "FinalizeArtifacts", "FinalizeBuild", "Clean" };

		for (size_t i = 0; i < 6; i++) {
			char m[128];

			snprintf(m, sizeof(m), "/bazel_output_service.BazelOutputService/%s",
				 methods[i]);
			CHECK_INT(grpc_unary(o.conn, m, junk, sizeof(junk), 5000, &buf, &len, &st),
				  GRPC_INVALID_ARGUMENT);
			grpc_status_free(&st);
		}
		CHECK_INT(grpc_unary(o.conn, "/bazel_output_service.BazelOutputService/Nope",
				     junk, 0, 5000, &buf, &len, &st), GRPC_UNIMPLEMENTED);
		grpc_status_free(&st);
	}
	/* A bad locator type and a wrong size for the empty digest. */
	{
		BazelOutputService__StageArtifactsRequest r =
			BAZEL_OUTPUT_SERVICE__STAGE_ARTIFACTS_REQUEST__INIT;
		BazelOutputService__StageArtifactsRequest__Artifact a =
			BAZEL_OUTPUT_SERVICE__STAGE_ARTIFACTS_REQUEST__ARTIFACT__INIT;
		BazelOutputService__StageArtifactsRequest__Artifact *ap = &a;
		Google__Protobuf__Any any;
		uint8_t lb[128];

		locator(&any, lb, hex[0], 6);
		any.type_url = (char *)"type.googleapis.com/evil.Locator";
		a.path = (char *)"x";
		a.locator = &any;
		r.build_id = (char *)"b";
		r.n_artifacts = 1;
		r.artifacts = &ap;
		CHECK_INT(call(o.conn, BOS_METHOD("StageArtifacts"), &r.base, &buf, &len,
			       NULL, 0), GRPC_INVALID_ARGUMENT);
		free(buf);
	}
	od_stop(&o);
}

/*
 * Another uid over TCP: PERMISSION_DENIED (the client core has no unix
 * sockets; the server's own tests check SO_PEERCRED's uid, and
 * service_accept_peer() is the same check for both).
 */
static void t_other_uid(void)
{
	struct od o;
	pid_t pid;
	int status;

	REQUIRE(od_start(&o));
	pid = fork();
	if (pid == 0) {
		struct grpc_conn_opts co = { 0 };
		char url[64], err[128];
		int bad = 0;

		if (setgid(65534) || setuid(65534))
			_exit(3);
		for (int i = 0; i < 1; i++) {
			struct grpc_conn *c;
			struct grpc_status st;
			uint8_t *buf;
			size_t len;

			snprintf(url, sizeof(url), "grpc://127.0.0.1:%d", o.port);
			co.url = url;
			c = grpc_conn_new(&co, err, sizeof(err));
			if (!c)
				_exit(4);
			if (grpc_unary(c, BOS_METHOD("Clean"), NULL, 0, 5000, &buf, &len,
				       &st) != GRPC_PERMISSION_DENIED)
				bad++;
			grpc_status_free(&st);
			grpc_conn_free(c);
		}
		_exit(bad);
	}
	CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* And ours still works. */
	CHECK_INT(start_build(&o, BASE, "b", 1), GRPC_OK);
	od_stop(&o);
}

const char *outputd_skip(void)
{
	return t_rev2_skip();
}

const struct test outputd_tests[] = {
	{ "flow", t_flow },
	{ "hostile", t_hostile },
	{ "other_uid", t_other_uid },
	{ NULL, NULL },
};
