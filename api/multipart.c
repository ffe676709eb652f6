/* multipart.c - a strict, allocation-free multipart/form-data splitter. */
#include "multipart.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const unsigned char *find(const unsigned char *hay, size_t hay_len, const char *needle,
                                 size_t n) {
    if (n == 0 || hay_len < n) return NULL;
    return memmem(hay, hay_len, needle, n);
}

int multipart_boundary(const char *content_type, char *boundary, size_t cap, char *err,
                       size_t errlen) {
    const char *p = content_type;
    while (p && (p = strchr(p, ';'))) {
        p++;
        while (*p == ' ' || *p == '\t') p++;
        if (strncasecmp(p, "boundary=", 9) != 0) continue;
        p += 9;
        size_t n = 0;
        if (*p == '"') {
            p++;
            while (p[n] && p[n] != '"') n++;
        } else {
            while (p[n] && p[n] != ';' && p[n] != ' ' && p[n] != '\t') n++;
        }
        if (n == 0 || n > 70 || n + 1 > cap) { /* RFC 2046: 1..70 characters */
            snprintf(err, errlen, "multipart boundary must be 1 to 70 characters");
            return -1;
        }
        memcpy(boundary, p, n);
        boundary[n] = '\0';
        return 0;
    }
    snprintf(err, errlen, "multipart/form-data without a boundary parameter");
    return -1;
}

/* Copies header parameter `key` ("name", "filename") from a Content-Disposition value. */
static void disposition_param(const char *value, size_t len, const char *key, char *out,
                              size_t cap) {
    size_t klen = strlen(key);
    out[0] = '\0';
    for (size_t i = 0; i + klen + 1 < len; i++) {
        if ((i == 0 || value[i - 1] == ';' || value[i - 1] == ' ') &&
            strncasecmp(value + i, key, klen) == 0 && value[i + klen] == '=') {
            size_t j = i + klen + 1, n = 0;
            int quoted = j < len && value[j] == '"';
            if (quoted) j++;
            while (j < len && n + 1 < cap && (quoted ? value[j] != '"' : value[j] != ';'))
                out[n++] = value[j++];
            out[n] = '\0';
            return;
        }
    }
}

/* Parses the header block [h, end) of one part. */
static int parse_headers(const unsigned char *h, const unsigned char *end, multipart_part *part,
                         char *err, size_t errlen) {
    while (h < end) {
        const unsigned char *eol = find(h, (size_t)(end - h), "\r\n", 2);
        if (!eol) eol = end;
        const unsigned char *colon = memchr(h, ':', (size_t)(eol - h));
        if (!colon) {
            snprintf(err, errlen, "multipart part header without ':'");
            return -1;
        }
        size_t name_len = (size_t)(colon - h);
        const unsigned char *v = colon + 1;
        while (v < eol && (*v == ' ' || *v == '\t')) v++;
        size_t vlen = (size_t)(eol - v);
        if (name_len == 19 && strncasecmp((const char *)h, "Content-Disposition", 19) == 0) {
            disposition_param((const char *)v, vlen, "name", part->name, sizeof part->name);
            disposition_param((const char *)v, vlen, "filename", part->filename,
                              sizeof part->filename);
        } else if (name_len == 12 && strncasecmp((const char *)h, "Content-Type", 12) == 0) {
            size_t n = vlen < sizeof part->content_type - 1 ? vlen : sizeof part->content_type - 1;
            memcpy(part->content_type, v, n);
            part->content_type[n] = '\0';
        }
        h = eol + 2;
    }
    return 0;
}

int multipart_parse(const unsigned char *body, size_t len, const char *boundary,
                    multipart_part *parts, int max_parts, char *err, size_t errlen) {
    char delim[80];
    int dlen = snprintf(delim, sizeof delim, "--%s", boundary);
    if (dlen < 3 || (size_t)dlen >= sizeof delim) {
        snprintf(err, errlen, "bad multipart boundary");
        return -1;
    }
    /* The first delimiter may follow a preamble; later ones are preceded by CRLF. */
    const unsigned char *p = find(body, len, delim, (size_t)dlen);
    if (!p) {
        snprintf(err, errlen, "multipart body does not contain its boundary");
        return -1;
    }
    const unsigned char *end = body + len;
    char next_delim[84];
    int ndlen = snprintf(next_delim, sizeof next_delim, "\r\n--%s", boundary);
    int n = 0;
    for (;;) {
        p += dlen;
        if (end - p >= 2 && p[0] == '-' && p[1] == '-') return n; /* closing delimiter */
        while (p < end && (*p == ' ' || *p == '\t')) p++; /* transport padding */
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n') {
            snprintf(err, errlen, "multipart delimiter not followed by CRLF");
            return -1;
        }
        p += 2;
        const unsigned char *hdr_end = find(p, (size_t)(end - p), "\r\n\r\n", 4);
        const unsigned char *data;
        if (end - p >= 2 && p[0] == '\r' && p[1] == '\n') { /* no headers at all */
            hdr_end = p;
            data = p + 2;
        } else if (!hdr_end) {
            snprintf(err, errlen, "multipart part headers are not terminated");
            return -1;
        } else {
            data = hdr_end + 4;
        }
        const unsigned char *next = find(data, (size_t)(end - data), next_delim, (size_t)ndlen);
        if (!next) {
            snprintf(err, errlen, "multipart body is not terminated by its closing boundary");
            return -1;
        }
        if (n == max_parts) {
            snprintf(err, errlen, "more than %d parts", max_parts);
            return -2;
        }
        multipart_part *part = &parts[n];
        memset(part, 0, sizeof *part);
        if (parse_headers(p, hdr_end, part, err, errlen) != 0) return -1;
        part->data = data;
        part->len = (size_t)(next - data);
        n++;
        p = next + 2; /* at "--boundary" */
    }
}
