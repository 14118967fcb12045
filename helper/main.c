// SPDX-License-Identifier: GPL-2.0
/*
 * casfs-helper: fetches blobs for casfs.ko on demand.
 *
 * Event loop (single thread): curl_multi_poll() waits on the curl
 * transfers plus the netlink socket and a signalfd. FETCH messages become
 * fetch_submit() calls; completions become DONE messages.
 */
#include "cache.h"
#include "config.h"
#include "fetch.h"
#include "netlink.h"
#include "stats.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define EXIT_CONFIG 78		/* EX_CONFIG: systemd must not restart us */
#define MAX_DONE_BACKLOG (1u << 20)

struct done_item {
	uint32_t req;
	int32_t status;
};

struct ctx {
	struct options opt;
	struct cache *cache;
	struct fetch_engine *eng;
	struct nlh *nl;
	uint32_t gen;		/* registration generation, high half of tags */
	struct done_item *backlog;
	size_t nbacklog, capbacklog;
};

static void send_done(struct ctx *c, uint32_t req, int status)
{
	int r = nlh_send_done(c->nl, req, status);

	if (!r) {
		stats.done_sent++;
		log_dbg("DONE %u status %d", req, status);
		return;
	}
	if ((r == -EAGAIN || r == -ENOMEM || r == -ENOBUFS) &&
	    c->nbacklog < MAX_DONE_BACKLOG) {
		if (c->nbacklog == c->capbacklog) {
			size_t ncap = c->capbacklog ? c->capbacklog * 2 : 64;
			struct done_item *n = realloc(c->backlog, ncap * sizeof(*n));

			if (!n)
				goto lost;
			c->backlog = n;
			c->capbacklog = ncap;
		}
		c->backlog[c->nbacklog++] = (struct done_item){ req, status };
		return;
	}
lost:
	stats.done_failed++;
	log_err("DONE %u: %s (the reader will time out)", req, strerror(-r));
}

static void flush_backlog(struct ctx *c)
{
	size_t i = 0;

	for (; i < c->nbacklog; i++) {
		int r = nlh_send_done(c->nl, c->backlog[i].req, c->backlog[i].status);

		if (r == -EAGAIN || r == -ENOMEM || r == -ENOBUFS)
			break;
		if (r) {
			stats.done_failed++;
			log_err("DONE %u: %s", c->backlog[i].req, strerror(-r));
		} else {
			stats.done_sent++;
		}
	}
	memmove(c->backlog, c->backlog + i, (c->nbacklog - i) * sizeof(*c->backlog));
	c->nbacklog -= i;
}

static void on_done(void *arg, uint64_t tag, int status)
{
	struct ctx *c = arg;
	uint32_t req = (uint32_t)tag;

	if (!c->nl || (uint32_t)(tag >> 32) != c->gen) {
		log_dbg("request %u belonged to an earlier registration; no DONE", req);
		return;
	}
	send_done(c, req, status);
}

static void on_fetch(void *arg, const struct nlh_req *q)
{
	struct ctx *c = arg;
	char hex[HEX_LEN + 1];
	int r;

	hex_encode(q->digest, hex);
	log_dbg("FETCH %u %s %llu uid %u", q->req_id, hex, (unsigned long long)q->size,
		q->uid);
	if (q->digest_fn != CASFS_DIGEST_SHA256) {
		log_err("%s: request %u uses digest function %u; only SHA-256 is "
			"implemented", hex, q->req_id, q->digest_fn);
		send_done(c, q->req_id, -EOPNOTSUPP);
		return;
	}
	r = fetch_submit_as(c->eng, q->digest, q->size,
			    q->uid == NLH_UID_NONE ? FETCH_UID_NONE : q->uid, on_done, c,
			    (uint64_t)c->gen << 32 | q->req_id);
	if (r) {
		log_err("%s: cannot take request %u: %s", hex, q->req_id, strerror(-r));
		send_done(c, q->req_id, r);
	}
}

/* The kernel withdrew a request (its readers left): drop the work. */
static void on_cancel(void *arg, const struct nlh_req *q)
{
	struct ctx *c = arg;

	log_dbg("CANCEL %u", q->req_id);
	if (q->digest_fn != CASFS_DIGEST_SHA256)
		return;	/* never taken */
	fetch_cancel(c->eng, q->digest, q->size, on_done, c,
		     (uint64_t)c->gen << 32 | q->req_id);
}

/* A reader opened a cached blob: it is recently used, for eviction. */
static void on_used(void *arg, const struct nlh_req *q)
{
	struct ctx *c = arg;

	if (q->digest_fn == CASFS_DIGEST_SHA256)
		cache_used(c->cache, q->digest, q->size);
}

/* Bytes of a request are arriving: the kernel restarts its readers' timeout. */
static void on_progress(void *arg, uint64_t tag)
{
	struct ctx *c = arg;

	if (!c->nl || (uint32_t)(tag >> 32) != c->gen)
		return;
	if (!nlh_send_progress(c->nl, (uint32_t)tag))
		stats.progress_sent++;
}

static void drop_nl(struct ctx *c)
{
	nlh_close(c->nl);
	c->nl = NULL;
	c->nbacklog = 0;	/* those ids meant nothing to a new kernel */
}

/* 0, -EPROTO / -EPERM (fatal), or another -errno (retry later). */
static int try_connect(struct ctx *c)
{
	uint32_t kv = 0;
	int r = nlh_open(&c->nl, on_fetch, c, cache_blobs_fd(c->cache));

	if (r)
		return r;
	nlh_on_cancel(c->nl, on_cancel);
	nlh_on_used(c->nl, on_used);
	c->gen++;
	r = nlh_register(c->nl, 5000, &kv);
	if (!r) {
		log_info("registered with casfs.ko (protocol version %u)", kv);
		return 0;
	}
	drop_nl(c);
	if (r == -EPROTO && kv)
		log_err("casfs.ko speaks protocol version %u, this helper speaks %u: "
			"refusing to run (install matching versions)", kv, CASFS_PROTO_VERSION);
	else if (r == -EPROTO)
		log_err("casfs.ko does not support protocol version %u: refusing to run "
			"(install matching versions)", CASFS_PROTO_VERSION_MIN);
	else if (r == -EPERM)
		log_err("REGISTER refused (EPERM): the helper needs CAP_NET_ADMIN and "
			"write access to the cache's blobs/ (root-owned, mode 0700)");
	return r;
}

static void update_gauges(struct ctx *c)
{
	stats.cache_bytes = cache_total_bytes(c->cache);
	stats.cache_blobs = cache_count(c->cache);
	stats.cache_max_bytes = cache_max_bytes(c->cache);
	cache_space(c->cache, &(struct cache_space){ 0 });	/* refreshes the fs gauges */
}

static int setup_signals(void)
{
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -1;
	return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

int main(int argc, char **argv)
{
	struct ctx c = { 0 };
	struct fetch_config fc;
	char err[1024], shown[4200];
	uint64_t last_stats = 0, next_connect = 0, last_family_check, last_rereg = 0;
	uint64_t last_activity = 0;
	unsigned connect_failures = 0;
	bool stats_warned = false, stop = false, want_rereg = false;
	int r, sigfd, code = 0;

	log_prefix = "casfs-helper";
	stats_reset();
	options_init(&c.opt);
	r = options_parse_argv(&c.opt, argc, argv, err, sizeof(err));
	if (r == 1) {
		options_free(&c.opt);
		return 0;
	}
	if (!r)
		r = options_check(&c.opt, err, sizeof(err));
	if (r) {
		log_err("%s", r == -ENOMEM ? "out of memory" : err);
		options_free(&c.opt);
		return 2;
	}
	if (c.opt.verbose)
		log_level = LOG_LVL_DEBUG;
	url_redact(c.opt.cas, shown, sizeof(shown));
	log_info("casfs-helper %s: cas %s, cache %s, jobs %u, timeout %u s, max cache %llu bytes%s",
		 CASFS_VERSION, shown, c.opt.cache, c.opt.jobs, c.opt.timeout_s,
		 (unsigned long long)c.opt.max_cache_bytes,
		 c.opt.max_cache_bytes ? "" : " (unbounded)");

	sigfd = setup_signals();
	if (sigfd < 0) {
		log_err("signalfd: %s", strerror(errno));
		options_free(&c.opt);
		return 1;
	}
	r = cache_open(&c.cache, c.opt.cache, c.opt.max_cache_bytes, 0);
	if (r) {
		code = 1;	/* may be a filesystem not mounted yet: restart */
		goto out;
	}
	{
		uint64_t mfb;
		unsigned mfp;

		options_min_free(&c.opt, &mfb, &mfp);
		cache_set_floor(c.cache, mfb, mfp);
	}
	fc = (struct fetch_config){
		.url = c.opt.cas,
		.instance = c.opt.instance,
		.ca_file = c.opt.ca_file,
		.auth_header_file = c.opt.auth_header_file,
		.client_cert = c.opt.client_cert,
		.client_key = c.opt.client_key,
		.jobs = c.opt.jobs,
		.timeout_s = c.opt.timeout_s,
		.sync_batch = c.opt.sync_batch,
	};
	r = fetch_engine_new(&c.eng, &fc, c.cache);
	if (r) {
		code = EXIT_CONFIG;
		goto out;
	}
	fetch_on_progress(c.eng, on_progress);
	last_family_check = mono_ms();

	while (!stop) {
		struct pollfd pfd[2];
		uint64_t now = mono_ms();
		unsigned n = 1;
		int timeout;

		if (!c.nl && now >= next_connect) {
			r = try_connect(&c);
			if (r == -EPROTO || r == -EPERM) {
				code = EXIT_CONFIG;
				break;
			}
			if (r) {
				if (connect_failures++ % 60 == 0) {
					if (r == -ENOENT)
						log_info("casfs.ko not loaded (no generic netlink "
							 "family '%s'); retrying every second",
							 CASFS_GENL_NAME);
					else
						log_warn("cannot register with casfs.ko: %s; "
							 "retrying every second", strerror(-r));
				}
				next_connect = now + 1000;
			} else {
				connect_failures = 0;
				last_family_check = now;
				if (nlh_take_overrun(c.nl))
					want_rereg = true;
			}
			now = mono_ms();
		}

		pfd[0] = (struct pollfd){ .fd = sigfd, .events = POLLIN };
		if (c.nl)
			pfd[n++] = (struct pollfd){ .fd = nlh_fd(c.nl), .events = POLLIN };
		timeout = c.opt.stats_file[0] &&
			  stats.requests + stats.done_sent != last_activity ? 100 : 1000;
		if (!c.nl && next_connect > now && next_connect - now < 1000)
			timeout = (int)(next_connect - now);
		if (c.nbacklog || want_rereg)
			timeout = 10;
		r = fetch_run(c.eng, timeout, pfd, n);
		if (r) {
			log_err("event loop: %s", strerror(-r));
			code = 1;
			break;
		}
		now = mono_ms();

		if (pfd[0].revents & POLLIN) {
			struct signalfd_siginfo si;

			while (read(sigfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGHUP) {
					log_info("SIGHUP ignored (restart to reload the configuration)");
					continue;
				}
				log_info("%s: exiting, abandoning %u transfers (the kernel keeps "
					 "them pending for the next helper)",
					 strsignal((int)si.ssi_signo), fetch_pending(c.eng));
				stop = true;
			}
			if (stop)
				break;
		}
		if (c.nl && pfd[1].revents) {
			r = nlh_receive(c.nl);
			if (r == -ENOBUFS || nlh_take_overrun(c.nl)) {
				log_warn("netlink receive queue overrun: FETCH messages lost");
				want_rereg = true;
			}
			if (r == -EPROTO) {
				code = EXIT_CONFIG;
				break;
			} else if (r && r != -ENOBUFS) {
				log_err("netlink: %s; reconnecting", strerror(-r));
				drop_nl(&c);
				next_connect = now + 1000;
			}
		}
		if (c.nl && want_rereg && now - last_rereg >= 200) {
			/* The kernel answers REGISTER by resending all pending FETCHes. */
			log_info("asking casfs.ko to resend pending requests");
			if (!nlh_reregister(c.nl))
				want_rereg = false;
			last_rereg = now;
		}
		if (c.nl && c.nbacklog)
			flush_backlog(&c);
		if (c.nl && now - last_family_check >= 5000) {
			int fam = nlh_resolve_family();

			last_family_check = now;
			if (fam != nlh_family(c.nl)) {
				log_warn("casfs.ko was %s; registering again",
					 fam < 0 ? "unloaded" : "reloaded");
				drop_nl(&c);
				next_connect = now;
			}
		}
		/* every second, and soon after any activity */
		if (c.opt.stats_file[0] &&
		    (now - last_stats >= 1000 ||
		     (now - last_stats >= 100 && stats.requests + stats.done_sent != last_activity))) {
			last_stats = now;
			last_activity = stats.requests + stats.done_sent;
			update_gauges(&c);
			r = stats_write(c.opt.stats_file);
			if (r && !stats_warned)
				log_warn("stats file %s: %s", c.opt.stats_file, strerror(-r));
			stats_warned = r != 0;
		}
	}
out:
	fetch_engine_free(c.eng);
	if (c.cache && c.opt.stats_file && c.opt.stats_file[0]) {
		update_gauges(&c);
		stats.inflight = stats.queued = 0;
		stats_write(c.opt.stats_file);
	}
	drop_nl(&c);
	free(c.backlog);
	cache_close(c.cache);
	close(sigfd);
	options_free(&c.opt);
	return code;
}
