// SPDX-License-Identifier: GPL-2.0
/* casfsctl: strict manifest line parser. */
#include "manifest.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int bad(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int bad(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

int manifest_check_path(const char *p, char *err, size_t errlen)
{
	size_t len = strlen(p);
	const char *c = p;

	if (!len)
		return bad(err, errlen, "empty path");
	if (len > MANIFEST_MAX_PATH)
		return bad(err, errlen, "path longer than %d bytes", MANIFEST_MAX_PATH);
	if (p[0] == '/')
		return bad(err, errlen, "absolute path (want one relative to DIR)");
	for (const char *s = p; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return bad(err, errlen, "control character in path");
	for (;;) {
		const char *slash = strchr(c, '/');
		size_t n = slash ? (size_t)(slash - c) : strlen(c);

		if (n == 0)
			return bad(err, errlen, slash ? "empty path component ('//')"
						    : "trailing '/'");
		if (n == 1 && c[0] == '.')
			return bad(err, errlen, "'.' path component");
		if (n == 2 && c[0] == '.' && c[1] == '.')
			return bad(err, errlen, "'..' path component");
		if (n > MANIFEST_MAX_NAME)
			return bad(err, errlen, "path component longer than %d bytes",
				   MANIFEST_MAX_NAME);
		if (!slash)
			return 0;
		c = slash + 1;
	}
}

static const char *field(const char **s, const char *end, size_t *n)
{
	const char *start = *s;

	while (*s < end && **s != ' ' && **s != '\t')
		(*s)++;
	*n = (size_t)(*s - start);
	while (*s < end && (**s == ' ' || **s == '\t'))
		(*s)++;
	return start;
}

int manifest_parse_line(const char *line, size_t len, struct manifest_entry *e,
			char *err, size_t errlen)
{
	const char *s = line, *end = line + len, *f;
	char num[32], *path;
	uint64_t v;
	size_t n;

	if (len > MANIFEST_MAX_LINE)
		return bad(err, errlen, "line longer than %d bytes", MANIFEST_MAX_LINE);
	if (memchr(line, 0, len))
		return bad(err, errlen, "NUL byte in line");
	if (len && line[len - 1] == '\r')
		return bad(err, errlen, "carriage return at end of line (DOS line endings?)");
	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	if (s == end || *s == '#')
		return 0;

	f = field(&s, end, &n);
	if (n != HEX_LEN)
		return bad(err, errlen, "sha256 must be 64 hex digits, got %zu characters", n);
	if (hex_decode(f, n, e->sha256))
		return bad(err, errlen, "sha256 is not hexadecimal");

	f = field(&s, end, &n);
	if (!n)
		return bad(err, errlen, "missing size, mode and path");
	if (n >= sizeof(num))
		return bad(err, errlen, "size too long");
	memcpy(num, f, n);
	num[n] = 0;
	switch (parse_u64(num, CASFS_MAX_BLOB_SIZE, &v)) {
	case 0:
		break;
	case -ERANGE:
		return bad(err, errlen, "size %s above the limit of %llu bytes", num,
			   (unsigned long long)CASFS_MAX_BLOB_SIZE);
	default:
		return bad(err, errlen, "size '%s' is not a decimal number", num);
	}
	e->size = v;

	f = field(&s, end, &n);
	if (!n)
		return bad(err, errlen, "missing mode and path");
	if (n > 6)
		return bad(err, errlen, "mode too long");
	v = 0;
	for (size_t i = 0; i < n; i++) {
		if (f[i] < '0' || f[i] > '7')
			return bad(err, errlen, "mode '%.*s' is not octal", (int)n, f);
		v = v * 8 + (uint64_t)(f[i] - '0');
	}
	if (v > 07777)
		return bad(err, errlen, "mode %.*s above 07777", (int)n, f);
	e->mode = (uint32_t)v;

	if (s == end)
		return bad(err, errlen, "missing path");
	path = strndup(s, (size_t)(end - s));
	if (!path)
		return bad(err, errlen, "out of memory");
	if (manifest_check_path(path, err, errlen)) {
		free(path);
		return -EINVAL;
	}
	e->path = path;
	return 1;
}
