/* labels_parse.c - a label file's bytes to class names: text lines, or one of three JSON forms
 * (labels.h says which and the limits). jansson reads the JSON; nothing JSON leaves here. */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "labels.h"

/* ---------------------------------------------------------------- checks */

/* Offset of the first byte that is not UTF-8 (overlong forms, surrogates and code points past
 * U+10FFFF included), or len when all of s is. */
static size_t utf8_invalid_at(const uint8_t *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        int n;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0) n = 1, cp = c & 0x1f, min = 0x80;
        else if ((c & 0xf0) == 0xe0) n = 2, cp = c & 0x0f, min = 0x800;
        else if ((c & 0xf8) == 0xf0) n = 3, cp = c & 0x07, min = 0x10000;
        else return i;
        if (len - i <= (size_t)n) return i;
        for (int k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return i;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
        i += (size_t)n + 1;
    }
    return len;
}

/* A copy of s[0..n) as class i's name (or WordNet id when wnid), after checking it. The slot
 * must be empty. Returns 0, or -1 with why (no position: the caller adds it). */
static int set_string(vgg_labels *l, int i, bool wnid, const char *s, size_t n, char *why,
                      size_t cap) {
    const char *what = wnid ? "WordNet id" : "label";
    if (n == 0) return snprintf(why, cap, "the %s is empty", what), -1;
    if (n > VGG_LABELS_MAX_NAME)
        return snprintf(why, cap, "the %s is %zu bytes; at most %d", what, n, VGG_LABELS_MAX_NAME),
               -1;
    for (size_t k = 0; k < n; k++)
        if ((unsigned char)s[k] < 0x20 || s[k] == 0x7f)
            return snprintf(why, cap, "the %s holds control character 0x%02x", what,
                            (unsigned char)s[k]),
                   -1;
    char **slot = wnid ? &l->wnids[i] : &l->names[i];
    if (!(*slot = strndup(s, n))) return snprintf(why, cap, "out of memory"), -1;
    return 0;
}

/* n empty slots (and WordNet id slots when wnids). Returns 0, or -1 with err. */
static int labels_alloc(vgg_labels *l, int n, bool wnids, vgg_labels_format format, char *err,
                        size_t errlen) {
    *l = (vgg_labels){.format = format};
    if (n == 0) return snprintf(err, errlen, "no labels"), -1;
    if (n > VGG_LABELS_MAX_CLASSES)
        return snprintf(err, errlen, "%d labels; at most %d", n, VGG_LABELS_MAX_CLASSES), -1;
    l->names = calloc((size_t)n, sizeof *l->names);
    l->wnids = wnids ? calloc((size_t)n, sizeof *l->wnids) : NULL;
    l->n = n;
    if (!l->names || (wnids && !l->wnids)) {
        vgg_labels_free(l);
        return snprintf(err, errlen, "out of memory"), -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- text */

static int parse_text(const char *s, size_t len, vgg_labels *out, char *err, size_t errlen) {
    if (len > 0 && s[len - 1] == '\n') len--; /* the last newline is optional */
    long n = 1;
    for (size_t i = 0; i < len; i++) n += s[i] == '\n';
    if (n > VGG_LABELS_MAX_CLASSES)
        return snprintf(err, errlen, "%ld lines; at most %d labels", n, VGG_LABELS_MAX_CLASSES), -1;
    if (labels_alloc(out, (int)n, false, VGG_LABELS_TEXT, err, errlen) != 0) return -1;
    const char *p = s, *end = s + len;
    for (int i = 0; i < n; i++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t line = (size_t)((nl ? nl : end) - p);
        if (line > 0 && p[line - 1] == '\r') line--;
        char why[160];
        if (set_string(out, i, false, p, line, why, sizeof why) != 0) {
            snprintf(err, errlen, "line %d: %s", i + 1, why);
            vgg_labels_free(out);
            return -1;
        }
        p = nl ? nl + 1 : end;
    }
    return 0;
}

/* ---------------------------------------------------------------- JSON */

/* Refuses nesting past VGG_LABELS_MAX_DEPTH before jansson recurses into it. */
static int check_depth(const char *s, size_t len, char *err, size_t errlen) {
    int depth = 0;
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_string) {
            if (c == '\\') i++;
            else if (c == '"') in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > VGG_LABELS_MAX_DEPTH)
                return snprintf(err, errlen, "JSON nested deeper than %d levels (byte %zu)",
                                VGG_LABELS_MAX_DEPTH, i),
                       -1;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return 0;
}

/* ["cat", "dog"] */
static int parse_list(const json_t *a, vgg_labels *out, char *err, size_t errlen) {
    if (labels_alloc(out, (int)json_array_size(a), false, VGG_LABELS_LIST, err, errlen) != 0)
        return -1;
    for (int i = 0; i < out->n; i++) {
        const json_t *v = json_array_get(a, (size_t)i);
        char why[160];
        if (!json_is_string(v)) snprintf(why, sizeof why, "not a string");
        else if (set_string(out, i, false, json_string_value(v), json_string_length(v), why,
                            sizeof why) == 0)
            continue;
        snprintf(err, errlen, "element %d: %s", i, why);
        vgg_labels_free(out);
        return -1;
    }
    return 0;
}

/* key as a class index 0..n-1 written plainly ("7", not "07" or "+7"), or -1. */
static int index_of_key(const char *key, int n) {
    size_t len = strlen(key);
    if (len == 0 || len > 6 || (len > 1 && key[0] == '0')) return -1;
    int v = 0;
    for (size_t i = 0; i < len; i++) {
        if (key[i] < '0' || key[i] > '9') return -1;
        v = v * 10 + (key[i] - '0');
    }
    return v < n ? v : -1;
}

/* One entry of index_to_name, "7": "cat" or "7": ["n02123045", "cat"]. */
static int index_entry(vgg_labels *out, const char *key, const json_t *v, char *why,
                       size_t cap) {
    int i = index_of_key(key, out->n);
    if (i < 0)
        return snprintf(why, cap, "not a class index 0..%d (keys are 0..N-1, each once)",
                        out->n - 1),
               -1;
    if (json_is_string(v))
        return set_string(out, i, false, json_string_value(v), json_string_length(v), why, cap);
    const json_t *w = json_array_get(v, 0), *name = json_array_get(v, 1);
    if (!json_is_array(v) || json_array_size(v) != 2 || !json_is_string(w) ||
        !json_is_string(name))
        return snprintf(why, cap, "the value must be a name or [wnid, name]"), -1;
    if (set_string(out, i, true, json_string_value(w), json_string_length(w), why, cap) != 0)
        return -1;
    return set_string(out, i, false, json_string_value(name), json_string_length(name), why, cap);
}

/* One entry of class_indices, "cat": 7. */
static int class_index_entry(vgg_labels *out, const char *key, const json_t *v, char *why,
                             size_t cap) {
    if (!json_is_integer(v)) return snprintf(why, cap, "the value must be a class index"), -1;
    json_int_t i = json_integer_value(v);
    if (i < 0 || i >= out->n)
        return snprintf(why, cap, "index %lld is not in 0..%d (indices are 0..N-1, each once)",
                        (long long)i, out->n - 1),
               -1;
    if (out->names[i])
        return snprintf(why, cap, "index %lld is taken by \"%.60s\" too", (long long)i,
                        out->names[i]),
               -1;
    return set_string(out, (int)i, false, key, strlen(key), why, cap);
}

/* {"0": "cat"} / {"0": ["n0..", "cat"]} (TorchServe) or {"cat": 0} (Keras), told apart by
 * the first value. */
static int parse_object(const json_t *o, vgg_labels *out, char *err, size_t errlen) {
    void *it = json_object_iter((json_t *)o);
    const json_t *first = it ? json_object_iter_value(it) : NULL;
    bool keras = json_is_integer(first);
    if (labels_alloc(out, (int)json_object_size(o), !keras,
                     keras ? VGG_LABELS_CLASS_INDICES : VGG_LABELS_INDEX_TO_NAME, err,
                     errlen) != 0)
        return -1;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)o, key, v) {
        char why[200];
        int rc = keras ? class_index_entry(out, key, v, why, sizeof why)
                       : index_entry(out, key, v, why, sizeof why);
        if (rc != 0) {
            snprintf(err, errlen, "key \"%.60s\": %s", key, why);
            vgg_labels_free(out);
            return -1;
        }
    }
    bool any_wnid = false;
    for (int i = 0; i < out->n; i++) any_wnid |= out->wnids && out->wnids[i];
    if (!any_wnid && out->wnids) {
        free(out->wnids);
        out->wnids = NULL;
    }
    return 0;
}

static int parse_json(const char *s, size_t len, vgg_labels *out, char *err, size_t errlen) {
    if (check_depth(s, len, err, errlen) != 0) return -1;
    json_error_t je;
    json_t *root = json_loadb(s, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return snprintf(err, errlen, "JSON: %s (line %d, column %d)", je.text, je.line,
                        je.column),
               -1;
    int rc = json_is_array(root) ? parse_list(root, out, err, errlen)
                                 : parse_object(root, out, err, errlen);
    json_decref(root);
    return rc;
}

/* ---------------------------------------------------------------- entry */

int vgg_labels_parse(const uint8_t *bytes, size_t len, vgg_labels *out, char *err,
                     size_t errlen) {
    *out = (vgg_labels){0};
    if (len > VGG_LABELS_MAX_BYTES)
        return snprintf(err, errlen, "%zu bytes; at most %u", len, VGG_LABELS_MAX_BYTES), -1;
    const uint8_t *nul = memchr(bytes, 0, len);
    if (nul)
        return snprintf(err, errlen, "a NUL byte at offset %zu: binary data, not labels",
                        (size_t)(nul - bytes)),
               -1;
    size_t bad = utf8_invalid_at(bytes, len);
    if (bad < len)
        return snprintf(err, errlen, "not UTF-8 (byte 0x%02x at offset %zu)", bytes[bad], bad),
               -1;
    const char *s = (const char *)bytes;
    if (len >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0) s += 3, len -= 3;
    size_t first = 0;
    while (first < len && strchr(" \t\r\n", s[first])) first++; /* s holds no NUL */
    if (first >= len) return snprintf(err, errlen, "empty: no labels"), -1;
    if (s[first] == '{' || s[first] == '[') return parse_json(s, len, out, err, errlen);
    return parse_text(s, len, out, err, errlen);
}
