/* main.c - `vggserve`: one binary, one subcommand per job. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "preprocess.h"

static const struct {
    const char *name;
    int (*run)(int, char **);
    const char *help;
} commands[] = {
    {"serve", cmd_serve, "run the HTTP classification service"},
    {"classify", cmd_classify, "classify image files (or a .npy tensor), JSON lines out"},
    {"explain", cmd_explain, "Grad-CAM heat maps for image files (or a .npy tensor), JSON lines"},
    {"bench", cmd_bench, "engine-only throughput per batch size"},
    {"accuracy", cmd_accuracy, "compare a precision/algorithm with f32 direct"},
    {"gen-weights", cmd_gen_weights, "write deterministic weights from a seed"},
    {"calibrate", cmd_calibrate, "measure int8 activation ranges, store them beside the weights"},
    {"preprocess", cmd_preprocess, "write the tensor the network sees for an image"},
    {"summary", cmd_summary, "layer table with parameter counts, or a DOT graph"},
    {"healthcheck", cmd_healthcheck, "exit 0 when a local server answers /readyz with 200"},
};

static void usage(FILE *out) {
    fprintf(out, "usage: vggserve COMMAND [options]   (vggserve COMMAND --help for details)\n\n"
                 "Commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv) {
    preprocess_tune_malloc(); /* before any thread: decoding churns multi-MB buffers */
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "error: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
