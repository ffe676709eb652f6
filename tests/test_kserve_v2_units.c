/* test_kserve_v2_units.c - unit tests of api/kserve_v2*.c (no server, no engine).
 *
 * Routes (a table of paths and what they are), infer requests as data (a table of bodies with
 * the status and message each must give), the image and tensor inputs (base64 and binary,
 * against preprocess_bytes on the same photo), and responses: JSON values, binary layout,
 * classification strings, the echoed id, metadata and the error shape.
 *
 * Usage: test_kserve_v2_units <tests dir>  (reads data/images/chelsea.jpg under it). */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_scan.h"
#include "kserve_v2.h"
#include "labels.h"
#include "preprocess.h"
#include "test_util.h"

#define HW 8 /* a small network side keeps the FP32 cases short; the code takes it from lim */
#define N_CLASSES 1000

static const classify_limits lim = {1 << 20, 4};
static const image_input_format fmt = {HW, PREPROCESS_TORCHVISION, {.max_pixels = 40000000}};

static void *xmalloc(size_t n) {
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

static unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = xmalloc((size_t)n);
    *len = fread(buf, 1, (size_t)n, f);
    fclose(f);
    return buf;
}

static char *base64(const unsigned char *p, size_t n) {
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = xmalloc(n / 3 * 4 + 5), *o = out;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        *o++ = a[v >> 18 & 63];
        *o++ = a[v >> 12 & 63];
        *o++ = i + 1 < n ? a[v >> 6 & 63] : '=';
        *o++ = i + 2 < n ? a[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

static kserve_v2_view parse_view = KSERVE_V2_VIEW_FULL; /* the model view parse() asks */
static int parse_gradcam_hw = 0; /* the served model's map side; 0: no gradcam (int8) */

static api_status parse(const char *json, const char *header_length, const unsigned char *bin,
                        size_t bin_len, kserve_v2_infer *out, char *msg, size_t msglen) {
    size_t jl = strlen(json);
    unsigned char *body = xmalloc(jl + bin_len + 1);
    memcpy(body, json, jl);
    if (bin_len) memcpy(body + jl, bin, bin_len);
    kserve_v2_http_request req = {header_length, body, jl + bin_len, false, parse_view,
                                  N_CLASSES, parse_gradcam_hw, NULL, NULL, 0};
    api_status st = kserve_v2_infer_parse(&req, &lim, &fmt, out, msg, msglen);
    free(body);
    return st;
}

/* ---------------------------------------------------------------- routes */

static void test_routes(void) {
    static const struct {
        const char *path;
        kserve_v2_route want;
        const char *msg; /* part of the 404 message */
        kserve_v2_view view;
    } cases[] = {
        {"/classify", KSERVE_V2_ROUTE_NONE, NULL, KSERVE_V2_VIEW_FULL},
        {"/v2x", KSERVE_V2_ROUTE_NONE, NULL, KSERVE_V2_VIEW_FULL},
        {"/", KSERVE_V2_ROUTE_NONE, NULL, KSERVE_V2_VIEW_FULL},
        {"/v2", KSERVE_V2_ROUTE_SERVER_METADATA, NULL, KSERVE_V2_VIEW_FULL},
        {"/v2/", KSERVE_V2_ROUTE_SERVER_METADATA, NULL, KSERVE_V2_VIEW_FULL},
        {"/v2/health/live", KSERVE_V2_ROUTE_LIVE, NULL, KSERVE_V2_VIEW_FULL},
        {"/v2/health/ready", KSERVE_V2_ROUTE_READY, NULL, KSERVE_V2_VIEW_FULL},
        {"/v2/health", KSERVE_V2_ROUTE_NOT_FOUND, "no route /v2/health", KSERVE_V2_VIEW_FULL},
        {"/v2/models/vgg16", KSERVE_V2_ROUTE_MODEL_METADATA, NULL, KSERVE_V2_VIEW_FULL},
        {"/v2/models/vgg16/versions/1", KSERVE_V2_ROUTE_MODEL_METADATA, NULL, KSERVE_V2_VIEW_FULL},
        {"/v2/models/vgg16/ready", KSERVE_V2_ROUTE_MODEL_READY, NULL, KSERVE_V2_VIEW_FULL},
        {"/v2/models/vgg16/versions/1/ready", KSERVE_V2_ROUTE_MODEL_READY, NULL, KSERVE_V2_VIEW_FULL},
        {"/v2/models/vgg16/infer", KSERVE_V2_ROUTE_INFER, NULL, KSERVE_V2_VIEW_FULL},
        {"/v2/models/vgg16/versions/1/infer", KSERVE_V2_ROUTE_INFER, NULL, KSERVE_V2_VIEW_FULL},
        {"/v2/models/vgg19/infer", KSERVE_V2_ROUTE_NOT_FOUND, "unknown model 'vgg19'", KSERVE_V2_VIEW_FULL},
        {"/v2/models/vgg1", KSERVE_V2_ROUTE_NOT_FOUND, "unknown model 'vgg1'", KSERVE_V2_VIEW_FULL},
        {"/v2/models/vgg16x/ready", KSERVE_V2_ROUTE_NOT_FOUND, "unknown model", KSERVE_V2_VIEW_FULL},
        {"/v2/models/vgg16/versions/2/infer", KSERVE_V2_ROUTE_NOT_FOUND, "unknown version '2'", KSERVE_V2_VIEW_FULL},
        {"/v2/models/vgg16/versions/", KSERVE_V2_ROUTE_NOT_FOUND, "unknown version ''", KSERVE_V2_VIEW_FULL},
        {"/v2/models/vgg16/versions/1/", KSERVE_V2_ROUTE_NOT_FOUND, "no route", KSERVE_V2_VIEW_FULL},
        {"/v2/models/vgg16/infer/", KSERVE_V2_ROUTE_NOT_FOUND, "no route", KSERVE_V2_VIEW_FULL},
        {"/v2/models/vgg16/explain", KSERVE_V2_ROUTE_NOT_FOUND, "no route", KSERVE_V2_VIEW_FULL},
        {"/v2/models", KSERVE_V2_ROUTE_NOT_FOUND, "no route", KSERVE_V2_VIEW_FULL},
        {"/v2/models/", KSERVE_V2_ROUTE_NOT_FOUND, "unknown model ''", KSERVE_V2_VIEW_FULL},
        {"/v2/repository/index", KSERVE_V2_ROUTE_REPOSITORY_INDEX, NULL, KSERVE_V2_VIEW_FULL},
        {"/v2/repository/index/x", KSERVE_V2_ROUTE_NOT_FOUND, "no route", KSERVE_V2_VIEW_FULL},
        {"/v2/repository/models/vgg16/load", KSERVE_V2_ROUTE_REPOSITORY_CONTROL, NULL, KSERVE_V2_VIEW_FULL},
        {"/v2/repository/models/vgg16/unload", KSERVE_V2_ROUTE_REPOSITORY_CONTROL, NULL, KSERVE_V2_VIEW_FULL},
        {"/v2/repository/models/vgg16/reload", KSERVE_V2_ROUTE_NOT_FOUND, "no route", KSERVE_V2_VIEW_FULL},
        {"/v2/models/stats", KSERVE_V2_ROUTE_ALL_STATS, NULL, KSERVE_V2_VIEW_FULL},
        {"/v2/models/vgg16/stats", KSERVE_V2_ROUTE_MODEL_STATS, NULL, KSERVE_V2_VIEW_FULL},
        {"/v2/models/vgg16/versions/1/config", KSERVE_V2_ROUTE_MODEL_CONFIG, NULL, KSERVE_V2_VIEW_FULL},
        {"/v2/models/vgg16_image", KSERVE_V2_ROUTE_MODEL_METADATA, NULL, KSERVE_V2_VIEW_IMAGE},
        {"/v2/models/vgg16_image/config", KSERVE_V2_ROUTE_MODEL_CONFIG, NULL, KSERVE_V2_VIEW_IMAGE},
        {"/v2/models/vgg16_tensor/versions/1/infer", KSERVE_V2_ROUTE_INFER, NULL,
         KSERVE_V2_VIEW_TENSOR},
        {"/v2/models/vgg16_tensor/stats", KSERVE_V2_ROUTE_MODEL_STATS, NULL, KSERVE_V2_VIEW_TENSOR},
        {"/v2/models/vgg16_logits/infer", KSERVE_V2_ROUTE_NOT_FOUND, "'vgg16_image' and", KSERVE_V2_VIEW_FULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char msg[300] = "";
        kserve_v2_view view;
        kserve_v2_route got = kserve_v2_route_parse(cases[i].path, "vgg16", &view, msg, sizeof msg);
        if (got != cases[i].want) fprintf(stderr, "route %s: got %d\n", cases[i].path, got);
        EXPECT(got == cases[i].want);
        if (got != KSERVE_V2_ROUTE_NOT_FOUND) EXPECT(view == cases[i].view);
        if (cases[i].msg) {
            if (!strstr(msg, cases[i].msg)) fprintf(stderr, "route %s: '%s'\n", cases[i].path, msg);
            EXPECT(strstr(msg, cases[i].msg) != NULL);
        }
    }
    /* A very long path is cut, never overrun. */
    char longp[2000] = "/v2/models/";
    memset(longp + 11, 'a', sizeof longp - 12);
    char msg[64];
    kserve_v2_view view;
    EXPECT(kserve_v2_route_parse(longp, "vgg16", &view, msg, sizeof msg) ==
           KSERVE_V2_ROUTE_NOT_FOUND);
    EXPECT(strlen(msg) < sizeof msg);
}

/* ---------------------------------------------------------------- bad requests as data */

/* The table writes JSON's double quotes as backquotes, to stay readable. */
static void quotes(const char *in, char *out, size_t cap) {
    snprintf(out, cap, "%s", in);
    for (char *c = out; *c; c++)
        if (*c == '`') *c = '"';
}

static void test_bad_requests(void) {
    static const struct {
        const char *json, *header_length, *bin;
        api_status want;
        const char *msg;
    } cases[] = {
        {"", NULL, NULL, API_BAD_REQUEST, "empty request"},
        {"nope", NULL, NULL, API_BAD_REQUEST, "not JSON"},
        {"[]", NULL, NULL, API_BAD_REQUEST, "JSON object"},
        {"{`a`:1,`a`:2}", NULL, NULL, API_BAD_REQUEST, "not JSON"},
        {"{}", NULL, NULL, API_BAD_REQUEST, "`inputs`"},
        {"{`inputs`:{}}", NULL, NULL, API_BAD_REQUEST, "`inputs`"},
        {"{`inputs`:[{`name`:`image`}]}", NULL, NULL, API_BAD_REQUEST, "needs `name`, `datatype`"},
        {"{`inputs`:[{`name`:`x`,`datatype`:`BYTES`,`shape`:[1]}]}", NULL, NULL,
         API_BAD_REQUEST, "unknown input 'x'"},
        {"{`inputs`:[{`name`:`input`,`datatype`:`FP16`,`shape`:[1,3,8,8]}]}", NULL, NULL,
         API_BAD_REQUEST, "datatype FP32, not FP16"},
        {"{`inputs`:[{`name`:`input`,`datatype`:`FP32`,`shape`:[1,3,8,9],`data`:[]}]}",
         NULL, NULL, API_BAD_REQUEST, "shape [N,3,8,8]"},
        {"{`inputs`:[{`name`:`image`,`datatype`:`BYTES`,`shape`:[1,2],`data`:[]}]}",
         NULL, NULL, API_BAD_REQUEST, "shape [N]"},
        {"{`inputs`:[{`name`:`image`,`datatype`:`BYTES`,`shape`:[-1],`data`:[]}]}",
         NULL, NULL, API_BAD_REQUEST, "shape [N]"},
        {"{`inputs`:[{`name`:`image`,`datatype`:`BYTES`,`shape`:[1.5],`data`:[]}]}",
         NULL, NULL, API_BAD_REQUEST, "shape [N]"},
        {"{`inputs`:[{`name`:`image`,`datatype`:`BYTES`,`shape`:[5],`data`:[]}]}",
         NULL, NULL, API_TOO_MANY_IMAGES, "the limit is 4"},
        {"{`inputs`:[{`name`:`image`,`datatype`:`BYTES`,`shape`:[9223372036854775807],"
         "`data`:[]}]}", NULL, NULL, API_TOO_MANY_IMAGES, "limit"},
        {"{`inputs`:[{`name`:`image`,`datatype`:`BYTES`,`shape`:[1]}]}", NULL, NULL,
         API_BAD_REQUEST, "not neither"},
        {"{`inputs`:[{`name`:`image`,`datatype`:`BYTES`,`shape`:[1],`data`:[`QQ`],"
         "`parameters`:{`binary_data_size`:0}}]}", NULL, NULL, API_BAD_REQUEST, "not both"},
        {"{`inputs`:[{`name`:`image`,`datatype`:`BYTES`,`shape`:[1],`data`:[`Q`]}]}",
         NULL, NULL, API_BAD_REQUEST, "not valid base64"},
        {"{`inputs`:[{`name`:`image`,`datatype`:`BYTES`,`shape`:[1],`data`:[`QQ==QQ`]}]}",
         NULL, NULL, API_BAD_REQUEST, "not valid base64"},
        {"{`inputs`:[{`name`:`image`,`datatype`:`BYTES`,`shape`:[1],`data`:[`QUJD`]}]}",
         NULL, NULL, API_UNSUPPORTED_MEDIA, "JPEG, PNG or WebP"},
        {"{`inputs`:[{`name`:`image`,`datatype`:`BYTES`,`shape`:[1],"
         "`parameters`:{`binary_data_size`:4}}]}", NULL, "\x01\x00\x00\x00", API_BAD_REQUEST,
         "4 bytes follow the JSON request"},
        {"{`inputs`:[{`name`:`image`,`datatype`:`BYTES`,`shape`:[1],"
         "`parameters`:{`binary_data_size`:0}}]}", NULL, NULL, API_BAD_REQUEST,
         "needs the Inference-Header-Content-Length"},
        {"{`inputs`:[{`name`:`image`,`datatype`:`BYTES`,`shape`:[1],"
         "`parameters`:{`binary_data_size`:-4}}]}", "0", NULL, API_BAD_REQUEST, "non-negative"},
        {"{`inputs`:[]}", "x", NULL, API_BAD_REQUEST, "Inference-Header-Content-Length 'x'"},
        {"{`inputs`:[]}", "99999", NULL, API_BAD_REQUEST, "at most the body's"},
        {"{`inputs`:[{`name`:`input`,`datatype`:`FP32`,`shape`:[1,3,8,8],"
         "`data`:[[[1]]]}]}", NULL, NULL, API_BAD_REQUEST, "must hold 192 numbers"},
        {"{`inputs`:[{`name`:`image`,`datatype`:`BYTES`,`shape`:[1],`data`:[`QUJD`]}],"
         "`outputs`:[{`name`:`probabilities`,`parameters`:{`classification`:1001}}]}", NULL,
         NULL, API_BAD_REQUEST, "classification must be"},
        {"{`inputs`:[{`name`:`image`,`datatype`:`BYTES`,`shape`:[1],`data`:[`QUJD`]}],"
         "`outputs`:[{`name`:`a`},{`name`:`b`},{`name`:`c`},{`name`:`d`}]}", NULL, NULL,
         API_BAD_REQUEST, "at most 2 outputs (probabilities, logits)"},
        {"{`inputs`:[{`name`:`image`,`datatype`:`BYTES`,`shape`:[1],`data`:[`QUJD`]}],"
         "`outputs`:[{`name`:`gradcam`}]}", NULL, NULL, API_BAD_REQUEST,
         "explanations are not supported in int8"},
        {"{`inputs`:[{`name`:`image`,`datatype`:`BYTES`,`shape`:[1],`data`:[`QUJD`]}],"
         "`outputs`:[{`parameters`:{}}]}", NULL, NULL, API_BAD_REQUEST, "needs a `name`"},
        {"{`inputs`:[{`name`:`image`,`datatype`:`BYTES`,`shape`:[1],`data`:[`QUJD`]}],"
         "`parameters`:[]}", NULL, NULL, API_BAD_REQUEST, "`parameters` must be an object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kserve_v2_infer in;
        char msg[800] = "", json[512], want[128];
        quotes(cases[i].json, json, sizeof json);
        quotes(cases[i].msg, want, sizeof want);
        size_t bl = cases[i].bin ? 4 : 0;
        char hl[32];
        const char *h = cases[i].header_length;
        if (h && strcmp(h, "0") == 0) { /* "0": the JSON's own length */
            snprintf(hl, sizeof hl, "%zu", strlen(json));
            h = hl;
        }
        api_status st = parse(json, h, (const unsigned char *)cases[i].bin, bl, &in, msg,
                              sizeof msg);
        if (st != cases[i].want || !strstr(msg, want))
            fprintf(stderr, "case %zu (%s): status %d, '%s'\n", i, json, st, msg);
        EXPECT(st == cases[i].want);
        EXPECT(strstr(msg, want) != NULL);
        EXPECT(in.inputs == NULL);
    }
    /* Over the body limit: 413 before anything is parsed. */
    kserve_v2_http_request big = {NULL, NULL, 0, true, KSERVE_V2_VIEW_FULL, N_CLASSES, 0, NULL, NULL, 0};
    kserve_v2_infer in;
    char msg[200];
    EXPECT(kserve_v2_infer_parse(&big, &lim, &fmt, &in, msg, sizeof msg) == API_BODY_TOO_LARGE);
}

/* ---------------------------------------------------------------- images */

static void test_images(const char *tests_dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/data/images/chelsea.jpg", tests_dir);
    size_t len;
    unsigned char *jpg = read_file(path, &len);
    EXPECT(jpg != NULL);
    if (!jpg) return;
    float want[3 * HW * HW];
    char err[256];
    EXPECT(preprocess_bytes(jpg, len, &fmt.decode, PREPROCESS_TORCHVISION, HW, want, err,
                            sizeof err) == PREPROCESS_OK);

    /* JSON: two base64 strings, one with line breaks (as `base64` wraps). */
    char *b64 = base64(jpg, len);
    size_t bl = strlen(b64);
    char *wrapped = xmalloc(bl + bl / 76 * 2 + 1), *w = wrapped;
    for (size_t i = 0; i < bl; i++) {
        if (i && i % 76 == 0) *w++ = '\\', *w++ = 'n';
        *w++ = b64[i];
    }
    *w = '\0';
    const size_t json_cap = bl * 3 + 256;
    char *json = xmalloc(json_cap);
    snprintf(json, json_cap,
             "{\"id\":\"r1\",\"inputs\":[{\"name\":\"image\",\"datatype\":\"BYTES\","
             "\"shape\":[2],\"data\":[\"%s\",\"%s\"]}]}", b64, wrapped);
    kserve_v2_infer in;
    char msg[800];
    EXPECT(parse(json, NULL, NULL, 0, &in, msg, sizeof msg) == API_OK);
    EXPECT(in.n_images == 2 && !in.tensor_input && strcmp(in.id, "r1") == 0);
    /* No "outputs": every output of the full model, in metadata order. */
    EXPECT(in.n_outputs == 2 && in.outputs[0].kind == KSERVE_V2_OUT_PROBABILITIES &&
           in.outputs[1].kind == KSERVE_V2_OUT_LOGITS && !in.outputs[0].binary && in.want_logits);
    EXPECT(in.inputs && memcmp(in.inputs, want, sizeof want) == 0);
    EXPECT(in.inputs && memcmp(in.inputs + 3 * HW * HW, want, sizeof want) == 0);
    kserve_v2_infer_free(&in);

    /* Binary: length-prefixed elements after the JSON header. */
    unsigned char *bin = xmalloc(2 * (len + 4));
    for (int k = 0; k < 2; k++) {
        unsigned char *e = bin + k * (len + 4);
        for (int j = 0; j < 4; j++) e[j] = (unsigned char)(len >> 8 * j);
        memcpy(e + 4, jpg, len);
    }
    snprintf(json, json_cap,
             "{\"inputs\":[{\"name\":\"image\",\"datatype\":\"BYTES\",\"shape\":[2],"
             "\"parameters\":{\"binary_data_size\":%zu}}]}", 2 * (len + 4));
    char hl[32];
    snprintf(hl, sizeof hl, "%zu", strlen(json));
    EXPECT(parse(json, hl, bin, 2 * (len + 4), &in, msg, sizeof msg) == API_OK);
    EXPECT(in.n_images == 2 && in.inputs &&
           memcmp(in.inputs + 3 * HW * HW, want, sizeof want) == 0);
    EXPECT(in.id[0] == '\0');
    kserve_v2_infer_free(&in);
    /* A truncated second element: 422 (undecodable), naming the element. */
    snprintf(json, json_cap,
             "{\"inputs\":[{\"name\":\"image\",\"datatype\":\"BYTES\",\"shape\":[2],"
             "\"parameters\":{\"binary_data_size\":%zu}}]}", len + 4 + 4 + 300);
    snprintf(hl, sizeof hl, "%zu", strlen(json));
    unsigned char *e = bin + len + 4;
    e[0] = 44, e[1] = 1, e[2] = 0, e[3] = 0; /* 300 */
    api_status st = parse(json, hl, bin, len + 4 + 4 + 300, &in, msg, sizeof msg);
    EXPECT(st == API_UNDECODABLE);
    EXPECT(strstr(msg, "image element 1") != NULL);
    EXPECT(in.n_images == 2); /* for the access log */
    free(bin);
    free(json);
    free(wrapped);
    free(b64);
    free(jpg);
}

/* ---------------------------------------------------------------- tensors */

static void test_tensors(void) {
    enum { N = 2, F = 3 * HW * HW };
    float want[N * F];
    for (int i = 0; i < N * F; i++) want[i] = (float)(i % 50) / 7.0f - 3.0f;
    /* Flat JSON with 9 digits: exactly the floats. */
    const size_t json_cap = N * F * 24 + 512;
    char *json = xmalloc(json_cap), *p = json;
    p += sprintf(p, "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[2,3,%d,%d],"
                 "\"data\":[", HW, HW);
    for (int i = 0; i < N * F; i++) p += sprintf(p, "%s%.9g", i ? "," : "", (double)want[i]);
    sprintf(p, "]}],\"outputs\":[{\"name\":\"logits\"},{\"name\":\"probabilities\","
            "\"parameters\":{\"binary_data\":true}}]}");
    kserve_v2_infer in;
    char msg[800];
    EXPECT(parse(json, NULL, NULL, 0, &in, msg, sizeof msg) == API_OK);
    EXPECT(in.tensor_input && in.n_images == 2 && in.inputs &&
           memcmp(in.inputs, want, sizeof want) == 0);
    EXPECT(in.want_logits && in.n_outputs == 2 && in.outputs[0].kind == KSERVE_V2_OUT_LOGITS &&
           in.outputs[1].binary);
    kserve_v2_infer_free(&in);

    /* Nested by the shape: [2][3][HW][HW]. */
    p = json;
    p += sprintf(p, "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[2,3,%d,%d],"
                 "\"data\":[", HW, HW);
    for (int n = 0, i = 0; n < N; n++) {
        p += sprintf(p, "%s[", n ? "," : "");
        for (int c = 0; c < 3; c++) {
            p += sprintf(p, "%s[", c ? "," : "");
            for (int y = 0; y < HW; y++) {
                p += sprintf(p, "%s[", y ? "," : "");
                for (int x = 0; x < HW; x++, i++)
                    p += sprintf(p, "%s%.9g", x ? "," : "", (double)want[i]);
                p += sprintf(p, "]");
            }
            p += sprintf(p, "]");
        }
        p += sprintf(p, "]");
    }
    sprintf(p, "]}]}");
    EXPECT(parse(json, NULL, NULL, 0, &in, msg, sizeof msg) == API_OK);
    EXPECT(in.inputs && memcmp(in.inputs, want, sizeof want) == 0);
    kserve_v2_infer_free(&in);
    /* A row too short in the nesting is refused. */
    char *cut = strstr(json, "],[");
    if (cut) memmove(cut - 2, cut, strlen(cut) + 1); /* drop one number of the first row */
    EXPECT(parse(json, NULL, NULL, 0, &in, msg, sizeof msg) == API_BAD_REQUEST);

    /* Binary. */
    snprintf(json, json_cap,
             "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[2,3,%d,%d],"
             "\"parameters\":{\"binary_data_size\":%zu}}],"
             "\"parameters\":{\"binary_data_output\":true}}", HW, HW, sizeof want);
    char hl[32];
    snprintf(hl, sizeof hl, "%zu", strlen(json));
    EXPECT(parse(json, hl, (const unsigned char *)want, sizeof want, &in, msg, sizeof msg) ==
           API_OK);
    EXPECT(in.inputs && memcmp(in.inputs, want, sizeof want) == 0);
    EXPECT(in.n_outputs == 2 && in.outputs[0].binary && in.outputs[1].binary);
    kserve_v2_infer_free(&in);
    /* NaN, infinity and values far beyond preprocessed pixels are refused. */
    float bad[N * F];
    memcpy(bad, want, sizeof bad);
    const float evil[] = {NAN, INFINITY, -2e6f};
    for (size_t k = 0; k < 3; k++) {
        bad[17] = evil[k];
        EXPECT(parse(json, hl, (const unsigned char *)bad, sizeof bad, &in, msg, sizeof msg) ==
               API_BAD_REQUEST);
        EXPECT(strstr(msg, "value 17") != NULL);
    }
    free(json);
}

/* ---------------------------------------------------------------- responses */

/* msg: 200 bytes. */
static int respond(const kserve_v2_infer *in, const float *probs, const float *logits,
                   kserve_v2_body *b, char *msg) {
    vgg_labels imagenet;
    vgg_labels_imagenet(&imagenet);
    const kserve_v2_results res = {probs, logits, N_CLASSES, NULL, 0, &imagenet, 1};
    return kserve_v2_infer_response(in, "vgg16", &res, b, msg, 200);
}

static void test_responses(void) {
    enum { N = 2 };
    float probs[N * N_CLASSES], logits[N * N_CLASSES];
    for (int i = 0; i < N * N_CLASSES; i++) {
        probs[i] = 0.5f / N_CLASSES;
        logits[i] = (float)(i % N_CLASSES) / 100.0f;
    }
    probs[281] = 0.25f, probs[282] = 0.125f;            /* row 0: 281, 282, then ties */
    probs[N_CLASSES + 7] = 0.375f;                      /* row 1: 7 first */
    kserve_v2_infer in = {.n_images = N, .n_outputs = 2, .want_logits = true};
    snprintf(in.id, sizeof in.id, "req-9");
    in.outputs[0] = (kserve_v2_output){KSERVE_V2_OUT_PROBABILITIES, false, 2};
    in.outputs[1] = (kserve_v2_output){KSERVE_V2_OUT_LOGITS, true, 0};
    kserve_v2_body b;
    char msg[200];
    EXPECT(respond(&in, probs, logits, &b, msg) == 0);
    EXPECT(b.binary && b.len == b.json_len + sizeof logits);
    EXPECT(memcmp(b.data + b.json_len, logits, sizeof logits) == 0);
    json_error_t jerr;
    json_t *root = json_loadb(b.data, b.json_len, 0, &jerr);
    EXPECT(root != NULL);
    EXPECT(strcmp(json_string_value(json_object_get(root, "model_name")), "vgg16") == 0);
    EXPECT(strcmp(json_string_value(json_object_get(root, "model_version")), "1") == 0);
    EXPECT(strcmp(json_string_value(json_object_get(root, "id")), "req-9") == 0);
    json_t *o0 = json_array_get(json_object_get(root, "outputs"), 0);
    json_t *o1 = json_array_get(json_object_get(root, "outputs"), 1);
    EXPECT(strcmp(json_string_value(json_object_get(o0, "datatype")), "BYTES") == 0);
    EXPECT(json_integer_value(json_array_get(json_object_get(o0, "shape"), 1)) == 2);
    json_t *d = json_object_get(o0, "data");
    EXPECT(json_array_size(d) == 4);
    char want0[128];
    snprintf(want0, sizeof want0, "0.25:281:%s", labels_name(281));
    EXPECT(strcmp(json_string_value(json_array_get(d, 0)), want0) == 0);
    EXPECT(strncmp(json_string_value(json_array_get(d, 1)), "0.125:282:", 10) == 0);
    EXPECT(strncmp(json_string_value(json_array_get(d, 2)), "0.375:7:", 8) == 0);
    EXPECT(strcmp(json_string_value(json_object_get(o1, "name")), "logits") == 0);
    json_t *o1_params = json_object_get(o1, "parameters");
    EXPECT(json_integer_value(json_object_get(o1_params, "binary_data_size")) ==
           (json_int_t)sizeof logits);
    EXPECT(json_object_get(o1, "data") == NULL);
    json_decref(root);
    free(b.data);

    /* JSON FP32 values round-trip exactly (9 significant digits); no id when none was sent. */
    kserve_v2_infer plain = {.n_images = 1, .n_outputs = 1};
    float odd[N_CLASSES];
    for (int i = 0; i < N_CLASSES; i++) odd[i] = 1.0f / (float)(i + 3);
    EXPECT(respond(&plain, odd, NULL, &b, msg) == 0);
    EXPECT(!b.binary && b.len == b.json_len);
    root = json_loadb(b.data, b.len, 0, &jerr);
    EXPECT(json_object_get(root, "id") == NULL);
    d = json_object_get(json_array_get(json_object_get(root, "outputs"), 0), "data");
    int exact = json_array_size(d) == N_CLASSES;
    for (int i = 0; exact && i < N_CLASSES; i++)
        exact = (float)json_real_value(json_array_get(d, i)) == odd[i];
    EXPECT(exact);
    json_decref(root);
    free(b.data);

    /* A classification in binary: 4-byte lengths, then the strings. */
    plain.outputs[0] = (kserve_v2_output){KSERVE_V2_OUT_PROBABILITIES, true, 1};
    EXPECT(respond(&plain, probs, NULL, &b, msg) == 0);
    const unsigned char *bin = (const unsigned char *)b.data + b.json_len;
    uint32_t n = bin[0] | bin[1] << 8 | bin[2] << 16 | (uint32_t)bin[3] << 24;
    EXPECT(n + 4 == b.len - b.json_len);
    EXPECT(n == strlen(want0) && memcmp(bin + 4, want0, n) == 0);
    free(b.data);

    /* A non-finite value cannot be sent as JSON: an error, not a broken body. */
    odd[5] = NAN;
    plain.outputs[0] = (kserve_v2_output){KSERVE_V2_OUT_PROBABILITIES, false, 0};
    EXPECT(respond(&plain, odd, NULL, &b, msg) == -1);
    EXPECT(strstr(msg, "non-finite") != NULL);
}

static void test_metadata_and_errors(void) {
    json_t *server = kserve_v2_server_metadata_json();
    char *s = json_dumps(server, JSON_COMPACT | JSON_SORT_KEYS);
    EXPECT(strstr(s, "\"extensions\":[\"binary_tensor_data\",\"classification\","
                     "\"model_configuration\",\"model_repository\",\"statistics\"]") != NULL);
    free(s);
    json_decref(server);
    const kserve_v2_model_facts f = {"vgg16", 224, 1000, 16, 8, 10000, 1, true, 0, 1};
    json_t *m = kserve_v2_model_metadata_json(&f, KSERVE_V2_VIEW_FULL);
    s = json_dumps(m, JSON_COMPACT);
    EXPECT(strstr(s, "{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[-1,3,224,224]}"));
    EXPECT(strstr(s, "{\"name\":\"probabilities\",\"datatype\":\"FP32\",\"shape\":[-1,1000]}"));
    EXPECT(json_array_size(json_object_get(m, "inputs")) == 2);
    EXPECT(json_array_size(json_object_get(m, "outputs")) == 2);
    free(s);
    json_decref(m);
    /* The single-input views Triton's image clients need: one input, one output each. */
    for (int v = KSERVE_V2_VIEW_IMAGE; v <= KSERVE_V2_VIEW_TENSOR; v++) {
        m = kserve_v2_model_metadata_json(&f, (kserve_v2_view)v);
        json_t *c = kserve_v2_model_config_json(&f, (kserve_v2_view)v);
        EXPECT(json_array_size(json_object_get(m, "inputs")) == 1);
        EXPECT(json_array_size(json_object_get(m, "outputs")) == 1);
        EXPECT(json_array_size(json_object_get(c, "input")) == 1);
        EXPECT(json_integer_value(json_object_get(c, "max_batch_size")) == 16);
        EXPECT(strcmp(json_string_value(json_object_get(m, "name")),
                      v == KSERVE_V2_VIEW_IMAGE ? "vgg16_image" : "vgg16_tensor") == 0);
        s = json_dumps(c, JSON_COMPACT);
        EXPECT(strstr(s, v == KSERVE_V2_VIEW_IMAGE ? "\"data_type\":\"TYPE_STRING\""
                                                   : "\"format\":\"FORMAT_NCHW\",\"dims\":[3,224,224]"));
        EXPECT(strstr(s, "\"dynamic_batching\":{\"preferred_batch_size\":[8],"
                         "\"max_queue_delay_microseconds\":10000}"));
        free(s);
        json_decref(c);
        json_decref(m);
    }
    json_t *index = kserve_v2_repository_index_json(&f);
    EXPECT(json_array_size(index) == KSERVE_V2_VIEW_COUNT);
    s = json_dumps(index, JSON_COMPACT);
    EXPECT(strstr(s, "{\"name\":\"vgg16_tensor\",\"version\":\"1\",\"state\":\"READY\"}"));
    free(s);
    json_decref(index);
    /* Statistics: one view, or all; the engine's batches in each. */
    kserve_v2_view_stats vs[KSERVE_V2_VIEW_COUNT] = {{0}};
    vs[KSERVE_V2_VIEW_TENSOR] = (kserve_v2_view_stats){.inference_count = 3, .last_inference_ms = 1700000000000ULL, .success = {2, 5000}, .fail = {1, 70}};
    kserve_v2_engine_stats es = {.execution_count = 2};
    es.batch_infer[1] = (kserve_v2_duration){2, 900};
    json_t *st = kserve_v2_stats_json("vgg16", KSERVE_V2_VIEW_TENSOR, vs, &es);
    s = json_dumps(st, JSON_COMPACT);
    EXPECT(json_array_size(json_object_get(st, "model_stats")) == 1);
    EXPECT(strstr(s, "\"name\":\"vgg16_tensor\""));
    EXPECT(strstr(s, "\"inference_count\":3,\"execution_count\":2"));
    EXPECT(strstr(s, "\"success\":{\"count\":2,\"ns\":5000},\"fail\":{\"count\":1,\"ns\":70}"));
    EXPECT(strstr(s, "\"batch_stats\":[{\"batch_size\":2,"));
    EXPECT(strstr(s, "\"compute_infer\":{\"count\":2,\"ns\":900}"));
    free(s);
    json_decref(st);
    st = kserve_v2_stats_json("vgg16", KSERVE_V2_VIEW_COUNT, vs, &es);
    EXPECT(json_array_size(json_object_get(st, "model_stats")) == KSERVE_V2_VIEW_COUNT);
    json_decref(st);
    json_t *e = kserve_v2_error_json("bad \xff byte");
    EXPECT(strcmp(json_string_value(json_object_get(e, "error")), "bad ? byte") == 0);
    EXPECT(json_object_size(e) == 1);
    json_decref(e);
}

/* Each view accepts only its own input and outputs; no "outputs" means all of the view's. */
static void test_views(void) {
    kserve_v2_infer in;
    char msg[800];
    static float zeros[3 * HW * HW];
    char json[512], hl[32];
    snprintf(json, sizeof json, "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\","
             "\"shape\":[1,3,%d,%d],\"parameters\":{\"binary_data_size\":%zu}}]}", HW, HW,
             sizeof zeros);
    snprintf(hl, sizeof hl, "%zu", strlen(json));
    parse_view = KSERVE_V2_VIEW_TENSOR;
    EXPECT(parse(json, hl, (const unsigned char *)zeros, sizeof zeros, &in, msg, sizeof msg) == API_OK);
    EXPECT(in.n_outputs == 1 && in.outputs[0].kind == KSERVE_V2_OUT_PROBABILITIES && !in.want_logits);
    kserve_v2_infer_free(&in);
    parse_view = KSERVE_V2_VIEW_IMAGE; /* the tensor input is not the image view's */
    EXPECT(parse(json, hl, (const unsigned char *)zeros, sizeof zeros, &in, msg, sizeof msg) ==
           API_BAD_REQUEST);
    EXPECT(strstr(msg, "unknown input 'input'; this model's input: \"image\" (BYTES [N])"));
    parse_view = KSERVE_V2_VIEW_TENSOR; /* logits belong to the full model only */
    snprintf(json, sizeof json, "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\","
             "\"shape\":[1,3,%d,%d],\"parameters\":{\"binary_data_size\":%zu}}],"
             "\"outputs\":[{\"name\":\"logits\"}]}", HW, HW, sizeof zeros);
    snprintf(hl, sizeof hl, "%zu", strlen(json));
    EXPECT(parse(json, hl, (const unsigned char *)zeros, sizeof zeros, &in, msg, sizeof msg) ==
           API_BAD_REQUEST);
    EXPECT(strstr(msg, "unknown output 'logits'; this model's outputs: probabilities"));
    parse_view = KSERVE_V2_VIEW_FULL;
}

/* The gradcam output: the explain view's, class_id checked, FP32 [N, hw, hw] back; the full
 * view refuses it, naming the explain view. */
static void test_gradcam(void) {
    kserve_v2_infer in;
    char msg[800] = "", json[512];
    parse_gradcam_hw = 7;
    parse_view = KSERVE_V2_VIEW_EXPLAIN;
    const char *image = "{`inputs`:[{`name`:`image`,`datatype`:`BYTES`,`shape`:[1],"
                        "`data`:[`QUJD`]}]";
    static const struct {
        const char *outputs;
        const char *msg; /* NULL: accepted */
    } cases[] = {
        {"[{`name`:`gradcam`,`parameters`:{`class_id`:1000}}]", "class_id must be an integer "
         "from 0 to 999"},
        {"[{`name`:`gradcam`,`parameters`:{`class_id`:-2}}]", "class_id must be"},
        {"[{`name`:`gradcam`,`parameters`:{`class_id`:`7`}}]", "class_id must be"},
        {"[{`name`:`gradcam`,`parameters`:{`class_id`:3.5}}]", "class_id must be"},
        {"[{`name`:`gradcam`,`parameters`:{`classification`:2}}]", "classification applies to "
         "probabilities and logits only"},
        {"[{`name`:`gradcam`},{`name`:`gradcam`}]", "asked for twice"},
        {"[{`name`:`x`}]", "this model's outputs: probabilities, logits, gradcam"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char raw[512];
        snprintf(raw, sizeof raw, "%s,`outputs`:%s}", image, cases[i].outputs);
        quotes(raw, json, sizeof json);
        api_status st = parse(json, NULL, NULL, 0, &in, msg, sizeof msg);
        if (st != API_BAD_REQUEST || !strstr(msg, cases[i].msg))
            fprintf(stderr, "gradcam case %zu (%s): status %d, '%s'\n", i, json, st, msg);
        EXPECT(st == API_BAD_REQUEST && strstr(msg, cases[i].msg) != NULL);
    }
    /* Decoding fails on these 3 bytes, so parse the outputs through a tensor input instead. */
    static float zeros[3 * HW * HW];
    char hl[32];
    snprintf(json, sizeof json, "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\","
             "\"shape\":[1,3,%d,%d],\"parameters\":{\"binary_data_size\":%zu}}],\"outputs\":"
             "[{\"name\":\"gradcam\",\"parameters\":{\"class_id\":281,\"binary_data\":true}},"
             "{\"name\":\"probabilities\"}]}", HW, HW, sizeof zeros);
    snprintf(hl, sizeof hl, "%zu", strlen(json));
    EXPECT(parse(json, hl, (const unsigned char *)zeros, sizeof zeros, &in, msg, sizeof msg) ==
           API_OK);
    EXPECT(in.want_gradcam && in.gradcam_class == 281 && !in.want_logits && in.n_outputs == 2);
    EXPECT(in.outputs[0].kind == KSERVE_V2_OUT_GRADCAM && in.outputs[0].binary);
    kserve_v2_infer_free(&in);
    /* A request that names none gets every output the view lists: gradcam of each top-1. */
    snprintf(json, sizeof json, "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\","
             "\"shape\":[1,3,%d,%d],\"parameters\":{\"binary_data_size\":%zu}}]}", HW, HW,
             sizeof zeros);
    snprintf(hl, sizeof hl, "%zu", strlen(json));
    EXPECT(parse(json, hl, (const unsigned char *)zeros, sizeof zeros, &in, msg, sizeof msg) ==
           API_OK);
    EXPECT(in.want_gradcam && in.gradcam_class == -1 && in.want_logits && in.n_outputs == 3);
    EXPECT(in.outputs[2].kind == KSERVE_V2_OUT_GRADCAM);
    kserve_v2_infer_free(&in);
    /* The full view neither gives it by default nor when named. */
    parse_view = KSERVE_V2_VIEW_FULL;
    EXPECT(parse(json, hl, (const unsigned char *)zeros, sizeof zeros, &in, msg, sizeof msg) ==
           API_OK);
    EXPECT(!in.want_gradcam && in.want_logits && in.n_outputs == 2);
    kserve_v2_infer_free(&in);
    char raw[512];
    snprintf(raw, sizeof raw, "%s,`outputs`:[{`name`:`gradcam`}]}", image);
    quotes(raw, json, sizeof json);
    EXPECT(parse(json, NULL, NULL, 0, &in, msg, sizeof msg) == API_BAD_REQUEST &&
           strstr(msg, "explain view (its name with _explain, e.g. vgg16_explain)"));

    /* The answer: FP32 [N, 7, 7], as JSON and as binary. */
    enum { N = 2, A = 7 * 7 };
    float probs[N * N_CLASSES] = {0}, maps[N * A];
    for (int i = 0; i < N * A; i++) maps[i] = (float)i / (N * A);
    kserve_v2_infer req = {.n_images = N, .n_outputs = 1, .want_gradcam = true};
    req.outputs[0] = (kserve_v2_output){KSERVE_V2_OUT_GRADCAM, false, 0};
    const kserve_v2_results res = {probs, NULL, N_CLASSES, maps, 7, NULL, 1};
    kserve_v2_body b;
    EXPECT(kserve_v2_infer_response(&req, "vgg16", &res, &b, msg, 200) == 0);
    json_t *root = json_loadb(b.data, b.len, 0, NULL);
    json_t *o = json_array_get(json_object_get(root, "outputs"), 0);
    char *shape = json_dumps(json_object_get(o, "shape"), JSON_COMPACT);
    EXPECT(strcmp(json_string_value(json_object_get(o, "name")), "gradcam") == 0);
    EXPECT(strcmp(shape, "[2,7,7]") == 0);
    json_t *d = json_object_get(o, "data");
    int exact = json_array_size(d) == N * A;
    for (int i = 0; exact && i < N * A; i++)
        exact = (float)json_real_value(json_array_get(d, i)) == maps[i];
    EXPECT(exact);
    free(shape);
    json_decref(root);
    free(b.data);
    req.outputs[0].binary = true;
    EXPECT(kserve_v2_infer_response(&req, "vgg16", &res, &b, msg, 200) == 0);
    EXPECT(b.binary && b.len - b.json_len == sizeof maps);
    EXPECT(memcmp(b.data + b.json_len, maps, sizeof maps) == 0);
    free(b.data);

    /* Metadata and config list it for the explain view of a model that explains, only there. */
    kserve_v2_model_facts f = {"vgg16", 224, 1000, 16, 8, 10000, 1, true, 14, 1};
    json_t *m = kserve_v2_model_metadata_json(&f, KSERVE_V2_VIEW_EXPLAIN);
    json_t *c = kserve_v2_model_config_json(&f, KSERVE_V2_VIEW_EXPLAIN);
    char *ms = json_dumps(m, JSON_COMPACT), *cs = json_dumps(c, JSON_COMPACT);
    EXPECT(strstr(ms, "{\"name\":\"gradcam\",\"datatype\":\"FP32\",\"shape\":[-1,14,14]}"));
    EXPECT(strstr(cs, "{\"name\":\"gradcam\",\"data_type\":\"TYPE_FP32\",\"dims\":[14,14]}"));
    free(ms);
    free(cs);
    json_decref(m);
    json_decref(c);
    m = kserve_v2_model_metadata_json(&f, KSERVE_V2_VIEW_IMAGE);
    EXPECT(json_array_size(json_object_get(m, "outputs")) == 1);
    json_decref(m);
    m = kserve_v2_model_metadata_json(&f, KSERVE_V2_VIEW_FULL);
    EXPECT(json_array_size(json_object_get(m, "outputs")) == 2);
    EXPECT(strcmp(json_string_value(json_object_get(m, "name")), "vgg16") == 0);
    json_decref(m);
    f.gradcam_hw = 0;
    m = kserve_v2_model_metadata_json(&f, KSERVE_V2_VIEW_EXPLAIN);
    EXPECT(json_array_size(json_object_get(m, "outputs")) == 2);
    EXPECT(strcmp(json_string_value(json_object_get(m, "name")), "vgg16_explain") == 0);
    json_decref(m);
    parse_gradcam_hw = 0;
}

/* GET .../labels: the route, and the body for labels with, without and with some WordNet ids;
 * the classification extension names the top k by the labels it is given. */
static void test_labels(void) {
    kserve_v2_view v;
    EXPECT(kserve_v2_route_parse("/v2/models/vgg16/labels", "vgg16", &v, NULL, 0) ==
           KSERVE_V2_ROUTE_MODEL_LABELS);
    EXPECT(kserve_v2_route_parse("/v2/models/vgg16_image/versions/1/labels", "vgg16", &v, NULL,
                                 0) == KSERVE_V2_ROUTE_MODEL_LABELS &&
           v == KSERVE_V2_VIEW_IMAGE);
    EXPECT(!kserve_v2_route_is_post(KSERVE_V2_ROUTE_MODEL_LABELS));
    EXPECT(kserve_v2_route_parse("/v2/models/vgg16/labels/x", "vgg16", &v, NULL, 0) ==
           KSERVE_V2_ROUTE_NOT_FOUND);
    static const struct {
        const char *file, *want;
    } cases[] = {
        {"a\nb\n", "{\"name\":\"m\",\"version\":\"1\",\"count\":2,\"labels\":[\"a\",\"b\"]}"},
        {"{\"0\": \"a\", \"1\": [\"n1\", \"b\"], \"2\": \"c\"}",
         "{\"name\":\"m\",\"version\":\"1\",\"count\":3,\"labels\":[\"a\",\"b\",\"c\"],"
         "\"wnids\":[null,\"n1\",null]}"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        vgg_labels l;
        char err[200];
        EXPECT(vgg_labels_parse((const uint8_t *)cases[c].file, strlen(cases[c].file), &l, err,
                                sizeof err) == 0);
        json_t *j = kserve_v2_model_labels_json("m", &l);
        char *s = json_dumps(j, JSON_COMPACT);
        EXPECT(s && strcmp(s, cases[c].want) == 0);
        if (s && strcmp(s, cases[c].want) != 0) fprintf(stderr, "  got %s\n", s);
        free(s);
        json_decref(j);
        vgg_labels_free(&l);
    }
    /* classification: "score:index:label" with the given labels. */
    const char *file = "{\"b\": 1, \"a\": 0, \"c\": 2}";
    vgg_labels l;
    char msg[200];
    EXPECT(vgg_labels_parse((const uint8_t *)file, strlen(file), &l, msg, sizeof msg) == 0);
    const float probs[3] = {0.25f, 0.5f, 0.25f};
    kserve_v2_infer req = {.n_images = 1, .n_outputs = 1};
    req.outputs[0] = (kserve_v2_output){KSERVE_V2_OUT_PROBABILITIES, false, 5}; /* k past N */
    const kserve_v2_results res = {probs, NULL, 3, NULL, 0, &l, 1};
    kserve_v2_body b;
    EXPECT(kserve_v2_infer_response(&req, "m", &res, &b, msg, sizeof msg) == 0);
    json_t *root = json_loadb(b.data, b.len, 0, NULL);
    char *data = json_dumps(json_object_get(json_array_get(json_object_get(root, "outputs"), 0),
                                            "data"), JSON_COMPACT);
    EXPECT(data && strcmp(data, "[\"0.5:1:b\",\"0.25:0:a\",\"0.25:2:c\"]") == 0);
    free(data);
    json_decref(root);
    free(b.data);
    vgg_labels_free(&l);
}

/* ---------------------------------------------------------------- bombs (issue 25) */

/* JSON that would cost jansson far more than its bytes is refused before it is built, and
 * what the rest costs is charged through req.reserve before it is built. */
static long long reserved_bytes;
static bool reserve_upto(void *ctx, long long n) {
    if (reserved_bytes + n > *(long long *)ctx) return false;
    reserved_bytes += n;
    return true;
}

static char *repeat_json(const char *head, const char *item, int n, const char *tail) {
    size_t hl = strlen(head), il = strlen(item), tl = strlen(tail);
    char *s = xmalloc(hl + (il + 1) * (size_t)n + tl + 1), *p = s;
    memcpy(p, head, hl), p += hl;
    for (int i = 0; i < n; i++) {
        if (i) *p++ = ',';
        memcpy(p, item, il), p += il;
    }
    memcpy(p, tail, tl + 1);
    return s;
}

static void test_json_bombs(void) {
    kserve_v2_infer in;
    char msg[300];
    /* 200,000 empty objects: 600 KB that jansson would make about 50 MB of. */
    char *objects = repeat_json("{\"inputs\":[", "{}", 200000, "]}");
    EXPECT(parse(objects, NULL, NULL, 0, &in, msg, sizeof msg) == API_BODY_TOO_LARGE);
    EXPECT(strstr(msg, "objects and arrays") != NULL);
    free(objects);
    /* More numbers than max_images tensors hold (4 x 3 x 8 x 8 here). */
    char *numbers = repeat_json("{\"inputs\":[", "0", 4 * 3 * HW * HW + 5000, "]}");
    EXPECT(parse(numbers, NULL, NULL, 0, &in, msg, sizeof msg) == API_BODY_TOO_LARGE);
    EXPECT(strstr(msg, "values") != NULL);
    free(numbers);
    /* Brackets inside strings are not containers; nesting past 32 is refused. */
    char deep[200];
    snprintf(deep, sizeof deep, "{\"id\":\"[[[[{{{{\",\"inputs\":%.40s%.40s}",
             "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]");
    EXPECT(parse(deep, NULL, NULL, 0, &in, msg, sizeof msg) == API_BAD_REQUEST);
    EXPECT(strstr(msg, "nests deeper than 32") != NULL);
    json_scan_counts c;
    const json_scan_limits roomy = {1000, 1000, 8};
    const char *mixed = "{\"a\":\"]\\\"[\",\"b\":[1,-2.5e3,true,null]}";
    EXPECT(json_scan(mixed, strlen(mixed), &roomy, &c) == JSON_SCAN_OK);
    EXPECT(c.values == 7); /* two keys, a string, four scalars */
    EXPECT(c.containers == 2);
    EXPECT(c.depth == 2);
    /* The cost is charged before the document is built: a budget too small refuses it. */
    const char *ok = "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\","
                     "\"shape\":[1,3,8,8],\"data\":[0]}]}";
    long long budget = 100;
    reserved_bytes = 0;
    kserve_v2_http_request req = {NULL, (const unsigned char *)ok, strlen(ok), false,
                                  KSERVE_V2_VIEW_FULL, N_CLASSES, 0, reserve_upto, &budget, 0};
    EXPECT(kserve_v2_infer_parse(&req, &lim, &fmt, &in, msg, sizeof msg) == API_MEMORY_BUDGET);
    EXPECT(strstr(msg, "max_buffered_bytes") != NULL);
    budget = 1 << 20;
    EXPECT(kserve_v2_infer_parse(&req, &lim, &fmt, &in, msg, sizeof msg) == API_BAD_REQUEST);
    EXPECT(reserved_bytes > 10 * 48 && reserved_bytes < 4096); /* charged, then judged */
}

int main(int argc, char **argv) {
    const char *tests_dir = argc > 1 ? argv[1] : "tests";
    test_routes();
    test_bad_requests();
    test_images(tests_dir);
    test_tensors();
    test_responses();
    test_metadata_and_errors();
    test_views();
    test_gradcam();
    test_labels();
    test_json_bombs();
    return test_summary();
}
