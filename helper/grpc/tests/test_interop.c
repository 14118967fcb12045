// SPDX-License-Identifier: GPL-2.0
/*
 * The client against a real gRPC server: Debian's python3-grpcio
 * (tests/server.py, run by /usr/bin/python3) on 127.0.0.1, over h2c,
 * TLS and mutual TLS with throwaway certificates made by openssl here.
 */
#include "t.h"
#include "grpc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t server_pid;
static int server_stdin = -1;
static int port_h2c, port_tls, port_mtls;
static char dir[256], why[512];

static char *path(const char *name)
{
	static char buf[4][320];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
	return buf[i];
}

static int sh(const char *cmd)
{
	char full[2048];

	snprintf(full, sizeof(full), "cd '%s' && { %s; } >openssl.log 2>&1", dir, cmd);
	return system(full);
}

static const char *make_certs(void)
{
	static const char ec[] = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
	char cmd[1024];

	if (t_write_file(path("srv.ext"),
			 "subjectAltName=DNS:localhost,IP:127.0.0.1\n", 42) ||
	    t_write_file(path("cli.ext"), "extendedKeyUsage=clientAuth\n", 28))
		return "cannot write extension files";
	snprintf(cmd, sizeof(cmd),
		 "openssl req -x509 %s -keyout ca.key -out ca.pem -days 2 -subj /CN=casfs-test-ca && "
		 "openssl req -x509 %s -keyout other.key -out other.pem -days 2 -subj /CN=other-ca && "
		 "openssl req %s -keyout srv.key -out srv.csr -subj /CN=localhost && "
		 "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
		 "-out srv.pem -days 2 -extfile srv.ext && "
		 "openssl req %s -keyout cli.key -out cli.csr -subj /CN=casfs-client && "
		 "openssl x509 -req -in cli.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
		 "-out cli.pem -days 2 -extfile cli.ext", ec, ec, ec, ec);
	if (sh(cmd))
		return "openssl could not make test certificates (see openssl.log)";
	return NULL;
}

static const char *setup(void)
{
	const char *script = getenv("GRPC_TEST_SERVER"), *err;
	int in[2], out[2];
	char line[256] = "";
	size_t len = 0;

	if (!script)
		return "GRPC_TEST_SERVER is not set (run through make check)";
	if (access("/usr/bin/python3", X_OK))
		return "/usr/bin/python3 not found";
	snprintf(dir, sizeof(dir), "%s/interop", t_tmpdir());
	if (mkdir(dir, 0700) && errno != EEXIST)
		return "mkdir";
	err = make_certs();
	if (err)
		return err;
	if (pipe(in) || pipe(out))
		return "pipe";
	server_pid = fork();
	if (server_pid < 0)
		return "fork";
	if (server_pid == 0) {
		int log = open(path("server.log"), O_WRONLY | O_CREAT | O_TRUNC, 0600);

		dup2(in[0], 0);
		dup2(out[1], 1);
		if (log >= 0)
			dup2(log, 2);
		close(in[1]);
		close(out[0]);
		execl("/usr/bin/python3", "python3", script, "--cert", path("srv.pem"),
		      "--key", path("srv.key"), "--client-ca", path("ca.pem"),
		      (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	server_stdin = in[1];
	/* "PORTS a b c\n", within 20 s */
	while (len < sizeof(line) - 1 && !strchr(line, '\n')) {
		struct pollfd p = { .fd = out[0], .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 20000) <= 0)
			break;
		n = read(out[0], line + len, sizeof(line) - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		line[len] = 0;
	}
	close(out[0]);
	if (sscanf(line, "PORTS %d %d %d", &port_h2c, &port_tls, &port_mtls) == 3 &&
	    port_h2c > 0 && port_tls > 0 && port_mtls > 0)
		return NULL;
	snprintf(why, sizeof(why), "test server did not start: %s",
		 !strncmp(line, "SKIP ", 5) ? line + 5 : line[0] ? line : "(no output)");
	if (why[strlen(why) - 1] == '\n')
		why[strlen(why) - 1] = 0;
	close(server_stdin);
	waitpid(server_pid, NULL, 0);
	return why;
}

static void teardown(void)
{
	close(server_stdin);	/* it stops when stdin closes */
	for (int i = 0; i < 50; i++) {
		if (waitpid(server_pid, NULL, WNOHANG) == server_pid)
			return;
		usleep(100000);
	}
	kill(server_pid, SIGKILL);
	waitpid(server_pid, NULL, 0);
}

/* ------------------------------------------------------------------ */

struct res {
	struct grpc_status st;
	unsigned n;
	size_t total;
	bool pattern_ok;
	uint8_t *last;
	size_t last_len;
};

static int on_msg(void *ud, const uint8_t *m, size_t n, bool compressed)
{
	struct res *r = ud;

	(void)compressed;
	if (r->n == 0)
		r->pattern_ok = true;
	for (size_t i = 0; i < n; i++)
		if (m[i] != (uint8_t)(r->n % 256)) {
			r->pattern_ok = false;
			break;
		}
	free(r->last);
	r->last = malloc(n + 1);
	memcpy(r->last, m, n);
	r->last[n] = 0;
	r->last_len = n;
	r->n++;
	r->total += n;
	return 0;
}

static void res_free(struct res *r)
{
	free(r->last);
	grpc_status_free(&r->st);
	memset(r, 0, sizeof(*r));
}

static int call(struct grpc_conn *c, const char *method, const void *req,
		size_t len, int64_t timeout_ms, struct res *r)
{
	char m[128];
	struct grpc_call_opts o = {
		.method = m, .req = req, .req_len = len, .timeout_ms = timeout_ms,
		.on_msg = on_msg, .ud = r,
	};

	snprintf(m, sizeof(m), "/casfs.test.Test/%s", method);
	return grpc_call_run(c, &o, &r->st);
}

#define CALLS(c, m, s, t, r) call(c, m, s, strlen(s), t, r)

static struct grpc_conn *conn(bool tls, int port, const char *ca,
			      const char *cert, const char *name, uint32_t window)
{
	struct grpc_conn_opts o = { 0 };
	char url[64], err[512];
	struct grpc_conn *c;

	snprintf(url, sizeof(url), "%s://127.0.0.1:%d", tls ? "grpcs" : "grpc", port);
	o.url = url;
	o.ca_file = ca;
	o.cert_file = cert;
	o.key_file = cert ? path("cli.key") : NULL;
	o.tls_server_name = name;
	o.window = window;
	o.transparent_retries = -1;
	c = grpc_conn_new(&o, err, sizeof(err));
	if (!c)
		printf("    grpc_conn_new: %s\n", err);
	return c;
}

static void t_unary(void)
{
	struct grpc_conn *c = conn(false, port_h2c, NULL, NULL, NULL, 0);
	struct grpc_status st;
	uint8_t *resp, *req = malloc(1 << 20);
	size_t len;

	REQUIRE(c);
	CHECK_INT(grpc_unary(c, "/casfs.test.Test/Echo", "ping", 4, 5000, &resp,
			     &len, &st), GRPC_OK);
	CHECK(len == 4 && !memcmp(resp, "ping", 4));
	free(resp);
	grpc_status_free(&st);
	/* an empty message, and 1 MiB each way (beyond the 64 KiB windows) */
	CHECK_INT(grpc_unary(c, "/casfs.test.Test/Echo", "", 0, 5000, &resp,
			     &len, &st), GRPC_OK);
	CHECK_INT(len, 0);
	free(resp);
	grpc_status_free(&st);
	for (int i = 0; i < 1 << 20; i++)
		req[i] = (uint8_t)(i * 7);
	CHECK_INT(grpc_unary(c, "/casfs.test.Test/Echo", req, 1 << 20, 5000, &resp,
			     &len, &st), GRPC_OK);
	CHECK(len == 1 << 20 && !memcmp(resp, req, len));
	free(resp);
	free(req);
	grpc_status_free(&st);
	/* unknown method */
	CHECK_INT(grpc_unary(c, "/casfs.test.Test/Nope", "", 0, 5000, &resp,
			     &len, &st), GRPC_UNIMPLEMENTED);
	grpc_status_free(&st);
	grpc_conn_free(c);
}

static void t_streaming(void)
{
	struct grpc_conn *c = conn(false, port_h2c, NULL, NULL, NULL, 0);
	struct res r = { 0 };

	REQUIRE(c);
	CHECK_INT(CALLS(c, "Stream", "300 70000", 10000, &r), GRPC_OK);
	CHECK_INT(r.n, 300);
	CHECK_INT(r.total, 300 * 70000);
	CHECK(r.pattern_ok);
	res_free(&r);
	CHECK_INT(CALLS(c, "Stream", "0 1", 10000, &r), GRPC_OK);
	CHECK_INT(r.n, 0);
	res_free(&r);
	grpc_conn_free(c);
}

static void t_status(void)
{
	struct grpc_conn *c = conn(false, port_h2c, NULL, NULL, NULL, 0);
	struct res r = { 0 };

	REQUIRE(c);
	CHECK_INT(CALLS(c, "Status", "5 blob \xe2\x9c\x93 missing: 100%", 5000, &r),
		  GRPC_NOT_FOUND);
	CHECK_STR(r.st.message, "blob \xe2\x9c\x93 missing: 100%");
	CHECK(!r.st.transport);
	res_free(&r);
	CHECK_INT(CALLS(c, "Status", "8 slow down, see details", 5000, &r),
		  GRPC_RESOURCE_EXHAUSTED);
	CHECK_INT(r.st.details_len, 7);
	CHECK(r.st.details && !memcmp(r.st.details, "\x08\x08\x12\x03" "abc", 7));
	res_free(&r);
	CHECK_INT(CALLS(c, "Status", "14 try later", 5000, &r), GRPC_UNAVAILABLE);
	CHECK(!r.st.unprocessed);
	res_free(&r);
	grpc_conn_free(c);
}

static void t_deadline(void)
{
	struct grpc_conn *c = conn(false, port_h2c, NULL, NULL, NULL, 0);
	struct res r = { 0 };
	int64_t t0 = t_now_ms();

	REQUIRE(c);
	CHECK_INT(CALLS(c, "Sleep", "3000", 300, &r), GRPC_DEADLINE_EXCEEDED);
	CHECK(t_now_ms() - t0 < 1500);
	res_free(&r);
	CHECK_INT(CALLS(c, "Sleep", "10", 3000, &r), GRPC_OK);
	CHECK_STR((char *)r.last, "late");
	res_free(&r);
	grpc_conn_free(c);
}

static void t_abort_mid_stream(void)
{
	struct grpc_conn *c = conn(false, port_h2c, NULL, NULL, NULL, 0);
	struct res r = { 0 };

	REQUIRE(c);
	CHECK_INT(CALLS(c, "AbortMid", "3", 5000, &r), GRPC_DATA_LOSS);
	CHECK_INT(r.n, 3);
	CHECK_STR((char *)r.last, "part2");
	CHECK_STR(r.st.message, "broken after 3");
	res_free(&r);
	grpc_conn_free(c);
}

static void t_metadata(void)
{
	struct grpc_conn_opts o = { 0 };
	struct grpc_metadata md = { 0 }, cmd = { 0 };
	struct grpc_conn *c;
	struct res r = { 0 };
	char url[64], err[256], *rem;
	struct grpc_call_opts co = {
		.method = "/casfs.test.Test/Meta", .req = "", .timeout_ms = 5000,
		.md = &cmd, .on_msg = on_msg, .ud = &r,
	};

	REQUIRE(t_write_file(path("md"), "# token\nAuthorization: Bearer t0ken\n", 36) == 0);
	REQUIRE(grpc_md_load_file(&md, path("md"), err, sizeof(err)) == 0);
	REQUIRE(grpc_md_add(&cmd, "X-Casfs-Call", "7", err, sizeof(err)) == 0);
	snprintf(url, sizeof(url), "grpc://127.0.0.1:%d", port_h2c);
	o.url = url;
	o.md = &md;
	c = grpc_conn_new(&o, err, sizeof(err));
	grpc_md_free(&md);	/* the conn has its copy */
	REQUIRE(c);
	CHECK_INT(grpc_call_run(c, &co, &r.st), GRPC_OK);
	REQUIRE(r.last);
	CHECK_CONTAINS((char *)r.last, "authorization=Bearer t0ken");
	CHECK_CONTAINS((char *)r.last, "x-casfs-call=7");
	CHECK_CONTAINS((char *)r.last, "user-agent=casfs-grpc/1");
	rem = strstr((char *)r.last, "remaining=");
	CHECK(rem && atof(rem + 10) > 3.0 && atof(rem + 10) <= 5.0);
	res_free(&r);
	co.timeout_ms = 0;
	CHECK_INT(grpc_call_run(c, &co, &r.st), GRPC_OK);
	CHECK_CONTAINS((char *)r.last, "remaining=none");
	res_free(&r);
	/* an idle timeout is ours alone: no grpc-timeout for it... */
	co.idle_timeout_ms = 1000;
	CHECK_INT(grpc_call_run(c, &co, &r.st), GRPC_OK);
	CHECK_CONTAINS((char *)r.last, "remaining=none");
	res_free(&r);
	/* ...and with a total as well, grpc-timeout carries the total */
	co.timeout_ms = 5000;
	CHECK_INT(grpc_call_run(c, &co, &r.st), GRPC_OK);
	rem = strstr((char *)r.last, "remaining=");
	CHECK(rem && atof(rem + 10) > 3.0 && atof(rem + 10) <= 5.0);
	res_free(&r);
	grpc_md_free(&cmd);
	grpc_conn_free(c);
}

static void t_message_cap(void)
{
	struct grpc_conn *c = conn(false, port_h2c, NULL, NULL, NULL, 0);
	struct res r = { 0 };
	char req[32];

	REQUIRE(c);
	snprintf(req, sizeof(req), "%zu", GRPC_DEFAULT_MAX_MSG);
	CHECK_INT(CALLS(c, "Big", req, 10000, &r), GRPC_OK);
	CHECK_INT(r.total, GRPC_DEFAULT_MAX_MSG);
	res_free(&r);
	snprintf(req, sizeof(req), "%zu", GRPC_DEFAULT_MAX_MSG + 1);
	CHECK_INT(CALLS(c, "Big", req, 10000, &r), GRPC_RESOURCE_EXHAUSTED);
	CHECK_INT(r.n, 0);
	res_free(&r);
	CHECK_INT(CALLS(c, "Echo", "still here", 5000, &r), GRPC_OK);
	res_free(&r);
	grpc_conn_free(c);
}

struct many {
	int done, ok;
	struct res r;
	const char *want;
	unsigned want_n;
};

static void many_done(void *ud, const struct grpc_status *st)
{
	struct many *m = ud;

	m->done = 1;
	if (st->code == GRPC_OK && m->r.n == m->want_n &&
	    (!m->want || (m->r.last && !strcmp((char *)m->r.last, m->want))))
		m->ok = 1;
}

static int many_msg(void *ud, const uint8_t *p, size_t n, bool compressed)
{
	return on_msg(&((struct many *)ud)->r, p, n, compressed);
}

static void t_concurrent(void)
{
	enum { NU = 60, NS = 4 };
	struct grpc_conn *c = conn(false, port_h2c, NULL, NULL, NULL, 0);
	struct many *m = calloc(NU + NS, sizeof(*m));
	char (*req)[32] = calloc(NU, 32);
	struct grpc_conn_stats s;
	int done = 0, ok = 0;

	REQUIRE(c);
	for (int i = 0; i < NU + NS; i++) {
		struct grpc_call_opts o = {
			.method = i < NU ? "/casfs.test.Test/Echo" : "/casfs.test.Test/Stream",
			.timeout_ms = 20000, .on_msg = many_msg, .on_done = many_done,
			.ud = &m[i],
		};

		if (i < NU) {
			snprintf(req[i], 32, "echo %d", i);
			o.req = req[i];
			o.req_len = strlen(req[i]);
			m[i].want = req[i];
			m[i].want_n = 1;
		} else {
			o.req = "64 100000";
			o.req_len = 9;
			m[i].want_n = 64;
		}
		REQUIRE(grpc_call_start(c, &o));
	}
	for (int k = 0; k < 2000 && done < NU + NS; k++) {
		grpc_conn_wait(c, 10);
		done = ok = 0;
		for (int i = 0; i < NU + NS; i++) {
			done += m[i].done;
			ok += m[i].ok;
		}
	}
	CHECK_INT(done, NU + NS);
	CHECK_INT(ok, NU + NS);
	for (int i = NU; i < NU + NS; i++)
		CHECK(m[i].r.pattern_ok);
	grpc_conn_get_stats(c, &s);
	CHECK_INT(s.connects, 1);
	for (int i = 0; i < NU + NS; i++)
		res_free(&m[i].r);
	free(m);
	free(req);
	grpc_conn_free(c);
}

static int64_t cpu_ms(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
	       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
}

/* 256 MiB in 1 MiB messages; prints the rate. */
static void throughput(bool tls, int port, uint32_t window, const char *what)
{
	struct grpc_conn *c = conn(tls, port, tls ? path("ca.pem") : NULL, NULL,
				   NULL, window);
	struct res r = { 0 };
	int64_t t0, dt, cpu0, cpu;

	REQUIRE(c);
	CHECK_INT(CALLS(c, "Echo", "warm up", 5000, &r), GRPC_OK);
	res_free(&r);
	t0 = t_now_ms();
	cpu0 = cpu_ms();
	CHECK_INT(CALLS(c, "Stream", "256 1048576", 60000, &r), GRPC_OK);
	dt = t_now_ms() - t0;
	cpu = cpu_ms() - cpu0;
	CHECK_INT(r.total, 256u << 20);
	CHECK(r.pattern_ok);
	printf("    %s: 256 MiB in %lld ms, %.0f MiB/s; client CPU %lld ms "
	       "(ASan build)\n", what, (long long)dt,
	       256.0 * 1000 / (double)(dt ? dt : 1), (long long)cpu);
	res_free(&r);
	grpc_conn_free(c);
}

static void t_throughput_h2c(void)
{
	throughput(false, port_h2c, 0, "h2c, 16 MiB windows");
}

static void t_throughput_h2c_small_window(void)
{
	throughput(false, port_h2c, 65535, "h2c, 64 KiB windows");
}

static void t_throughput_tls(void)
{
	throughput(true, port_tls, 0, "TLS, 16 MiB windows");
}

static void t_tls(void)
{
	struct grpc_conn *c = conn(true, port_tls, path("ca.pem"), NULL, NULL, 0);
	struct res r = { 0 };

	REQUIRE(c);
	CHECK_INT(CALLS(c, "Echo", "over tls", 5000, &r), GRPC_OK);
	CHECK_STR((char *)r.last, "over tls");
	res_free(&r);
	CHECK_INT(CALLS(c, "Stream", "20 100000", 5000, &r), GRPC_OK);
	CHECK(r.pattern_ok && r.n == 20);
	res_free(&r);
	CHECK_INT(CALLS(c, "Status", "7 no", 5000, &r), GRPC_PERMISSION_DENIED);
	res_free(&r);
	grpc_conn_free(c);

	/* the certificate's DNS name */
	c = conn(true, port_tls, path("ca.pem"), NULL, "localhost", 0);
	REQUIRE(c);
	CHECK_INT(CALLS(c, "Echo", "by name", 5000, &r), GRPC_OK);
	res_free(&r);
	grpc_conn_free(c);
}

static void t_tls_refused(void)
{
	struct grpc_conn *c;
	struct res r = { 0 };

	/* a CA that did not sign the server's certificate */
	c = conn(true, port_tls, path("other.pem"), NULL, NULL, 0);
	REQUIRE(c);
	CHECK_INT(CALLS(c, "Echo", "x", 5000, &r), GRPC_UNAVAILABLE);
	CHECK_CONTAINS(r.st.message, "certificate");
	CHECK(r.st.unprocessed);
	res_free(&r);
	grpc_conn_free(c);
	/* the right CA, the wrong name */
	c = conn(true, port_tls, path("ca.pem"), NULL, "wrong.example", 0);
	REQUIRE(c);
	CHECK_INT(CALLS(c, "Echo", "x", 5000, &r), GRPC_UNAVAILABLE);
	CHECK_CONTAINS(r.st.message, "certificate");
	res_free(&r);
	grpc_conn_free(c);
	/* TLS to the cleartext port */
	c = conn(true, port_h2c, path("ca.pem"), NULL, NULL, 0);
	REQUIRE(c);
	CHECK_INT(CALLS(c, "Echo", "x", 5000, &r), GRPC_UNAVAILABLE);
	res_free(&r);
	grpc_conn_free(c);
	/* cleartext to the TLS port */
	c = conn(false, port_tls, NULL, NULL, NULL, 0);
	REQUIRE(c);
	CHECK_INT(CALLS(c, "Echo", "x", 5000, &r), GRPC_UNAVAILABLE);
	res_free(&r);
	grpc_conn_free(c);
}

static void t_mtls(void)
{
	struct grpc_conn *c;
	struct res r = { 0 };

	c = conn(true, port_mtls, path("ca.pem"), path("cli.pem"), NULL, 0);
	REQUIRE(c);
	CHECK_INT(CALLS(c, "Echo", "with a client cert", 5000, &r), GRPC_OK);
	CHECK_STR((char *)r.last, "with a client cert");
	res_free(&r);
	grpc_conn_free(c);
	/* without one the server refuses */
	c = conn(true, port_mtls, path("ca.pem"), NULL, NULL, 0);
	REQUIRE(c);
	CHECK_INT(CALLS(c, "Echo", "x", 5000, &r), GRPC_UNAVAILABLE);
	res_free(&r);
	grpc_conn_free(c);
	/* a key that does not match the certificate: refused up front */
	{
		struct grpc_conn_opts o = { 0 };
		char url[64], err[512];

		snprintf(url, sizeof(url), "grpcs://127.0.0.1:%d", port_mtls);
		o.url = url;
		o.cert_file = path("cli.pem");
		o.key_file = path("srv.key");
		CHECK(!grpc_conn_new(&o, err, sizeof(err)));
		CHECK_CONTAINS(err, "client key");
	}
}

static const struct test tests[] = {
	{ "unary", t_unary },
	{ "streaming", t_streaming },
	{ "status", t_status },
	{ "deadline", t_deadline },
	{ "abort_mid_stream", t_abort_mid_stream },
	{ "metadata", t_metadata },
	{ "message_cap", t_message_cap },
	{ "concurrent", t_concurrent },
	{ "tls", t_tls },
	{ "tls_refused", t_tls_refused },
	{ "mtls", t_mtls },
	{ "throughput_h2c", t_throughput_h2c },
	{ "throughput_h2c_small_window", t_throughput_h2c_small_window },
	{ "throughput_tls", t_throughput_tls },
	{ NULL, NULL },
};

const struct suite interop_suite = { "interop", tests, setup, teardown };
