/* labels.h - the class names of a model: ImageNet's compiled in, or a model's own, parsed from
 * a label file or the weights' metadata.
 *
 * ImageNet-1k: 1000 names and WordNet ids in class index order, embedded at build time
 * (model/data/, from pytorch/hub's imagenet_classes.txt; see tests/data/SOURCES.md). Names
 * repeat ("crane" is 134 and 517); WordNet ids do not.
 *
 * A model's own labels (vgg_labels_parse), the format recognised from the content:
 *   - text, one label per line (Triton's label_filename): CRLF tolerated, the last newline
 *     optional, no empty line;
 *   - TorchServe's index_to_name.json: {"0": "cat", ...} or {"0": ["n02123045", "cat"], ...};
 *   - Keras's class_indices.json: {"cat": 0, "dog": 1};
 *   - a JSON list: ["cat", "dog"].
 * A file is JSON when its first character past a UTF-8 BOM and whitespace is '{' or '['.
 * Indices must be exactly 0..N-1, each once. Every label is UTF-8 of 1..VGG_LABELS_MAX_NAME
 * bytes without control characters; the input is at most VGG_LABELS_MAX_BYTES, JSON nests at
 * most two levels, and there are at most VGG_LABELS_MAX_CLASSES labels. Anything else is an
 * error saying what and where; nothing is half-built.
 *
 * Which labels a model answers with (vgg_labels_for_model): --labels FILE, else the weights'
 * metadata "labels" (a label file's text, as the converters embed it), else ImageNet's for a
 * 1000-class model, else class_0 .. class_<N-1>. The count must equal the model's classes.
 *
 * Ownership: a vgg_labels owns its strings (vgg_labels_free); lookups return borrowed strings
 * that live as long as it. Reading is thread-safe; building and freeing are not. Start-up
 * regime: errors are returned in err (the file named), never printed. */
#ifndef LABELS_H
#define LABELS_H

#include <stddef.h>
#include <stdint.h>

#define LABELS_COUNT 1000 /* ImageNet-1k */

#define VGG_LABELS_MAX_BYTES (4u << 20) /* a label file or the metadata entry */
#define VGG_LABELS_MAX_CLASSES 100000
#define VGG_LABELS_MAX_NAME 256 /* bytes of one label or WordNet id */
#define VGG_LABELS_MAX_DEPTH 2  /* JSON nesting: {"0": ["n0..", "cat"]} */

/* The compiled-in ImageNet table: borrowed strings, NULL outside 0..999. */
const char *labels_name(int class_id);
const char *labels_wnid(int class_id);

typedef enum {
    VGG_LABELS_IMAGENET = 0,    /* the compiled-in table (a 1000-class model without labels) */
    VGG_LABELS_GENERATED,       /* class_0 .. class_<N-1> (any other model without labels) */
    VGG_LABELS_TEXT,            /* one per line */
    VGG_LABELS_INDEX_TO_NAME,   /* TorchServe */
    VGG_LABELS_CLASS_INDICES,   /* Keras */
    VGG_LABELS_LIST,            /* a JSON list */
    VGG_LABELS_FORMAT_COUNT
} vgg_labels_format;

/* "imagenet", "generated", "text", "index_to_name", "class_indices", "list". */
const char *vgg_labels_format_name(vgg_labels_format f);

typedef struct {
    int n;                    /* classes */
    vgg_labels_format format;
    char **names;             /* n owned names; NULL for VGG_LABELS_IMAGENET */
    char **wnids;             /* n owned WordNet ids (NULL where a class has none), or NULL */
} vgg_labels;

/* Class i's name, or NULL outside 0..n-1 (or when l is NULL). */
const char *vgg_labels_name(const vgg_labels *l, int i);
/* Class i's WordNet id, or NULL where the labels carry none. */
const char *vgg_labels_wnid(const vgg_labels *l, int i);

/* ImageNet's table (nothing allocated). */
void vgg_labels_imagenet(vgg_labels *out);

/* class_0 .. class_<n-1>. Returns 0, or -1 when out of memory. */
int vgg_labels_generated(int n, vgg_labels *out);

/* Parses a label file's bytes (borrowed) into *out. Returns 0, or -1 with err saying what is
 * wrong and where (line, key or element); *out then owns nothing. */
int vgg_labels_parse(const uint8_t *bytes, size_t len, vgg_labels *out, char *err,
                     size_t errlen);

/* Reads and parses the file at path; errors name it. */
int vgg_labels_read_file(const char *path, vgg_labels *out, char *err, size_t errlen);

/* The labels a model of n_classes answers with: labels_path (NULL: none) over the "labels"
 * metadata of the safetensors file weights_path (NULL: generated weights), else the default
 * above. Fails (-1, err naming the source and both numbers) when the count is not n_classes. */
int vgg_labels_for_model(const char *labels_path, const char *weights_path, int n_classes,
                         vgg_labels *out, char *err, size_t errlen);

/* Frees what *l owns; *l is then empty. Safe on an empty or ImageNet value. */
void vgg_labels_free(vgg_labels *l);

#endif
