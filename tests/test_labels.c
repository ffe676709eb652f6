/* test_labels.c - model/labels: each label format, the refusals (one case per row, with the
 * message it must give), and which labels a model answers with (vgg_labels_for_model). */
#include "labels.h"
#include "safetensors.h"
#include "test_model_util.h"

/* ---------------------------------------------------------------- formats */

typedef struct {
    const char *text;
    vgg_labels_format format;
    int n;
    const char *names[3]; /* the first three */
    const char *wnids[3]; /* NULL: none for that class */
} good_case;

static const good_case good[] = {
    {"tench\ngoldfish\n", VGG_LABELS_TEXT, 2, {"tench", "goldfish"}, {0}},
    {"tench\r\ngoldfish", VGG_LABELS_TEXT, 2, {"tench", "goldfish"}, {0}}, /* CRLF, no last \n */
    {"\xef\xbb\xbf" "a b\ncrane\ncrane\n", VGG_LABELS_TEXT, 3, {"a b", "crane", "crane"}, {0}},
    {"caf\xc3\xa9\n\xe6\x97\xa5\n", VGG_LABELS_TEXT, 2, {"caf\xc3\xa9", "\xe6\x97\xa5"}, {0}},
    {"{\"0\": \"cat\", \"1\": \"dog\"}", VGG_LABELS_INDEX_TO_NAME, 2, {"cat", "dog"}, {0}},
    {"{\"1\": [\"n02084071\", \"dog\"], \"0\": \"cat\", \"2\": [\"n1\", \"cow\"]}",
     VGG_LABELS_INDEX_TO_NAME, 3, {"cat", "dog", "cow"}, {NULL, "n02084071", "n1"}},
    {"{\"dog\": 1, \"cat\": 0}", VGG_LABELS_CLASS_INDICES, 2, {"cat", "dog"}, {0}},
    {" \n[\"cat\", \"dog\", \"cat\"]\n", VGG_LABELS_LIST, 3, {"cat", "dog", "cat"}, {0}},
    {"[\"\\u00e9t\\u00e9\"]", VGG_LABELS_LIST, 1, {"\xc3\xa9t\xc3\xa9"}, {0}},
    /* brackets inside strings do not nest, an escaped quote does not end one */
    {"[\"[[[\", \"\\\"{{\", \"]\"]", VGG_LABELS_LIST, 3, {"[[[", "\"{{", "]"}, {0}},
};

static void test_formats(void) {
    for (size_t c = 0; c < sizeof good / sizeof good[0]; c++) {
        const good_case *g = &good[c];
        vgg_labels l;
        char err[256] = "";
        int rc = vgg_labels_parse((const uint8_t *)g->text, strlen(g->text), &l, err, sizeof err);
        EXPECT(rc == 0);
        if (rc != 0) {
            fprintf(stderr, "  case %zu: %s\n", c, err);
            continue;
        }
        EXPECT(l.format == g->format && l.n == g->n);
        bool any_wnid = false;
        for (int i = 0; i < g->n && i < 3; i++) {
            EXPECT(strcmp(vgg_labels_name(&l, i), g->names[i]) == 0);
            const char *w = vgg_labels_wnid(&l, i);
            EXPECT(g->wnids[i] ? w && strcmp(w, g->wnids[i]) == 0 : w == NULL);
            any_wnid |= g->wnids[i] != NULL;
        }
        EXPECT((l.wnids != NULL) == any_wnid); /* no WordNet ids at all: none stored */
        EXPECT(vgg_labels_name(&l, -1) == NULL && vgg_labels_name(&l, g->n) == NULL);
        vgg_labels_free(&l);
        EXPECT(l.n == 0 && l.names == NULL);
    }
}

/* ---------------------------------------------------------------- refusals */

typedef struct {
    const char *text;
    size_t len; /* 0: strlen */
    const char *error;
} bad_case;

static const bad_case bad[] = {
    {"", 0, "empty: no labels"},
    {" \r\n\n", 0, "empty: no labels"},
    {"a\n\nb\n", 0, "line 2: the label is empty"},
    {"a\nb\n\n", 0, "line 3: the label is empty"},
    {"a\nb\x01" "c", 0, "line 2: the label holds control character 0x01"},
    {"a\tb", 0, "control character 0x09"},
    {"a\0b", 3, "a NUL byte at offset 1: binary data"},
    {"\x89PNG\r\n\x1a\n", 0, "not UTF-8 (byte 0x89 at offset 0)"},
    {"ok\n\xc0\xaf", 0, "not UTF-8 (byte 0xc0 at offset 3)"}, /* overlong '/' */
    {"\xed\xa0\x80", 0, "not UTF-8"},                          /* a surrogate */
    {"ab\xe6\x97", 0, "not UTF-8 (byte 0xe6 at offset 2)"},    /* cut short */
    {"[[[\"a\"]]]", 0, "JSON nested deeper than 2 levels (byte 2)"},
    {"{\"0\": [[\"a\"]]}", 0, "JSON nested deeper than 2 levels"},
    {"{\"0\": \"a\", \"0\": \"b\"}", 0, "JSON: duplicate object key"},
    {"{\"0\": \"a\", \"2\": \"b\"}", 0, "key \"2\": not a class index 0..1"},
    {"{\"00\": \"a\"}", 0, "key \"00\": not a class index 0..0"},
    {"{\"-0\": \"a\"}", 0, "not a class index"},
    {"{\"0\": \"a\", \"1\": 1}", 0, "key \"1\": the value must be a name or [wnid, name]"},
    {"{\"0\": [\"n1\"]}", 0, "the value must be a name or [wnid, name]"},
    {"{\"0\": [\"\", \"a\"]}", 0, "the WordNet id is empty"},
    {"{\"0\": true}", 0, "the value must be a name"},
    {"{\"a\": 0, \"b\": 0}", 0, "key \"b\": index 0 is taken by \"a\" too"},
    {"{\"a\": 0, \"b\": 2}", 0, "key \"b\": index 2 is not in 0..1"},
    {"{\"a\": 0, \"b\": -1}", 0, "index -1 is not in 0..1"},
    {"{\"a\": 0, \"b\": \"x\"}", 0, "key \"b\": the value must be a class index"},
    {"{\"a\\u0007\": 0}", 0, "control character 0x07"},
    {"[1]", 0, "element 0: not a string"},
    {"[\"a\", \"\"]", 0, "element 1: the label is empty"},
    {"[\"a\\u0000b\"]", 0, "JSON:"}, /* jansson refuses \u0000 */
    {"[\"a\",", 0, "JSON:"},
    {"[\"a\"] x", 0, "JSON:"},
    {"[]", 0, "no labels"},
    {"{}", 0, "no labels"},
    {"[unused0]\na\n", 0, "JSON:"}, /* a text file cannot start with '[' or '{' */
};

static void expect_refused(const char *text, size_t len, const char *error) {
    vgg_labels l = {.n = 99};
    char err[512] = "";
    EXPECT(vgg_labels_parse((const uint8_t *)text, len, &l, err, sizeof err) == -1);
    EXPECT_HAS(err, error);
    EXPECT(l.n == 0 && l.names == NULL && l.wnids == NULL); /* nothing half-built */
}

static void test_refusals(void) {
    for (size_t c = 0; c < sizeof bad / sizeof bad[0]; c++)
        expect_refused(bad[c].text, bad[c].len ? bad[c].len : strlen(bad[c].text), bad[c].error);
    /* The limits: one byte, one label, one level past each. */
    size_t big = VGG_LABELS_MAX_BYTES + 1;
    char *s = malloc(big + 1);
    EXPECT(s != NULL);
    if (!s) return;
    memset(s, 'a', big);
    s[big] = '\0';
    expect_refused(s, big, "4194305 bytes; at most 4194304");
    memset(s, '[', 100000); /* deep JSON refused before jansson recurses */
    expect_refused(s, 100000, "JSON nested deeper than 2 levels (byte 2)");
    for (int i = 0; i <= VGG_LABELS_MAX_CLASSES; i++) s[2 * i] = 'a', s[2 * i + 1] = '\n';
    expect_refused(s, 2 * (VGG_LABELS_MAX_CLASSES + 1), "100001 lines; at most 100000 labels");
    free(s);
}

static void test_limits_accept(void) {
    char s[VGG_LABELS_MAX_NAME + 2];
    memset(s, 'x', sizeof s);
    vgg_labels l;
    char err[256];
    EXPECT(vgg_labels_parse((const uint8_t *)s, VGG_LABELS_MAX_NAME, &l, err, sizeof err) == 0);
    EXPECT(l.n == 1 && strlen(vgg_labels_name(&l, 0)) == VGG_LABELS_MAX_NAME);
    vgg_labels_free(&l);
    expect_refused(s, VGG_LABELS_MAX_NAME + 1, "line 1: the label is 257 bytes; at most 256");
}

/* ---------------------------------------------------------------- a model's labels */

/* A one-tensor safetensors file with the metadata "labels" (NULL: none). */
static void write_weights(const char *path, const char *labels) {
    const char *names[1] = {"x"};
    const int64_t shapes[1][SAFETENSORS_MAX_DIMS] = {{2}};
    const int ndims[1] = {1};
    const float v[2] = {1, 2};
    const float *data[1] = {v};
    const char *meta[] = {"labels", labels, NULL};
    char err[256];
    EXPECT(safetensors_write_f32(path, 1, names, shapes, ndims, data, labels ? meta : NULL, err,
                                 sizeof err) == 0);
}

static void test_for_model(void) {
    char with[512], without[512], broken[512], txt[512], err[1024];
    write_weights(tmp_path(with, sizeof with, "with.safetensors"),
                  "{\"0\": [\"n1\", \"cat\"], \"1\": [\"n2\", \"dog\"]}");
    write_weights(tmp_path(without, sizeof without, "without.safetensors"), NULL);
    write_weights(tmp_path(broken, sizeof broken, "broken.safetensors"), "[\"cat\", 7]");
    EXPECT(write_bytes(tmp_path(txt, sizeof txt, "three.txt"), "x\ny\nz\n", 6) == 0);
    vgg_labels l;

    /* Embedded labels, wnids and all. */
    EXPECT(vgg_labels_for_model(NULL, with, 2, &l, err, sizeof err) == 0);
    EXPECT(l.format == VGG_LABELS_INDEX_TO_NAME && l.n == 2);
    EXPECT(strcmp(vgg_labels_name(&l, 1), "dog") == 0 && strcmp(vgg_labels_wnid(&l, 1), "n2") == 0);
    vgg_labels_free(&l);
    /* --labels overrides them; its count is checked against the model's, both numbers said. */
    EXPECT(vgg_labels_for_model(txt, with, 3, &l, err, sizeof err) == 0);
    EXPECT(l.format == VGG_LABELS_TEXT && strcmp(vgg_labels_name(&l, 2), "z") == 0);
    EXPECT(vgg_labels_wnid(&l, 0) == NULL);
    vgg_labels_free(&l);
    EXPECT(vgg_labels_for_model(txt, with, 2, &l, err, sizeof err) == -1);
    EXPECT_HAS(err, "three.txt has 3 labels, but the model has 2 classes");
    EXPECT(l.n == 0);
    EXPECT(vgg_labels_for_model(NULL, with, 1000, &l, err, sizeof err) == -1);
    EXPECT_HAS(err, "with.safetensors: metadata \"labels\" has 2 labels, but the model has 1000 "
                    "classes");
    /* No labels anywhere: ImageNet's for 1000 classes, class_N for any other count. */
    EXPECT(vgg_labels_for_model(NULL, without, 1000, &l, err, sizeof err) == 0);
    EXPECT(l.format == VGG_LABELS_IMAGENET && l.n == 1000);
    EXPECT(strcmp(vgg_labels_name(&l, 281), "tabby") == 0);
    EXPECT(strcmp(vgg_labels_wnid(&l, 0), "n01440764") == 0);
    vgg_labels_free(&l);
    EXPECT(vgg_labels_for_model(NULL, NULL, 7, &l, err, sizeof err) == 0); /* generated weights */
    EXPECT(l.format == VGG_LABELS_GENERATED && l.n == 7);
    EXPECT(strcmp(vgg_labels_name(&l, 6), "class_6") == 0 && vgg_labels_wnid(&l, 6) == NULL);
    vgg_labels_free(&l);
    /* Bad sources are named. */
    EXPECT(vgg_labels_for_model(NULL, broken, 2, &l, err, sizeof err) == -1);
    EXPECT_HAS(err, "broken.safetensors: metadata \"labels\": element 1: not a string");
    EXPECT(vgg_labels_for_model("/nonexistent/labels.txt", with, 2, &l, err, sizeof err) == -1);
    EXPECT_HAS(err, "labels /nonexistent/labels.txt: No such file or directory");
    EXPECT(vgg_labels_for_model(NULL, "/nonexistent/w.safetensors", 2, &l, err, sizeof err) == -1);
    EXPECT_HAS(err, "/nonexistent/w.safetensors");
    char dir[512];
    EXPECT(vgg_labels_for_model(tmp_path(dir, sizeof dir, ""), NULL, 2, &l, err, sizeof err) == -1);
    EXPECT_HAS(err, "labels ");
}

int main(int argc, char **argv) {
    static const test_case tests[] = {
        {"formats", test_formats},
        {"refusals", test_refusals},
        {"limits_accept", test_limits_accept},
        {"for_model", test_for_model},
    };
    return model_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
