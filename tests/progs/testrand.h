/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared by fsdiff and fsstress: the deterministic PRNG (splitmix64; the
 * whole operation sequence follows from the seed) and errno names.
 * Header-only: each program is a single translation unit.
 */
#ifndef CASFS_TESTRAND_H
#define CASFS_TESTRAND_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

static uint64_t rng_state;

static inline uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static inline uint64_t rnd(void) { return splitmix64(&rng_state); }
static inline uint64_t rnd_below(uint64_t n) { return n ? rnd() % n : 0; }
static inline bool chance(unsigned pct) { return rnd_below(100) < pct; }

static inline const char *errname(int e)
{
	const char *s = strerrorname_np(e);

	return s ? s : "E?";
}

#endif
