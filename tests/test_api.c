/* test_api.c - unit tests of the request path's pure modules (api/, config/).
 *
 * classify_request (every status a request can get without a model, multipart order, the
 * Content-Length and timeout headers), image_check (the stb 2.27 guards: PNG sides and chunk
 * lengths; JPEG left to libjpeg-turbo),
 * inference jobs (classify_job_parse's /explain checks and job_answer_write's answers, as a
 * front end without HTTP would use them),
 * auth (header parsing, constant-time comparison, token syntax), the UTF-8 sanitizer behind
 * every error body, and the config's new keys (booleans, secrets file, TLS pair, limits,
 * redaction, buffer loading).
 *
 * Usage: test_api <tests dir>  (reads data/bad_inputs/ and data/images/ under it). */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "classify_request.h"
#include "config.h"
#include "content_coding.h"
#include "errors.h"
#include "engine.h"
#include "image_check.h"
#include "infer_request.h"
#include "inference_job.h"
#include "job_answer.h"
#include "test_util.h"

static const char *tests_dir;

static unsigned char *read_file(const char *rel, size_t *len) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", tests_dir, rel);
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(2);
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
    *len = fread(buf, 1, (size_t)n, f);
    fclose(f);
    return buf;
}

/* ---------------------------------------------------------------- classify_request */

static const classify_limits lim = {1 << 20, 3};
static const image_input_format fmt = {224, PREPROCESS_TORCHVISION, {.max_pixels = 40000000}};

static api_status parse(const char *ctype, const char *top_k, const void *body, size_t len,
                        classify_input *in, char *msg) {
    classify_http_request req = {ctype, top_k, body, len, len > (size_t)lim.max_body_bytes, 0};
    return classify_request_parse(&req, &lim, &fmt, in, msg, 800);
}

static void test_classify_request(void) {
    char msg[800];
    classify_input in;
    int k;
    EXPECT(classify_parse_top_k(NULL, &k, msg, sizeof msg) == API_OK && k == 5);
    EXPECT(classify_parse_top_k("1000", &k, msg, sizeof msg) == API_OK && k == 1000);
    EXPECT(classify_parse_top_k("0", &k, msg, sizeof msg) == API_BAD_REQUEST);
    EXPECT(classify_parse_top_k("1001", &k, msg, sizeof msg) == API_BAD_REQUEST);
    EXPECT(classify_parse_top_k("3x", &k, msg, sizeof msg) == API_BAD_REQUEST);
    EXPECT(classify_parse_top_k("", &k, msg, sizeof msg) == API_BAD_REQUEST);
    EXPECT(classify_check_content_length(NULL, &lim, msg, sizeof msg) == API_OK);
    EXPECT(classify_check_content_length("1048576", &lim, msg, sizeof msg) == API_OK);
    EXPECT(classify_check_content_length("1048577", &lim, msg, sizeof msg) == API_BODY_TOO_LARGE);
    EXPECT(strstr(msg, "1048577") && strstr(msg, "1048576"));
    EXPECT(classify_timeout_ms(NULL, 3000) == 3000);
    EXPECT(classify_timeout_ms("250", 3000) == 250);
    EXPECT(classify_timeout_ms("5000", 3000) == 3000); /* never lengthened */
    EXPECT(classify_timeout_ms("-1", 3000) == 3000 && classify_timeout_ms("9ms", 3000) == 3000);

    /* Errors, each before any decoding. */
    classify_http_request big = {"image/jpeg", NULL, (const unsigned char *)"x", 1, true, 0};
    EXPECT(classify_request_parse(&big, &lim, &fmt, &in, msg, sizeof msg) == API_BODY_TOO_LARGE);
    /* A deadline already past: no image is decoded (issue 25: decoding went on for 56 s). */
    const char *two = "--b\r\n\r\nx\r\n--b\r\n\r\ny\r\n--b--\r\n";
    classify_http_request late = {"multipart/form-data; boundary=b", NULL,
                                  (const unsigned char *)two, strlen(two), false, 1};
    EXPECT(classify_request_parse(&late, &lim, &fmt, &in, msg, sizeof msg) ==
           API_DEADLINE_EXCEEDED && strstr(msg, "after 0 of its 2 images") && in.n_images == 2);
    EXPECT(parse("image/jpeg", "abc", "x", 1, &in, msg) == API_BAD_REQUEST && strstr(msg, "top_k"));
    EXPECT(parse("image/jpeg", NULL, NULL, 0, &in, msg) == API_BAD_REQUEST && strstr(msg, "empty"));
    EXPECT(parse("text/plain", NULL, "hello", 5, &in, msg) == API_UNSUPPORTED_MEDIA);
    EXPECT(in.inputs == NULL);
    EXPECT(parse("multipart/form-data", NULL, "x", 1, &in, msg) == API_BAD_REQUEST &&
           strstr(msg, "boundary"));
    EXPECT(parse("multipart/form-data; boundary=b", NULL, "--b--\r\n", 7, &in, msg) ==
           API_BAD_REQUEST && strstr(msg, "no parts"));
    const char *four = "--b\r\n\r\n1\r\n--b\r\n\r\n2\r\n--b\r\n\r\n3\r\n--b\r\n\r\n4\r\n--b--\r\n";
    EXPECT(parse("multipart/form-data; boundary=b", NULL, four, strlen(four), &in, msg) ==
           API_TOO_MANY_IMAGES && strstr(msg, "more than 3"));
    /* A part that fails names its position and file name. */
    const char *named = "--b\r\nContent-Disposition: form-data; name=\"a\"; filename=\"x.jpg\"\r\n\r\n"
                        "hello\r\n--b\r\n\r\nworld\r\n--b--\r\n";
    EXPECT(parse("multipart/form-data; boundary=b", NULL, named, strlen(named), &in, msg) ==
           API_UNSUPPORTED_MEDIA && strstr(msg, "image 1 (x.jpg)"));
    EXPECT(in.n_images == 2 && in.inputs == NULL);

    /* Success: two images in upload order, tensors finite and distinct. */
    size_t png_len, jpg_len;
    unsigned char *png = read_file("data/bad_inputs/one_pixel.png", &png_len);
    unsigned char *jpg = read_file("data/bad_inputs/progressive.jpg", &jpg_len);
    EXPECT(parse("application/octet-stream", "7", png, png_len, &in, msg) == API_OK);
    EXPECT(in.n_images == 1 && in.top_k == 7 && in.inputs && in.decode_ms >= 0);
    classify_input_free(&in);
    size_t body_len = 0;
    unsigned char *body = malloc(png_len + jpg_len + 200);
    body_len += (size_t)sprintf((char *)body, "--B\r\n\r\n");
    memcpy(body + body_len, jpg, jpg_len);
    body_len += jpg_len;
    body_len += (size_t)sprintf((char *)body + body_len, "\r\n--B\r\n\r\n");
    memcpy(body + body_len, png, png_len);
    body_len += png_len;
    body_len += (size_t)sprintf((char *)body + body_len, "\r\n--B--\r\n");
    EXPECT(parse("Multipart/Form-Data; boundary=B", NULL, body, body_len, &in, msg) == API_OK);
    EXPECT(in.n_images == 2 && in.top_k == 5);
    if (in.n_images == 2) {
        const size_t plane = 3 * 224 * 224;
        int finite = 1;
        for (size_t i = 0; i < 2 * plane; i++) finite &= isfinite(in.inputs[i]) != 0;
        EXPECT(finite);
        /* The 1x1 PNG is one colour: its tensor is constant per channel; the JPEG's is not. */
        EXPECT(in.inputs[plane] == in.inputs[plane + 224 * 224 - 1]);
        EXPECT(in.inputs[0] != in.inputs[224 * 224 - 1]);
    }
    classify_input_free(&in);
    free(body);
    free(png);
    free(jpg);

    /* The guard runs on the request path: the PNG whose chunk claims 2 GiB is 422 before stb
     * allocates, and libjpeg-turbo refuses the Huffman table that overflowed stb 2.27. */
    size_t bad_len;
    unsigned char *bad = read_file("data/bad_inputs/png_chunk_claims_2GiB.png", &bad_len);
    EXPECT(parse("image/png", NULL, bad, bad_len, &in, msg) == API_UNDECODABLE &&
           strstr(msg, "chunk claims"));
    free(bad);
    bad = read_file("data/bad_inputs/jpeg_dht_overflow.jpg", &bad_len);
    EXPECT(parse("image/jpeg", NULL, bad, bad_len, &in, msg) == API_UNDECODABLE &&
           strstr(msg, "Huffman"));
    free(bad);
}

/* ---------------------------------------------------------------- image_check */

static void test_image_check(void) {
    char err[256];
    size_t len;
    unsigned char *b;
    static const char *const good[] = {"data/bad_inputs/progressive.jpg", "data/bad_inputs/cmyk.jpg",
                                       "data/bad_inputs/trailing_garbage.jpg",
                                       "data/images/chelsea.jpg", "data/images/chelsea.png"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        b = read_file(good[i], &len);
        int ok = image_check(b, len, err, sizeof err) == 0;
        EXPECT(ok);
        if (!ok) fprintf(stderr, "  %s: %s\n", good[i], err);
        /* Every prefix passes or fails cleanly (ASan watches the reads). */
        for (size_t n = 0; n < len && n < 4096; n += 7) image_check(b, n, err, sizeof err);
        free(b);
    }
    b = read_file("data/bad_inputs/png_header_4294967295_wide.png", &len);
    EXPECT(image_check(b, len, err, sizeof err) == -1 && strstr(err, "2^31"));
    free(b);
    /* JPEG is libjpeg-turbo's to judge: the guard passes what stb 2.27 needed refused. */
    b = read_file("data/bad_inputs/jpeg_dht_overflow.jpg", &len);
    EXPECT(image_check(b, len, err, sizeof err) == 0);
    free(b);
    b = read_file("data/bad_inputs/png_chunk_claims_2GiB.png", &len);
    EXPECT(image_check(b, len, err, sizeof err) == -1 && strstr(err, "chunk claims"));
    free(b);
    b = read_file("data/bad_inputs/truncated.png", &len);
    EXPECT(image_check(b, len, err, sizeof err) == -1);
    free(b);
    b = read_file("data/bad_inputs/png_header_100000x100000.png", &len);
    EXPECT(image_check(b, len, err, sizeof err) == 0); /* big but legal: the pixel limit says no */
    free(b);
    EXPECT(image_check((const uint8_t *)"", 0, err, sizeof err) == 0);
    EXPECT(image_check((const uint8_t *)"\xff\xd8\xff", 3, err, sizeof err) == 0);
}

/* ---------------------------------------------------------------- auth */

static void test_auth(void) {
    char msg[128];
    const char *www;
    const char *tok = "s3cret-Token_1";
    EXPECT(api_auth_check(NULL, "", msg, sizeof msg, &www) == API_OK); /* auth off */
    EXPECT(api_auth_check(NULL, tok, msg, sizeof msg, &www) == API_UNAUTHORIZED);
    EXPECT(www && strcmp(www, "Bearer realm=\"vggserve\"") == 0);
    EXPECT(api_auth_check("Basic s3cret-Token_1", tok, msg, sizeof msg, &www) == API_UNAUTHORIZED);
    EXPECT(api_auth_check("Bearers3cret-Token_1", tok, msg, sizeof msg, &www) == API_UNAUTHORIZED);
    EXPECT(api_auth_check("Bearer s3cret-Token_", tok, msg, sizeof msg, &www) == API_UNAUTHORIZED);
    EXPECT(www && strstr(www, "invalid_token"));
    EXPECT(strstr(msg, tok) == NULL);
    EXPECT(api_auth_check("Bearer s3cret-Token_12", tok, msg, sizeof msg, &www) == API_UNAUTHORIZED);
    EXPECT(api_auth_check("Bearer ", tok, msg, sizeof msg, &www) == API_UNAUTHORIZED);
    EXPECT(api_auth_check("Bearer s3cret-Token_1", tok, msg, sizeof msg, &www) == API_OK);
    EXPECT(api_auth_check("  bEARER \t s3cret-Token_1 ", tok, msg, sizeof msg, &www) == API_OK);
    EXPECT(api_auth_token_equal("abc", 3, "abc", 3));
    EXPECT(!api_auth_token_equal("abc", 3, "abd", 3));
    EXPECT(!api_auth_token_equal("ab", 2, "abc", 3) && !api_auth_token_equal("abcd", 4, "abc", 3));
    EXPECT(!api_auth_token_equal("", 0, "", 0)); /* an empty secret matches nothing */
    EXPECT(!api_auth_token_equal("a\0c", 3, "abc", 3));
    EXPECT(api_auth_token_valid("abc") && api_auth_token_valid("a-b.c_d~e+f/g==") &&
           api_auth_token_valid("Zz09"));
    EXPECT(!api_auth_token_valid("") && !api_auth_token_valid("a b") &&
           !api_auth_token_valid("=abc") && !api_auth_token_valid("ab=c") &&
           !api_auth_token_valid("***") && !api_auth_token_valid("tok\n"));
    char longtok[300];
    memset(longtok, 'a', sizeof longtok);
    longtok[API_AUTH_TOKEN_MAX] = '\0';
    EXPECT(api_auth_token_valid(longtok));
    longtok[API_AUTH_TOKEN_MAX] = 'a';
    longtok[API_AUTH_TOKEN_MAX + 1] = '\0';
    EXPECT(!api_auth_token_valid(longtok));
    EXPECT(api_status_http(API_UNAUTHORIZED) == 401 &&
           strcmp(api_status_type(API_UNAUTHORIZED), "unauthorized") == 0);
}

/* ---------------------------------------------------------------- errors */

static void test_utf8_sanitize(void) {
    char out[64];
    EXPECT(strcmp(api_utf8_sanitize("plain ascii", out, sizeof out), "plain ascii") == 0);
    EXPECT(strcmp(api_utf8_sanitize("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", out, sizeof out),
                  "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80") == 0);
    EXPECT(strcmp(api_utf8_sanitize("a\xff" "b", out, sizeof out), "a?b") == 0);
    EXPECT(strcmp(api_utf8_sanitize("\xc0\xaf", out, sizeof out), "??") == 0);     /* overlong */
    EXPECT(strcmp(api_utf8_sanitize("\xed\xa0\x80", out, sizeof out), "???") == 0); /* surrogate */
    EXPECT(strcmp(api_utf8_sanitize("\xf4\x90\x80\x80", out, sizeof out), "????") == 0);
    EXPECT(strcmp(api_utf8_sanitize("\xe2\x82", out, sizeof out), "??") == 0);      /* cut short */
    EXPECT(strcmp(api_utf8_sanitize("line\nbreak\ttab\x7f", out, sizeof out), "line?break\ttab?") == 0);
    EXPECT(strcmp(api_utf8_sanitize(NULL, out, sizeof out), "") == 0);
    /* Never cuts a sequence: 3 bytes of room, a 2-byte character after one ASCII. */
    EXPECT(strcmp(api_utf8_sanitize("ab\xc3\xa9", out, 4), "ab") == 0);
    /* Every error body serialises, whatever the message holds. */
    json_t *j = api_error_json(API_BAD_REQUEST, "top_k must be 1..1000, got '\xff\xfe'");
    char *text = json_dumps(j, JSON_COMPACT);
    EXPECT(text && strstr(text, "got '?" "?'")); /* (split: ??' is a trigraph) */
    free(text);
    json_decref(j);
}

/* ---------------------------------------------------------------- config */

static void test_config_keys(void) {
    vggserve_config c;
    char err[1024];
    config_defaults(&c);
    EXPECT(c.max_header_bytes == 32768 && c.max_connections == 1000 &&
           c.max_connections_per_ip == -1 && !c.auth_metrics && !c.auth_health &&
           !c.auth_token[0] && !c.tls_cert_file[0]);
    /* The hostile-client defaults: headers within 10 s, budget sized at start, no admin port
     * unless asked (the image asks for 8081), CORS off. */
    EXPECT(c.header_timeout_s == 10 && c.max_buffered_bytes == 0 && c.admin_port == -1 &&
           c.admin_max_connections == 16 && !c.cors_allowed_origins[0]);
    EXPECT(config_validate(&c, err, sizeof err) == 0);
    EXPECT(config_set(&c, "auth_metrics", "true", "test", err, sizeof err) == 0 && c.auth_metrics);
    EXPECT(config_set(&c, "auth_metrics", "0", "test", err, sizeof err) == 0 && !c.auth_metrics);
    EXPECT(config_set(&c, "auth_health", "yes", "flag --auth-health", err, sizeof err) != 0 &&
           strstr(err, "flag --auth-health"));
    EXPECT(config_set(&c, "max_header_bytes", "1024", "test", err, sizeof err) != 0);
    const char *json = "{\"auth_health\": true, \"max_connections_per_ip\": 8, \"tls_cert_file\": \"c\"}";
    EXPECT(config_load_buffer(&c, json, strlen(json), "inline", err, sizeof err) == 0);
    EXPECT(c.auth_health && c.max_connections_per_ip == 8);
    EXPECT(config_validate(&c, err, sizeof err) != 0 && strstr(err, "go together"));
    EXPECT(config_load_buffer(&c, "{\"auth_health\": 1}", 18, "inline", err, sizeof err) != 0 &&
           strstr(err, "true or false"));
    EXPECT(config_load_buffer(&c, "{\"port\": ", 9, "inline", err, sizeof err) != 0 &&
           strstr(err, "inline:1"));
    EXPECT(config_load_buffer(&c, "[1]", 3, "inline", err, sizeof err) != 0);

    config_defaults(&c);
    EXPECT(config_set(&c, "auth_token", "bad token", "test", err, sizeof err) == 0);
    EXPECT(config_validate(&c, err, sizeof err) != 0 && strstr(err, "auth_token must be"));
    EXPECT(strstr(err, "bad token") == NULL); /* the secret is not echoed */
    config_set(&c, "auth_token", "good.token", "test", err, sizeof err);
    EXPECT(config_validate(&c, err, sizeof err) == 0);
    json_t *j = config_to_json(&c);
    EXPECT(strcmp(json_string_value(json_object_get(j, "auth_token")), "***") == 0);
    EXPECT(json_is_false(json_object_get(j, "auth_metrics")));
    json_decref(j);
    config_set(&c, "http_threads", "8", "test", err, sizeof err);
    config_set(&c, "max_connections", "4", "test", err, sizeof err);
    EXPECT(config_validate(&c, err, sizeof err) != 0 && strstr(err, "max_connections"));

    /* Token file: one line, trailing newline dropped; errors name the file. */
    char path[] = "/tmp/test_api_token.XXXXXX";
    int fd = mkstemp(path);
    EXPECT(fd >= 0 && write(fd, "tok-123\n", 8) == 8);
    close(fd);
    config_defaults(&c);
    config_set(&c, "auth_token_file", path, "test", err, sizeof err);
    EXPECT(config_validate(&c, err, sizeof err) == 0);
    EXPECT(config_load_secrets(&c, err, sizeof err) == 0 && strcmp(c.auth_token, "tok-123") == 0);
    config_set(&c, "auth_token", "x", "test", err, sizeof err);
    EXPECT(config_validate(&c, err, sizeof err) != 0 && strstr(err, "both set"));
    FILE *f = fopen(path, "w");
    fputs("tok\nsecond line\n", f);
    fclose(f);
    config_defaults(&c);
    config_set(&c, "auth_token_file", path, "test", err, sizeof err);
    EXPECT(config_load_secrets(&c, err, sizeof err) != 0 && strstr(err, path));
    unlink(path);
    EXPECT(config_load_secrets(&c, err, sizeof err) != 0 && strstr(err, path));
}

/* The model repository's poll and swap settings: one table row each, read from every source. */
static void test_config_repository(void) {
    vggserve_config c;
    char err[1024];
    config_defaults(&c);
    EXPECT(c.model_control_mode == REPO_CONTROL_NONE && c.repository_poll_secs == 15 &&
           c.swap_policy == REPO_SWAP_AVAILABILITY);
    EXPECT(config_set(&c, "model_control_mode", "poll", "test", err, sizeof err) == 0 &&
           c.model_control_mode == REPO_CONTROL_POLL);
    EXPECT(config_validate(&c, err, sizeof err) != 0 && strstr(err, "model_repository"));
    config_set(&c, "model_repository", "/models", "test", err, sizeof err);
    EXPECT(config_validate(&c, err, sizeof err) == 0);
    EXPECT(config_set(&c, "repository_poll_secs", "0", "flag --repository-poll-secs", err,
                      sizeof err) != 0 && strstr(err, "1..86400"));
    setenv("VGGSERVE_REPOSITORY_POLL_SECS", "3", 1);
    setenv("VGGSERVE_SWAP_POLICY", "memory", 1);
    EXPECT(config_load_env(&c, err, sizeof err) == 0 && c.repository_poll_secs == 3 &&
           c.swap_policy == REPO_SWAP_MEMORY);
    unsetenv("VGGSERVE_REPOSITORY_POLL_SECS");
    setenv("VGGSERVE_SWAP_POLICY", "cheap", 1);
    EXPECT(config_load_env(&c, err, sizeof err) != 0 && strstr(err, "availability|memory"));
    unsetenv("VGGSERVE_SWAP_POLICY");
    const char *json = "{\"repository_poll_secs\": 7, \"swap_policy\": \"availability\"}";
    EXPECT(config_load_buffer(&c, json, strlen(json), "inline", err, sizeof err) == 0 &&
           c.repository_poll_secs == 7 && c.swap_policy == REPO_SWAP_AVAILABILITY);
    EXPECT(strcmp(config_key_for_flag("repository-poll-secs"), "repository_poll_secs") == 0);
    json_t *j = config_to_json(&c);
    EXPECT(strcmp(json_string_value(json_object_get(j, "model_control_mode")), "poll") == 0 &&
           strcmp(json_string_value(json_object_get(j, "swap_policy")), "availability") == 0);
    json_decref(j);
}

/* Accept's q-values for a media type: the most specific entry wins, q=0 refuses. */
static void test_accept_media(void) {
    static const struct {
        const char *accept, *type;
        double q;
        bool exact;
    } cases[] = {
        {NULL, "image/png", -1, false},
        {"", "image/png", -1, false},
        {"application/json", "image/png", -1, false},
        {"image/png", "image/png", 1, true},
        {"IMAGE/PNG;q=0.5", "image/png", 0.5, true},
        {"image/*;q=0.3, */*;q=0.1", "image/png", 0.3, false},
        {"*/*", "application/json", 1, false},
        {"image/png;q=0, */*", "image/png", 0, true},
        {"text/html, image/png ; level=1 ; q=0.8", "image/png", 0.8, true},
        {"image/png;q=7", "image/png", 0, true},
        {"image/pngx, image/*x", "image/png", -1, false},
        {"application/*", "application/json", 1, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bool exact = !cases[i].exact;
        double q = content_accept_media_q(cases[i].accept, cases[i].type, &exact);
        if (fabs(q - cases[i].q) > 1e-9 || exact != cases[i].exact)
            fprintf(stderr, "accept case %zu: q %g exact %d\n", i, q, exact);
        EXPECT(fabs(q - cases[i].q) <= 1e-9 && exact == cases[i].exact);
    }
    /* Accept-Encoding reads its q-values the same way. */
    EXPECT(content_coding_accepts("gzip;q=0.5", CONTENT_CODING_GZIP));
    EXPECT(!content_coding_accepts("gzip;q=0, *", CONTENT_CODING_GZIP));
    EXPECT(content_coding_accepts("br, *;q=0.1", CONTENT_CODING_DEFLATE));
}

/* ---------------------------------------------------------------- inference jobs */

#define JOB_CLASSES 4

static const served_model job_model = {.name = "vgg16", .n_classes = JOB_CLASSES,
                                       .image_hw = 224, .image_floats = 3 * 224 * 224,
                                       .explain_hw = 2, .explain_layer = "conv5_3"};

/* A POST /explain of one PNG parsed to a job, "computed" by hand, then answered. */
static void test_inference_jobs(void) {
    char msg[800];
    size_t png_len;
    unsigned char *png = read_file("data/bad_inputs/one_pixel.png", &png_len);
    classify_http_request req = {"image/png", "2", png, png_len, false, 0};

    /* /explain checks, in order: int8, Accept, class_id. */
    served_model int8 = job_model;
    int8.explain_hw = 0;
    inference_job *job = inference_job_new(&int8, JOB_ANSWER_EXPLAIN_JSON);
    EXPECT(classify_job_parse(&req, NULL, &lim, &fmt, job, msg, sizeof msg) == API_BAD_REQUEST);
    EXPECT(strstr(msg, "int8") != NULL && job->n_images == 1);
    inference_job_free(job);
    job = inference_job_new(&job_model, JOB_ANSWER_EXPLAIN_JSON);
    classify_explain_request bad = {"4", NULL};
    EXPECT(classify_job_parse(&req, &bad, &lim, &fmt, job, msg, sizeof msg) == API_BAD_REQUEST);
    EXPECT(strstr(msg, "from 0 to 3") != NULL);
    inference_job_free(job);

    /* Accept: image/png and class 1: a picture of one map. */
    job = inference_job_new(&job_model, JOB_ANSWER_EXPLAIN_JSON);
    classify_explain_request ex = {"1", "image/png"};
    EXPECT(classify_job_parse(&req, &ex, &lim, &fmt, job, msg, sizeof msg) == API_OK);
    EXPECT(job->answer == JOB_ANSWER_EXPLAIN_PNG && job->top_k == 2 && job->n_images == 1);
    EXPECT(job->want == (JOB_WANT_PROBS | JOB_WANT_MAPS) && job->explain_class == 1);
    EXPECT(job->inputs != NULL && job->sizes != NULL);
    EXPECT(inference_job_alloc_results(job) == 0 && job->maps && job->explained && !job->logits);
    for (int c = 0; c < JOB_CLASSES; c++) job->probs[c] = c == 1 ? 0.7f : 0.1f;
    for (int i = 0; i < 4; i++) job->maps[i] = (float)i / 3;
    job->explained[0] = 1;
    job_answer a;
    EXPECT(job_answer_write(job, "id-1", 0, &a, msg, sizeof msg) == API_OK);
    EXPECT(!a.json && a.body && a.len > 8 && memcmp(a.body, "\x89PNG", 4) == 0);
    EXPECT(!a.compressible && a.header && strcmp(a.header, "X-Explained-Class") == 0 &&
           strcmp(a.header_value, "1") == 0);
    free(a.body);

    /* The same job as JSON: the top 2 with a grid and a crop window. */
    job->answer = JOB_ANSWER_EXPLAIN_JSON;
    EXPECT(job_answer_write(job, "id-1", 0, &a, msg, sizeof msg) == API_OK && a.json);
    json_t *p0 = json_array_get(json_object_get(a.json, "predictions"), 0);
    EXPECT(json_array_size(json_object_get(p0, "top_k")) == 2);
    json_t *e = json_object_get(p0, "explanation");
    EXPECT(json_integer_value(json_object_get(e, "class_id")) == 1);
    EXPECT(json_array_size(json_object_get(e, "crop")) == 4);
    EXPECT(strcmp(json_string_value(json_object_get(a.json, "request_id")), "id-1") == 0);
    json_decref(a.json);

    /* A job that expired in the queue is answered with its deadline. */
    job->status = JOB_EXPIRED;
    job->deadline_ns = 250000000;
    EXPECT(job_answer_write(job, "id-1", 0, &a, msg, sizeof msg) == API_DEADLINE_EXCEEDED);
    EXPECT(strstr(msg, "deadline of 250 ms") != NULL);
    inference_job_free(job);
    free(png);
}

int main(int argc, char **argv) {
    tests_dir = argc > 1 ? argv[1] : "tests";
    static const test_case tests[] = {
        {"classify request", test_classify_request},
        {"image check", test_image_check},
        {"auth", test_auth},
        {"utf8 sanitize", test_utf8_sanitize},
        {"config keys", test_config_keys},
        {"config repository", test_config_repository},
        {"accept media", test_accept_media},
        {"inference jobs", test_inference_jobs},
    };
    test_run(tests, sizeof tests / sizeof tests[0]);
    return test_summary();
}
