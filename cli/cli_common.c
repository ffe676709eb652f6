/* cli_common.c - option parsing and model set-up shared by the subcommands. */
#include "cli_common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "byte_buffer.h"
#include "calibrate.h"
#include "clock.h"
#include "name_table.h"


static void print_usage(const char *usage, const cli_option *opts, int n_opts) {
    printf("%s\n\nOptions:\n", usage);
    for (int i = 0; i < n_opts; i++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", opts[i].name, opts[i].metavar ? " " : "",
                 opts[i].metavar ? opts[i].metavar : "");
        printf("  %-28s %s\n", left, opts[i].help);
    }
    printf("  %-28s %s\n", "--help", "show this help");
}

int cli_parse(int argc, char **argv, const cli_option *opts, int n_opts, const char *usage,
              const char **positional, int max_pos, int *n_pos) {
    *n_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            print_usage(usage, opts, n_opts);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            if (*n_pos >= max_pos) {
                fprintf(stderr, "error: unexpected argument '%s' (see --help)\n", a);
                return -1;
            }
            positional[(*n_pos)++] = a;
            continue;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const cli_option *o = NULL;
        for (int k = 0; k < n_opts && !o; k++)
            if (strlen(opts[k].name) == len && strncmp(opts[k].name, name, len) == 0) o = &opts[k];
        if (!o) {
            fprintf(stderr, "error: unknown option '%.*s' (see --help)\n", (int)len + 2, a);
            return -1;
        }
        if (!o->metavar) {
            if (eq) {
                fprintf(stderr, "error: --%s takes no value\n", o->name);
                return -1;
            }
            *o->flag = true;
        } else if (eq) {
            *o->value = eq + 1;
        } else if (i + 1 < argc) {
            *o->value = argv[++i];
        } else {
            fprintf(stderr, "error: --%s needs a value (%s)\n", o->name, o->metavar);
            return -1;
        }
    }
    return 0;
}

int cli_parse_int(const char *name, const char *s, long min, long max, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) {
        fprintf(stderr, "error: --%s must be an integer in %ld..%ld, got '%s'\n", name, min, max,
                s);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_choice(const char *name, const char *s, const char *const *names, int *out) {
    if ((*out = name_table_index(names, s)) >= 0) return 0;
    char list[256];
    name_table_join(names, list, sizeof list);
    fprintf(stderr, "error: --%s must be one of %s, got '%s'\n", name, list, s);
    return -1;
}

int cli_int8_float_layers_parse(cli_model_spec *spec, const char *list) {
    if (!list) return 0;
    if (vgg_layer_set_parse(list, &spec->int8_float_layers) != 0) {
        fprintf(stderr, "error: --int8-float-layers: expected layer names like conv2,fc3 "
                "(or none), got '%s'\n", list);
        return -1;
    }
    return 0;
}

int cli_model_spec_parse(cli_model_spec *spec, const char *weights, const char *model,
                         const char *algo, const char *precision) {
    int model_i, algo_i = VGG_ALGO_AUTO, precision_i = spec->precision;
    spec->weights = weights;
    if (cli_parse_choice("model", model ? model : "vgg16", vgg_model_names, &model_i) != 0 ||
        (algo && cli_parse_choice("algo", algo, vgg_algo_names, &algo_i) != 0) ||
        (precision && cli_parse_choice("precision", precision, vgg_precision_names,
                                       &precision_i) != 0))
        return -1;
    spec->model = vgg_model_names[model_i];
    spec->algo = vgg_algo_resolve((vgg_algo)algo_i, (vgg_precision)precision_i);
    spec->precision = (vgg_precision)precision_i;
    return 0;
}

void cli_calibration_path(const char *weights, char *out, size_t cap) {
    snprintf(out, cap, "%s.int8.json", weights);
}

int cli_int8_ranges(const cli_model_spec *spec, const vgg_weights *w,
                    float act_max[VGG_N_LAYERS], bool quiet) {
    char path[4200], err[1024];
    if (spec->weights) {
        cli_calibration_path(spec->weights, path, sizeof path);
        int rc = vgg_calibration_load(path, w, act_max, err, sizeof err);
        if (rc == 0) return 0;
        if (rc < 0) fprintf(stderr, "warning: %s; calibrating again\n", err);
    }
    /* No stored ranges: measure them on generated images (`vggserve calibrate` can add
     * photos), and keep them beside the weights so the next start skips this. */
    const int n = CLI_CALIBRATION_IMAGES;
    const int hw = w->cfg.input_hw;
    float *images = malloc((size_t)n * 3 * hw * hw * sizeof(float));
    if (!images) return -1;
    vgg_calibration_images(images, n, hw, 1);
    if (!quiet) fprintf(stderr, "info: calibrating int8 ranges on %d generated images\n", n);
    int rc = vgg_calibrate(w, images, n, 0, NULL, act_max, err, sizeof err);
    free(images);
    if (rc != 0) {
        fprintf(stderr, "error: calibration: %s\n", err);
        return -1;
    }
    if (spec->weights && vgg_calibration_save(path, w, n, VGG_CALIB_DEFAULT, act_max, err, sizeof err) != 0)
        fprintf(stderr, "warning: %s (ranges not kept; the next start calibrates again)\n", err);
    return 0;
}

int cli_read_file(const char *path, uint8_t **out, size_t *len) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return -1;
    byte_buffer buf = {0};
    /* Read straight into the buffer's free room, which doubles as it fills. */
    while (byte_buffer_reserve(&buf, 1 << 16)) {
        size_t got = fread(buf.data + buf.len, 1, buf.cap - buf.len, fp);
        if (got == 0) break;
        buf.len += got;
    }
    fclose(fp);
    if (buf.failed) { /* out of memory: reported as unreadable */
        byte_buffer_free(&buf);
        return -1;
    }
    *out = byte_buffer_take(&buf, len);
    return 0;
}

int cli_decode_options(const cli_decode_flags *f, image_decode_options *out) {
    int scaling, exif;
    long max_pixels;
    if (cli_parse_choice("decode-scaling", f->scaling, image_decode_scaling_names, &scaling) ||
        cli_parse_choice("exif-orientation", f->exif, image_decode_exif_names, &exif) ||
        cli_parse_int("max-pixels", f->max_pixels, 1, 0x7fffffffffffffffL, &max_pixels) != 0)
        return -1;
    *out = image_decode_options_of(max_pixels, (image_decode_scaling)scaling,
                                   (image_exif_orientation)exif);
    return 0;
}

int cli_load_photos(const char *const *paths, int n, preprocess_mode mode, int hw,
                    const image_decode_options *opt, float *out) {
    const size_t per = (size_t)3 * hw * hw;
    for (int i = 0; i < n; i++) {
        uint8_t *bytes;
        size_t len;
        char err[256];
        if (cli_read_file(paths[i], &bytes, &len) != 0) {
            fprintf(stderr, "error: %s: cannot open\n", paths[i]);
            return -1;
        }
        preprocess_status st = preprocess_bytes(bytes, len, opt, mode, hw, out + i * per, err, sizeof err);
        free(bytes);
        if (st != PREPROCESS_OK) {
            fprintf(stderr, "error: %s: %s\n", paths[i], err);
            return -1;
        }
    }
    return 0;
}

int cli_read_tensor(const char *path, int hw, npy_array *arr) {
    char err[1024];
    if (npy_read(path, arr, err, sizeof err) != 0) {
        fprintf(stderr, "error: %s\n", err);
        return -1;
    }
    if (strcmp(arr->dtype, "<f4") != 0 || arr->ndim != 4 || arr->shape[1] != 3 ||
        arr->shape[2] != hw || arr->shape[3] != hw) {
        fprintf(stderr, "error: %s: need a float32 array of shape (N, 3, %d, %d)\n", path, hw, hw);
        free(arr->data);
        arr->data = NULL;
        return -1;
    }
    return 0;
}

int cli_fill_batch(const cli_inputs *src, int *next, int batch, float *in, cli_row_name *names,
                   int *status) {
    char err[1024];
    int n = 0;
    for (; *next < src->n_rows && n < batch; (*next)++) {
        const int row = *next;
        if (src->tensor) {
            memcpy(in + n * src->per_image, (const float *)src->arr->data + row * src->per_image,
                   src->per_image * sizeof(float));
            snprintf(names[n++], sizeof names[0], "%s#%d", src->tensor, row);
            continue;
        }
        uint8_t *bytes;
        size_t len;
        if (cli_read_file(src->files[row], &bytes, &len) != 0) {
            fprintf(stderr, "error: %s: cannot read\n", src->files[row]);
            *status = 1;
            continue;
        }
        preprocess_status ps = preprocess_bytes(bytes, len, src->decode, src->mode, src->hw,
                                                in + n * src->per_image, err, sizeof err);
        free(bytes);
        if (ps != PREPROCESS_OK) {
            fprintf(stderr, "error: %s: %s\n", src->files[row], err);
            *status = 1;
            continue;
        }
        snprintf(names[n++], sizeof names[0], "%s", src->files[row]);
    }
    return n;
}

int cli_model_options(const cli_model_spec *spec, const vgg_weights *w,
                      float act_max[VGG_N_LAYERS], vgg_model_options *opt, bool quiet) {
    *opt = (vgg_model_options){.algo = spec->algo, .precision = spec->precision,
                               .fc1_layout = spec->fc1_layout,
                               .explain_plain_fc = spec->explain_plain_fc,
                               .max_batch = spec->max_batch > 0 ? spec->max_batch : 16};
    if (spec->precision != VGG_PRECISION_INT8) return 0;
    if (cli_int8_ranges(spec, w, act_max, quiet) != 0) return -1;
    opt->act_max = act_max;
    opt->int8_float_layers = spec->int8_float_layers;
    return 0;
}

int cli_build_model(const cli_model_spec *spec, vgg_weights *w, vgg_model **m, bool quiet) {
    vgg_config cfg;
    vgg_config_init(&cfg, spec->model);
    char err[2048];
    if (spec->weights) {
        if (vgg_weights_load(w, &cfg, spec->weights, err, sizeof err) != 0) {
            fprintf(stderr, "error: %s\n", err);
            return -1;
        }
    } else {
        if (!quiet)
            fprintf(stderr, "warning: no --weights given: using GENERATED weights (seed %llu); "
                    "predictions are meaningless\n", (unsigned long long)spec->seed);
        if (vgg_weights_generate(w, &cfg, spec->seed) != 0) {
            fprintf(stderr, "error: out of memory generating weights\n");
            return -1;
        }
    }
    vgg_model_options opt;
    float act_max[VGG_N_LAYERS];
    if (cli_model_options(spec, w, act_max, &opt, quiet) != 0) {
        vgg_weights_free(w);
        return -1;
    }
    *m = vgg_model_create(w, &opt, err, sizeof err);
    if (!*m) {
        fprintf(stderr, "error: %s\n", err);
        vgg_weights_free(w);
        return -1;
    }
    return 0;
}

int64_t cli_rss_bytes(void) {
    FILE *fp = fopen("/proc/self/status", "r");
    if (!fp) return 0;
    char line[256];
    long long kb = 0;
    while (fgets(line, sizeof line, fp))
        if (sscanf(line, "VmRSS: %lld kB", &kb) == 1) break;
    fclose(fp);
    return kb * 1024;
}

double cli_now_s(void) { return clock_monotonic_ns() / 1e9; }

int cli_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int cli_run_options(const cli_run_flags *f, int n_images, cli_run_settings *out) {
    memset(out, 0, sizeof *out);
    long threads, batch, seed;
    int mode;
    if (cli_decode_options(&f->decode, &out->decode) != 0 ||
        cli_parse_int("threads", f->threads, 0, 1024, &threads) ||
        cli_parse_int("batch", f->batch, 1, CLI_MAX_BATCH, &batch) ||
        cli_parse_int("seed", f->seed, 0, 0x7fffffffffffffffL, &seed) ||
        cli_parse_choice("mode", f->mode, preprocess_setting_names, &mode) != 0)
        return -1;
    if (!f->tensor && n_images == 0) {
        fprintf(stderr, "error: give at least one IMAGE or --tensor FILE.npy (see --help)\n");
        return -1;
    }
    out->spec.seed = (uint64_t)seed;
    out->spec.max_batch = (int)batch;
    if (cli_model_spec_parse(&out->spec, f->weights, f->model, f->algo, f->precision) != 0)
        return -1;
    out->mode = (preprocess_setting)mode;
    out->threads = (int)threads;
    out->batch = (int)batch;
    out->tensor = f->tensor;
    out->labels = f->labels;
    return 0;
}

int cli_run_open(cli_run *run, const cli_run_settings *rs, const char *const *images,
                 int n_images) {
    const cli_model_spec *spec = &rs->spec;
    const char *tensor = rs->tensor;
    memset(run, 0, sizeof *run);
    int n_rows = n_images;
    if (tensor && n_images) {
        fprintf(stderr, "error: give either IMAGE arguments or --tensor, not both\n");
        return 2;
    }
    if (cli_build_model(spec, &run->w, &run->m, false) != 0) {
        memset(&run->w, 0, sizeof run->w); /* cli_build_model frees what it held */
        return 1;
    }
    char err[1024];
    if (vgg_labels_for_model(rs->labels, spec->weights, vgg_model_config(run->m)->n_classes,
                             &run->labels, err, sizeof err) != 0) {
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }
    /* The input size is the model's: its weights file may describe its own head. */
    const int hw = vgg_model_config(run->m)->input_hw;
    if (tensor) {
        if (cli_read_tensor(tensor, hw, &run->arr) != 0) return 1;
        n_rows = (int)run->arr.shape[0];
    }
    preprocess_mode mode;
    if (preprocess_resolve(rs->mode, run->w.preprocess, &mode) == 1)
        fprintf(stderr, "warning: the weights file asks for preprocessing '%s', which vggserve "
                "does not know; using torchvision's\n", run->w.preprocess);
    run->e = vgg_engine_create(run->m, rs->threads, err, sizeof err);
    if (!run->e) {
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }
    run->src = (cli_inputs){images, tensor, &run->arr, n_rows, (size_t)3 * hw * hw, hw,
                            &rs->decode, mode};
    return 0;
}

void cli_run_close(cli_run *run) {
    free(run->arr.data);
    vgg_engine_free(run->e);
    vgg_model_free(run->m);
    vgg_weights_free(&run->w);
    vgg_labels_free(&run->labels);
    memset(run, 0, sizeof *run);
}
