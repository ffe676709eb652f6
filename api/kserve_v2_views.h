/* kserve_v2_views.h - the model views' one table, shared by the kserve_v2_*.c files only.
 *
 * Which inputs and outputs each view of the served model has (kserve_v2.h explains the
 * views) and the outputs' names, by kserve_v2_output_kind. Constant data: thread-safe. */
#ifndef API_KSERVE_V2_VIEWS_H
#define API_KSERVE_V2_VIEWS_H

#include <stdbool.h>

#include "kserve_v2.h"

typedef struct {
    const char *suffix;
    bool image_input, tensor_input;
    bool outputs[KSERVE_V2_OUT_COUNT]; /* gradcam also needs a model that explains */
} kserve_v2_view_spec;

extern const kserve_v2_view_spec kserve_v2_views[KSERVE_V2_VIEW_COUNT];
extern const char *const kserve_v2_output_names[KSERVE_V2_OUT_COUNT];

/* Whether view v offers output k on a model whose maps are gradcam_hw wide (0: none). */
bool kserve_v2_view_has_output(const kserve_v2_view_spec *v, kserve_v2_output_kind k,
                               int gradcam_hw);

#endif
