// SPDX-License-Identifier: GPL-2.0
/* casfs-helper: cache directory checks, blob index and LRU eviction. */
#include "cache.h"
#include "stats.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

struct centry {
	uint8_t d[CASFS_SHA256_LEN];
	uint64_t size;
	int64_t mtime_ns;		/* only used to order the initial scan */
	uint64_t used_ms;		/* mono_ms() of its last put; 0: scanned */
	struct centry *prev, *next;	/* LRU: head = oldest */
	struct centry *hnext;
};

struct cache {
	char *dir;
	int dirfd, blobs_fd, tmp_fd;
	uint64_t max, total, count;
	uint64_t min_free_bytes;	/* CACHE_NO_BYTES: no byte term */
	unsigned min_free_pct;		/* CACHE_NO_PCT: no percent term */
	bool probe_warned;
	struct centry **tab;
	size_t tabsz;			/* power of two */
	struct centry *head, *tail;
};

static size_t hslot(const struct cache *c, const uint8_t *d)
{
	uint64_t h;

	memcpy(&h, d, sizeof(h));	/* a sha256 is already uniform */
	return (size_t)h & (c->tabsz - 1);
}

static struct centry *find(const struct cache *c, const uint8_t *d)
{
	for (struct centry *e = c->tab[hslot(c, d)]; e; e = e->hnext)
		if (!memcmp(e->d, d, CASFS_SHA256_LEN))
			return e;
	return NULL;
}

static void lru_unlink(struct cache *c, struct centry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		c->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		c->tail = e->prev;
	e->prev = e->next = NULL;
}

static void lru_append(struct cache *c, struct centry *e)
{
	e->prev = c->tail;
	e->next = NULL;
	if (c->tail)
		c->tail->next = e;
	else
		c->head = e;
	c->tail = e;
}

static int grow(struct cache *c)
{
	size_t nsz = c->tabsz ? c->tabsz * 2 : 1024;
	struct centry **nt = calloc(nsz, sizeof(*nt));

	if (!nt)
		return -ENOMEM;
	for (size_t i = 0; i < c->tabsz; i++) {
		struct centry *e = c->tab[i], *n;

		for (; e; e = n) {
			size_t s = 0;

			n = e->hnext;
			memcpy(&s, e->d, sizeof(s));
			s &= nsz - 1;
			e->hnext = nt[s];
			nt[s] = e;
		}
	}
	free(c->tab);
	c->tab = nt;
	c->tabsz = nsz;
	return 0;
}

/* Insert or refresh as most recently used. */
static int index_put(struct cache *c, const uint8_t *d, uint64_t size)
{
	struct centry *e = find(c, d);
	size_t s;

	if (e) {
		c->total -= e->size;
		e->size = size;
		c->total += size;
		e->used_ms = mono_ms();
		lru_unlink(c, e);
		lru_append(c, e);
		return 0;
	}
	if ((c->count + 1) * 4 > c->tabsz * 3 && grow(c))
		return -ENOMEM;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	memcpy(e->d, d, CASFS_SHA256_LEN);
	e->size = size;
	e->used_ms = mono_ms();
	s = hslot(c, d);
	e->hnext = c->tab[s];
	c->tab[s] = e;
	lru_append(c, e);
	c->total += size;
	c->count++;
	return 0;
}

static void index_del(struct cache *c, struct centry *e)
{
	struct centry **pp = &c->tab[hslot(c, e->d)];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	lru_unlink(c, e);
	c->total -= e->size;
	c->count--;
	free(e);
}

static int check_trusted(int fd, const char *what, uid_t owner)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode)) {
		log_err("cache %s: not a directory", what);
		return -ENOTDIR;
	}
	if (st.st_uid != owner) {
		log_err("cache %s: owned by uid %u, must be owned by uid %u",
			what, (unsigned)st.st_uid, (unsigned)owner);
		return -EPERM;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		log_err("cache %s: group- or other-writable (mode %04o), refusing",
			what, (unsigned)(st.st_mode & 07777));
		return -EPERM;
	}
	return 0;
}

/*
 * An existing directory made by an older version may allow more than
 * @mode (blobs/ used to be 0755, which let every user list and read every
 * fetched blob): take the extra bits away. The kernel refuses to mount a
 * cache whose blobs/ is not 0700.
 */
static int tighten_mode(int fd, const char *what, mode_t mode)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!(st.st_mode & 07777 & ~mode))
		return 0;
	if (fchmod(fd, st.st_mode & 07777 & mode) < 0) {
		int err = -errno;

		log_err("cache %s: chmod %04o: %s", what,
			(unsigned)(st.st_mode & 07777 & mode), strerror(-err));
		return err;
	}
	log_info("cache %s: mode %04o tightened to %04o", what,
		 (unsigned)(st.st_mode & 07777), (unsigned)(st.st_mode & 07777 & mode));
	return 0;
}

static int open_subdir(int dirfd, const char *dir, const char *name, mode_t mode,
		       uid_t owner)
{
	char what[4200];
	int fd, err;

	snprintf(what, sizeof(what), "%s/%s", dir, name);
	if (mkdirat(dirfd, name, mode) == 0) {
		fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0 && fchmod(fd, mode) < 0) {	/* whatever the umask */
			err = -errno;
			close(fd);
			return err;
		}
		log_info("created %s", what);
	} else if (errno == EEXIST) {
		fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	} else {
		err = -errno;
		log_err("cache %s: mkdir: %s", what, strerror(-err));
		return err;
	}
	if (fd < 0) {
		err = -errno;
		log_err("cache %s: %s", what, strerror(-err));
		return err;
	}
	err = check_trusted(fd, what, owner);
	if (err) {
		close(fd);
		return err;
	}
	err = tighten_mode(fd, what, mode);
	if (err) {
		close(fd);
		return err;
	}
	return fd;
}

static void clean_tmp(struct cache *c)
{
	int fd = dup(c->tmp_fd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	unsigned n = 0;

	if (!d) {
		if (fd >= 0)
			close(fd);
		log_warn("cannot list %s/tmp: %s", c->dir, strerror(errno));
		return;
	}
	rewinddir(d);
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (unlinkat(c->tmp_fd, de->d_name, 0) == 0)
			n++;
		else
			log_warn("cannot remove stale %s/tmp/%s: %s", c->dir,
				 de->d_name, strerror(errno));
	}
	closedir(d);
	if (n)
		log_info("removed %u stale files from %s/tmp", n, c->dir);
}

static int cmp_mtime(const void *a, const void *b)
{
	const struct centry *x = *(struct centry *const *)a;
	const struct centry *y = *(struct centry *const *)b;

	if (x->mtime_ns != y->mtime_ns)
		return x->mtime_ns < y->mtime_ns ? -1 : 1;
	return memcmp(x->d, y->d, CASFS_SHA256_LEN);
}

static int scan_blobs(struct cache *c)
{
	int fd = dup(c->blobs_fd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct centry **v = NULL, *tmp;
	size_t n = 0, cap = 0;
	struct dirent *de;
	int err = 0;

	if (!d) {
		err = -errno;
		if (fd >= 0)
			close(fd);
		return err;
	}
	rewinddir(d);
	while ((de = readdir(d))) {
		struct stat st;

		if (!hex_is_blob_name(de->d_name))
			continue;
		if (fstatat(c->blobs_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 256;
			struct centry **nv = realloc(v, ncap * sizeof(*nv));

			if (!nv) {
				err = -ENOMEM;
				goto out;
			}
			v = nv;
			cap = ncap;
		}
		tmp = calloc(1, sizeof(*tmp));
		if (!tmp) {
			err = -ENOMEM;
			goto out;
		}
		hex_decode(de->d_name, HEX_LEN, tmp->d);
		tmp->size = (uint64_t)st.st_size;
		tmp->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
		v[n++] = tmp;
	}
	if (n)
		qsort(v, n, sizeof(*v), cmp_mtime);
	for (size_t i = 0; i < n && !err; i++) {
		err = index_put(c, v[i]->d, v[i]->size);
		if (!err)	/* found on disk: no reader is waiting for it */
			c->tail->used_ms = 0;
	}
out:
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
	closedir(d);
	return err;
}

int cache_open(struct cache **out, const char *dir, uint64_t max_bytes, uid_t owner)
{
	struct cache *c = calloc(1, sizeof(*c));
	int err;

	if (!c)
		return -ENOMEM;
	c->dirfd = c->blobs_fd = c->tmp_fd = -1;
	c->max = max_bytes;
	c->min_free_bytes = CACHE_NO_BYTES;
	c->min_free_pct = CACHE_NO_PCT;
	c->dir = strdup(dir);
	if (!c->dir || grow(c)) {
		err = -ENOMEM;
		goto fail;
	}
	if (dir[0] != '/') {
		log_err("cache %s: must be an absolute path", dir);
		err = -EINVAL;
		goto fail;
	}
	c->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c->dirfd < 0) {
		err = -errno;
		log_err("cache %s: %s", dir, strerror(-err));
		goto fail;
	}
	err = check_trusted(c->dirfd, dir, owner);
	if (err)
		goto fail;
	/* 0700: fetched blobs are readable through casfs only (see kmod/cache.c). */
	c->blobs_fd = open_subdir(c->dirfd, dir, CASFS_CACHE_BLOBS_DIR, 0700, owner);
	if (c->blobs_fd < 0) {
		err = c->blobs_fd;
		goto fail;
	}
	c->tmp_fd = open_subdir(c->dirfd, dir, CASFS_CACHE_TMP_DIR, 0700, owner);
	if (c->tmp_fd < 0) {
		err = c->tmp_fd;
		goto fail;
	}
	clean_tmp(c);
	err = scan_blobs(c);
	if (err) {
		log_err("cache %s/blobs: scan: %s", dir, strerror(-err));
		goto fail;
	}
	log_info("cache %s: %llu blobs, %llu bytes%s", dir,
		 (unsigned long long)c->count, (unsigned long long)c->total,
		 max_bytes ? "" : " (unbounded)");
	if (c->max && c->total > c->max)
		cache_evict_to(c, c->max - c->max / 10, NULL);
	*out = c;
	return 0;
fail:
	cache_close(c);
	return err;
}

void cache_close(struct cache *c)
{
	if (!c)
		return;
	for (struct centry *e = c->head, *n; e; e = n) {
		n = e->next;
		free(e);
	}
	free(c->tab);
	if (c->dirfd >= 0)
		close(c->dirfd);
	if (c->blobs_fd >= 0)
		close(c->blobs_fd);
	if (c->tmp_fd >= 0)
		close(c->tmp_fd);
	free(c->dir);
	free(c);
}

int cache_tmp_fd(const struct cache *c) { return c->tmp_fd; }
int cache_blobs_fd(const struct cache *c) { return c->blobs_fd; }
const char *cache_dir(const struct cache *c) { return c->dir; }
uint64_t cache_total_bytes(const struct cache *c) { return c->total; }
uint64_t cache_count(const struct cache *c) { return c->count; }
uint64_t cache_max_bytes(const struct cache *c) { return c->max; }

int cache_lookup(struct cache *c, const uint8_t d[CASFS_SHA256_LEN], uint64_t size)
{
	char hex[HEX_LEN + 1];
	struct centry *e;
	struct stat st;

	hex_encode(d, hex);
	if (fstatat(c->blobs_fd, hex, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    !S_ISREG(st.st_mode)) {
		e = find(c, d);
		if (e)		/* removed behind our back */
			index_del(c, e);
		return 0;
	}
	if ((uint64_t)st.st_size != size) {
		log_warn("%s: cached blob has %llu bytes, expected %llu; fetching again",
			 hex, (unsigned long long)st.st_size, (unsigned long long)size);
		return 0;
	}
	if (utimensat(c->blobs_fd, hex, NULL, AT_SYMLINK_NOFOLLOW) < 0)
		log_dbg("%s: touch: %s", hex, strerror(errno));
	index_put(c, d, size);
	return 1;
}

/*
 * A blob published (or looked up) this recently has a DONE on its way to
 * the kernel, or a reader about to open it: deleting it now makes that
 * reader fetch it again (kmod/cas.c). So eviction stops at the first
 * entry this young (the LRU list is in use order), letting the cache run
 * over its bound by what arrived in the last CACHE_GRACE_MS, up to half
 * the bound again, past which it evicts regardless.
 */
#define CACHE_GRACE_MS 2000

void cache_evict_to(struct cache *c, uint64_t target, const uint8_t *pinned)
{
	struct centry *e = c->head, *n;
	char hex[HEX_LEN + 1];
	uint64_t now = mono_ms();

	for (; e && c->total > target; e = n) {
		n = e->next;
		if (pinned && !memcmp(e->d, pinned, CASFS_SHA256_LEN))
			continue;
		if (e->used_ms && now - e->used_ms < CACHE_GRACE_MS &&
		    c->total <= c->max + c->max / 2) {
			stats.evictions_deferred++;
			break;
		}
		hex_encode(e->d, hex);
		if (unlinkat(c->blobs_fd, hex, 0) < 0 && errno != ENOENT) {
			log_warn("evict %s: %s", hex, strerror(errno));
			continue;
		}
		log_dbg("evicted %s (%llu bytes)", hex, (unsigned long long)e->size);
		stats.evictions++;
		stats.evicted_bytes += e->size;
		index_del(c, e);
	}
}

int (*cache_statfs_hook)(int dirfd, uint64_t *avail, uint64_t *size);

void cache_set_floor(struct cache *c, uint64_t min_free_bytes, unsigned min_free_pct)
{
	struct cache_space s;

	c->min_free_bytes = min_free_bytes;
	c->min_free_pct = min_free_pct;
	cache_space(c, &s);
	if (s.known)
		log_info("cache %s: %llu bytes free on its filesystem, keeping at least %llu free",
			 c->dir, (unsigned long long)s.avail, (unsigned long long)s.floor);
	if (s.known && s.avail < s.floor)
		cache_make_room(c, 0, NULL);
}

void cache_space(struct cache *c, struct cache_space *s)
{
	uint64_t fb = c->min_free_bytes, fp = CACHE_NO_BYTES;
	int err;

	memset(s, 0, sizeof(*s));
	if (cache_statfs_hook) {
		err = cache_statfs_hook(c->dirfd, &s->avail, &s->fs_size);
	} else {
		struct statvfs sv;

		err = fstatvfs(c->dirfd, &sv) < 0 ? -errno : 0;
		s->avail = (uint64_t)sv.f_bavail * sv.f_frsize;
		s->fs_size = (uint64_t)sv.f_blocks * sv.f_frsize;
	}
	if (err) {
		if (!c->probe_warned)
			log_warn("cache %s: statvfs: %s; no free-space floor", c->dir,
				 strerror(-err));
		c->probe_warned = true;
		s->avail = s->fs_size = 0;
		return;
	}
	c->probe_warned = false;
	s->known = true;
	stats.cache_fs_free_bytes = s->avail;
	if (c->min_free_pct != CACHE_NO_PCT)
		fp = s->fs_size / 100 * c->min_free_pct +
		     s->fs_size % 100 * c->min_free_pct / 100;
	s->floor = fb < fp ? fb : fp;
	if (s->floor == CACHE_NO_BYTES)
		s->floor = 0;
	s->high = s->floor + s->floor / 10;
	stats.cache_fs_floor_bytes = s->floor;
}

/* What a file of size bytes takes on disk, about. */
static uint64_t on_disk(uint64_t size)
{
	return (size + 4095) & ~(uint64_t)4095;
}

static uint64_t evict_space_round(struct cache *c, uint64_t want, const uint8_t *pinned)
{
	struct centry *e = c->head, *n;
	char hex[HEX_LEN + 1];
	uint64_t freed = 0, now = mono_ms();

	for (; e && freed < want; e = n) {
		n = e->next;
		if (pinned && !memcmp(e->d, pinned, CASFS_SHA256_LEN))
			continue;
		hex_encode(e->d, hex);
		if (unlinkat(c->blobs_fd, hex, 0) < 0 && errno != ENOENT) {
			log_warn("evict %s: %s", hex, strerror(errno));
			continue;
		}
		log_dbg("evicted %s (%llu bytes) for free space", hex,
			(unsigned long long)e->size);
		if (e->used_ms && now - e->used_ms < CACHE_GRACE_MS)
			stats.evictions_grace_overridden++;
		stats.evictions++;
		stats.evictions_space++;
		stats.evicted_bytes += e->size;
		freed += on_disk(e->size);
		index_del(c, e);
	}
	return freed;
}

/*
 * The floor is harder than max_bytes: a full filesystem fails every cold
 * read (and every other writer on it), while evicting a blob in its grace
 * time costs its reader one more fetch round (kmod/cas.c). So this walks
 * the LRU list from the oldest and ignores the grace rule; only pinned is
 * kept. Space comes back only when no reader holds the file open, so it
 * probes again after each round.
 */
uint64_t cache_make_room(struct cache *c, uint64_t size, const uint8_t *pinned)
{
	struct cache_space s;
	uint64_t total = 0;

	for (int round = 0; round < 4; round++) {
		uint64_t want, got;

		cache_space(c, &s);
		if (!s.known)
			break;
		want = s.high + on_disk(size);
		if (s.avail >= want)
			break;
		got = evict_space_round(c, want - s.avail, pinned);
		total += got;
		if (!got)
			break;
	}
	if (total)
		log_info("cache %s: evicted %llu bytes to keep %llu bytes free (floor %llu)",
			 c->dir, (unsigned long long)total,
			 (unsigned long long)s.high, (unsigned long long)s.floor);
	return total;
}

int cache_admit(struct cache *c, const char *hex, uint64_t size)
{
	struct cache_space s;
	uint64_t room;

	if (c->max && size > c->max) {
		log_err("%s: %llu bytes is more than --max-cache-bytes (%llu): refused (EFBIG)",
			hex, (unsigned long long)size, (unsigned long long)c->max);
		stats.refused_space++;
		return -EFBIG;
	}
	cache_space(c, &s);
	if (!s.known)
		return 0;
	room = s.avail + c->total;	/* all there could be if every blob went */
	room = room > s.floor ? room - s.floor : 0;
	if (on_disk(size) > room) {
		log_err("%s: %llu bytes cannot fit in %s: %llu bytes free, floor %llu, "
			"%llu bytes of blobs to evict: refused (ENOSPC)", hex,
			(unsigned long long)size, c->dir, (unsigned long long)s.avail,
			(unsigned long long)s.floor, (unsigned long long)c->total);
		stats.refused_space++;
		return -ENOSPC;
	}
	if (s.avail < s.floor + on_disk(size))
		cache_make_room(c, size, NULL);
	return 0;
}

int cache_used(struct cache *c, const uint8_t d[CASFS_SHA256_LEN], uint64_t size)
{
	struct centry *e = find(c, d);
	char hex[HEX_LEN + 1];

	if (!e || e->size != size)
		return 0;
	e->used_ms = mono_ms();
	lru_unlink(c, e);
	lru_append(c, e);
	hex_encode(d, hex);
	if (utimensat(c->blobs_fd, hex, NULL, AT_SYMLINK_NOFOLLOW) < 0)
		log_dbg("%s: touch: %s", hex, strerror(errno));
	stats.cache_used++;
	return 1;
}

void cache_published(struct cache *c, const uint8_t d[CASFS_SHA256_LEN], uint64_t size)
{
	struct cache_space s;

	if (index_put(c, d, size))
		log_warn("cache index: out of memory");
	if (c->max && c->total > c->max)
		cache_evict_to(c, c->max - c->max / 10, d);
	cache_space(c, &s);
	if (s.known && s.avail < s.floor)
		cache_make_room(c, 0, d);
}

const uint8_t *cache_lru_nth(const struct cache *c, size_t n)
{
	struct centry *e = c->head;

	while (e && n--)
		e = e->next;
	return e ? e->d : NULL;
}
