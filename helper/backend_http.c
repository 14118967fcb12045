// SPDX-License-Identifier: GPL-2.0
/*
 * casfs-helper: http(s):// backend, Bazel's HTTP cache protocol:
 * GET <base>/cas/<sha256 hex>. Transfers run on the engine's curl multi
 * handle; bytes stream into the blob writer (hashing as they come), and a
 * body longer than the expected size is cut off at the first extra byte.
 *
 * Redirects: libcurl drops Authorization and Cookie when a redirect leads
 * to another host, but sends every --auth-header-file header on. So with
 * such headers we follow redirects ourselves, and only to the same origin
 * (scheme, host and port); a redirect elsewhere fails the fetch.
 */
#include "backend.h"
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_REDIRS 5

struct http_be {
	char *base;			/* without trailing '/' */
	char origin[512];		/* base's scheme://host:port, lower case */
	char *ca_file;
	struct curl_slist *headers;
	unsigned timeout_s;
	unsigned nxfers;
	bool https;
};

struct http_xfer {
	CURL *easy;
	struct job *j;
	char url[8192];
	char errbuf[CURL_ERROR_SIZE];
	bool overflow;		/* body exceeded the expected size */
	bool bad_status;
	bool own_redirects;	/* credentials set: we follow redirects */
	unsigned redirects;
	int werr;		/* temp file write error */
};

static bool is_redirect(long code)
{
	return code == 301 || code == 302 || code == 303 || code == 307 ||
	       code == 308;
}

static size_t on_data(char *p, size_t sz, size_t nm, void *ud)
{
	struct http_xfer *x = ud;
	size_t n = sz * nm;
	long code = 0;
	int err;

	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
	if (x->own_redirects && is_redirect(code))
		return n;	/* the body of a redirect we follow: dropped */
	if (code != 200) {	/* only a 200 body is a blob */
		x->bad_status = true;
		return 0;
	}
	err = bw_write(&x->j->bw, p, n);
	if (err == -EFBIG) {
		x->overflow = true;
		return 0;
	}
	if (err) {
		x->werr = err;
		return 0;
	}
	return n;
}

static void xfer_free(struct backend *b, struct job *j)
{
	struct http_xfer *x = j->bpriv;
	struct http_be *hb = b->priv;

	if (!x)
		return;
	curl_multi_remove_handle(b->eng->multi, x->easy);
	curl_easy_cleanup(x->easy);
	free(x);
	j->bpriv = NULL;
	hb->nxfers--;
}

static int http_start(struct backend *b, struct job *j)
{
	struct http_be *hb = b->priv;
	struct http_xfer *x = calloc(1, sizeof(*x));
	uint64_t now = mono_ms();
	long left_ms = j->deadline_ms > now ? (long)(j->deadline_ms - now) : 1;
	long stall_s = left_ms / 1000 + 1;
	CURL *c;

	if (!x)
		return -ENOMEM;
	c = curl_easy_init();
	if (!c) {
		free(x);
		return -ENOMEM;
	}
	x->easy = c;
	x->j = j;
	snprintf(x->url, sizeof(x->url), "%s/cas/%s", hb->base, j->hex);
	if (stall_s > (long)hb->timeout_s)
		stall_s = hb->timeout_s;
	curl_easy_setopt(c, CURLOPT_URL, x->url);
	curl_easy_setopt(c, CURLOPT_PRIVATE, x);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
	x->own_redirects = hb->headers != NULL;
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, x->own_redirects ? 0L : 1L);
	curl_easy_setopt(c, CURLOPT_MAXREDIRS, (long)MAX_REDIRS);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, hb->https ? "https" : "http,https");
	/* no redirect from https down to http (the headers would follow) */
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, hb->https ? "https" : "http,https");
	curl_easy_setopt(c, CURLOPT_USERAGENT, "casfs-helper/" CASFS_VERSION);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 256L * 1024);
	/* connect within the budget; abort a transfer stalled that long */
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, left_ms);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, stall_s);
	if (j->size)	/* 0 would mean "no limit" */
		curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)j->size);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	if (hb->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, hb->ca_file);
	if (hb->headers)
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hb->headers);
	if (curl_multi_add_handle(b->eng->multi, c) != CURLM_OK) {
		curl_easy_cleanup(c);
		free(x);
		return -ENOMEM;
	}
	j->bpriv = x;
	hb->nxfers++;
	log_dbg("%s: GET %s", j->hex, x->url);
	return 0;
}

/* Sort out how an attempt ended. */
static enum attempt_result classify(struct http_xfer *x, CURLcode rc, int *err,
				    char *why, size_t wlen)
{
	const char *msg = x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc);
	long code = 0;

	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
	*err = -EIO;
	if (rc == CURLE_OK) {
		if (code == 200)
			return RES_OK;
		snprintf(why, wlen, "unexpected HTTP status %ld", code);
		return RES_PERMANENT;
	}
	/*
	 * An error status decides, whatever else curl noticed first (an
	 * error page longer than the blob trips CURLOPT_MAXFILESIZE).
	 */
	if (code >= 300 || rc == CURLE_HTTP_RETURNED_ERROR ||
	    (rc == CURLE_WRITE_ERROR && x->bad_status)) {
		snprintf(why, wlen, "HTTP %ld", code);
		if (code == 404) {
			*err = -ENOENT;
			snprintf(why, wlen, "not in the CAS (HTTP 404)");
			return RES_PERMANENT;
		}
		if (code == 401 || code == 403) {
			*err = -EACCES;
			return RES_PERMANENT;
		}
		if (code == 408 || code == 429 || code >= 500)
			return RES_TRANSIENT;
		return RES_PERMANENT;
	}
	if (rc == CURLE_WRITE_ERROR && x->overflow)
		return RES_OK;	/* commit reports "body longer than expected" */
	if (rc == CURLE_WRITE_ERROR && x->werr) {
		*err = x->werr;
		snprintf(why, wlen, "writing the temporary file: %s", strerror(-x->werr));
		return RES_PERMANENT;
	}
	snprintf(why, wlen, "%s", msg);
	switch (rc) {
	case CURLE_FILESIZE_EXCEEDED:
		snprintf(why, wlen, "body longer than expected (Content-Length)");
		return RES_PERMANENT;
	case CURLE_OPERATION_TIMEDOUT:
		*err = -ETIMEDOUT;
		return RES_TRANSIENT;
	case CURLE_COULDNT_CONNECT:
		*err = -ECONNREFUSED;
		return RES_TRANSIENT;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		*err = -EHOSTUNREACH;
		return RES_TRANSIENT;
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_SSL_CONNECT_ERROR:
		*err = -ECONNRESET;
		return RES_TRANSIENT;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
	case CURLE_TOO_MANY_REDIRECTS:
	case CURLE_BAD_CONTENT_ENCODING:
		return RES_PERMANENT;
	default:
		return RES_TRANSIENT;
	}
}

/* scheme, host and port of a URL, lower-cased ("" on a parse failure) */
static void origin_of(const char *url, char *out, size_t len)
{
	char *scheme = NULL, *host = NULL, *port = NULL;
	CURLU *u = curl_url();

	out[0] = 0;
	if (u && !curl_url_set(u, CURLUPART_URL, url, 0) &&
	    !curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) &&
	    !curl_url_get(u, CURLUPART_HOST, &host, 0) &&
	    !curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT)) {
		snprintf(out, len, "%s://%s:%s", scheme, host, port);
		for (char *p = out; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
}

/*
 * A redirect we follow ourselves (credential headers are set): true if the
 * transfer was restarted at the new URL. False with *why set: a redirect
 * refused (another origin, one too many); the caller fails the attempt.
 */
static bool follow_redirect(struct backend *b, struct http_xfer *x,
			    char *why, size_t wlen)
{
	struct http_be *hb = b->priv;
	char to[512], shown[256];
	char *next = NULL;
	long code = 0;

	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
	if (!x->own_redirects || !is_redirect(code))
		return false;
	curl_easy_getinfo(x->easy, CURLINFO_REDIRECT_URL, &next);
	if (!next || strlen(next) >= sizeof(x->url)) {
		snprintf(why, wlen, "HTTP %ld without a usable Location", code);
		return false;
	}
	origin_of(next, to, sizeof(to));
	if (!hb->origin[0] || strcmp(hb->origin, to)) {
		url_redact(next, shown, sizeof(shown));
		snprintf(why, wlen,
			 "HTTP %ld to another origin (%.200s) not followed: "
			 "the auth headers must not go there", code, shown);
		return false;
	}
	if (x->redirects >= MAX_REDIRS) {
		snprintf(why, wlen, "more than %d redirects", MAX_REDIRS);
		return false;
	}
	x->redirects++;
	snprintf(x->url, sizeof(x->url), "%s", next);
	x->bad_status = false;
	curl_multi_remove_handle(b->eng->multi, x->easy);
	curl_easy_setopt(x->easy, CURLOPT_URL, x->url);
	if (curl_multi_add_handle(b->eng->multi, x->easy) != CURLM_OK) {
		snprintf(why, wlen, "out of memory following a redirect");
		return false;
	}
	log_dbg("%s: redirected to %s", x->j->hex, x->url);
	return true;
}

static void http_step(struct backend *b)
{
	struct fetch_engine *e = b->eng;
	CURLMsg *m;
	int running, left;

	curl_multi_perform(e->multi, &running);
	while ((m = curl_multi_info_read(e->multi, &left))) {
		struct http_xfer *x;
		char *priv = NULL;
		enum attempt_result r;
		char why[CURL_ERROR_SIZE + 64];
		struct job *j;
		int err = 0;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
		x = (struct http_xfer *)priv;
		if (!x)
			continue;
		j = x->j;
		why[0] = 0;
		if (follow_redirect(b, x, why, sizeof(why)))
			continue;
		if (why[0]) {		/* a redirect we refused */
			r = RES_PERMANENT;
			err = -EIO;
		} else {
			r = classify(x, m->data.result, &err, why, sizeof(why));
		}
		xfer_free(b, j);	/* m is invalid from here */
		fetch_attempt_done(e, j, r, err, why[0] ? why : NULL);
	}
}

static bool http_busy(struct backend *b)
{
	(void)b;
	return false;
}

static void http_cancel(struct backend *b, struct job *j)
{
	xfer_free(b, j);
}

static void http_destroy(struct backend *b)
{
	struct http_be *hb = b->priv;

	if (hb) {
		curl_slist_free_all(hb->headers);
		free(hb->base);
		free(hb->ca_file);
		free(hb);
	}
	b->priv = NULL;
}

static const struct backend_ops http_ops = {
	.name = "http",
	.start = http_start,
	.step = http_step,
	.busy = http_busy,
	.cancel = http_cancel,
	.destroy = http_destroy,
};

static int load_headers(struct http_be *hb, const char *path)
{
	char *buf, **lines = NULL, err[256];
	size_t len;
	int r = read_small_file(path, 64 * 1024, &buf, &len);

	if (r) {
		log_err("--auth-header-file %s: %s", path, strerror(-r));
		return r;
	}
	r = parse_header_lines(buf, len, &lines, err, sizeof(err));
	explicit_bzero(buf, len);
	free(buf);
	if (r) {
		log_err("--auth-header-file %s: %s", path, r == -ENOMEM ? "out of memory" : err);
		return r;
	}
	for (char **p = lines; *p; p++) {
		struct curl_slist *n = curl_slist_append(hb->headers, *p);

		explicit_bzero(*p, strlen(*p));
		if (!n) {
			free_lines(lines);
			return -ENOMEM;
		}
		hb->headers = n;
	}
	free_lines(lines);
	return 0;
}

int backend_http_init(struct backend *b, const char *url, const struct fetch_config *cfg)
{
	struct http_be *hb = calloc(1, sizeof(*hb));
	char shown[4200];
	size_t len;
	int err;

	if (!hb)
		return -ENOMEM;
	hb->timeout_s = cfg->timeout_s;
	hb->https = !strncasecmp(url, "https://", 8);
	hb->base = strdup(url);
	if (!hb->base)
		goto nomem;
	len = strlen(hb->base);
	if (len > 4096 || strpbrk(hb->base, " \t\r\n?#")) {
		url_redact(url, shown, sizeof(shown));
		log_err("--cas %s: bad URL (spaces, '?' or '#', or too long)", shown);
		err = -EINVAL;
		goto fail;
	}
	while (len && hb->base[len - 1] == '/')
		hb->base[--len] = 0;
	origin_of(hb->base, hb->origin, sizeof(hb->origin));
	if (cfg->ca_file && !(hb->ca_file = strdup(cfg->ca_file)))
		goto nomem;
	if (cfg->auth_header_file) {
		err = load_headers(hb, cfg->auth_header_file);
		if (err)
			goto fail;
	}
	/* The engine bounds parallelism; keep connections for reuse. */
	curl_multi_setopt(b->eng->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)cfg->jobs);
	curl_multi_setopt(b->eng->multi, CURLMOPT_MAXCONNECTS, (long)cfg->jobs);
	b->priv = hb;
	b->ops = &http_ops;
	url_redact(hb->base, shown, sizeof(shown));
	log_info("CAS: %s (GET <base>/cas/<sha256>), %u parallel, timeout %u s%s%s",
		 shown, cfg->jobs, cfg->timeout_s,
		 hb->ca_file ? ", CA file " : "", hb->ca_file ? hb->ca_file : "");
	return 0;
nomem:
	err = -ENOMEM;
fail:
	b->priv = hb;
	http_destroy(b);
	return err;
}
