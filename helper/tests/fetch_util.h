/* SPDX-License-Identifier: GPL-2.0 */
/* Tests: shared helpers to drive the fetch engine. */
#ifndef CASFS_T_FETCH_UTIL_H
#define CASFS_T_FETCH_UTIL_H

#include "t.h"
#include "../cache.h"
#include "../fetch.h"

#define NRES 64

struct results {
	int called[NRES];
	int status[NRES];
};

void t_cb(void *arg, uint64_t tag, int status);
/* Run the engine until nothing is pending (or timeout_ms): 0 or -ETIMEDOUT. */
int t_drain(struct fetch_engine *e, unsigned timeout_ms);
/* Make a blob of n bytes from seed in dir/<sub>/<hex> (sub "" for flat). */
void t_make_blob(const char *dir, const char *sub, unsigned seed, size_t n,
		 uint8_t d[32]);
bool t_cached_ok(const char *cache, const uint8_t d[32], size_t n, unsigned seed);

#endif
