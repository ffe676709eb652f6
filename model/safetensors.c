/* safetensors.c - validating reader and streaming writer for safetensors files. */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int dtype_size(safetensors_dtype d) { return d == ST_F32 ? 4 : 2; }

static safetensors_dtype dtype_from_name(const char *s) {
    if (strcmp(s, "F32") == 0) return ST_F32;
    if (strcmp(s, "F16") == 0) return ST_F16;
    if (strcmp(s, "BF16") == 0) return ST_BF16;
    return ST_OTHER;
}

void safetensors_close(safetensors_file *f) {
    for (int i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_values[i]);
    }
    free(f->tensors);
    if (f->map) munmap(f->map, f->map_size);
    memset(f, 0, sizeof *f);
}

static int cmp_by_offset(const void *a, const void *b) {
    const safetensors_tensor *x = a, *y = b;
    return (x->data > y->data) - (x->data < y->data);
}

/* Parses one header entry into *t; data begins at `data`, `data_size` bytes long. */
static int parse_entry(safetensors_tensor *t, const char *name, json_t *v, const uint8_t *data,
                       uint64_t data_size, char *err, size_t errlen) {
    if (!json_is_object(v)) {
        snprintf(err, errlen, "tensor '%s': header entry is not an object", name);
        return -1;
    }
    json_t *dtype = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape"),
           *offsets = json_object_get(v, "data_offsets");
    if (!json_is_string(dtype) || !json_is_array(shape) || !json_is_array(offsets) ||
        json_array_size(offsets) != 2) {
        snprintf(err, errlen, "tensor '%s': needs string 'dtype', array 'shape' and "
                 "two-element 'data_offsets'", name);
        return -1;
    }
    t->name = strdup(name);
    if (!t->name) {
        snprintf(err, errlen, "tensor '%s': out of memory", name);
        return -1;
    }
    snprintf(t->dtype_name, sizeof t->dtype_name, "%s", json_string_value(dtype));
    t->dtype = dtype_from_name(t->dtype_name);
    if (t->dtype == ST_OTHER) {
        snprintf(err, errlen, "tensor '%s': dtype %s not supported (F32, F16, BF16)", name,
                 t->dtype_name);
        return -1;
    }
    size_t nd = json_array_size(shape);
    if (nd > SAFETENSORS_MAX_DIMS) {
        snprintf(err, errlen, "tensor '%s': %zu dimensions (at most %d)", name, nd,
                 SAFETENSORS_MAX_DIMS);
        return -1;
    }
    t->ndim = (int)nd;
    uint64_t numel = 1;
    for (size_t d = 0; d < nd; d++) {
        json_t *s = json_array_get(shape, d);
        if (!json_is_integer(s) || json_integer_value(s) < 0) {
            snprintf(err, errlen, "tensor '%s': shape[%zu] is not a non-negative integer", name, d);
            return -1;
        }
        uint64_t dim = (uint64_t)json_integer_value(s);
        if (dim != 0 && numel > UINT64_MAX / 4 / dim) {
            snprintf(err, errlen, "tensor '%s': shape overflows", name);
            return -1;
        }
        numel *= dim;
        t->shape[d] = (int64_t)dim;
    }
    json_t *b = json_array_get(offsets, 0), *e = json_array_get(offsets, 1);
    if (!json_is_integer(b) || !json_is_integer(e) || json_integer_value(b) < 0 ||
        json_integer_value(e) < json_integer_value(b)) {
        snprintf(err, errlen, "tensor '%s': data_offsets must be integers 0 <= begin <= end", name);
        return -1;
    }
    uint64_t begin = (uint64_t)json_integer_value(b), end = (uint64_t)json_integer_value(e);
    if (end > data_size) {
        snprintf(err, errlen, "tensor '%s': data_offsets [%llu, %llu] run past the end of the "
                 "data (%llu bytes): file truncated or header wrong", name,
                 (unsigned long long)begin, (unsigned long long)end,
                 (unsigned long long)data_size);
        return -1;
    }
    if (end - begin != numel * (uint64_t)dtype_size(t->dtype)) {
        snprintf(err, errlen, "tensor '%s': %llu bytes in data_offsets but shape x %s needs %llu",
                 name, (unsigned long long)(end - begin), t->dtype_name,
                 (unsigned long long)(numel * dtype_size(t->dtype)));
        return -1;
    }
    t->numel = (int64_t)numel;
    t->data = data + begin;
    t->nbytes = (size_t)(end - begin);
    return 0;
}

/* Keeps the string entries of the header's "__metadata__" object (the first
 * SAFETENSORS_MAX_METADATA; anything else, or a meta that is not an object, is ignored). */
static int parse_metadata(safetensors_file *f, json_t *meta, char *err, size_t errlen) {
    const char *key;
    json_t *value;
    json_object_foreach(meta, key, value) {
        if (!json_is_string(value) || f->n_meta == SAFETENSORS_MAX_METADATA) continue;
        char *k = strdup(key), *v = strdup(json_string_value(value));
        if (!k || !v) {
            free(k);
            free(v);
            snprintf(err, errlen, "metadata '%s': out of memory", key);
            return -1;
        }
        f->meta_keys[f->n_meta] = k;
        f->meta_values[f->n_meta] = v;
        f->n_meta++;
    }
    return 0;
}

/* Rejects a table whose tensors overlap in the data section: the header lies. Checked on a
 * sorted copy of the table, so the file's order is kept. */
static int check_no_overlap(const safetensors_file *f, char *err, size_t errlen) {
    safetensors_tensor *sorted = malloc(f->n_tensors * sizeof *sorted);
    if (!sorted) {
        snprintf(err, errlen, "out of memory checking %d tensors", f->n_tensors);
        return -1;
    }
    memcpy(sorted, f->tensors, f->n_tensors * sizeof *sorted);
    qsort(sorted, f->n_tensors, sizeof *sorted, cmp_by_offset);
    int rc = 0;
    for (int i = 1; i < f->n_tensors && rc == 0; i++)
        if (sorted[i].data < sorted[i - 1].data + sorted[i - 1].nbytes) {
            snprintf(err, errlen, "tensors '%s' and '%s' overlap in the data section",
                     sorted[i - 1].name, sorted[i].name);
            rc = -1;
        }
    free(sorted);
    return rc;
}

int safetensors_parse(safetensors_file *f, const uint8_t *buf, size_t size, char *err,
                      size_t errlen) {
    memset(f, 0, sizeof *f);
    if (size < 8) {
        snprintf(err, errlen, "%zu bytes: too short for a safetensors file", size);
        return -1;
    }
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; i--) header_len = header_len << 8 | buf[i];
    if (header_len > SAFETENSORS_MAX_HEADER || header_len > size - 8) {
        snprintf(err, errlen, "header length %llu is impossible for a %zu-byte file: not a "
                 "safetensors file, or truncated", (unsigned long long)header_len, size);
        return -1;
    }
    if (header_len < 2 || buf[8] != '{') {
        snprintf(err, errlen, "header does not start with '{': not a safetensors file");
        return -1;
    }
    json_error_t jerr;
    json_t *root = json_loadb((const char *)buf + 8, (size_t)header_len, JSON_REJECT_DUPLICATES,
                              &jerr);
    if (!root || !json_is_object(root)) {
        snprintf(err, errlen, "header is not a JSON object: %s (line %d)",
                 root ? "wrong type" : jerr.text, jerr.line);
        json_decref(root);
        return -1;
    }
    const uint8_t *data = buf + 8 + header_len;
    uint64_t data_size = size - 8 - header_len;
    f->tensors = calloc(json_object_size(root) + 1, sizeof *f->tensors);
    if (!f->tensors) {
        snprintf(err, errlen, "out of memory for %zu header entries", json_object_size(root));
        json_decref(root);
        return -1;
    }
    const char *name;
    json_t *v;
    int rc = 0;
    json_object_foreach(root, name, v) {
        if (strcmp(name, "__metadata__") == 0) rc = parse_metadata(f, v, err, errlen);
        else rc = parse_entry(&f->tensors[f->n_tensors++], name, v, data, data_size, err, errlen);
        if (rc != 0) break;
    }
    json_decref(root);
    if (rc == 0 && f->n_tensors > 1) rc = check_no_overlap(f, err, errlen);
    if (rc != 0) safetensors_close(f);
    return rc;
}

int safetensors_open(safetensors_file *f, const char *path, char *err, size_t errlen) {
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
        close(fd);
        return -1;
    }
    size_t size = (size_t)st.st_size;
    void *map = size ? mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
    close(fd);
    if (size && map == MAP_FAILED) {
        snprintf(err, errlen, "%s: mmap: %s", path, strerror(errno));
        return -1;
    }
    char inner[512];
    if (safetensors_parse(f, map ? map : (const uint8_t *)"", size, inner, sizeof inner) != 0) {
        snprintf(err, errlen, "%s: %s", path, inner);
        if (map) munmap(map, size);
        return -1;
    }
    f->map = map;
    f->map_size = size;
    return 0;
}

const safetensors_tensor *safetensors_find(const safetensors_file *f, const char *name) {
    for (int i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

float safetensors_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | mant << 13; /* inf, nan */
    } else if (exp != 0) {
        bits = sign | (exp + 112) << 23 | mant << 13;
    } else if (mant == 0) {
        bits = sign;
    } else { /* subnormal: normalise */
        exp = 113;
        while (!(mant & 0x400)) {
            mant <<= 1;
            exp--;
        }
        bits = sign | exp << 23 | (mant & 0x3ff) << 13;
    }
    float out;
    memcpy(&out, &bits, 4);
    return out;
}

float safetensors_bf16_to_f32(uint16_t b) {
    uint32_t bits = (uint32_t)b << 16;
    float out;
    memcpy(&out, &bits, 4);
    return out;
}

/* A file truncated while it is mapped: reading a page past its new end raises SIGBUS. While a
 * thread copies from a map, bus_jump points at its return point; the handler jumps back there,
 * and the copy fails. A SIGBUS anywhere else is not ours: the default action, as before. */
static _Thread_local sigjmp_buf *bus_jump;

static void on_sigbus(int sig) {
    if (bus_jump) siglongjmp(*bus_jump, 1);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_sigbus_handler(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigbus;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_NODEFER;
    sigaction(SIGBUS, &sa, NULL);
}

static int convert(const safetensors_tensor *t, float *out);

int safetensors_to_f32(const safetensors_tensor *t, float *out) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, install_sigbus_handler);
    sigjmp_buf here;
    if (sigsetjmp(here, 1)) {
        bus_jump = NULL;
        return -2; /* the file shrank under the map */
    }
    bus_jump = &here;
    int rc = convert(t, out);
    bus_jump = NULL;
    return rc;
}

static int convert(const safetensors_tensor *t, float *out) {
    const uint8_t *p = t->data;
    switch (t->dtype) {
    case ST_F32:
        memcpy(out, p, t->nbytes); /* little-endian host assumed (x86-64, arm64) */
        return 0;
    case ST_F16:
    case ST_BF16:
        for (int64_t i = 0; i < t->numel; i++) {
            uint16_t h = (uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
            out[i] = t->dtype == ST_F16 ? safetensors_f16_to_f32(h) : safetensors_bf16_to_f32(h);
        }
        return 0;
    default:
        return -1;
    }
}

int safetensors_write_f32(const char *path, int n, const char *const *names,
                          const int64_t (*shapes)[SAFETENSORS_MAX_DIMS], const int *ndims,
                          const float *const *data, const char *const *metadata, char *err,
                          size_t errlen) {
    json_t *root = json_object();
    if (metadata) {
        json_t *meta = json_object();
        for (const char *const *kv = metadata; kv[0]; kv += 2)
            json_object_set_new(meta, kv[0], json_string(kv[1]));
        json_object_set_new(root, "__metadata__", meta);
    }
    uint64_t offset = 0;
    size_t *nbytes = calloc(n > 0 ? n : 1, sizeof *nbytes);
    if (!nbytes) {
        json_decref(root);
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        json_t *shape = json_array();
        uint64_t numel = 1;
        for (int d = 0; d < ndims[i]; d++) {
            json_array_append_new(shape, json_integer(shapes[i][d]));
            numel *= (uint64_t)shapes[i][d];
        }
        nbytes[i] = numel * 4;
        json_t *entry = json_pack("{s:s, s:o, s:[I,I]}", "dtype", "F32", "shape", shape,
                                  "data_offsets", (json_int_t)offset,
                                  (json_int_t)(offset + nbytes[i]));
        json_object_set_new(root, names[i], entry);
        offset += nbytes[i];
    }
    /* Keys in insertion order keep the file readable; pad the header to 8 bytes so every
     * tensor stays 4-byte aligned for readers that map the file. */
    char *header = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!header) { /* jansson returns NULL (and passes NULL along) when it runs out of memory */
        snprintf(err, errlen, "%s: out of memory writing the header", path);
        free(nbytes);
        return -1;
    }
    size_t hlen = strlen(header), padded = (hlen + 7) / 8 * 8;
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        free(header);
        free(nbytes);
        return -1;
    }
    uint8_t len_le[8];
    for (int i = 0; i < 8; i++) len_le[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    int ok = fwrite(len_le, 1, 8, fp) == 8 && fwrite(header, 1, hlen, fp) == hlen;
    for (size_t i = hlen; ok && i < padded; i++) ok = fputc(' ', fp) != EOF;
    for (int i = 0; ok && i < n; i++) ok = fwrite(data[i], 1, nbytes[i], fp) == nbytes[i];
    ok = (fclose(fp) == 0) && ok;
    free(header);
    free(nbytes);
    if (!ok) {
        snprintf(err, errlen, "%s: write failed: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

const char *safetensors_metadata(const safetensors_file *f, const char *key) {
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_values[i];
    return NULL;
}
