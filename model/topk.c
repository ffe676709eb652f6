/* topk.c - partial selection by insertion: k is small (default 5) and n is 1000. */
#include "topk.h"

int topk_indices(const float *scores, int n, int k, int *out_idx) {
    if (k > n) k = n;
    if (k <= 0) return 0;
    int count = 0;
    for (int i = 0; i < n; i++) {
        if (count == k && !(scores[i] > scores[out_idx[k - 1]])) continue;
        int pos = count < k ? count++ : k - 1;
        while (pos > 0 && scores[i] > scores[out_idx[pos - 1]]) {
            out_idx[pos] = out_idx[pos - 1];
            pos--;
        }
        out_idx[pos] = i;
    }
    return count;
}
