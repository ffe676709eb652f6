/* stb_image_impl.c - the one translation unit that compiles stb_image, PNG only.
 *
 * JPEG goes through libjpeg-turbo and WebP through libwebp (model/image_decode.c); stb keeps
 * PNG. STBI_MAX_DIMENSIONS caps either side so that a hostile header cannot ask for a huge
 * allocation even before our own pixel limit runs; failure reasons stay on (thread-local in
 * stb when STBI_THREAD_LOCAL is available) so errors can say why a file was refused. Its
 * allocations are counted against the per-thread limit of stb_budget.h. */
#include <malloc.h>
#include <stdbool.h>
#include <stdlib.h>

#include "stb_budget.h"

/* The per-thread window of stb_budget.h: the bytes stb holds, counted as malloc sizes them. */
static _Thread_local struct {
    bool on, hit;
    size_t live, limit;
} budget;

void stb_budget_begin(size_t limit_bytes) {
    budget.on = true;
    budget.hit = false;
    budget.live = 0;
    budget.limit = limit_bytes;
}

bool stb_budget_end(void) {
    budget.on = false;
    return budget.hit;
}

/* Whether stb may hold n more bytes, having given back old. */
static bool budget_allows(size_t old, size_t n) {
    if (!budget.on) return true;
    size_t live = budget.live > old ? budget.live - old : 0;
    if (n <= budget.limit && live <= budget.limit - n) return true;
    budget.hit = true;
    return false;
}

static void budget_count(size_t old, void *p) {
    if (!budget.on) return;
    budget.live = budget.live > old ? budget.live - old : 0;
    if (p) budget.live += malloc_usable_size(p);
}

static void *budget_malloc(size_t n) {
    if (!budget_allows(0, n)) return NULL;
    void *p = malloc(n);
    budget_count(0, p);
    return p;
}

static void *budget_realloc(void *p, size_t n) {
    size_t old = p ? malloc_usable_size(p) : 0;
    if (!budget_allows(old, n)) return NULL;
    void *q = realloc(p, n);
    budget_count(q ? old : 0, q);
    return q;
}

static void budget_free(void *p) {
    budget_count(p ? malloc_usable_size(p) : 0, NULL);
    free(p);
}

#define STBI_MALLOC(n) budget_malloc(n)
#define STBI_REALLOC(p, n) budget_realloc(p, n)
#define STBI_FREE(p) budget_free(p)
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_NO_STDIO
#define STBI_MAX_DIMENSIONS (1 << 16)
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#endif
#include <stb/stb_image.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
