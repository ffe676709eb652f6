/* name_table.c - lookups and lists over NULL-terminated name tables. */
#include "name_table.h"

#include <stdio.h>
#include <string.h>

int name_table_index(const char *const *names, const char *s) {
    for (int i = 0; names[i]; i++)
        if (strcmp(names[i], s) == 0) return i;
    return -1;
}

void name_table_join(const char *const *names, char *out, size_t cap) {
    size_t n = 0;
    if (cap) out[0] = '\0';
    for (int i = 0; names[i] && n + 1 < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s%s", i ? "|" : "", names[i]);
}
