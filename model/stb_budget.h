/* stb_budget.h - a memory bound on one stb_image decode, per thread.
 *
 * stb_image grows its zlib output buffer for as long as the IDAT data inflates: a 1x1 PNG
 * whose IDAT inflates to 1.9 GiB cost 1.9 GiB and 7.8 s (issue 25). stb_image_impl.c routes
 * stb's STBI_MALLOC/REALLOC/FREE through a per-thread count of the bytes stb holds; between
 * stb_budget_begin() and stb_budget_end() an allocation that would pass the limit fails
 * (stb then fails with "outofmem"), and stb_budget_end() says that it happened.
 *
 * Memory stb returns stays plain malloc memory: free() releases it (the count is only kept
 * inside the window). Thread-safe: the state is _Thread_local. */
#ifndef MODEL_STB_BUDGET_H
#define MODEL_STB_BUDGET_H

#include <stdbool.h>
#include <stddef.h>

void stb_budget_begin(size_t limit_bytes);
/* Ends the window; true when some allocation was refused for the limit. */
bool stb_budget_end(void);

#endif
