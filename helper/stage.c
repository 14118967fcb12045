// SPDX-License-Identifier: GPL-2.0
/* casfsctl: creating CAS-backed files, directories and symlinks on casfs. */
#include "stage.h"
#include "manifest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

int stage_open_dir_p(int root, const char *rel, size_t len, size_t *created)
{
	char comp[MANIFEST_MAX_NAME + 1];
	int fd = dup(root), nfd;
	size_t i = 0;

	if (fd < 0)
		return -errno;
	while (i < len) {
		size_t j = i;

		while (j < len && rel[j] != '/')
			j++;
		if (j == i || j - i > MANIFEST_MAX_NAME) {	/* "//", or too long */
			if (j == i) {
				i++;
				continue;
			}
			errno = ENAMETOOLONG;
			goto fail;
		}
		memcpy(comp, rel + i, j - i);
		comp[j - i] = 0;
		if (mkdirat(fd, comp, 0755) == 0)
			(*created)++;
		else if (errno != EEXIST)
			goto fail;
		nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (nfd < 0)
			goto fail;
		close(fd);
		fd = nfd;
		i = j + 1;
	}
	return fd;
fail:
	nfd = -errno;
	close(fd);
	return nfd;
}

int stage_probe_casfs(int fd)
{
	struct casfs_stage probe = { .bad_index = ~0u };

	if (ioctl(fd, CASFS_IOC_STAGE, &probe) < 0 &&
	    (errno == ENOTTY || errno == EACCES || errno == EROFS || errno == EPERM))
		return -errno;
	return 0;
}

int stage_open_root(const char *dir, size_t *created)
{
	char *path = strdup(dir), *cut = NULL;
	size_t len;
	int fd = -1, e;

	if (!path || !*path) {
		fprintf(stderr, "casfsctl: bad directory '%s'\n", dir);
		free(path);
		return -1;
	}
	len = strlen(path);
	while (len > 1 && path[len - 1] == '/')
		path[--len] = 0;
	/* the deepest existing ancestor */
	for (;;) {
		fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0 || errno != ENOENT)
			break;
		cut = strrchr(path, '/');
		if (!cut) {	/* relative: the current directory */
			fd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			cut = path - 1;
			break;
		}
		if (cut == path) {	/* "/x": the root */
			fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			break;
		}
		*cut = 0;
	}
	if (fd < 0) {
		fprintf(stderr, "casfsctl: %s: %s\n", dir, strerror(errno));
		free(path);
		return -1;
	}
	e = stage_probe_casfs(fd);
	if (e) {
		fprintf(stderr, "casfsctl: %s: %s\n", dir,
			e == -ENOTTY ? "not a directory on casfs" : strerror(-e));
		close(fd);
		free(path);
		return -1;
	}
	if (cut) {	/* create the rest, as in the manifest */
		const char *rest = dir + (cut - path) + 1;
		size_t rlen = strlen(rest);
		int nfd;

		while (rlen && rest[rlen - 1] == '/')
			rlen--;
		nfd = stage_open_dir_p(fd, rest, rlen, created);
		close(fd);
		if (nfd < 0) {
			fprintf(stderr, "casfsctl: %s: cannot create: %s\n", dir,
				strerror(-nfd));
			free(path);
			return -1;
		}
		fd = nfd;
	}
	free(path);
	return fd;
}

/* One CASFS_IOC_STAGE; 0 or -errno with *bad (~0u: not one entry's fault). */
static int stage_ioctl(int dfd, struct casfs_stage_entry *ents, uint32_t count,
		       const char *names, uint32_t nlen, uint32_t *bad)
{
	struct casfs_stage st = { 0 };

	st.entries = (uint64_t)(uintptr_t)ents;
	st.names = (uint64_t)(uintptr_t)names;
	st.count = count;
	st.names_len = nlen;
	st.bad_index = ~0u;
	if (ioctl(dfd, CASFS_IOC_STAGE, &st) < 0) {
		*bad = st.bad_index;
		return -errno;
	}
	return 0;
}

int stage_files(int dfd, const struct stage_file *v, size_t n, size_t *staged,
		size_t *bad)
{
	size_t i = 0, names_cap = 0;
	struct casfs_stage_entry *ents;
	char *names;
	int ret = 0;

	*bad = (size_t)-1;
	for (size_t k = 0; k < n && names_cap < CASFS_STAGE_MAX_NAMES; k++)
		names_cap += v[k].name_len;
	if (names_cap > CASFS_STAGE_MAX_NAMES)
		names_cap = CASFS_STAGE_MAX_NAMES;
	ents = calloc(n < CASFS_STAGE_MAX_ENTRIES ? (n ? n : 1) : CASFS_STAGE_MAX_ENTRIES,
		      sizeof(*ents));
	names = malloc(names_cap ? names_cap : 1);
	if (!ents || !names) {
		ret = -ENOMEM;
		goto out;
	}
	while (i < n) {
		uint32_t count = 0, nlen = 0, b;
		size_t first = i;

		while (i < n && count < CASFS_STAGE_MAX_ENTRIES) {
			size_t l = v[i].name_len;

			if (nlen + l > names_cap)
				break;
			memset(&ents[count], 0, sizeof(ents[count]));
			memcpy(ents[count].sha256, v[i].sha256, CASFS_SHA256_LEN);
			ents[count].size = v[i].size;
			ents[count].mode = v[i].mode;
			ents[count].name_off = nlen;
			ents[count].name_len = (uint32_t)l;
			memcpy(names + nlen, v[i].name, l);
			nlen += (uint32_t)l;
			count++;
			i++;
		}
		if (!count) {	/* one name longer than a whole call allows */
			*bad = i;
			ret = -ENAMETOOLONG;
			goto out;
		}
		ret = stage_ioctl(dfd, ents, count, names, nlen, &b);
		if (ret) {
			if (b < count)
				*bad = first + b;
			goto out;
		}
		*staged += count;
	}
out:
	free(ents);
	free(names);
	return ret;
}

/* ---------------------------------------------------------------- stager */

void stager_init(struct stager *s, int root)
{
	memset(s, 0, sizeof(*s));
	s->root = root;
	s->dfd = -1;
}

static void where(const struct stager *s, const char *name, char *buf, size_t len)
{
	if (name && *s->dir)
		snprintf(buf, len, "%s/%s", s->dir, name);
	else
		snprintf(buf, len, "%s", name ? name : *s->dir ? s->dir : ".");
}

int stager_flush(struct stager *s)
{
	uint32_t bad;
	int e;

	if (!s->n)
		return 0;
	e = stage_ioctl(s->dfd, s->ents, (uint32_t)s->n, s->names, (uint32_t)s->nlen, &bad);
	if (e) {
		char w[MANIFEST_MAX_PATH + MANIFEST_MAX_NAME + 2];

		if (bad < s->n) {
			char nm[MANIFEST_MAX_NAME + 1];

			snprintf(nm, sizeof(nm), "%.*s", (int)s->ents[bad].name_len,
				 s->names + s->ents[bad].name_off);
			where(s, nm, w, sizeof(w));
			fprintf(stderr, "casfsctl: %s: %s\n", w,
				e == -EEXIST ? "already exists" : strerror(-e));
		} else {
			where(s, NULL, w, sizeof(w));
			fprintf(stderr, "casfsctl: %s: CASFS_IOC_STAGE: %s%s\n", w, strerror(-e),
				e == -ENOTTY ? " (not a casfs directory?)" : "");
		}
		return -1;
	}
	s->files += s->n;
	s->n = 0;
	s->nlen = 0;
	return 0;
}

int stager_dir(struct stager *s, const char *path)
{
	size_t len = strlen(path);
	char *d;
	int fd;

	if (stager_flush(s))
		return -1;
	d = strdup(path);
	if (!d) {
		fprintf(stderr, "casfsctl: out of memory\n");
		return -1;
	}
	/* from the root each time: never through anything but directories */
	fd = len ? stage_open_dir_p(s->root, path, len, &s->created) : dup(s->root);
	if (fd < 0) {
		fprintf(stderr, "casfsctl: %s: cannot create directory: %s\n",
			len ? path : ".", strerror(len ? -fd : errno));
		free(d);
		return -1;
	}
	if (s->dfd >= 0)
		close(s->dfd);
	free(s->dir);
	s->dfd = fd;
	s->dir = d;
	s->dirs++;
	return 0;
}

int stager_file(struct stager *s, const char *name, const uint8_t sha256[CASFS_SHA256_LEN],
		uint64_t size, uint32_t mode)
{
	size_t l = strlen(name);
	struct casfs_stage_entry *e;

	if (s->dfd < 0)
		return -1;
	if (s->n == CASFS_STAGE_MAX_ENTRIES || s->nlen + l > CASFS_STAGE_MAX_NAMES) {
		if (stager_flush(s))
			return -1;
	}
	if (!s->ents) {
		s->ents = calloc(CASFS_STAGE_MAX_ENTRIES, sizeof(*s->ents));
		s->names = malloc(CASFS_STAGE_MAX_NAMES);
		if (!s->ents || !s->names) {
			fprintf(stderr, "casfsctl: out of memory\n");
			return -1;
		}
	}
	e = &s->ents[s->n++];
	memset(e, 0, sizeof(*e));
	memcpy(e->sha256, sha256, CASFS_SHA256_LEN);
	e->size = size;
	e->mode = mode;
	e->name_off = (uint32_t)s->nlen;
	e->name_len = (uint32_t)l;
	memcpy(s->names + s->nlen, name, l);
	s->nlen += l;
	return 0;
}

int stager_symlink(struct stager *s, const char *name, const char *target)
{
	if (s->dfd < 0)
		return -1;
	if (symlinkat(target, s->dfd, name) < 0) {
		char w[MANIFEST_MAX_PATH + MANIFEST_MAX_NAME + 2];

		where(s, name, w, sizeof(w));
		fprintf(stderr, "casfsctl: %s: symlink: %s\n", w,
			errno == EEXIST ? "already exists" : strerror(errno));
		return -1;
	}
	s->symlinks++;
	return 0;
}

int stager_finish(struct stager *s)
{
	int ret = s->dfd >= 0 ? stager_flush(s) : 0;

	if (s->dfd >= 0)
		close(s->dfd);
	s->dfd = -1;
	free(s->dir);
	free(s->ents);
	free(s->names);
	s->dir = NULL;
	s->ents = NULL;
	s->names = NULL;
	return ret;
}
