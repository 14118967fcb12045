// SPDX-License-Identifier: GPL-2.0
/*
 * The executable output of the casfs Bazel test: compiled by gcc inside a
 * genrule, staged lazily into casfs, then run from a hard link. Prints a
 * fixed line and a value computed at run time (so that a truncated or
 * corrupted binary cannot pass by accident).
 */
#include <stdint.h>
#include <stdio.h>

int main(void)
{
	uint64_t a = 0, b = 1;

	for (int i = 0; i < 90; i++) {
		uint64_t t = a + b;

		a = b;
		b = t;
	}
	printf("hello from a Bazel output on casfs\n");
	printf("fib(90) = %llu\n", (unsigned long long)a);
	return 0;
}
