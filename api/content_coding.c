/* content_coding.c - gzip and deflate request bodies inflated under a limit; compressed answers. */
#include "content_coding.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <zlib.h>

/* ---------------------------------------------------------------- headers */

/* Copies the next comma-separated token of *p, trimmed, into tok; advances past it. */
static void next_token(const char **p, char *tok, size_t cap) {
    const char *s = *p;
    while (*s == ' ' || *s == '\t' || *s == ',') s++;
    size_t n = strcspn(s, ",");
    *p = s + n;
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    snprintf(tok, cap, "%.*s", (int)(n < cap ? n : cap - 1), s);
}

/* The q-value of a token ("gzip;q=0.5", "image/png; level=1; q=0"; 1 when it has none),
 * which is cut to its name, trimmed. */
static double token_q(char *tok) {
    char *semi = strchr(tok, ';');
    if (!semi) return 1;
    *semi = '\0';
    for (char *e = semi - 1; e >= tok && (*e == ' ' || *e == '\t'); e--) *e = '\0';
    double q = 1;
    for (const char *param = semi + 1; param; param = strchr(param, ';')) {
        if (*param == ';') param++;
        while (*param == ' ' || *param == '\t') param++;
        if ((param[0] == 'q' || param[0] == 'Q') && param[1] == '=') q = strtod(param + 2, NULL);
    }
    return q >= 0 && q <= 1 ? q : 0; /* out of range (or NaN): refused */
}

static content_coding coding_of(const char *tok) {
    if (strcasecmp(tok, "gzip") == 0 || strcasecmp(tok, "x-gzip") == 0) return CONTENT_CODING_GZIP;
    if (strcasecmp(tok, "deflate") == 0) return CONTENT_CODING_DEFLATE;
    if (strcasecmp(tok, "identity") == 0) return CONTENT_CODING_IDENTITY;
    return CONTENT_CODING_UNSUPPORTED;
}

content_coding content_coding_parse(const char *header) {
    if (!header) return CONTENT_CODING_IDENTITY;
    content_coding found = CONTENT_CODING_IDENTITY;
    const char *p = header;
    while (*p) {
        char tok[32];
        next_token(&p, tok, sizeof tok);
        if (!tok[0]) continue;
        content_coding c = coding_of(tok);
        if (c == CONTENT_CODING_UNSUPPORTED) return c;
        if (c == CONTENT_CODING_IDENTITY) continue;
        if (found != CONTENT_CODING_IDENTITY) return CONTENT_CODING_UNSUPPORTED; /* stacked */
        found = c;
    }
    return found;
}

bool content_coding_accepts(const char *accept_encoding, content_coding c) {
    if (!accept_encoding || c == CONTENT_CODING_IDENTITY || c == CONTENT_CODING_UNSUPPORTED)
        return false;
    bool star = false, named = false, named_ok = false;
    const char *p = accept_encoding;
    while (*p) {
        char tok[64];
        next_token(&p, tok, sizeof tok);
        const double q = token_q(tok);
        if (strcmp(tok, "*") == 0) star = q > 0;
        else if (coding_of(tok) == c) {
            named = true;
            named_ok = q > 0;
        }
    }
    return named ? named_ok : star;
}

double content_accept_media_q(const char *accept, const char *type, bool *exact) {
    if (exact) *exact = false;
    if (!accept) return -1;
    const char *slash = strchr(type, '/');
    const size_t major = slash ? (size_t)(slash - type) : strlen(type);
    double q_exact = -1, q_major = -1, q_any = -1;
    for (const char *p = accept; *p;) {
        char tok[128];
        next_token(&p, tok, sizeof tok);
        const double q = token_q(tok);
        if (strcasecmp(tok, type) == 0) q_exact = q;
        else if (strncasecmp(tok, type, major) == 0 && strcmp(tok + major, "/*") == 0) q_major = q;
        else if (strcmp(tok, "*/*") == 0) q_any = q;
    }
    if (q_exact >= 0 && exact) *exact = true;
    return q_exact >= 0 ? q_exact : q_major >= 0 ? q_major : q_any;
}

const char *content_coding_name(content_coding c) {
    switch (c) {
    case CONTENT_CODING_GZIP: return "gzip";
    case CONTENT_CODING_DEFLATE: return "deflate";
    case CONTENT_CODING_IDENTITY: return "identity";
    default: return "unsupported";
    }
}

/* ---------------------------------------------------------------- inflating */

struct content_inflater {
    z_stream zs;
    content_coding coding;
    bool started, raw_retry_done, ended;
    content_status status;
    size_t limit;
    uint8_t *buf;
    size_t len, cap;
    uint8_t first[2]; /* the stream's first bytes, for the raw deflate retry */
    size_t n_first;
};

/* zlib's windowBits: 16 + 15 gzip, 15 zlib, -15 raw deflate. */
static int init_stream(content_inflater *z, int window_bits) {
    memset(&z->zs, 0, sizeof z->zs);
    return inflateInit2(&z->zs, window_bits) == Z_OK ? 0 : -1;
}

content_inflater *content_inflater_new(content_coding c, size_t limit) {
    if (c != CONTENT_CODING_GZIP && c != CONTENT_CODING_DEFLATE) return NULL;
    content_inflater *z = calloc(1, sizeof *z);
    if (!z) return NULL;
    z->coding = c;
    z->limit = limit;
    if (init_stream(z, c == CONTENT_CODING_GZIP ? 16 + 15 : 15) != 0) {
        free(z);
        return NULL;
    }
    return z;
}

/* The output buffer: limit + 1 bytes mapped at once (one byte past the limit is how too much
 * is noticed). Only the pages written become resident, so a small body costs little; it never
 * grows by copying, which would hold an old and a new buffer at once; and unmapping gives it
 * all back to the kernel, where malloc would keep it in the thread's arena: a bomb costs at
 * most the limit, once. */
static content_status grow(content_inflater *z) {
    if (z->buf) return z->len < z->cap ? CONTENT_OK : CONTENT_TOO_LARGE;
    void *p = mmap(NULL, z->limit + 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return CONTENT_NO_MEMORY;
    z->buf = p;
    z->cap = z->limit + 1;
    return CONTENT_OK;
}

static content_status run(content_inflater *z, const uint8_t *in, size_t n) {
    z->zs.next_in = (Bytef *)in;
    z->zs.avail_in = (uInt)n;
    while (z->zs.avail_in > 0) {
        if (z->ended) return CONTENT_CORRUPT; /* bytes after the end of the stream */
        content_status g = grow(z);
        if (g != CONTENT_OK) return g;
        z->zs.next_out = z->buf + z->len;
        z->zs.avail_out = (uInt)(z->cap - z->len);
        int rc = inflate(&z->zs, Z_NO_FLUSH);
        z->len = z->cap - z->zs.avail_out;
        if (z->len > z->limit) return CONTENT_TOO_LARGE;
        if (rc == Z_STREAM_END) z->ended = true;
        else if (rc == Z_MEM_ERROR) return CONTENT_NO_MEMORY;
        else if (rc != Z_OK && rc != Z_BUF_ERROR) return CONTENT_CORRUPT;
    }
    return CONTENT_OK;
}

content_status content_inflater_feed(content_inflater *z, const uint8_t *in, size_t n) {
    if (z->status != CONTENT_OK) return z->status;
    /* Feed the first two bytes alone: when a "deflate" body has no zlib header, inflate
     * fails on them, and the stream starts over as raw deflate. */
    while (n > 0 && z->coding == CONTENT_CODING_DEFLATE && z->n_first < 2) {
        z->first[z->n_first++] = *in++;
        n--;
        if (z->n_first < 2) continue;
        content_status st = run(z, z->first, 2);
        if (st == CONTENT_CORRUPT && !z->raw_retry_done && z->len == 0) {
            inflateEnd(&z->zs);
            z->raw_retry_done = true;
            if (init_stream(z, -15) != 0) return z->status = CONTENT_NO_MEMORY;
            st = run(z, z->first, 2);
        }
        if (st != CONTENT_OK) return z->status = st;
    }
    if (n == 0) return CONTENT_OK;
    return z->status = run(z, in, n);
}

content_status content_inflater_finish(content_inflater *z) {
    if (z->status != CONTENT_OK) return z->status;
    if (z->coding == CONTENT_CODING_DEFLATE && z->n_first == 1) /* a one-byte body */
        return z->status = CONTENT_TRUNCATED;
    return z->status = z->ended ? CONTENT_OK : CONTENT_TRUNCATED;
}

const uint8_t *content_inflater_data(const content_inflater *z, size_t *len) {
    *len = z->len;
    return z->buf;
}

void content_inflater_free(content_inflater *z) {
    if (!z) return;
    inflateEnd(&z->zs);
    if (z->buf) munmap(z->buf, z->cap);
    free(z);
}

/* ---------------------------------------------------------------- compressing */

int content_coding_compress(content_coding c, const void *in, size_t n, uint8_t **out,
                            size_t *out_len) {
    if (c != CONTENT_CODING_GZIP && c != CONTENT_CODING_DEFLATE) return -1;
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, 1, Z_DEFLATED, c == CONTENT_CODING_GZIP ? 16 + 15 : 15, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK)
        return -1;
    size_t cap = deflateBound(&zs, (uLong)n) + 32; /* + the gzip header and trailer */
    uint8_t *buf = malloc(cap);
    if (!buf) {
        deflateEnd(&zs);
        return -1;
    }
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)n;
    zs.next_out = buf;
    zs.avail_out = (uInt)cap;
    int rc = deflate(&zs, Z_FINISH);
    size_t len = cap - zs.avail_out;
    deflateEnd(&zs);
    if (rc != Z_STREAM_END) {
        free(buf);
        return -1;
    }
    *out = buf;
    *out_len = len;
    return 0;
}
