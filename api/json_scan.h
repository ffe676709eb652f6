/* json_scan.h - what a JSON text would cost jansson, counted before it is built.
 *
 * jansson builds the whole document before any shape can be checked, and each value costs
 * it 30 to 150 times the bytes that spell it: a 20 MiB body of empty objects took 1.5 GiB
 * (issue 25). json_scan() walks the bytes once, without allocating, and counts the values and
 * the containers and the deepest nesting, stopping as soon as a limit is passed. It does not
 * validate: jansson still judges the text it lets through, and a text it miscounts is one
 * jansson refuses anyway (the count can only be too high, never too low, for valid JSON).
 *
 * Pure, reentrant; reads only [text, text + len). */
#ifndef API_JSON_SCAN_H
#define API_JSON_SCAN_H

#include <stddef.h>

typedef enum {
    JSON_SCAN_OK,
    JSON_SCAN_TOO_MANY_VALUES,     /* more scalars than max_values */
    JSON_SCAN_TOO_MANY_CONTAINERS, /* more objects and arrays than max_containers */
    JSON_SCAN_TOO_DEEP,            /* nested deeper than max_depth */
} json_scan_status;

typedef struct {
    size_t max_values;     /* numbers, strings (keys included), true, false, null */
    size_t max_containers; /* objects and arrays */
    int max_depth;
} json_scan_limits;

typedef struct {
    size_t values, containers, string_bytes;
    int depth; /* the deepest nesting seen */
} json_scan_counts;

/* Counts text; stops at the first limit passed (out then holds the counts so far). */
json_scan_status json_scan(const char *text, size_t len, const json_scan_limits *lim,
                           json_scan_counts *out);

/* About what jansson allocates for a document of these counts, in bytes (malloc's overhead
 * included; measured with glibc 2.36 and jansson 2.14: a number 48, a container 256, a string
 * 48 plus its bytes). */
long long json_scan_cost_bytes(const json_scan_counts *c);

#endif
