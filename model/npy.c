/* npy.c - minimal .npy reader/writer (format spec: numpy.lib.format). */
#include "npy.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The header dictionary's text after the magic and version, into header (NUL-terminated).
 * Returns 0, or -1 with err. */
static int read_header(FILE *fp, const char *path, char *header, size_t cap, char *err,
                       size_t errlen) {
    unsigned char magic[10];
    if (fread(magic, 1, 8, fp) != 8 || memcmp(magic, "\x93NUMPY", 6) != 0) {
        snprintf(err, errlen, "%s: not a .npy file", path);
        return -1;
    }
    size_t hlen;
    unsigned char l[4];
    if (magic[6] == 1) { /* version 1: a 2-byte length; 2 and 3: 4 bytes */
        if (fread(l, 1, 2, fp) != 2) goto truncated;
        hlen = l[0] | (size_t)l[1] << 8;
    } else {
        if (fread(l, 1, 4, fp) != 4) goto truncated;
        hlen = l[0] | (size_t)l[1] << 8 | (size_t)l[2] << 16 | (size_t)l[3] << 24;
    }
    if (hlen >= cap) {
        snprintf(err, errlen, "%s: header of %zu bytes is too long", path, hlen);
        return -1;
    }
    if (fread(header, 1, hlen, fp) != hlen) goto truncated;
    header[hlen] = '\0';
    return 0;
truncated:
    snprintf(err, errlen, "%s: file is truncated", path);
    return -1;
}

/* The tuple after 'shape': into out->shape, ndim and numel. */
static int parse_shape(const char *s, npy_array *out, const char *path, char *err,
                       size_t errlen) {
    const char *p = strchr(s, '(');
    out->numel = 1;
    while (p && *p && *p != ')') {
        p++;
        while (*p == ' ') p++;
        if (*p == ')') break;
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || v < 0 || out->ndim == NPY_MAX_DIMS) goto bad;
        if (v > 0 && out->numel > INT64_MAX / 4 / v) {
            snprintf(err, errlen, "%s: shape too large", path);
            return -1;
        }
        out->shape[out->ndim++] = v;
        out->numel *= v;
        p = end;
        while (*p == ' ') p++;
        if (*p != ',' && *p != ')') goto bad;
    }
    return 0;
bad:
    snprintf(err, errlen, "%s: bad shape in header", path);
    return -1;
}

/* descr (float32 or uint8 only), fortran_order (False only) and shape. */
static int parse_header(const char *header, npy_array *out, const char *path, char *err,
                        size_t errlen) {
    const char *d = strstr(header, "'descr':"), *f = strstr(header, "'fortran_order':"),
               *s = strstr(header, "'shape':");
    if (!d || !f || !s) {
        snprintf(err, errlen, "%s: header lacks descr, fortran_order or shape", path);
        return -1;
    }
    if (sscanf(d, "'descr': '%7[^']'", out->dtype) != 1 ||
        (strcmp(out->dtype, "<f4") != 0 && strcmp(out->dtype, "|u1") != 0)) {
        snprintf(err, errlen, "%s: dtype %s not supported (need float32 '<f4' or uint8)", path,
                 out->dtype);
        return -1;
    }
    if (strncmp(f, "'fortran_order': False", 22) != 0) {
        snprintf(err, errlen, "%s: Fortran-ordered arrays are not supported", path);
        return -1;
    }
    return parse_shape(s, out, path, err, errlen);
}

int npy_read(const char *path, npy_array *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char header[4096];
    int rc = -1;
    if (read_header(fp, path, header, sizeof header, err, errlen) == 0 &&
        parse_header(header, out, path, err, errlen) == 0) {
        size_t elem = out->dtype[1] == 'f' ? 4 : 1, bytes = (size_t)out->numel * elem;
        out->data = malloc(bytes ? bytes : 1);
        if (out->data && fread(out->data, 1, bytes, fp) == bytes) rc = 0;
        else snprintf(err, errlen, "%s: file is truncated", path);
    }
    if (rc != 0) {
        free(out->data);
        out->data = NULL;
    }
    fclose(fp);
    return rc;
}

int npy_write_f32(const char *path, const float *data, const int64_t *shape, int ndim,
                  char *err, size_t errlen) {
    char dict[256];
    size_t used = (size_t)snprintf(dict, sizeof dict,
                                   "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        used += (size_t)snprintf(dict + used, sizeof dict - used, "%lld,%s", (long long)shape[i],
                                 i + 1 < ndim ? " " : "");
        numel *= shape[i];
    }
    used += (size_t)snprintf(dict + used, sizeof dict - used, "), }");
    /* Pad with spaces so magic + length + dict + '\n' is a multiple of 64. */
    size_t total = 10 + used + 1, padded = (total + 63) / 64 * 64;
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    size_t hlen = padded - 10;
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hlen & 0xff),
                             (unsigned char)(hlen >> 8)};
    int ok = fwrite(pre, 1, 10, fp) == 10 && fwrite(dict, 1, used, fp) == used;
    for (size_t i = total; ok && i < padded; i++) ok = fputc(' ', fp) != EOF;
    ok = ok && fputc('\n', fp) != EOF;
    ok = ok && fwrite(data, sizeof(float), (size_t)numel, fp) == (size_t)numel;
    ok = (fclose(fp) == 0) && ok;
    if (!ok) {
        snprintf(err, errlen, "%s: write failed", path);
        return -1;
    }
    return 0;
}
