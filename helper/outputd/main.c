// SPDX-License-Identifier: GPL-2.0
/*
 * casfs-outputd: serves Bazel's output service (Bazel 7.2+,
 * --experimental_remote_output_service) for one user, so that bazel-out
 * is a directory of a casfs mount whose outputs fetch their bytes only
 * when read. See service.h, docs/design.md and casfs-outputd --help.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cas.h"
#include "config.h"
#include "grpc/grpc.h"
#include "service.h"

#define DEFAULT_CONFIG "/etc/casfs/helper.conf"
#define MAX_LISTEN 8

static const char usage[] =
	"usage: casfs-outputd --root DIR [--listen URL]... [options]\n"
	"\n"
	"Serve Bazel's output service (bazel_output_service.BazelOutputService)\n"
	"for the calling user. Output paths are DIR/<output_base_id>; DIR must\n"
	"be a directory of a casfs mount owned by the user. Point Bazel 7.2+ at\n"
	"it with\n"
	"  --experimental_remote_output_service=grpc://127.0.0.1:PORT\n"
	"  --experimental_remote_output_service_output_path_prefix=DIR\n"
	"\n"
	"  --root DIR          the root of the output paths (required)\n"
	"  --bazel-root PATH   DIR as Bazel names it, if Bazel runs in a chroot or\n"
	"                      container where DIR has another path\n"
	"  --listen URL        grpc://127.0.0.1:PORT, grpc://[::1]:PORT or\n"
	"                      unix:PATH; repeatable (default grpc://127.0.0.1:8980);\n"
	"                      also sockets passed by systemd (LISTEN_FDS)\n"
	"  --cas URL           the CAS (grpc://, grpcs:// or unix:PATH) to check\n"
	"                      blobs in\n"
	"                      (FindMissingBlobs); default: 'cas' in the config\n"
	"  --instance NAME     REv2 instance name (default: the config's)\n"
	"  --config FILE       casfs-helper's configuration, for cas, instance,\n"
	"                      TLS and auth settings (default " DEFAULT_CONFIG
	" if it exists)\n"
	"  --cas-timeout SECS  bound on each CAS call (default 30)\n"
	"  --workers N         handler threads (default 4)\n"
	"  -v, --verbose       log each connection and each call\n"
	"  -h, --help, --version\n"
	"\n"
	"Connections from any other uid are refused with PERMISSION_DENIED.\n";

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	stop = 1;
}

static int verbose;

static void log_fn(void *ud, int level, const char *msg)
{
	if (level <= GRPC_LOG_WARN || verbose)
		fprintf(stderr, "casfs-outputd: %s\n", msg);
}

static void rpc_log(const char *line)
{
	fprintf(stderr, "casfs-outputd: %s\n", line);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("casfs-outputd: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

/* sd_listen_fds(3) without libsystemd: fds 3.. when LISTEN_PID is us. */
static int listen_fds(void)
{
	const char *pid = getenv("LISTEN_PID"), *n = getenv("LISTEN_FDS");
	long v;

	if (!pid || !n || strtol(pid, NULL, 10) != (long)getpid())
		return 0;
	v = strtol(n, NULL, 10);
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	return v > 0 && v <= MAX_LISTEN ? (int)v : 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "root", required_argument, NULL, 'r' },
		{ "bazel-root", required_argument, NULL, 'b' },
		{ "listen", required_argument, NULL, 'l' },
		{ "cas", required_argument, NULL, 'c' },
		{ "instance", required_argument, NULL, 'i' },
		{ "config", required_argument, NULL, 'f' },
		{ "cas-timeout", required_argument, NULL, 't' },
		{ "workers", required_argument, NULL, 'w' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	const char *listen[MAX_LISTEN], *root = NULL, *cas_url = NULL,
		   *instance = NULL, *config = NULL;
	unsigned nlisten = 0, workers = 4;
	long cas_timeout = 30;
	struct options cfg;
	struct rev2_opts ro = { 0 };
	struct service_opts so = { 0 };
	struct grpc_server_opts gso = { 0 };
	struct grpc_server *srv;
	struct service *svc;
	struct cas *cas;
	struct sigaction sa = { .sa_handler = on_signal };
	char err[512] = "";
	int c, nfds;

	while ((c = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'r':
			root = optarg;
			break;
		case 'b':
			so.bazel_root = optarg;
			if (optarg[0] != '/')
				die("--bazel-root must be an absolute path");
			break;
		case 'l':
			if (nlisten == MAX_LISTEN)
				die("at most %d --listen", MAX_LISTEN);
			listen[nlisten++] = optarg;
			break;
		case 'c':
			cas_url = optarg;
			break;
		case 'i':
			instance = optarg;
			break;
		case 'f':
			config = optarg;
			break;
		case 't':
			cas_timeout = strtol(optarg, NULL, 10);
			if (cas_timeout < 1 || cas_timeout > 3600)
				die("--cas-timeout: 1 to 3600 seconds");
			break;
		case 'w':
			workers = (unsigned)strtoul(optarg, NULL, 10);
			if (workers < 1 || workers > 64)
				die("--workers: 1 to 64");
			break;
		case 'v':
			verbose = 1;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		case 'V':
			printf("casfs-outputd %s\n", CASFS_VERSION);
			return 0;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (optind != argc || !root) {
		fputs(usage, stderr);
		return 2;
	}
	if (root[0] != '/')
		die("--root must be an absolute path (Bazel is given the same one)");

	/* The CAS casfs-helper fetches from: both must agree. */
	options_init(&cfg);
	if (!config && access(DEFAULT_CONFIG, R_OK) == 0)
		config = DEFAULT_CONFIG;
	if (config && config_load(&cfg, config, err, sizeof(err)))
		die("%s", err);
	ro.url = cas_url ? cas_url : cfg.cas;
	ro.instance = instance ? instance : cfg.instance;
	ro.ca_file = cfg.ca_file;
	ro.cert_file = cfg.client_cert;
	ro.key_file = cfg.client_key;
	ro.header_file = cfg.auth_header_file;
	ro.timeout_ms = cas_timeout * 1000;
	if (!ro.url)
		die("no CAS: give --cas URL or 'cas = URL' in %s",
		    config ? config : DEFAULT_CONFIG);
	if (!grpc_url_ok(ro.url))
		die("--cas %s: casfs-outputd speaks REv2 gRPC (grpc://, grpcs:// or unix:PATH)",
		    ro.url);
	if (cas_new(&cas, &ro, err, sizeof(err)))
		die("CAS %s: %s", ro.url, err);
	options_free(&cfg);

	so.root = root;
	so.fs = &outpath_fs_casfs;
	so.cas = cas;
	so.uid = getuid();
	if (verbose)
		so.log = rpc_log;
	if (service_new(&svc, &so, err, sizeof(err)))
		die("%s", err);

	gso.workers = workers;
	gso.accept_peer = service_accept_peer;
	gso.accept_ud = svc;
	gso.log = log_fn;
	srv = grpc_server_new(&gso, err, sizeof(err));
	if (!srv)
		die("%s", err);
	if (service_register(svc, srv))
		die("registering methods failed");
	nfds = listen_fds();
	for (int i = 0; i < nfds; i++)
		if (grpc_server_listen_fd(srv, 3 + i, err, sizeof(err)))
			die("socket fd %d: %s", 3 + i, err);
	if (!nlisten && !nfds)
		listen[nlisten++] = "grpc://127.0.0.1:8980";
	for (unsigned i = 0; i < nlisten; i++)
		if (grpc_server_listen(srv, listen[i], err, sizeof(err)))
			die("--listen %s: %s", listen[i], err);

	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (grpc_server_start(srv))
		die("starting the server failed");
	for (unsigned i = 0; i < nlisten; i++) {
		int port = grpc_server_bound_port(srv, (unsigned)nfds + i);

		if (port > 0)
			fprintf(stderr, "casfs-outputd: listening on %s (port %d)\n",
				listen[i], port);
		else
			fprintf(stderr, "casfs-outputd: listening on %s\n", listen[i]);
	}
	fprintf(stderr, "casfs-outputd: serving %s for uid %u, CAS %s\n", root,
		(unsigned)so.uid, ro.url);
	grpc_server_run(srv, &stop);
	grpc_server_free(srv);
	service_free(svc);
	cas_free(cas);
	return 0;
}
