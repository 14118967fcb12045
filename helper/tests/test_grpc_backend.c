// SPDX-License-Identifier: GPL-2.0
/*
 * Tests: the grpc:// backend through the fetch engine, against the
 * reference REv2 server (tests/rev2/server.py, python3-grpcio) started
 * per test with the fault mode under test. Each fault must end in the
 * right bytes after a retry, or in a clean error with a log line; never
 * in an unverified blob, a hang past the budget, or a crash.
 */
#include "fetch_util.h"
#include "rev2_server.h"
#include "../common.h"
#include "../stats.h"
#include "../backend.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *grpc_backend_skip(void)
{
	return t_rev2_skip();
}

struct env {
	struct t_rev2 s;
	const char *store, *cache;
	struct cache *c;
	struct fetch_engine *e;
	char url[320];
};

/* A store with blobs[i] = seed i+1 of sizes[i], a server, a cache. */
static bool env_up(struct env *v, const size_t *sizes, unsigned n, uint8_t (*d)[32],
		   ...)
{
	const char *argv[16] = { NULL };
	unsigned na = 0;
	va_list ap;

	v->store = t_tmpdir();
	v->cache = t_tmpdir();
	for (unsigned i = 0; i < n; i++)
		t_make_blob(v->store, "cas", i + 1, sizes[i], d[i]);
	va_start(ap, d);
	for (const char *a; (a = va_arg(ap, const char *)) && na < 15;)
		argv[na++] = a;
	va_end(ap);
	argv[na] = NULL;
	if (!t_rev2_start(&v->s, v->store, argv))
		return false;
	snprintf(v->url, sizeof(v->url), "%s", v->s.url);
	return cache_open(&v->c, v->cache, 0, 0) == 0;
}

static int env_engine(struct env *v, unsigned jobs, unsigned timeout_s, const char *instance)
{
	struct fetch_config fc = {
		.url = v->url, .jobs = jobs, .timeout_s = timeout_s, .instance = instance,
	};

	return fetch_engine_new(&v->e, &fc, v->c);
}

static void env_down(struct env *v)
{
	if (v->e)
		fetch_engine_free(v->e);
	v->e = NULL;
	if (v->c)
		cache_close(v->c);
	v->c = NULL;
	t_rev2_stop(&v->s);
}

static bool blob_published(const char *cache, const uint8_t d[32])
{
	char path[512], hex[65];

	hex_encode(d, hex);
	snprintf(path, sizeof(path), "%s/blobs/%s", cache, hex);
	return access(path, F_OK) == 0;
}

/* 40 small blobs at once: all right, in far fewer BatchReadBlobs calls. */
static void t_batch(void)
{
	size_t sizes[40];
	uint8_t d[40][32];
	struct results r = { 0 };
	struct env v = { 0 };
	int calls;

	for (int i = 0; i < 40; i++)
		sizes[i] = 4096 + (size_t)i;
	sizes[0] = 0;	/* the empty blob too */
	REQUIRE(env_up(&v, sizes, 40, d, NULL));
	REQUIRE(env_engine(&v, 4, 20, NULL) == 0);
	for (int i = 0; i < 40; i++)
		CHECK_INT(fetch_submit(v.e, d[i], sizes[i], t_cb, &r, (uint64_t)i), 0);
	CHECK_INT(t_drain(v.e, 20000), 0);
	for (int i = 0; i < 40; i++) {
		CHECK_INT(r.called[i], 1);
		CHECK_INT(r.status[i], 0);
		CHECK(t_cached_ok(v.cache, d[i], sizes[i], (unsigned)i + 1));
	}
	env_down(&v);
	calls = t_rev2_count(&v.s, "BatchReadBlobs: done");
	CHECK(calls >= 1 && calls <= 8);
	CHECK_INT(t_rev2_count(&v.s, " Read: done"), 0);	/* no ByteStream */
}

/*
 * The CAS on a unix socket (unix:PATH, as a local bazel-remote serves it):
 * small blobs in a batch and one big enough for ByteStream.
 */
static void t_unix_socket(void)
{
	size_t sizes[3] = { 4096, 70000, 3 * 1024 * 1024 + 5 };
	uint8_t d[3][32];
	struct results r = { 0 };
	struct env v = { 0 };
	char sock[300];

	snprintf(sock, sizeof(sock), "%s/cas.sock", t_tmpdir());
	REQUIRE(env_up(&v, sizes, 3, d, "--unix", sock, NULL));
	snprintf(v.url, sizeof(v.url), "unix:%s", sock);
	REQUIRE(env_engine(&v, 4, 20, NULL) == 0);
	for (int i = 0; i < 3; i++)
		CHECK_INT(fetch_submit(v.e, d[i], sizes[i], t_cb, &r, (uint64_t)i), 0);
	CHECK_INT(t_drain(v.e, 20000), 0);
	for (int i = 0; i < 3; i++) {
		CHECK_INT(r.status[i], 0);
		CHECK(t_cached_ok(v.cache, d[i], sizes[i], (unsigned)i + 1));
	}
	env_down(&v);
	CHECK(t_rev2_count(&v.s, " Read: done") >= 1);	/* the big one */
}

/* One miss at a time, many times (a lone reader): each is answered. */
static void t_sequential(void)
{
	enum { N = 60 };
	size_t sizes[N];
	uint8_t d[N][32];
	struct results r = { 0 };
	struct env v = { 0 };

	for (int i = 0; i < N; i++)
		sizes[i] = 4096;
	REQUIRE(env_up(&v, sizes, N, d, NULL));
	REQUIRE(env_engine(&v, 16, 20, NULL) == 0);
	for (int i = 0; i < N; i++) {
		CHECK_INT(fetch_submit(v.e, d[i], sizes[i], t_cb, &r, (uint64_t)i % NRES), 0);
		CHECK_INT(t_drain(v.e, 10000), 0);
		CHECK_INT(r.status[i % NRES], 0);
	}
	env_down(&v);
}

/* A second helper on the same server after the first exited. */
static void t_restart(void)
{
	enum { N = 40 };
	size_t sizes[N];
	uint8_t d[N][32];
	struct results r = { 0 };
	struct env v = { 0 };
	uint64_t t0;

	for (int i = 0; i < N; i++)
		sizes[i] = 4096;
	REQUIRE(env_up(&v, sizes, N, d, NULL));
	for (int round = 0; round < 3; round++) {
		t0 = mono_ms();
		REQUIRE(env_engine(&v, 16, 20, NULL) == 0);
		CHECK(mono_ms() - t0 < 2000);	/* GetCapabilities answered at once */
		for (int i = 0; i < N; i++) {
			CHECK_INT(fetch_submit(v.e, d[i], sizes[i], t_cb, &r, (uint64_t)i % NRES), 0);
			CHECK_INT(t_drain(v.e, 10000), 0);
		}
		fetch_engine_free(v.e);
		v.e = NULL;
		t_rm_rf(v.cache);
		mkdir(v.cache, 0755);
		cache_close(v.c);
		REQUIRE(cache_open(&v.c, v.cache, 0, 0) == 0);
	}
	env_down(&v);
}

/* The helper exits with calls on the wire: nothing leaks (ASan checks). */
static void t_free_inflight(void)
{
	size_t sizes[] = { 100, 3 << 20 };
	uint8_t d[2][32];
	struct results r = { 0 };
	struct env v = { 0 };
	uint64_t end;

	REQUIRE(env_up(&v, sizes, 2, d, "--fault", "slow:5000", NULL));
	REQUIRE(env_engine(&v, 4, 20, NULL) == 0);
	CHECK_INT(fetch_submit(v.e, d[0], sizes[0], t_cb, &r, 0), 0);
	CHECK_INT(fetch_submit(v.e, d[1], sizes[1], t_cb, &r, 1), 0);
	for (end = mono_ms() + 500; mono_ms() < end;)
		fetch_run(v.e, 50, NULL, 0);
	CHECK_INT(fetch_pending(v.e), 2);
	env_down(&v);	/* frees the engine with a batch and a stream out */
	CHECK_INT(r.called[0] + r.called[1], 0);
}

/* A blob over the batch size streams with ByteStream.Read. */
static void t_stream(void)
{
	size_t sizes[] = { 3 * 1024 * 1024 + 17 };
	uint8_t d[1][32];
	struct results r = { 0 };
	struct env v = { 0 };

	REQUIRE(env_up(&v, sizes, 1, d, NULL));
	REQUIRE(env_engine(&v, 4, 20, NULL) == 0);
	CHECK_INT(fetch_submit(v.e, d[0], sizes[0], t_cb, &r, 0), 0);
	CHECK_INT(t_drain(v.e, 20000), 0);
	CHECK_INT(r.status[0], 0);
	CHECK(t_cached_ok(v.cache, d[0], sizes[0], 1));
	env_down(&v);
	CHECK(t_rev2_count(&v.s, " Read: done") >= 1);
	CHECK_INT(t_rev2_count(&v.s, "BatchReadBlobs: done"), 0);
}

/*
 * One small blob (BatchReadBlobs) and one large (ByteStream.Read) under a
 * fault: each must end with want[i], published exactly when want[i] is 0.
 */
static void fault_case2(const char *fault, unsigned timeout_s, const int want[2],
			const char *log_needle)
{
	size_t sizes[] = { 10000, 2 * 1024 * 1024 + 5 };
	uint8_t d[2][32];
	struct results r = { 0 };
	struct env v = { 0 };
	uint64_t t0;

	REQUIRE(env_up(&v, sizes, 2, d, "--fault", fault, NULL));
	REQUIRE(env_engine(&v, 4, timeout_s, NULL) == 0);
	t0 = mono_ms();
	for (int i = 0; i < 2; i++)
		CHECK_INT(fetch_submit(v.e, d[i], sizes[i], t_cb, &r, (uint64_t)i), 0);
	CHECK_INT(t_drain(v.e, timeout_s * 1000 + 10000), 0);
	/* never past the budget (plus one call's grace) */
	CHECK(mono_ms() - t0 < (uint64_t)timeout_s * 1000 + 5000);
	for (int i = 0; i < 2; i++) {
		CHECK_INT(r.called[i], 1);
		CHECK_INT(r.status[i], want[i]);
		CHECK_INT(blob_published(v.cache, d[i]), want[i] == 0);
		if (want[i] == 0)
			CHECK(t_cached_ok(v.cache, d[i], sizes[i], (unsigned)i + 1));
	}
	if (log_needle)
		CHECK(t_log_contains(log_needle));
	env_down(&v);
}

static void fault_case(const char *fault, unsigned timeout_s, int want,
		       const char *log_needle)
{
	const int w[2] = { want, want };

	fault_case2(fault, timeout_s, w, log_needle);
}

static void t_corrupt(void)
{
	fault_case("corrupt", 5, -EIO, "sha256 mismatch");
}

static void t_truncate_resumes(void)
{
	fault_case("truncate:once", 10, 0, "resuming at offset");
}

static void t_truncate_always(void)
{
	/* every Read ends short: resumes run out, then retries, then an
	 * error; the small blob (BatchReadBlobs) is not affected */
	const int want[2] = { 0, -ETIMEDOUT };

	fault_case2("truncate@Read", 3, want, "giving up");
}

static void t_rst_resumes(void)
{
	fault_case("rst:once", 10, 0, "resuming at offset");
}

static void t_goaway(void)
{
	fault_case("goaway:100:2", 15, 0, NULL);
}

/*
 * Issue 11 item 4: a BatchReadBlobs call carries jobs of one deadline
 * band, so its deadline (its shortest member's) is more than half of
 * what any member has left: one nearly expired retry cannot fail a batch
 * of fresh jobs.
 */
static void t_deadline_band(void)
{
	CHECK(grpc_deadline_band(1) != grpc_deadline_band(3));
	CHECK(grpc_deadline_band(900) != grpc_deadline_band(60000));
	CHECK_INT(grpc_deadline_band(1025), grpc_deadline_band(2048));
	CHECK(grpc_deadline_band(1024) != grpc_deadline_band(1025));
	for (int64_t a = 1; a < 70000; a += 37) {
		for (int64_t b = a; b < 70000; b += 211) {
			if (grpc_deadline_band(a) != grpc_deadline_band(b))
				continue;
			/* the call gets a; b must not have twice that or more */
			if (2 * a <= b)
				CHECK(!"a band holds two times that differ 2x");
		}
	}
	CHECK(grpc_deadline_band(INT64_MAX) <= 64);
}

static void t_slow_past_deadline(void)
{
	fault_case("slow:8000", 2, -ETIMEDOUT, "DEADLINE_EXCEEDED");
}

/*
 * Issue 11 item 3: timeouts measure progress. One large blob (34
 * ByteStream.Read chunks of 64 KiB) under the given faults, with
 * timeout_s 1: returns the fetch's status and its time in *ms.
 */
static int slow_stream(const char *f1, const char *f2, struct env *v, size_t size,
		       uint8_t d[32], uint64_t *ms)
{
	size_t sizes[] = { size };
	uint8_t dd[1][32];
	struct results r = { 0 };
	uint64_t t0;

	if (!env_up(v, sizes, 1, dd, "--fault", f1, f2 ? "--fault" : NULL, f2, NULL) ||
	    env_engine(v, 4, 1, NULL)) {
		CHECK(!"server or engine");
		return 1;
	}
	memcpy(d, dd[0], 32);
	t0 = mono_ms();
	CHECK_INT(fetch_submit(v->e, d, size, t_cb, &r, 0), 0);
	CHECK_INT(t_drain(v->e, 20000), 0);
	*ms = mono_ms() - t0;
	CHECK_INT(r.called[0], 1);
	return r.status[0];
}

/* 100 ms between chunks: ~3.3 s in all, three times the 1 s timeout. */
static void t_slow_stream_finishes(void)
{
	size_t size = 2 * 1024 * 1024 + 5;
	struct env v = { 0 };
	uint8_t d[32];
	uint64_t ms = 0;

	CHECK_INT(slow_stream("drip:100", NULL, &v, size, d, &ms), 0);
	CHECK(ms >= 3000);
	CHECK(blob_published(v.cache, d));
	CHECK(t_cached_ok(v.cache, d, size, 1));
	CHECK(!t_log_contains("resuming"));
	CHECK(!t_log_contains("DEADLINE_EXCEEDED"));
	env_down(&v);
	CHECK_INT(t_rev2_count(&v.s, " Read: done"), 1);	/* one call did it all */
}

/*
 * A stream that breaks (RST_STREAM) after 1.6 s of slow progress, past
 * the 1 s budget, is still resumed and finished: it was making progress.
 */
static void t_slow_stream_break_resumes(void)
{
	size_t size = 2 * 1024 * 1024 + 5;
	struct env v = { 0 };
	uint8_t d[32];
	uint64_t ms = 0;

	CHECK_INT(slow_stream("drip:100", "rst:once", &v, size, d, &ms), 0);
	CHECK(ms >= 3000);
	CHECK(t_cached_ok(v.cache, d, size, 1));
	CHECK(t_log_contains("resuming at offset"));
	env_down(&v);
	CHECK_INT(t_rev2_count(&v.s, "RST_STREAM after"), 1);
}

/*
 * A stream that stalls (half the bytes, then 10 s of silence) fails
 * after ~1 s of silence, the timeout, with "no data": not after 10 s,
 * and never published. Its bytes extended the retry budget, so it is
 * tried once more; that attempt stalls at the same place, which is no
 * progress (nothing past the first attempt's high-water mark), and ends it.
 */
static void t_stalled_stream_fails(void)
{
	size_t size = 2 * 1024 * 1024 + 5;
	struct env v = { 0 };
	uint8_t d[32];
	uint64_t ms = 0;

	CHECK_INT(slow_stream("stall:10000", NULL, &v, size, d, &ms), -ETIMEDOUT);
	CHECK(ms >= 1000 && ms < 4000);
	CHECK(!blob_published(v.cache, d));
	CHECK(t_log_contains("no data for 1000 ms"));
	CHECK(t_log_contains("giving up"));
	env_down(&v);
	CHECK_INT(t_rev2_count(&v.s, "stalling 10000 ms"), 2);
}

static void t_unavailable_retry_after(void)
{
	uint64_t t0 = mono_ms();

	fault_case("unavailable:700:2", 15, 0, "UNAVAILABLE");
	CHECK(mono_ms() - t0 >= 700);	/* RetryInfo was honoured */
}

static void t_exhausted(void)
{
	fault_case("exhausted:100:once", 15, 0, "RESOURCE_EXHAUSTED");
}

static void t_notfound(void)
{
	fault_case("notfound", 5, -ENOENT, "NOT_FOUND");
}

static void t_wrong_instance(void)
{
	size_t sizes[] = { 100 };
	uint8_t d[1][32];
	struct results r = { 0 };
	struct env v = { 0 };

	REQUIRE(env_up(&v, sizes, 1, d, "--instance", "main", NULL));
	REQUIRE(env_engine(&v, 2, 5, "other") == 0);
	CHECK_INT(fetch_submit(v.e, d[0], sizes[0], t_cb, &r, 0), 0);
	CHECK_INT(t_drain(v.e, 10000), 0);
	CHECK_INT(r.status[0], -EINVAL);
	env_down(&v);

	REQUIRE(env_up(&v, sizes, 1, d, "--instance", "main", NULL));
	REQUIRE(env_engine(&v, 2, 5, "main") == 0);
	CHECK_INT(fetch_submit(v.e, d[0], sizes[0], t_cb, &r, 0), 0);
	CHECK_INT(t_drain(v.e, 10000), 0);
	CHECK_INT(r.status[0], 0);
	env_down(&v);
}

static void t_no_sha256_refused(void)
{
	size_t sizes[] = { 100 };
	uint8_t d[1][32];
	struct env v = { 0 };

	REQUIRE(env_up(&v, sizes, 1, d, "--no-sha256", NULL));
	CHECK_INT(env_engine(&v, 2, 5, NULL), -EPROTONOSUPPORT);
	CHECK(t_log_contains("does not offer SHA256"));
	env_down(&v);
}

/* No server yet: start-up goes on; fetches fail cleanly within budget. */
static void t_server_down(void)
{
	size_t sizes[] = { 100 };
	uint8_t d[1][32];
	struct results r = { 0 };
	struct env v = { 0 };
	uint64_t t0;

	REQUIRE(env_up(&v, sizes, 1, d, NULL));
	t_rev2_stop(&v.s);
	REQUIRE(env_engine(&v, 2, 2, NULL) == 0);
	t0 = mono_ms();
	CHECK_INT(fetch_submit(v.e, d[0], sizes[0], t_cb, &r, 0), 0);
	CHECK_INT(t_drain(v.e, 10000), 0);
	CHECK_INT(r.status[0], -ETIMEDOUT);
	CHECK(mono_ms() - t0 < 6000);
	CHECK(t_log_contains("giving up"));
	env_down(&v);
}

/* Fetch blob 0 with this configuration (url, cache and timeout filled in). */
static int fetch_one(struct env *v, struct fetch_config fc, const uint8_t d[32], size_t size)
{
	struct results r = { 0 };
	int err;

	fc.url = v->url;
	fc.jobs = 2;
	fc.timeout_s = 2;
	err = fetch_engine_new(&v->e, &fc, v->c);
	if (err)
		return err;
	if (fetch_submit(v->e, d, size, t_cb, &r, 0) || t_drain(v->e, 10000))
		err = -EIO;
	else
		err = r.status[0];
	fetch_engine_free(v->e);
	v->e = NULL;
	return err;
}

/* openssl(1): a self-signed certificate for 127.0.0.1 as dir/NAME.{pem,key}. */
static bool make_cert(const char *dir, const char *name)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd),
		 "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 "
		 "-addext subjectAltName=IP:127.0.0.1 -keyout %s/%s.key -out %s/%s.pem "
		 ">/dev/null 2>&1", dir, name, dir, name);
	return system(cmd) == 0;
}

/* grpcs:// with the server's certificate as CA; refused without it. */
static void t_tls(void)
{
	size_t sizes[] = { 5000 };
	uint8_t d[1][32];
	struct env v = { 0 };
	const char *certs = t_tmpdir();
	char cert[300], key[300], ccert[300], ckey[300];
	struct fetch_config fc = { 0 };

	REQUIRE(make_cert(certs, "server") && make_cert(certs, "client"));
	snprintf(cert, sizeof(cert), "%s/server.pem", certs);
	snprintf(key, sizeof(key), "%s/server.key", certs);
	snprintf(ccert, sizeof(ccert), "%s/client.pem", certs);
	snprintf(ckey, sizeof(ckey), "%s/client.key", certs);

	/* server certificate only */
	REQUIRE(env_up(&v, sizes, 1, d, "--tls-cert", cert, "--tls-key", key, NULL));
	snprintf(v.url, sizeof(v.url), "grpcs://127.0.0.1:%d", v.s.port);
	CHECK(fetch_one(&v, fc, d[0], sizes[0]) != 0);	/* not trusted */
	CHECK(!blob_published(v.cache, d[0]));
	fc.ca_file = cert;
	CHECK_INT(fetch_one(&v, fc, d[0], sizes[0]), 0);
	CHECK(t_cached_ok(v.cache, d[0], sizes[0], 1));
	env_down(&v);

	/* mutual TLS: the server wants a client certificate */
	REQUIRE(env_up(&v, sizes, 1, d, "--tls-cert", cert, "--tls-key", key,
		       "--tls-client-ca", ccert, NULL));
	snprintf(v.url, sizeof(v.url), "grpcs://127.0.0.1:%d", v.s.port);
	CHECK(fetch_one(&v, fc, d[0], sizes[0]) != 0);	/* no client cert */
	CHECK(!blob_published(v.cache, d[0]));
	fc.client_cert = ccert;
	fc.client_key = ckey;
	CHECK_INT(fetch_one(&v, fc, d[0], sizes[0]), 0);
	env_down(&v);
}

/* --auth-header-file lines become metadata on every call. */
static void t_auth_metadata(void)
{
	size_t sizes[] = { 5000 };
	uint8_t d[1][32];
	struct env v = { 0 };
	const char *dir = t_tmpdir();
	char path[300];
	struct fetch_config fc = { 0 };

	snprintf(path, sizeof(path), "%s/headers", dir);
	REQUIRE(t_write_file(path, "# token\nAuthorization: Bearer sekrit\n", 37, 0600) == 0);
	REQUIRE(env_up(&v, sizes, 1, d, "--require-metadata", "authorization: Bearer sekrit",
		       NULL));
	CHECK_INT(fetch_one(&v, fc, d[0], sizes[0]), -EACCES);
	CHECK(t_log_contains("UNAUTHENTICATED"));
	fc.auth_header_file = path;
	CHECK_INT(fetch_one(&v, fc, d[0], sizes[0]), 0);
	env_down(&v);
}

const struct test grpc_backend_tests[] = {
	{ "batch", t_batch },
	{ "unix_socket", t_unix_socket },
	{ "stream", t_stream },
	{ "sequential", t_sequential },
	{ "restart", t_restart },
	{ "free_inflight", t_free_inflight },
	{ "corrupt_eio", t_corrupt },
	{ "truncate_resumes", t_truncate_resumes },
	{ "truncate_always_fails", t_truncate_always },
	{ "rst_resumes", t_rst_resumes },
	{ "goaway", t_goaway },
	{ "deadline_band", t_deadline_band },
	{ "slow_past_deadline", t_slow_past_deadline },
	{ "slow_stream_finishes", t_slow_stream_finishes },
	{ "slow_stream_break_resumes", t_slow_stream_break_resumes },
	{ "stalled_stream_fails", t_stalled_stream_fails },
	{ "unavailable_retry_after", t_unavailable_retry_after },
	{ "exhausted", t_exhausted },
	{ "notfound_enoent", t_notfound },
	{ "instance", t_wrong_instance },
	{ "no_sha256_refused", t_no_sha256_refused },
	{ "server_down", t_server_down },
	{ "tls", t_tls },
	{ "auth_metadata", t_auth_metadata },
	{ NULL, NULL },
};
