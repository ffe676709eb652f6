/* fuzz_labels.c - label files (model/labels_parse.c): text lines, TorchServe's
 * index_to_name.json, Keras's class_indices.json, a JSON list.
 *
 * The input is a label file. vgg_labels_parse() must either refuse it, leaving nothing
 * allocated and a terminated message, or give 1..VGG_LABELS_MAX_CLASSES names of 1..
 * VGG_LABELS_MAX_NAME bytes without control characters, WordNet ids the same where present. */
#include <string.h>

#include "fuzz_util.h"
#include "labels.h"

static void check_string(const char *s) {
    FUZZ_CHECK(s != NULL);
    size_t n = strlen(s);
    FUZZ_CHECK(n >= 1 && n <= VGG_LABELS_MAX_NAME);
    for (size_t i = 0; i < n; i++) FUZZ_CHECK((unsigned char)s[i] >= 0x20 && s[i] != 0x7f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* An exact-size copy: ASan flags any read past the file (it is not NUL-terminated). */
    uint8_t *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    vgg_labels l;
    char err[512];
    if (vgg_labels_parse(buf, size, &l, err, sizeof err) == 0) {
        FUZZ_CHECK(l.n >= 1 && l.n <= VGG_LABELS_MAX_CLASSES);
        FUZZ_CHECK(l.format >= VGG_LABELS_TEXT && l.format < VGG_LABELS_FORMAT_COUNT);
        for (int i = 0; i < l.n; i++) {
            check_string(vgg_labels_name(&l, i));
            if (vgg_labels_wnid(&l, i)) check_string(vgg_labels_wnid(&l, i));
        }
        FUZZ_CHECK(vgg_labels_name(&l, l.n) == NULL);
        vgg_labels_free(&l);
    } else {
        FUZZ_CHECK(memchr(err, '\0', sizeof err) && err[0]);
        FUZZ_CHECK(l.n == 0 && l.names == NULL && l.wnids == NULL);
    }
    free(buf);
    return 0;
}
