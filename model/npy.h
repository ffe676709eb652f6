/* npy.h - NumPy .npy files of float32 (read and write) and uint8 (read), C order.
 *
 * Enough of the format (versions 1.0-3.0, little-endian '<f4' / '|u1', fortran_order False)
 * for the CLI's --tensor input, `preprocess --out`, and the test fixtures. Reentrant.
 */
#ifndef NPY_H
#define NPY_H

#include <stddef.h>
#include <stdint.h>

#define NPY_MAX_DIMS 8

typedef struct {
    int ndim;
    int64_t shape[NPY_MAX_DIMS];
    int64_t numel;
    char dtype[8];   /* "<f4" or "|u1" */
    void *data;      /* owned: free() it */
} npy_array;

/* Reads path. Returns 0, or -1 with err naming the file and the problem. */
int npy_read(const char *path, npy_array *out, char *err, size_t errlen);

/* Writes a float32 array. */
int npy_write_f32(const char *path, const float *data, const int64_t *shape, int ndim,
                  char *err, size_t errlen);

#endif
