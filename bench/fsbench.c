// SPDX-License-Identifier: GPL-2.0
/*
 * fsbench - the filesystem micro-benchmarks casfs reports against tmpfs.
 *
 *   fsbench meta   DIR N        create+stat+unlink N files
 *   fsbench write  FILE MIB     sequential 1 MiB writes, then fsync
 *   fsbench read   FILE         sequential 1 MiB reads of the whole file
 *   fsbench rand   FILE COUNT   COUNT random 4 KiB preads (seeded)
 *   fsbench mkfiles DIR N SIZE  create N files of SIZE bytes, 100 per
 *                               directory (DIR/dNNNN/fNNNNNNN)
 *
 * Prints one line: "<op> <seconds> <ops-or-bytes-per-second>". The
 * driver (bench/run-guest.sh) runs each on casfs and on tmpfs in the same
 * guest and reports the ratio; absolute numbers under QEMU's software
 * emulation mean little, ratios do.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static int bench_meta(const char *dir, long n)
{
	char path[4096];
	struct stat st;
	double t0 = now();

	for (long i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/f%ld", dir, i);
		int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0644);

		if (fd < 0)
			die(path);
		close(fd);
	}
	for (long i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/f%ld", dir, i);
		if (stat(path, &st))
			die(path);
	}
	for (long i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/f%ld", dir, i);
		if (unlink(path))
			die(path);
	}
	double dt = now() - t0;

	printf("meta %.3f %.0f\n", dt, n / dt);
	return 0;
}

static char *buffer(size_t len)
{
	char *buf = aligned_alloc(4096, len);

	if (!buf)
		die("alloc");
	for (size_t i = 0; i < len; i++)
		buf[i] = (char)(i * 131 + 7);
	return buf;
}

static int bench_write(const char *file, long mib)
{
	const size_t chunk = 1 << 20;
	char *buf = buffer(chunk);
	int fd = open(file, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	double t0 = now();

	if (fd < 0)
		die(file);
	for (long i = 0; i < mib; i++)
		if (write(fd, buf, chunk) != (ssize_t)chunk)
			die("write");
	if (fsync(fd))
		die("fsync");
	close(fd);
	double dt = now() - t0;

	printf("write %.3f %.0f\n", dt, mib * (double)chunk / dt);
	free(buf);
	return 0;
}

static int bench_read(const char *file)
{
	const size_t chunk = 1 << 20;
	char *buf = buffer(chunk);
	int fd = open(file, O_RDONLY);
	double t0 = now();
	long long total = 0;
	ssize_t n;

	if (fd < 0)
		die(file);
	while ((n = read(fd, buf, chunk)) > 0)
		total += n;
	if (n < 0)
		die("read");
	close(fd);
	double dt = now() - t0;

	printf("read %.3f %.0f\n", dt, total / dt);
	free(buf);
	return 0;
}

static int bench_rand(const char *file, long count)
{
	char *buf = buffer(4096);
	int fd = open(file, O_RDONLY);
	struct stat st;
	uint64_t x = 88172645463325252ULL;

	if (fd < 0 || fstat(fd, &st))
		die(file);
	long pages = st.st_size / 4096;

	if (pages < 1) {
		fprintf(stderr, "%s: too small\n", file);
		return 1;
	}
	double t0 = now();

	for (long i = 0; i < count; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		if (pread(fd, buf, 4096, (off_t)(x % pages) * 4096) != 4096)
			die("pread");
	}
	close(fd);
	double dt = now() - t0;

	printf("rand %.3f %.0f\n", dt, count / dt);
	free(buf);
	return 0;
}

static int bench_mkfiles(const char *dir, long n, long size)
{
	char path[4096];
	char *buf = buffer(size > 0 ? size : 1);
	double t0 = now();

	for (long i = 0; i < n; i++) {
		if (i % 100 == 0) {
			snprintf(path, sizeof(path), "%s/d%04ld", dir, i / 100);
			if (mkdir(path, 0755) && errno != EEXIST)
				die(path);
		}
		snprintf(path, sizeof(path), "%s/d%04ld/f%07ld", dir, i / 100, i);
		int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0644);

		if (fd < 0)
			die(path);
		if (size && write(fd, buf, size) != size)
			die("write");
		close(fd);
	}
	double dt = now() - t0;

	printf("mkfiles %.3f %.0f\n", dt, n / dt);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "meta"))
		return bench_meta(argv[2], atol(argv[3]));
	if (argc == 4 && !strcmp(argv[1], "write"))
		return bench_write(argv[2], atol(argv[3]));
	if (argc == 3 && !strcmp(argv[1], "read"))
		return bench_read(argv[2]);
	if (argc == 4 && !strcmp(argv[1], "rand"))
		return bench_rand(argv[2], atol(argv[3]));
	if (argc == 5 && !strcmp(argv[1], "mkfiles"))
		return bench_mkfiles(argv[2], atol(argv[3]), atol(argv[4]));
	fprintf(stderr,
		"usage: fsbench meta DIR N | write FILE MIB | read FILE | rand FILE COUNT |\n"
		"       mkfiles DIR N SIZE\n");
	return 2;
}
