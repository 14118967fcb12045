// SPDX-License-Identifier: GPL-2.0
/* Tests: shared helpers to drive the fetch engine. */
#include "fetch_util.h"
#include "../common.h"
#include "../verify.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void t_cb(void *arg, uint64_t tag, int status)
{
	struct results *r = arg;

	if (tag >= NRES) {
		t_fail(__FILE__, __LINE__, "callback with a bad tag");
		return;
	}
	r->called[tag]++;
	r->status[tag] = status;
}

int t_drain(struct fetch_engine *e, unsigned timeout_ms)
{
	uint64_t end = mono_ms() + timeout_ms;

	while (fetch_pending(e)) {
		if (mono_ms() > end)
			return -ETIMEDOUT;
		if (fetch_run(e, 50, NULL, 0))
			return -EIO;
	}
	return 0;
}

void t_make_blob(const char *dir, const char *sub, unsigned seed, size_t n, uint8_t d[32])
{
	char path[512], hex[65];
	char *buf = malloc(n ? n : 1);

	t_fill(buf, n, seed);
	sha256_buf(buf, n, d);
	hex_encode(d, hex);
	snprintf(path, sizeof(path), "%s/%s%s%s", dir, sub, *sub ? "/" : "", hex);
	if (*sub) {
		char sd[512];

		snprintf(sd, sizeof(sd), "%s/%s", dir, sub);
		mkdir(sd, 0755);
	}
	t_write_file(path, buf, n, 0644);
	free(buf);
}

bool t_cached_ok(const char *cache, const uint8_t d[32], size_t n, unsigned seed)
{
	char path[512], hex[65];
	char *want = malloc(n ? n : 1), *got;
	struct stat st;
	size_t len;
	bool ok;

	hex_encode(d, hex);
	snprintf(path, sizeof(path), "%s/blobs/%s", cache, hex);
	t_fill(want, n, seed);
	got = t_read_file(path, &len);
	ok = got && len == n && !memcmp(got, want, n) && stat(path, &st) == 0 &&
	     (st.st_mode & 07777) == 0400;
	free(got);
	free(want);
	return ok;
}
