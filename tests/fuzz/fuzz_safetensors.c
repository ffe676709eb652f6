/* fuzz_safetensors.c - safetensors header parsing and VGG weight loading.
 *
 * The input is a whole .safetensors file. safetensors_parse() must accept it only when
 * every tensor lies inside the data and matches its dtype and shape; each accepted tensor is
 * converted to float32 (reading every byte it claims). Then the same bytes go through
 * vgg_weights_load() for a reduced VGG11 (channels / 64, 32x32 input, 4 hidden, 3 classes:
 * the seeds in corpus/safetensors/ are valid files for it), which maps the file and checks
 * every name and shape; seeds with head metadata (vgg11_head_*) describe their own network
 * (BatchNorm, pooling, dense sizes, sigmoid, input size), which the loader then follows.
 * The metadata "labels", when there, goes through vgg_labels_parse() as the loader reads it
 * (fuzz_labels checks what that gives). */
#include <string.h>

#include "fuzz_util.h"
#include "labels.h"
#include "safetensors.h"
#include "vgg_weights.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* An exact-size copy: ASan flags any read past the file. */
    uint8_t *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    safetensors_file f;
    char err[512];
    if (safetensors_parse(&f, buf, size, err, sizeof err) == 0) {
        for (int i = 0; i < f.n_tensors; i++) {
            const safetensors_tensor *t = &f.tensors[i];
            FUZZ_CHECK(t->data >= buf && t->data + t->nbytes <= buf + size);
            FUZZ_CHECK(safetensors_find(&f, t->name) != NULL);
            float *out = malloc(t->numel ? (size_t)t->numel * sizeof(float) : 1);
            FUZZ_CHECK(safetensors_to_f32(t, out) == 0);
            free(out);
        }
        const char *labels = safetensors_metadata(&f, "labels");
        vgg_labels l;
        if (labels && vgg_labels_parse((const uint8_t *)labels, strlen(labels), &l, err,
                                       sizeof err) == 0)
            vgg_labels_free(&l);
        safetensors_close(&f);
    } else {
        FUZZ_CHECK(memchr(err, '\0', sizeof err));
        FUZZ_CHECK(f.n_tensors == 0 && f.tensors == NULL);
    }
    free(buf);

    vgg_config cfg;
    FUZZ_CHECK(vgg_config_init_reduced(&cfg, "vgg11", 64, 32, 4, 3));
    vgg_weights w;
    if (vgg_weights_load(&w, &cfg, fuzz_memfile(data, size), err, sizeof err) == 0) {
        if (memcmp(&w.cfg, &cfg, sizeof cfg) == 0) /* no head metadata: the caller's network */
            FUZZ_CHECK(w.n_params == vgg_config_total_params(&cfg));
        FUZZ_CHECK(w.cfg.n_classes >= 2 && w.cfg.n_fc >= 1 && w.cfg.n_fc <= VGG_N_FC);
        FUZZ_CHECK(w.cfg.final_hw >= 1 && w.cfg.input_hw >= VGG_MIN_INPUT_HW);
        vgg_weights_free(&w);
    }
    return 0;
}
