/* npy.c - minimal .npy reader/writer (format spec: numpy.lib.format). */
#include "npy.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int npy_read(const char *path, npy_array *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    unsigned char magic[10];
    char header[4096];
    int rc = -1;
    if (fread(magic, 1, 8, fp) != 8 || memcmp(magic, "\x93NUMPY", 6) != 0) {
        snprintf(err, errlen, "%s: not a .npy file", path);
        goto done;
    }
    size_t hlen;
    if (magic[6] == 1) {
        if (fread(magic + 8, 1, 2, fp) != 2) goto truncated;
        hlen = magic[8] | (size_t)magic[9] << 8;
    } else {
        unsigned char l[4];
        if (fread(l, 1, 4, fp) != 4) goto truncated;
        hlen = l[0] | (size_t)l[1] << 8 | (size_t)l[2] << 16 | (size_t)l[3] << 24;
    }
    if (hlen >= sizeof header) {
        snprintf(err, errlen, "%s: header of %zu bytes is too long", path, hlen);
        goto done;
    }
    if (fread(header, 1, hlen, fp) != hlen) goto truncated;
    header[hlen] = '\0';
    const char *d = strstr(header, "'descr':"), *f = strstr(header, "'fortran_order':"),
               *s = strstr(header, "'shape':");
    if (!d || !f || !s) {
        snprintf(err, errlen, "%s: header lacks descr, fortran_order or shape", path);
        goto done;
    }
    if (sscanf(d, "'descr': '%7[^']'", out->dtype) != 1 ||
        (strcmp(out->dtype, "<f4") != 0 && strcmp(out->dtype, "|u1") != 0)) {
        snprintf(err, errlen, "%s: dtype %s not supported (need float32 '<f4' or uint8)", path,
                 out->dtype);
        goto done;
    }
    if (strncmp(f, "'fortran_order': False", 22) != 0) {
        snprintf(err, errlen, "%s: Fortran-ordered arrays are not supported", path);
        goto done;
    }
    const char *p = strchr(s, '(');
    out->numel = 1;
    while (p && *p && *p != ')') {
        p++;
        while (*p == ' ') p++;
        if (*p == ')') break;
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || v < 0 || out->ndim == NPY_MAX_DIMS) {
            snprintf(err, errlen, "%s: bad shape in header", path);
            goto done;
        }
        if (v > 0 && out->numel > INT64_MAX / 4 / v) {
            snprintf(err, errlen, "%s: shape too large", path);
            goto done;
        }
        out->shape[out->ndim++] = v;
        out->numel *= v;
        p = end;
        while (*p == ' ') p++;
        if (*p != ',' && *p != ')') {
            snprintf(err, errlen, "%s: bad shape in header", path);
            goto done;
        }
    }
    size_t elem = out->dtype[1] == 'f' ? 4 : 1, bytes = (size_t)out->numel * elem;
    out->data = malloc(bytes ? bytes : 1);
    if (!out->data || fread(out->data, 1, bytes, fp) != bytes) goto truncated;
    rc = 0;
    goto done;
truncated:
    snprintf(err, errlen, "%s: file is truncated", path);
done:
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
