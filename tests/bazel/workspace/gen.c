// SPDX-License-Identifier: GPL-2.0
/*
 * gen SEED SIZE: write SIZE pseudo-random bytes (xorshift64*) to stdout.
 * A build tool of the casfs Bazel test, to make large outputs that do not
 * compress and differ everywhere.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
	static unsigned char buf[1 << 16];
	uint64_t x, left;

	if (argc != 3) {
		fprintf(stderr, "usage: gen SEED SIZE\n");
		return 2;
	}
	x = strtoull(argv[1], NULL, 0) | 1;
	left = strtoull(argv[2], NULL, 0);
	while (left) {
		size_t n = left < sizeof(buf) ? (size_t)left : sizeof(buf);

		for (size_t i = 0; i < n; i++) {
			x ^= x >> 12;
			x ^= x << 25;
			x ^= x >> 27;
			buf[i] = (unsigned char)((x * 0x2545F4914F6CDD1DULL) >> 56);
		}
		if (fwrite(buf, 1, n, stdout) != n)
			return 1;
		left -= n;
	}
	return fclose(stdout) ? 1 : 0;
}
