/* topk.h - the k most probable classes, highest first (ties broken by lower class id).
 * Pure function: thread-safe. */
#ifndef TOPK_H
#define TOPK_H

/* Writes min(k, n) indices into out_idx. */
int topk_indices(const float *scores, int n, int k, int *out_idx);

#endif
