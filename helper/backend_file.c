// SPDX-License-Identifier: GPL-2.0
/*
 * casfs-helper: file:///DIR backend, a CAS on a local (or network)
 * filesystem. A blob is DIR/cas/<hex> or, failing that, DIR/<hex>.
 * Copies are done in slices from the event loop (1 MiB per transfer per
 * turn) so that netlink keeps being served while big blobs copy.
 */
#include "backend.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SLICE (1024 * 1024)
#define CHUNK (128 * 1024)

struct file_be {
	char *root;
	unsigned char *buf;
};

struct file_xfer {
	int fd;
};

static int open_blob(struct file_be *fb, struct job *j, int *fdp, uint64_t *sizep,
		     char *path, size_t plen)
{
	static const char *const sub[] = { "/cas/", "/" };
	struct stat st;
	int fd = -1, err = -ENOENT;

	for (unsigned i = 0; i < 2 && fd < 0; i++) {
		snprintf(path, plen, "%s%s%s", fb->root, sub[i], j->hex);
		/* O_NONBLOCK: a FIFO planted in the CAS must not hang us. */
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		if (fd < 0 && errno != ENOENT)
			return -errno;
	}
	if (fd < 0)
		return err;
	if (fstat(fd, &st) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return -EINVAL;
	}
	*fdp = fd;
	*sizep = (uint64_t)st.st_size;
	return 0;
}

static int file_start(struct backend *b, struct job *j)
{
	struct file_be *fb = b->priv;
	struct file_xfer *x;
	char path[4200];
	uint64_t size = 0;
	int fd = -1, err;

	err = open_blob(fb, j, &fd, &size, path, sizeof(path));
	if (err == -ENOENT) {
		fetch_attempt_done(b->eng, j, RES_PERMANENT, -ENOENT, "not in the CAS (file)");
		return 0;
	}
	if (err == -EINVAL) {
		fetch_attempt_done(b->eng, j, RES_PERMANENT, -EIO, "CAS entry is not a regular file");
		return 0;
	}
	if (err)
		return err;
	if (size != j->size) {	/* don't copy what cannot verify */
		close(fd);
		fetch_attempt_done(b->eng, j, RES_PERMANENT, -EIO,
				   size < j->size ? "short body" : "body longer than expected");
		return 0;
	}
	x = calloc(1, sizeof(*x));
	if (!x) {
		close(fd);
		return -ENOMEM;
	}
	x->fd = fd;
	j->bpriv = x;
	return 0;
}

static void xfer_end(struct job *j)
{
	struct file_xfer *x = j->bpriv;

	if (x) {
		close(x->fd);
		free(x);
		j->bpriv = NULL;
	}
}

static void file_step(struct backend *b)
{
	struct file_be *fb = b->priv;
	struct fetch_engine *e = b->eng;

	for (struct job *j = e->active.head, *next; j; j = next) {
		struct file_xfer *x = j->bpriv;
		size_t done = 0;

		next = j->next;
		if (!x)
			continue;
		while (done < SLICE) {
			ssize_t n = read(x->fd, fb->buf, CHUNK);
			int err;

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				err = -errno;
				xfer_end(j);
				fetch_attempt_done(e, j, RES_PERMANENT, err, NULL);
				break;
			}
			if (n == 0) {	/* EOF: commit checks size and sha256 */
				xfer_end(j);
				fetch_attempt_done(e, j, RES_OK, 0, NULL);
				break;
			}
			err = bw_write(&j->bw, fb->buf, (size_t)n);
			if (err == -EFBIG) {	/* commit reports it as too long */
				xfer_end(j);
				fetch_attempt_done(e, j, RES_OK, 0, NULL);
				break;
			}
			if (err) {
				xfer_end(j);
				fetch_attempt_done(e, j, RES_PERMANENT, err,
						   "writing the temporary file");
				break;
			}
			done += (size_t)n;
		}
	}
}

static bool file_busy(struct backend *b)
{
	for (struct job *j = b->eng->active.head; j; j = j->next)
		if (j->bpriv)
			return true;
	return false;
}

static void file_cancel(struct backend *b, struct job *j)
{
	(void)b;
	xfer_end(j);
}

static void file_destroy(struct backend *b)
{
	struct file_be *fb = b->priv;

	if (fb) {
		free(fb->root);
		free(fb->buf);
		free(fb);
	}
	b->priv = NULL;
}

static const struct backend_ops file_ops = {
	.name = "file",
	.start = file_start,
	.step = file_step,
	.busy = file_busy,
	.cancel = file_cancel,
	.destroy = file_destroy,
};

int backend_file_init(struct backend *b, const char *url)
{
	const char *path = url + strlen("file://");
	struct file_be *fb;
	size_t len;

	if (!strncmp(path, "localhost/", 10))
		path += 9;
	if (path[0] != '/') {
		log_err("--cas %s: want file:///absolute/path", url);
		return -EINVAL;
	}
	fb = calloc(1, sizeof(*fb));
	if (!fb)
		return -ENOMEM;
	fb->root = strdup(path);
	fb->buf = malloc(CHUNK);
	if (!fb->root || !fb->buf) {
		free(fb->root);
		free(fb->buf);
		free(fb);
		return -ENOMEM;
	}
	len = strlen(fb->root);
	while (len > 1 && fb->root[len - 1] == '/')
		fb->root[--len] = 0;
	b->priv = fb;
	b->ops = &file_ops;
	log_info("CAS: local directory %s (blobs at cas/<sha256> or <sha256>)", fb->root);
	return 0;
}
