/* cli_common.h - what every `vggserve` subcommand shares: option parsing, loading or
 * generating weights, building the model, and the JSON shape of one prediction.
 *
 * Start-up regime: these functions print to stderr and return an error; they never exit.
 * Single-threaded use (the CLI's main thread). */
#ifndef CLI_COMMON_H
#define CLI_COMMON_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine.h"
#include "image_decode.h"
#include "labels.h"
#include "npy.h"
#include "preprocess.h"
#include "vgg_weights.h"

/* One option of a subcommand: --name VALUE (or --name=VALUE), or a --name flag. */
typedef struct {
    const char *name;     /* without dashes */
    const char *metavar;  /* NULL for a flag */
    const char *help;
    const char **value;   /* out: the value (string options) */
    bool *flag;           /* out: set when present (flags) */
} cli_option;

/* Parses argv[1..] (argv[0] is the subcommand). Positionals are collected into
 * positional[] (at most max_pos). Returns 0, 1 after printing help, -1 after an error. */
int cli_parse(int argc, char **argv, const cli_option *opts, int n_opts, const char *usage,
              const char **positional, int max_pos, int *n_pos);

int cli_parse_int(const char *name, const char *s, long min, long max, long *out);

/* Model choices common to classify, bench and serve. */
typedef struct {
    const char *weights;  /* NULL: generate with seed */
    const char *model;    /* "vgg16" */
    uint64_t seed;
    vgg_algo algo;
    vgg_precision precision;
    vgg_fc1_layout fc1_layout;
    int max_batch;
    uint32_t int8_float_layers; /* int8: layers kept in f32 (vgg_layer_set_parse) */
    bool explain_plain_fc;      /* vgg_model_options.explain_plain_fc */
} cli_model_spec;

/* s as an index into the NULL-terminated table names (the module's own spellings of an
 * enum): 0, or -1 after printing "--NAME must be one of ...". */
int cli_parse_choice(const char *name, const char *s, const char *const *names, int *out);

/* The model options spec asks for on weights w; for int8 the ranges go into act_max (which
 * must outlive the model's creation). Returns -1 after printing. */
int cli_model_options(const cli_model_spec *spec, const vgg_weights *w,
                      float act_max[VGG_N_LAYERS], vgg_model_options *opt, bool quiet);

/* Reads the whole file at path into a malloc'd buffer (*out, *len; free it). Returns -1 when
 * it cannot be opened. */
int cli_read_file(const char *path, uint8_t **out, size_t *len);

/* The service's decode settings as flags of every command that reads an image (classify,
 * preprocess, calibrate, accuracy): --decode-scaling auto|off, --exif-orientation
 * apply|ignore, --max-pixels N, with the service's defaults. CLI_DECODE_OPTIONS(f) expands to
 * the three cli_option rows; cli_decode_options() checks them into *out. */
typedef struct {
    const char *scaling, *exif, *max_pixels;
} cli_decode_flags;
#define CLI_DECODE_FLAGS_DEFAULT {"auto", "apply", "40000000"}
#define CLI_DECODE_OPTIONS(f)                                                                      \
    {"decode-scaling", "auto|off", "JPEG/WebP at a reduced size covering the resize (default "      \
                                   "auto), or every pixel", &(f).scaling, NULL},                   \
    {"exif-orientation", "apply|ignore", "turn photos upright by EXIF (default apply)",            \
     &(f).exif, NULL},                                                                             \
    {"max-pixels", "N", "largest image, width x height (default 40000000)", &(f).max_pixels, NULL}
/* Returns -1 after printing which flag is wrong. */
int cli_decode_options(const cli_decode_flags *f, image_decode_options *out);

/* Decodes and preprocesses n image files into out, (3, hw, hw) floats each, through
 * preprocess_bytes with opt (borrowed; NULL: the defaults). Returns -1 after printing which
 * file failed and why. */
int cli_load_photos(const char *const *paths, int n, preprocess_mode mode, int hw,
                    const image_decode_options *opt, float *out);

/* The rows classify and explain run: image files, or the rows of a preprocessed tensor. */
typedef struct {
    const char *const *files;  /* n_rows paths, when tensor is NULL */
    const char *tensor;        /* the .npy's path, or NULL */
    const npy_array *arr;      /* its rows */
    int n_rows;
    size_t per_image;          /* 3 * hw * hw floats */
    int hw;
    const image_decode_options *decode;
    preprocess_mode mode;
} cli_inputs;

/* The options classify and explain share: the model, threads, batch, preprocessing, --tensor
 * and the decode flags. CLI_RUN_OPTIONS(f) expands to their cli_option rows;
 * cli_run_options() checks them into a cli_run_settings. */
typedef struct {
    const char *weights, *seed, *model, *algo, *precision, *threads, *batch, *mode, *tensor;
    const char *labels;
    cli_decode_flags decode;
} cli_run_flags;
/* The largest --batch of classify, explain and bench (the CLI is not held to the service's
 * VGG_MAX_BATCH: bench measures past it). */
#define CLI_MAX_BATCH 256
#define CLI_RUN_FLAGS_DEFAULT {NULL, "1", NULL, NULL, NULL, "0", "8", "auto", NULL, NULL, CLI_DECODE_FLAGS_DEFAULT}
#define CLI_RUN_OPTIONS(f)                                                                         \
    {"weights", "FILE", "safetensors weights (default: generated from --seed)", &(f).weights,     \
     NULL},                                                                                        \
    {"seed", "N", "seed for generated weights when --weights is absent (default 1)", &(f).seed,   \
     NULL},                                                                                        \
    {"model", "NAME", "vgg11|vgg13|vgg16|vgg19 (default vgg16)", &(f).model, NULL},               \
    {"algo", "ALGO", "direct|winograd|auto convolutions (default auto)", &(f).algo, NULL},        \
    {"precision", "P", "f32|bf16|int8 (default f32)", &(f).precision, NULL},                      \
    {"threads", "T", "oneDNN threads (default: all cores)", &(f).threads, NULL},                  \
    {"batch", "B", "images per forward pass (default 8)", &(f).batch, NULL},                      \
    {"mode", "MODE", "preprocessing: auto|torchvision|caffe|rescale|tf (default auto: what "       \
                     "the weights file says, else torchvision)", &(f).mode, NULL},                \
    {"tensor", "FILE.npy", "a preprocessed float32 (N,3,224,224) array instead of images",        \
     &(f).tensor, NULL},                                                                           \
    {"labels", "FILE", "label file overriding the weights' own labels (one per line, or JSON)",  \
     &(f).labels, NULL},                                                                           \
    CLI_DECODE_OPTIONS((f).decode)

typedef struct {
    cli_model_spec spec;
    image_decode_options decode;
    preprocess_setting mode;
    int threads, batch;
    const char *tensor;
    const char *labels; /* --labels, or NULL */
} cli_run_settings;

/* Checks f, and that there are images (n_images) or a tensor. Returns -1 after printing. */
int cli_run_options(const cli_run_flags *f, int n_images, cli_run_settings *out);

/* What classify and explain both open: the rows (--tensor's, read first so that a bad path
 * fails before the weights load), the model, its labels and one engine over it. */
typedef struct {
    npy_array arr;
    cli_inputs src; /* src.arr points at arr */
    vgg_weights w;
    vgg_model *m;
    vgg_labels labels; /* --labels, else the weights' own (vgg_labels_for_model) */
    vgg_engine *e;
} cli_run;

/* Opens run for images (n_images paths) or rs->tensor. rs is borrowed for run's life.
 * Returns 0, or the exit status (1, 2) after printing why; cli_run_close is safe either
 * way. */
int cli_run_open(cli_run *run, const cli_run_settings *rs, const char *const *images,
                 int n_images);
void cli_run_close(cli_run *run);

typedef char cli_row_name[1100]; /* a file's path, or "TENSOR.npy#row" */

/* A float32 (N, 3, hw, hw) .npy into *arr (out, caller frees arr->data). 0, or -1 after
 * printing why. */
int cli_read_tensor(const char *path, int hw, npy_array *arr);

/* Fills in with the next decodable rows from *next on, at most batch of them, naming each;
 * an unreadable or undecodable file is reported and skipped (*status = 1). Returns the count. */
int cli_fill_batch(const cli_inputs *src, int *next, int batch, float *in, cli_row_name *names,
                   int *status);

/* --int8-float-layers LIST into spec. Returns -1 after printing. */
int cli_int8_float_layers_parse(cli_model_spec *spec, const char *list);

/* Reads --weights/--model/--algo/--precision strings into spec. Returns -1 after printing. */
int cli_model_spec_parse(cli_model_spec *spec, const char *weights, const char *model,
                         const char *algo, const char *precision);

/* int8 activation ranges: WEIGHTS.int8.json when it matches the weights, else measured on
 * CLI_CALIBRATION_IMAGES generated images and saved there (best effort). */
#define CLI_CALIBRATION_IMAGES 32
void cli_calibration_path(const char *weights, char *out, size_t cap);
int cli_int8_ranges(const cli_model_spec *spec, const vgg_weights *w,
                    float act_max[VGG_N_LAYERS], bool quiet);

/* Loads (or generates) weights and creates the shared model; the weights stay borrowed by
 * the model until the caller releases them. */
int cli_build_model(const cli_model_spec *spec, vgg_weights *w, vgg_model **m, bool quiet);

/* Resident set size of this process in bytes (from /proc/self/status), 0 if unknown. */
int64_t cli_rss_bytes(void);

/* Monotonic clock in seconds. */
double cli_now_s(void);

/* qsort comparator for doubles, ascending (medians of timings and margins). */
int cli_cmp_double(const void *a, const void *b);

#endif
