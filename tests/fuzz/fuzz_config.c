/* fuzz_config.c - the JSON config parser (config/config.c).
 *
 * The input is a config file. Whatever it holds, loading either fails with a message or
 * yields a config whose every value is in range; that config then validates (or not),
 * prints as JSON and loads back to the same JSON. */
#include <jansson.h>
#include <string.h>

#include "config.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    vggserve_config c;
    char err[1024];
    config_defaults(&c);
    if (config_load_buffer(&c, (const char *)data, size, "fuzz.json", err, sizeof err) != 0) {
        FUZZ_CHECK(memchr(err, '\0', sizeof err) && err[0]);
        return 0;
    }
    FUZZ_CHECK(memchr(c.host, '\0', sizeof c.host) && memchr(c.weights, '\0', sizeof c.weights));
    FUZZ_CHECK(c.port >= 0 && c.port <= 65535 && c.max_batch_size >= 1);
    (void)config_validate(&c, err, sizeof err);
    json_t *j = config_to_json(&c);
    FUZZ_CHECK(j != NULL);
    char *text = json_dumps(j, JSON_COMPACT);
    FUZZ_CHECK(text != NULL);
    /* Round trip, except that a set auth_token prints as "***" (redacted). */
    if (!c.auth_token[0]) {
        vggserve_config back;
        config_defaults(&back);
        FUZZ_CHECK(config_load_buffer(&back, text, strlen(text), "round trip", err, sizeof err) == 0);
        json_t *j2 = config_to_json(&back);
        FUZZ_CHECK(json_equal(j, j2));
        json_decref(j2);
    }
    free(text);
    json_decref(j);
    return 0;
}
