/* labels.c - lookup into the generated tables (labels_data.c). */
#include "labels.h"

#include <stddef.h>

extern const char *const labels_names[LABELS_COUNT];
extern const char *const labels_wnids[LABELS_COUNT];

const char *labels_name(int class_id) {
    return class_id >= 0 && class_id < LABELS_COUNT ? labels_names[class_id] : NULL;
}

const char *labels_wnid(int class_id) {
    return class_id >= 0 && class_id < LABELS_COUNT ? labels_wnids[class_id] : NULL;
}
