// SPDX-License-Identifier: GPL-2.0
/*
 * casfs gRPC: header values. Request metadata supplied by the operator
 * (e.g. "authorization: Bearer ..." from a file), checked against the
 * gRPC HTTP/2 spec's grammar so that nothing can smuggle a header line
 * or override one the protocol owns; the encodings used in headers:
 * grpc-message percent-encoding, base64 for "-bin" headers, grpc-timeout.
 */
#include "grpc.h"
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int grpc_errf(char *err, size_t errlen, int ret, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return ret;
}

/* Names the protocol sets itself, or that HTTP/2 forbids. */
static const char *const reserved[] = {
	"content-type", "te", "user-agent", "host", "connection",
	"keep-alive", "proxy-connection", "transfer-encoding", "upgrade",
	"content-length", NULL,
};

static bool name_char(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '-' ||
	       c == '_' || c == '.';
}

static bool b64_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '+' || c == '/' || c == '=';
}

static int check_name(char *name, size_t len, char *err, size_t errlen)
{
	if (!len)
		return grpc_errf(err, errlen, -EINVAL, "empty header name");
	for (size_t i = 0; i < len; i++) {
		if (name[i] >= 'A' && name[i] <= 'Z')
			name[i] = (char)(name[i] - 'A' + 'a');
		if (!name_char(name[i]))
			return grpc_errf(err, errlen, -EINVAL,
				    "invalid character 0x%02x in header name",
				    (unsigned char)name[i]);
	}
	if (!strncmp(name, "grpc-", 5))
		return grpc_errf(err, errlen, -EINVAL,
			    "header name %s is reserved for gRPC", name);
	for (const char *const *r = reserved; *r; r++)
		if (!strcmp(name, *r))
			return grpc_errf(err, errlen, -EINVAL,
				    "header %s cannot be set", name);
	return 0;
}

int grpc_md_add(struct grpc_metadata *md, const char *name, const char *value,
		char *err, size_t errlen)
{
	size_t nl = strlen(name), vl;
	const char *v = value;
	struct grpc_md *nv;
	char *n, *val;
	bool bin;
	int ret;

	while (*v == ' ' || *v == '\t')
		v++;
	vl = strlen(v);
	while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
		vl--;
	if (nl + vl + 2 > GRPC_MD_MAX_LINE)
		return grpc_errf(err, errlen, -E2BIG, "header too long");
	if (md->n >= GRPC_MD_MAX)
		return grpc_errf(err, errlen, -E2BIG, "more than %d headers",
			    GRPC_MD_MAX);
	n = strndup(name, nl);
	if (!n)
		return -ENOMEM;
	ret = check_name(n, nl, err, errlen);
	if (ret)
		goto out;
	bin = nl > 4 && !strcmp(n + nl - 4, "-bin");
	ret = grpc_errf(err, errlen, -EINVAL, "empty value for header %s", n);
	if (!vl)
		goto out;
	for (size_t i = 0; i < vl; i++) {
		unsigned char c = (unsigned char)v[i];

		if (c < 0x20 || c > 0x7e || (bin && !b64_char((char)c))) {
			ret = grpc_errf(err, errlen, -EINVAL,
				   "invalid character 0x%02x in the value of header %s",
				   c, n);
			goto out;
		}
	}
	ret = -ENOMEM;
	val = strndup(v, vl);
	if (!val)
		goto out;
	nv = realloc(md->v, (md->n + 1) * sizeof(*nv));
	if (!nv) {
		free(val);
		goto out;
	}
	md->v = nv;
	md->v[md->n].name = n;
	md->v[md->n].value = val;
	md->n++;
	return 0;
out:
	free(n);
	return ret;
}

int grpc_header_lines(const char *text, size_t len, size_t max_line,
		      grpc_line_fn fn, void *ud, char *err, size_t errlen)
{
	unsigned long lineno = 0;
	size_t pos = 0;

	if (memchr(text, 0, len))
		return grpc_errf(err, errlen, -EINVAL, "contains a NUL byte");
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t l = (nl ? (size_t)(nl - text) : len) - pos;
		const char *s = text + pos, *colon;
		int ret;

		lineno++;
		pos += l + 1;
		while (l && (s[l - 1] == '\r' || s[l - 1] == ' ' || s[l - 1] == '\t'))
			l--;
		while (l && (*s == ' ' || *s == '\t')) {
			s++;
			l--;
		}
		if (!l || *s == '#')
			continue;
		if (l > max_line)
			return grpc_errf(err, errlen, -E2BIG, "line %lu: header too long",
				    lineno);
		colon = memchr(s, ':', l);
		if (!colon || colon == s)
			return grpc_errf(err, errlen, -EINVAL,
				    "line %lu: not a 'name: value' header", lineno);
		ret = fn(ud, lineno, s, l, (size_t)(colon - s));
		if (ret)
			return ret;
	}
	return 0;
}

struct md_parse {
	struct grpc_metadata *md;
	char *err;
	size_t errlen;
};

static int md_line(void *ud, unsigned long lineno, const char *s, size_t len,
		   size_t colon)
{
	struct md_parse *p = ud;
	char sub[256], *line = strndup(s, len);
	int ret;

	if (!line)
		return -ENOMEM;
	line[colon] = 0;
	ret = grpc_md_add(p->md, line, line + colon + 1, sub, sizeof(sub));
	free(line);
	if (ret && ret != -ENOMEM)
		grpc_errf(p->err, p->errlen, ret, "line %lu: %s", lineno, sub);
	return ret;
}

int grpc_md_parse(struct grpc_metadata *md, const char *text, size_t len,
		  char *err, size_t errlen)
{
	struct md_parse p = { .md = md, .err = err, .errlen = errlen };

	return grpc_header_lines(text, len, GRPC_MD_MAX_LINE, md_line, &p, err, errlen);
}

#define MD_FILE_MAX 65536

int grpc_md_load_file(struct grpc_metadata *md, const char *path,
		      char *err, size_t errlen)
{
	char *buf;
	size_t len = 0;
	ssize_t r;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return grpc_errf(err, errlen, -errno, "%s: %s", path, strerror(errno));
	buf = malloc(MD_FILE_MAX + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while ((r = read(fd, buf + len, MD_FILE_MAX + 1 - len)) > 0) {
		len += (size_t)r;
		if (len > MD_FILE_MAX)
			break;
	}
	ret = r < 0 ? -errno : 0;
	close(fd);
	if (ret)
		ret = grpc_errf(err, errlen, ret, "%s: %s", path, strerror(-ret));
	else if (len > MD_FILE_MAX)
		ret = grpc_errf(err, errlen, -EFBIG, "%s: larger than %d bytes",
			   path, MD_FILE_MAX);
	else {
		char sub[300];

		ret = grpc_md_parse(md, buf, len, sub, sizeof(sub));
		if (ret)
			grpc_errf(err, errlen, ret, "%s: %s", path, sub);
	}
	/* It may hold a secret. */
	memset(buf, 0, MD_FILE_MAX + 1);
	free(buf);
	return ret;
}

void grpc_md_free(struct grpc_metadata *md)
{
	for (size_t i = 0; i < md->n; i++) {
		free(md->v[i].name);
		if (md->v[i].value) {
			memset(md->v[i].value, 0, strlen(md->v[i].value));
			free(md->v[i].value);
		}
	}
	free(md->v);
	md->v = NULL;
	md->n = 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * The result is for logs and people: control bytes (including any
 * decoded %0A or %00) become '?'; other bytes (UTF-8) pass.
 */
char *grpc_percent_decode(const char *s, size_t len)
{
	char *out = malloc(len + 1), *o = out;

	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '%' && i + 2 < len && hexval(s[i + 1]) >= 0 &&
		    hexval(s[i + 2]) >= 0) {
			c = (unsigned char)(hexval(s[i + 1]) << 4 | hexval(s[i + 2]));
			i += 2;
		}
		*o++ = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	*o = 0;
	return out;
}

/*
 * The spec's percent-encoding: unreserved here means printable ASCII but
 * '%'; everything else (UTF-8, control bytes) as %XX, so any handler
 * message is a valid header value.
 */
char *grpc_percent_encode(const char *s, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out, *o;

	if (len > (SIZE_MAX - 1) / 3)
		return NULL;
	out = malloc(len * 3 + 1);
	if (!out)
		return NULL;
	o = out;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x20 && c <= 0x7e && c != '%') {
			*o++ = (char)c;
		} else {
			*o++ = '%';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
	}
	*o = 0;
	return out;
}

static int b64val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

int grpc_base64_decode(const char *s, size_t len, uint8_t **out, size_t *outlen)
{
	uint8_t *o;
	uint32_t acc = 0;
	size_t n = 0;
	int bits = 0;

	while (len && s[len - 1] == '=')
		len--;
	o = malloc(len / 4 * 3 + 3);
	if (!o)
		return -ENOMEM;
	for (size_t i = 0; i < len; i++) {
		int v = b64val(s[i]);

		if (v < 0) {
			free(o);
			return -EINVAL;
		}
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			o[n++] = (uint8_t)(acc >> bits);
		}
	}
	if (bits >= 6) {	/* a lone final character encodes no byte */
		free(o);
		return -EINVAL;
	}
	*out = o;
	*outlen = n;
	return 0;
}

void grpc_timeout_format(int64_t ms, char out[16])
{
	static const struct { char unit; int64_t ms; } u[] = {
		{ 'm', 1 }, { 'S', 1000 }, { 'M', 60000 }, { 'H', 3600000 },
	};
	int64_t v = 0;

	if (ms < 1)
		ms = 1;
	for (size_t i = 0; i < sizeof(u) / sizeof(u[0]); i++) {
		v = ms / u[i].ms + (ms % u[i].ms != 0);
		if (v <= 99999999) {
			snprintf(out, 16, "%u%c", (unsigned)v, u[i].unit);
			return;
		}
	}
	snprintf(out, 16, "99999999H");
}

int64_t grpc_timeout_parse(const char *s, size_t len)
{
	int64_t v = 0;

	if (len < 2 || len > 9)
		return -1;
	for (size_t i = 0; i + 1 < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	switch (s[len - 1]) {
	case 'H': return v * 3600000;
	case 'M': return v * 60000;
	case 'S': return v * 1000;
	case 'm': return v;
	case 'u': return (v + 999) / 1000;
	case 'n': return (v + 999999) / 1000000;
	}
	return -1;
}
