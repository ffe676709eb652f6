/* name_table.h - the spellings of an enum: a NULL-terminated table indexed by its values.
 *
 * Each module owns its table (vgg_model_names, vgg_algo_names, preprocess_setting_names,
 * image_decode_scaling_names, ...); config, the CLI and the modules themselves look names up
 * and list them through these two functions. Pure and thread-safe. */
#ifndef NAME_TABLE_H
#define NAME_TABLE_H

#include <stddef.h>

/* The index of s in names, or -1. */
int name_table_index(const char *const *names, const char *s);

/* The names joined by '|' into out ("direct|winograd"), cut to cap - 1 characters. */
void name_table_join(const char *const *names, char *out, size_t cap);

#endif
