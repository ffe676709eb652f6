/* safetensors.h - read and write the safetensors container (Hugging Face's weight format).
 *
 * Layout: 8-byte little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
 * then the raw little-endian tensor bytes; offsets are relative to the end of the header.
 *
 * safetensors_open() maps the file read-only and validates everything the header claims
 * (dtype, shape, offsets inside the file, byte count equal to shape x dtype size, no overlap)
 * before any tensor is touched, so a lying or truncated file is an error, never a crash.
 * safetensors_parse() does the same on a buffer the caller owns (used by the fuzzer).
 *
 * Ownership: a safetensors_file owns its mapping and tensor table; tensor data pointers are
 * borrowed from it and die with safetensors_close(). Not thread-safe to open/close
 * concurrently on one object; reads of an open file are.
 */
#ifndef SAFETENSORS_H
#define SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define SAFETENSORS_MAX_DIMS 8
#define SAFETENSORS_MAX_HEADER (100u << 20) /* 100 MiB: far above any real header */

typedef enum { ST_F32, ST_F16, ST_BF16, ST_OTHER } safetensors_dtype;

typedef struct {
    char *name;
    safetensors_dtype dtype;
    char dtype_name[16];
    int ndim;
    int64_t shape[SAFETENSORS_MAX_DIMS];
    int64_t numel;
    const uint8_t *data; /* borrowed: inside the mapping */
    size_t nbytes;
} safetensors_tensor;

#define SAFETENSORS_MAX_METADATA 32

typedef struct {
    safetensors_tensor *tensors;
    int n_tensors;
    /* "__metadata__" string entries (the format allows only strings), in file order; the
     * first SAFETENSORS_MAX_METADATA are kept. */
    char *meta_keys[SAFETENSORS_MAX_METADATA], *meta_values[SAFETENSORS_MAX_METADATA];
    int n_meta;
    void *map;       /* mmap of the file, or NULL when parsed from a caller's buffer */
    size_t map_size;
} safetensors_file;

/* Opens and validates path. Returns 0, or -1 with a message naming the file and the problem
 * in err. On failure *f is left closed (nothing to free). */
int safetensors_open(safetensors_file *f, const char *path, char *err, size_t errlen);

/* Validates a whole file image held in buf (borrowed; must outlive *f). */
int safetensors_parse(safetensors_file *f, const uint8_t *buf, size_t size, char *err,
                      size_t errlen);

void safetensors_close(safetensors_file *f);

/* Finds a tensor by name (borrowed), or NULL. */
const safetensors_tensor *safetensors_find(const safetensors_file *f, const char *name);

/* The "__metadata__" value of key, or NULL. */
const char *safetensors_metadata(const safetensors_file *f, const char *key);

/* Converts tensor data to float32 into out (numel floats). F32, F16 and BF16 only: -1 for
 * another dtype. -2 when the mapped file was truncated under the map (the read raised SIGBUS,
 * which a handler installed on first use turns into this error; issue 25: it crashed the
 * server with no message). */
int safetensors_to_f32(const safetensors_tensor *t, float *out);

/* Writer: streams F32 tensors to path. `names`, `shapes`/`ndims` and `data` describe n
 * tensors stored in that order; `metadata` is a NULL-terminated key, value list (may be NULL).
 * Returns 0, or -1 with err. */
int safetensors_write_f32(const char *path, int n, const char *const *names,
                          const int64_t (*shapes)[SAFETENSORS_MAX_DIMS], const int *ndims,
                          const float *const *data, const char *const *metadata, char *err,
                          size_t errlen);

float safetensors_f16_to_f32(uint16_t h);
float safetensors_bf16_to_f32(uint16_t b);

#endif
