/* test_labels_topk.c - model/topk against a full sort (ties to the lower index) and
 * model/labels: ImageNet's 1000 names and WordNet ids. */
#include "labels.h"
#include "test_model_util.h"
#include "topk.h"
#include "vgg_weights.h"

/* Reference: full sort by (score desc, index asc). */
static const float *ref_scores;
static int cmp_ref(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    if (ref_scores[i] != ref_scores[j]) return ref_scores[i] > ref_scores[j] ? -1 : 1;
    return (i > j) - (i < j);
}

static void test_topk(void) {
    const float s[6] = {0.1f, 0.5f, 0.3f, 0.5f, 0.9f, -1.0f};
    int idx[8] = {0};
    EXPECT(topk_indices(s, 6, 3, idx) == 3);
    EXPECT(idx[0] == 4 && idx[1] == 1 && idx[2] == 3); /* tie 1 vs 3: lower id first */
    EXPECT(topk_indices(s, 6, 2, idx) == 2);
    EXPECT(idx[0] == 4 && idx[1] == 1); /* the tie at the cut keeps the lower id */
    EXPECT(topk_indices(s, 6, 1, idx) == 1 && idx[0] == 4);
    EXPECT(topk_indices(s, 6, 8, idx) == 6); /* k > n: all, sorted */
    EXPECT(idx[0] == 4 && idx[1] == 1 && idx[2] == 3 && idx[3] == 2 && idx[4] == 0 && idx[5] == 5);
    const float flat[5] = {2, 2, 2, 2, 2};
    EXPECT(topk_indices(flat, 5, 3, idx) == 3 && idx[0] == 0 && idx[1] == 1 && idx[2] == 2);
    const float rising[5] = {-INFINITY, -3, -2, -1, 0};
    EXPECT(topk_indices(rising, 5, 2, idx) == 2 && idx[0] == 4 && idx[1] == 3);

    /* Against a full sort on 1000 scores with many ties. */
    float big[1000];
    uint64_t st = 7;
    for (int i = 0; i < 1000; i++) big[i] = (float)(vgg_splitmix64(&st) % 50) / 7.0f;
    int ref[1000], got[1000];
    for (int i = 0; i < 1000; i++) ref[i] = i;
    ref_scores = big;
    qsort(ref, 1000, sizeof ref[0], cmp_ref);
    const int ks[4] = {1, 5, 37, 1000};
    for (int t = 0; t < 4; t++) {
        EXPECT(topk_indices(big, 1000, ks[t], got) == ks[t]);
        EXPECT(memcmp(got, ref, (size_t)ks[t] * sizeof(int)) == 0);
    }
}

static void test_labels(void) {
    EXPECT(labels_name(281) && strcmp(labels_name(281), "tabby") == 0);
    EXPECT(labels_wnid(0) && strcmp(labels_wnid(0), "n01440764") == 0);
    EXPECT(labels_name(0) && strcmp(labels_name(0), "tench") == 0);
    EXPECT(labels_name(134) && strcmp(labels_name(134), "crane") == 0);
    EXPECT(labels_name(517) && strcmp(labels_name(517), "crane") == 0);
    EXPECT(labels_name(999) && strcmp(labels_name(999), "toilet tissue") == 0);
    EXPECT(labels_wnid(999) && strcmp(labels_wnid(999), "n15075141") == 0);
    EXPECT(labels_name(-1) == NULL && labels_name(1000) == NULL && labels_wnid(1000) == NULL);
    /* WordNet ids are unique and well formed; names are non-empty. */
    const char *w[LABELS_COUNT];
    int ok = 1;
    for (int i = 0; i < LABELS_COUNT; i++) {
        w[i] = labels_wnid(i);
        ok &= w[i] && strlen(w[i]) == 9 && w[i][0] == 'n' && labels_name(i) && labels_name(i)[0];
    }
    EXPECT(ok);
    if (ok) {
        qsort(w, LABELS_COUNT, sizeof w[0], cmp_str);
        int unique = 1;
        for (int i = 1; i < LABELS_COUNT; i++) unique &= strcmp(w[i - 1], w[i]) != 0;
        EXPECT(unique);
    }
}

int main(int argc, char **argv) {
    static const test_case tests[] = {
        {"topk", test_topk},
        {"labels", test_labels},
    };
    return model_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
