// SPDX-License-Identifier: GPL-2.0
/* Tests: sha256 verification and atomic publication. */
#include "t.h"
#include "../publish.h"
#include "../verify.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char empty_hex[] =
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

static void t_known_vectors(void)
{
	uint8_t d[32];
	char hex[65];

	sha256_buf("", 0, d);
	hex_encode(d, hex);
	CHECK_STR(hex, empty_hex);
	sha256_buf("abc", 3, d);
	hex_encode(d, hex);
	CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void t_hex(void)
{
	uint8_t d[32];
	char hex[65];

	CHECK_INT(hex_decode(empty_hex, 64, d), 0);
	hex_encode(d, hex);
	CHECK_STR(hex, empty_hex);
	CHECK_INT(hex_decode("E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
			     64, d), 0);
	hex_encode(d, hex);
	CHECK_STR(hex, empty_hex);
	CHECK_INT(hex_decode(empty_hex, 63, d), -EINVAL);
	CHECK_INT(hex_decode("g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
			     64, d), -EINVAL);
	CHECK(hex_is_blob_name(empty_hex));
	CHECK(!hex_is_blob_name("E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"));
	CHECK(!hex_is_blob_name("e3b0"));
	CHECK(!hex_is_blob_name("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8550"));
	CHECK(!hex_is_blob_name(""));
}

static void check_fd(const void *data, size_t len, uint64_t size, const uint8_t *digest,
		     int want, const char *want_why)
{
	const char *dir = t_tmpdir();
	char path[300];
	const char *why = NULL;
	int fd;

	snprintf(path, sizeof(path), "%s/f", dir);
	t_write_file(path, data, len, 0600);
	fd = open(path, O_RDONLY);
	CHECK_INT(verify_fd(fd, size, digest, &why), want);
	if (want_why)
		CHECK_STR(why, want_why);
	close(fd);
}

static void t_verify_cases(void)
{
	static char buf[100000];
	uint8_t d[32], e[32];

	t_fill(buf, sizeof(buf), 1);
	sha256_buf(buf, sizeof(buf), d);
	sha256_buf("", 0, e);
	/* good */
	check_fd(buf, sizeof(buf), sizeof(buf), d, 0, NULL);
	CHECK(verify_check(sizeof(buf), d, sizeof(buf), d) == NULL);
	/* wrong hash, same size */
	buf[500] ^= 1;
	check_fd(buf, sizeof(buf), sizeof(buf), d, -EIO, "sha256 mismatch");
	buf[500] ^= 1;
	/* short */
	check_fd(buf, sizeof(buf) - 1, sizeof(buf), d, -EIO, "short body");
	/* long */
	check_fd(buf, sizeof(buf), sizeof(buf) - 1, d, -EIO, "body longer than expected");
	/* empty */
	check_fd("", 0, 0, e, 0, NULL);
	check_fd("", 0, 0, d, -EIO, "sha256 mismatch");
	check_fd("x", 1, 0, e, -EIO, "body longer than expected");
}

/* ---- publish ---- */

struct pdirs {
	char tmp[300], blobs[300];
	int tmpfd, blobsfd;
};

static int mkdirs(struct pdirs *p)
{
	const char *d = t_tmpdir();

	if (!d)
		return -1;
	snprintf(p->tmp, sizeof(p->tmp), "%s/tmp", d);
	snprintf(p->blobs, sizeof(p->blobs), "%s/blobs", d);
	mkdir(p->tmp, 0700);
	mkdir(p->blobs, 0755);
	p->tmpfd = open(p->tmp, O_RDONLY | O_DIRECTORY);
	p->blobsfd = open(p->blobs, O_RDONLY | O_DIRECTORY);
	return p->tmpfd >= 0 && p->blobsfd >= 0 ? 0 : -1;
}

static void closedirs(struct pdirs *p)
{
	close(p->tmpfd);
	close(p->blobsfd);
}

static void t_publish_good(void)
{
	static char buf[700000];
	struct blob_writer w;
	struct pdirs p;
	char hex[65], path[400];
	const char *why;
	struct stat st;
	size_t len;
	char *got;

	REQUIRE(mkdirs(&p) == 0);
	t_fill(buf, sizeof(buf), 7);
	uint8_t d[32];
	sha256_buf(buf, sizeof(buf), d);
	hex_encode(d, hex);
	snprintf(path, sizeof(path), "%s/%s", p.blobs, hex);

	REQUIRE(bw_open(&w, p.tmpfd, p.blobsfd, d, sizeof(buf)) == 0);
	/* in pieces; nothing visible in blobs/ until commit */
	for (size_t off = 0; off < sizeof(buf); off += 1000) {
		size_t n = sizeof(buf) - off < 1000 ? sizeof(buf) - off : 1000;

		CHECK_INT(bw_write(&w, buf + off, n), 0);
		if (off == 350000) {
			CHECK(access(path, F_OK) != 0);
			CHECK_INT(t_count_dir(p.blobs), 0);
			CHECK_INT(t_count_dir(p.tmp), 1);
		}
	}
	CHECK(access(path, F_OK) != 0);
	CHECK_INT(bw_commit(&w, &why), 0);
	CHECK(why == NULL);
	REQUIRE(stat(path, &st) == 0);
	CHECK_INT(st.st_mode & 07777, 0400);
	CHECK_INT(st.st_size, sizeof(buf));
	CHECK_INT(t_count_dir(p.tmp), 0);
	got = t_read_file(path, &len);
	CHECK(got && len == sizeof(buf) && !memcmp(got, buf, len));
	free(got);
	bw_abort(&w);	/* idempotent after commit */
	CHECK(access(path, F_OK) == 0);
	closedirs(&p);
}

static void publish_bad(const char *data, size_t len, uint64_t size, const uint8_t *d,
			int want_write, const char *want_why)
{
	struct blob_writer w;
	struct pdirs p;
	const char *why;

	REQUIRE(mkdirs(&p) == 0);
	REQUIRE(bw_open(&w, p.tmpfd, p.blobsfd, d, size) == 0);
	CHECK_INT(bw_write(&w, data, len), want_write);
	CHECK_INT(bw_commit(&w, &why), -EIO);
	CHECK_STR(why, want_why);
	CHECK_INT(t_count_dir(p.tmp), 0);
	CHECK_INT(t_count_dir(p.blobs), 0);
	closedirs(&p);
}

static void t_publish_rejects(void)
{
	static char buf[5000];
	uint8_t d[32];

	t_fill(buf, sizeof(buf), 3);
	sha256_buf(buf, sizeof(buf), d);
	buf[10] ^= 0x80;
	publish_bad(buf, sizeof(buf), sizeof(buf), d, 0, "sha256 mismatch");
	buf[10] ^= 0x80;
	publish_bad(buf, sizeof(buf) - 1, sizeof(buf), d, 0, "short body");
	publish_bad(buf, sizeof(buf), sizeof(buf) - 1, d, -EFBIG, "body longer than expected");
}

static void t_publish_empty(void)
{
	struct blob_writer w;
	struct pdirs p;
	const char *why;
	char path[400];
	struct stat st;
	uint8_t d[32];

	REQUIRE(mkdirs(&p) == 0);
	hex_decode(empty_hex, 64, d);
	REQUIRE(bw_open(&w, p.tmpfd, p.blobsfd, d, 0) == 0);
	CHECK_INT(bw_commit(&w, &why), 0);
	snprintf(path, sizeof(path), "%s/%s", p.blobs, empty_hex);
	CHECK(stat(path, &st) == 0 && st.st_size == 0 && (st.st_mode & 0777) == 0400);
	/* and a byte for an empty blob is refused */
	REQUIRE(bw_open(&w, p.tmpfd, p.blobsfd, d, 0) == 0);
	CHECK_INT(bw_write(&w, "x", 1), -EFBIG);
	CHECK_INT(bw_commit(&w, &why), -EIO);
	CHECK_INT(t_count_dir(p.tmp), 0);
	closedirs(&p);
}

static void t_publish_abort(void)
{
	struct blob_writer w;
	struct pdirs p;
	uint8_t d[32] = { 1 };

	REQUIRE(mkdirs(&p) == 0);
	REQUIRE(bw_open(&w, p.tmpfd, p.blobsfd, d, 100) == 0);
	CHECK_INT(bw_write(&w, "abc", 3), 0);
	CHECK_INT(t_count_dir(p.tmp), 1);
	bw_abort(&w);
	bw_abort(&w);
	CHECK_INT(t_count_dir(p.tmp), 0);
	CHECK_INT(t_count_dir(p.blobs), 0);
	closedirs(&p);
}

static void t_publish_replaces(void)
{
	/* A wrong file under the blob's name is replaced atomically. */
	struct blob_writer w;
	struct pdirs p;
	const char *why;
	char path[400], hex[65];
	uint8_t d[32];
	size_t len;
	char *got;

	REQUIRE(mkdirs(&p) == 0);
	sha256_buf("hello", 5, d);
	hex_encode(d, hex);
	snprintf(path, sizeof(path), "%s/%s", p.blobs, hex);
	t_write_file(path, "jello", 5, 0444);
	REQUIRE(bw_open(&w, p.tmpfd, p.blobsfd, d, 5) == 0);
	CHECK_INT(bw_write(&w, "hello", 5), 0);
	CHECK_INT(bw_commit(&w, &why), 0);
	got = t_read_file(path, &len);
	CHECK(got && len == 5 && !memcmp(got, "hello", 5));
	free(got);
	closedirs(&p);
}

const struct test verify_tests[] = {
	{ "known_vectors", t_known_vectors },
	{ "hex", t_hex },
	{ "good_wrong_short_long_empty", t_verify_cases },
	{ NULL, NULL },
};

static int tmp_mode(const struct pdirs *p)
{
	DIR *d = opendir(p->tmp);
	struct dirent *de;
	struct stat st;
	int mode = -1;

	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.' && fstatat(p->tmpfd, de->d_name, &st, 0) == 0)
			mode = (int)(st.st_mode & 07777);
	if (d)
		closedir(d);
	return mode;
}

/*
 * The group path: bw_verify keeps the verified file in tmp/ (0400 from
 * its creation), bw_publish renames it; a failed verify removes it, and
 * bw_publish of an unverified writer refuses. Buffers and digest
 * contexts come back from the pool in a clean state.
 */
static void t_publish_group_steps(void)
{
	static char buf[300000];
	struct blob_writer w;
	struct pdirs p;
	char hex[65], path[400];
	const char *why;
	uint8_t d[32], bad[32];
	size_t len;
	char *got;

	REQUIRE(mkdirs(&p) == 0);
	t_fill(buf, sizeof(buf), 11);
	sha256_buf(buf, sizeof(buf), d);
	hex_encode(d, hex);
	snprintf(path, sizeof(path), "%s/%s", p.blobs, hex);
	for (int round = 0; round < 3; round++) {	/* reuses the pool */
		REQUIRE(bw_open(&w, p.tmpfd, p.blobsfd, d, sizeof(buf)) == 0);
		CHECK_INT(tmp_mode(&p), 0400);		/* no chmod needed */
		CHECK_INT(bw_write(&w, buf, sizeof(buf)), 0);
		CHECK_INT(bw_verify(&w, &why), 0);
		CHECK(why == NULL);
		CHECK(!bw_is_open(&w));
		CHECK_INT(t_count_dir(p.tmp), 1);	/* verified, not published */
		CHECK(access(path, F_OK) != 0);
		CHECK_INT(bw_sync_group(p.blobsfd), 0);
		CHECK_INT(bw_publish(&w), 0);
		CHECK_INT(t_count_dir(p.tmp), 0);
		got = t_read_file(path, &len);
		CHECK(got && len == sizeof(buf) && !memcmp(got, buf, len));
		free(got);
		unlink(path);
	}
	memcpy(bad, d, sizeof(bad));
	bad[0] ^= 1;
	REQUIRE(bw_open(&w, p.tmpfd, p.blobsfd, bad, sizeof(buf)) == 0);
	CHECK_INT(bw_write(&w, buf, sizeof(buf)), 0);
	CHECK_INT(bw_verify(&w, &why), -EIO);
	CHECK_STR(why, "sha256 mismatch");
	CHECK_INT(t_count_dir(p.tmp), 0);
	CHECK_INT(bw_publish(&w), -EINVAL);
	CHECK_INT(t_count_dir(p.blobs), 0);
	closedirs(&p);
}

const struct test publish_tests[] = {
	{ "atomic_good", t_publish_good },
	{ "rejects_corrupt_short_long", t_publish_rejects },
	{ "empty_blob", t_publish_empty },
	{ "abort_cleans_tmp", t_publish_abort },
	{ "replaces_wrong_file", t_publish_replaces },
	{ "group_steps", t_publish_group_steps },
	{ NULL, NULL },
};
