/* SPDX-License-Identifier: GPL-2.0 */
/*
 * casfs-outputd: FindMissingBlobs against the CAS casfs-helper fetches
 * from. One REv2 client per worker thread (the gRPC client core is
 * single-threaded), made at its first use and closed when the thread
 * ends. Every call is bounded by the configured timeout.
 */
#ifndef CASFS_OUTPUTD_CAS_H
#define CASFS_OUTPUTD_CAS_H

#include <stdbool.h>
#include <stddef.h>

#include "rev2.h"

struct cas;

/* opts is copied (strings too). url NULL: no CAS; every blob is present. */
int cas_new(struct cas **out, const struct rev2_opts *opts, char *err, size_t errlen);
void cas_free(struct cas *c);
bool cas_configured(const struct cas *c);
/* missing[i] for each d[i] the CAS lacks; 0 or -errno with err. */
int cas_find_missing(struct cas *c, const struct rev2_digest *d, size_t n,
		     bool *missing, char *err, size_t errlen);

#endif
