// SPDX-License-Identifier: GPL-2.0
/*
 * ac2manifest: turn the action results in a Bazel HTTP cache into a
 * casfs manifest.
 *
 *   ac2manifest [-k] AC_DIR > MANIFEST
 *
 * Every file in AC_DIR (the cache's ac/ directory: one serialised REv2
 * ActionResult per file, named by the action's sha256) is decoded, and
 * each of its output_files becomes one line for `casfsctl stage`:
 *
 *   <sha256 hex> <size> <0755|0644> <path>
 *
 * path is the output's path relative to the action's working directory
 * (for Bazel: the exec root, so bazel-out/k8-fastbuild/bin/...). Lines
 * are sorted by path; the same output listed by two action results with
 * the same digest and mode is printed once.
 *
 * The action cache is untrusted input. Everything is checked before a line
 * is printed: directory entries must be regular files named by 64
 * lowercase hex digits and at most AC_MAX_FILE bytes; the protobuf must
 * decode, with no NUL byte inside any string field (protobuf-c would
 * silently cut the string there) and no groups; the action must have
 * succeeded (exit_code 0); paths must be relative, without empty, "." or
 * ".." components, control characters, or leading blanks, with components
 * of at most 255 bytes and 4095 bytes in all; hashes must be 64 lowercase
 * hex digits; sizes must be between 0 and CASFS_MAX_BLOB_SIZE (and a size
 * of 0 must come with the sha256 of nothing); inlined contents must have
 * exactly that size and sha256. Across files, one path may not get two
 * different digests or modes, and no output may be the parent directory
 * of another. Output directories and symlinks are refused for now: they
 * cannot be written as manifest lines (an output directory needs its Tree
 * from the CAS).
 *
 * Any violation is an error (exit status 1, nothing printed); with -k the
 * action result that holds it is skipped with a warning instead (the
 * cross-file checks stay errors).
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/casfs.h>
#include <openssl/evp.h>
#include <protobuf-c/protobuf-c.h>

#include "build/bazel/remote/execution/v2/remote_execution.pb-c.h"

#define AC_MAX_FILE	(64u << 20)	/* bytes of one serialised ActionResult */
#define MAX_PATH	4095
#define MAX_NAME	255
#define HEX_LEN		(2 * CASFS_SHA256_LEN)
#define MAX_DEPTH	32		/* protobuf message nesting */

typedef Build__Bazel__Remote__Execution__V2__ActionResult ActionResult;
typedef Build__Bazel__Remote__Execution__V2__OutputFile OutputFile;
typedef Build__Bazel__Remote__Execution__V2__Digest Digest;

static const char empty_sha256[HEX_LEN + 1] =
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

struct entry {
	char hash[HEX_LEN + 1];
	uint64_t size;
	unsigned int mode;
	char *path;
	const char *ac;		/* the action result it came from */
};

static struct entry *ents;
static size_t n_ents, cap_ents;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("ac2manifest: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* Why an action result is invalid: set by bad(), reported by the caller. */
static char why[512];

static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int bad(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return -1;
}

static bool is_hex_name(const char *s, size_t len)
{
	if (len != HEX_LEN)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* ------------------------------------------------------------ wire check */

static int varint(const uint8_t **p, size_t *len, uint64_t *v)
{
	*v = 0;
	for (unsigned int i = 0; i < 10; i++) {
		if (!*len)
			return -1;
		(*len)--;
		*v |= (uint64_t)(**p & 0x7f) << (7 * i);
		if (!(*(*p)++ & 0x80))
			return 0;
	}
	return -1;
}

/*
 * Walk the wire format of a message of type d (NULL: unknown fields, only
 * their framing is checked): string fields may not hold a NUL byte,
 * groups are refused, nesting is bounded. protobuf-c checks the rest when
 * it decodes.
 */
static int wire_check(const ProtobufCMessageDescriptor *d, const uint8_t *p,
		      size_t len, int depth)
{
	if (depth > MAX_DEPTH)
		return bad("messages nested more than %d deep", MAX_DEPTH);
	while (len) {
		const ProtobufCFieldDescriptor *f = NULL;
		uint64_t key, n;

		if (varint(&p, &len, &key))
			return bad("truncated or over-long field key");
		if ((key >> 3) == 0 || (key >> 3) > 536870911)
			return bad("field number %" PRIu64 " out of range", key >> 3);
		if (d)
			f = protobuf_c_message_descriptor_get_field(d, (unsigned int)(key >> 3));
		switch (key & 7) {
		case 0:
			if (varint(&p, &len, &n))
				return bad("truncated or over-long varint");
			break;
		case 1:
		case 5:
			n = (key & 7) == 1 ? 8 : 4;
			if (len < n)
				return bad("truncated fixed-size field");
			p += n;
			len -= n;
			break;
		case 2:
			if (varint(&p, &len, &n))
				return bad("truncated or over-long length");
			if (n > len)
				return bad("length-delimited field runs past its message");
			if (f && f->type == PROTOBUF_C_TYPE_STRING && memchr(p, 0, n))
				return bad("NUL byte in string field %s.%s", d->name, f->name);
			if (f && f->type == PROTOBUF_C_TYPE_MESSAGE &&
			    wire_check(f->descriptor, p, n, depth + 1))
				return -1;
			p += n;
			len -= n;
			break;
		default:
			return bad("wire type %u (groups are not proto3)", (unsigned int)(key & 7));
		}
	}
	return 0;
}

/* ------------------------------------------------------------ validation */

static int check_path(const char *p)
{
	size_t len = strlen(p);
	const char *c = p;

	if (!len)
		return bad("empty output path");
	if (len > MAX_PATH)
		return bad("output path longer than %d bytes", MAX_PATH);
	if (p[0] == '/')
		return bad("absolute output path '%s'", p);
	if (p[0] == ' ' || p[0] == '\t')
		return bad("output path starts with a blank");
	for (const char *s = p; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return bad("control character in output path");
	for (;;) {
		const char *slash = strchr(c, '/');
		size_t n = slash ? (size_t)(slash - c) : strlen(c);

		if (n == 0)
			return bad("empty component in output path '%s'", p);
		if (n == 1 && c[0] == '.')
			return bad("'.' component in output path '%s'", p);
		if (n == 2 && c[0] == '.' && c[1] == '.')
			return bad("'..' component in output path '%s'", p);
		if (n > MAX_NAME)
			return bad("output path component longer than %d bytes", MAX_NAME);
		if (!slash)
			return 0;
		c = slash + 1;
	}
}

static int check_digest(const Digest *dg, const char *path)
{
	if (!dg)
		return bad("%s: no digest", path);
	if (!dg->hash || !is_hex_name(dg->hash, strlen(dg->hash)))
		return bad("%s: digest hash is not 64 lowercase hex digits", path);
	if (dg->size_bytes < 0)
		return bad("%s: negative size %" PRId64, path, dg->size_bytes);
	if ((uint64_t)dg->size_bytes > CASFS_MAX_BLOB_SIZE)
		return bad("%s: size %" PRId64 " above the limit of %llu", path,
			   dg->size_bytes, (unsigned long long)CASFS_MAX_BLOB_SIZE);
	if (dg->size_bytes == 0 && strcmp(dg->hash, empty_sha256))
		return bad("%s: size 0 but not the sha256 of nothing", path);
	return 0;
}

static int check_contents(const OutputFile *of)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	char hex[HEX_LEN + 1];
	unsigned int mdlen = 0;

	if (!of->contents.len)
		return 0;	/* not inlined (or empty): the blob is in the CAS */
	if (of->contents.len != (uint64_t)of->digest->size_bytes)
		return bad("%s: %zu inlined bytes, digest says %" PRId64, of->path,
			   of->contents.len, of->digest->size_bytes);
	if (!EVP_Digest(of->contents.data, of->contents.len, md, &mdlen, EVP_sha256(), NULL) ||
	    mdlen != CASFS_SHA256_LEN)
		return bad("%s: sha256 failed", of->path);
	for (unsigned int i = 0; i < mdlen; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	if (strcmp(hex, of->digest->hash))
		return bad("%s: inlined contents do not match the digest", of->path);
	return 0;
}

static int check_result(const ActionResult *ar)
{
	if (ar->exit_code)
		return bad("the action failed (exit code %d)", (int)ar->exit_code);
	if (ar->n_output_directories)
		return bad("output directory '%s': not supported yet",
			   ar->output_directories[0]->path);
	if (ar->n_output_file_symlinks || ar->n_output_symlinks ||
	    ar->n_output_directory_symlinks)
		return bad("output symlinks: not supported yet");
	for (size_t i = 0; i < ar->n_output_files; i++) {
		const OutputFile *of = ar->output_files[i];

		if (check_path(of->path) || check_digest(of->digest, of->path) ||
		    check_contents(of))
			return -1;
	}
	return 0;
}

/* -------------------------------------------------------------- reading */

static void add_entries(const ActionResult *ar, const char *ac)
{
	if (n_ents + ar->n_output_files > cap_ents) {
		size_t ncap = cap_ents ? cap_ents : 256;

		while (ncap < n_ents + ar->n_output_files)
			ncap *= 2;
		ents = realloc(ents, ncap * sizeof(*ents));
		if (!ents)
			die("out of memory");
		cap_ents = ncap;
	}
	for (size_t i = 0; i < ar->n_output_files; i++) {
		const OutputFile *of = ar->output_files[i];
		struct entry *e = &ents[n_ents++];

		memcpy(e->hash, of->digest->hash, HEX_LEN + 1);
		e->size = (uint64_t)of->digest->size_bytes;
		e->mode = of->is_executable ? 0755 : 0644;
		e->path = strdup(of->path);
		if (!e->path)
			die("out of memory");
		e->ac = ac;
	}
}

/* Read AC_DIR/name into *buf; 0, or -1 with why set. */
static int read_ac(int dfd, const char *name, uint8_t **buf, size_t *len)
{
	struct stat st;
	size_t got = 0;
	int fd;

	*buf = NULL;
	if (!is_hex_name(name, strlen(name)))
		return bad("not an action cache entry (want 64 lowercase hex digits)");
	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return bad("open: %s", strerror(errno));
	if (fstat(fd, &st)) {
		bad("fstat: %s", strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		bad("not a regular file");
		goto fail;
	}
	if (st.st_size > AC_MAX_FILE) {
		bad("%jd bytes, more than the limit of %u", (intmax_t)st.st_size, AC_MAX_FILE);
		goto fail;
	}
	*buf = malloc((size_t)st.st_size + 1);	/* +1: detect growth */
	if (!*buf)
		die("out of memory");
	for (;;) {
		ssize_t r = read(fd, *buf + got, (size_t)st.st_size + 1 - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			bad("read: %s", strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		got += (size_t)r;
		if (got > (size_t)st.st_size) {
			bad("file grew while being read");
			goto fail;
		}
	}
	close(fd);
	*len = got;
	return 0;
fail:
	free(*buf);
	*buf = NULL;
	close(fd);
	return -1;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_ent(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;

	return strcmp(x->path, y->path);
}

static int cmp_key_path(const void *key, const void *elem)
{
	return strcmp(key, ((const struct entry *)elem)->path);
}

static void usage(FILE *f)
{
	fputs("usage: ac2manifest [-k] AC_DIR > MANIFEST\n"
	      "Print a casfs manifest ('<sha256> <size> <mode> <path>' lines, see\n"
	      "casfsctl stage) of the output files of every REv2 ActionResult in\n"
	      "AC_DIR (a Bazel HTTP cache's ac/ directory). Invalid input is an\n"
	      "error; with -k, an invalid action result is skipped with a warning.\n",
	      f);
}

int main(int argc, char **argv)
{
	size_t n_names = 0, cap_names = 0, n_ok = 0, n_skipped = 0, n_out = 0;
	char **names = NULL;
	uint64_t bytes = 0;
	bool keep_going = false;
	struct dirent *de;
	DIR *dir;
	int opt;

	while ((opt = getopt(argc, argv, "kh")) != -1) {
		switch (opt) {
		case 'k':
			keep_going = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	dir = opendir(argv[optind]);
	if (!dir)
		die("%s: %s", argv[optind], strerror(errno));
	while ((errno = 0, de = readdir(dir))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n_names == cap_names) {
			cap_names = cap_names ? 2 * cap_names : 256;
			names = realloc(names, cap_names * sizeof(*names));
			if (!names)
				die("out of memory");
		}
		names[n_names] = strdup(de->d_name);
		if (!names[n_names++])
			die("out of memory");
	}
	if (errno)
		die("%s: readdir: %s", argv[optind], strerror(errno));
	if (n_names)
		qsort(names, n_names, sizeof(*names), cmp_name);

	for (size_t i = 0; i < n_names; i++) {
		ActionResult *ar = NULL;
		uint8_t *buf;
		size_t len = 0;
		int r;

		r = read_ac(dirfd(dir), names[i], &buf, &len);
		if (!r)
			r = wire_check(&build__bazel__remote__execution__v2__action_result__descriptor,
				       buf, len, 0);
		if (!r) {
			ar = build__bazel__remote__execution__v2__action_result__unpack(NULL, len, buf);
			r = ar ? check_result(ar) : bad("not a valid ActionResult protobuf");
		}
		if (r) {
			if (!keep_going)
				die("%s/%s: %s", argv[optind], names[i], why);
			fprintf(stderr, "ac2manifest: warning: %s/%s: %s; skipped\n",
				argv[optind], names[i], why);
			n_skipped++;
		} else {
			add_entries(ar, names[i]);
			n_ok++;
		}
		if (ar)
			build__bazel__remote__execution__v2__action_result__free_unpacked(ar, NULL);
		free(buf);
	}
	closedir(dir);

	/* Cross-file checks: duplicates must agree; no file is a parent. */
	if (n_ents)
		qsort(ents, n_ents, sizeof(*ents), cmp_ent);
	for (size_t i = 0; i < n_ents; i++) {
		const struct entry *e = &ents[i];

		if (i && !strcmp(e->path, ents[i - 1].path)) {
			const struct entry *p = &ents[i - 1];

			if (strcmp(e->hash, p->hash) || e->size != p->size || e->mode != p->mode)
				die("%s: action results %s and %s disagree about its digest or mode",
				    e->path, p->ac, e->ac);
			continue;
		}
		for (const char *s = strchr(e->path, '/'); s; s = strchr(s + 1, '/')) {
			char prefix[MAX_PATH + 1];
			const struct entry *parent;

			memcpy(prefix, e->path, (size_t)(s - e->path));
			prefix[s - e->path] = 0;
			parent = bsearch(prefix, ents, n_ents, sizeof(*ents), cmp_key_path);
			if (parent)
				die("%s (action result %s) is also the parent directory of %s (action result %s)",
				    parent->path, parent->ac, e->path, e->ac);
		}
	}
	for (size_t i = 0; i < n_ents; i++) {
		const struct entry *e = &ents[i];

		if (i && !strcmp(e->path, ents[i - 1].path))
			continue;
		printf("%s %" PRIu64 " %04o %s\n", e->hash, e->size, e->mode, e->path);
		n_out++;
		bytes += e->size;
	}
	if (fflush(stdout) || ferror(stdout))
		die("writing the manifest: %s", strerror(errno));
	fprintf(stderr, "ac2manifest: %zu action results (%zu skipped), %zu files, %" PRIu64 " bytes\n",
		n_ok, n_skipped, n_out, bytes);

	for (size_t i = 0; i < n_ents; i++)
		free(ents[i].path);
	free(ents);
	for (size_t i = 0; i < n_names; i++)
		free(names[i]);
	free(names);
	return 0;
}
