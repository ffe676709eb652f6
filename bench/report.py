#!/usr/bin/python3
"""Turn engines.sh's raw JSON lines into the comparison table, summary.md and a PNG plot.

    /usr/bin/python3 bench/report.py --raw DIR/raw.jsonl --out DIR [--title T] [--command C]

Every raw line is one measurement (`vggserve bench --json` shape) with a "label" naming the
engine/mode and a "round" (engines.sh runs every engine once per round, so a slow spell of this
shared machine hits all of them alike). Per label and batch the table gives the slowest pass
of any round, the median of the round medians, and the ratio: in each round, img/s median /
ONNX Runtime img/s median at the same batch size, then the median (and range) of those
per-round ratios. The plot (img/s median against batch size, one line per label, the
bar from the slowest to the fastest pass) is drawn with gnuplot when it is installed, else with
matplotlib; with neither, the table is still written and the plot is skipped with a message.
Only the standard library is used.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys

REFERENCE = "onnxruntime"


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                rows.append(json.loads(line))
    return rows


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def merge_rounds(rows):
    """One row per (label, batch) from the rounds: min of mins, median of medians, max of
    maxes, passes summed, and the per-round ratios to ONNX Runtime."""
    ref = {(r.get("round", 1), r["batch"]): r["img_per_s_median"]
           for r in rows if r["label"] == REFERENCE}
    merged = {}
    for r in rows:
        merged.setdefault((r["label"], r["batch"]), []).append(r)
    out = []
    for (label, b), rs in merged.items():
        m = dict(rs[0])
        m["rounds"] = len(rs)
        m["runs"] = sum(r["runs"] for r in rs)
        m["img_per_s_min"] = min(r["img_per_s_min"] for r in rs)
        m["img_per_s_median"] = median([r["img_per_s_median"] for r in rs])
        m["img_per_s_max"] = max(r.get("img_per_s_max", r["img_per_s_median"]) for r in rs)
        m["round_medians"] = [r["img_per_s_median"] for r in rs]
        m["ratios"] = [r["img_per_s_median"] / ref[(r.get("round", 1), b)]
                       for r in rs if ref.get((r.get("round", 1), b))]
        out.append(m)
    return out


def table(rows):
    labels = list(dict.fromkeys(r["label"] for r in rows))
    out = []
    for label in labels:
        for r in sorted((r for r in rows if r["label"] == label), key=lambda r: r["batch"]):
            rs = r["ratios"]
            if not rs:
                ratio = "-"
            elif len(rs) == 1:
                ratio = f"{rs[0]:.2f}x"
            else:
                ratio = f"{median(rs):.2f}x ({min(rs):.2f}-{max(rs):.2f})"
            out.append((label, r["batch"], r["runs"], r["img_per_s_min"], r["img_per_s_median"],
                        ratio))
    return labels, out


def text_table(out):
    w = max([len("engine/mode")] + [len(o[0]) for o in out])
    lines = [f"{'engine/mode':<{w}} {'batch':>5} {'runs':>5} {'img/s min':>10} "
             f"{'img/s median':>12} {'vs ORT (rounds)':>20}"]
    lines.append("-" * len(lines[0]))
    for label, b, runs, mn, med, ratio in out:
        lines.append(f"{label:<{w}} {b:>5} {runs:>5} {mn:>10.2f} {med:>12.2f} {ratio:>20}")
    return "\n".join(lines)


def md_table(out):
    lines = ["| engine/mode | batch | passes | img/s min | img/s median | vs ONNX Runtime: median (range) of rounds |",
             "|---|---:|---:|---:|---:|---:|"]
    for label, b, runs, mn, med, ratio in out:
        lines.append(f"| {label} | {b} | {runs} | {mn:.2f} | {med:.2f} | {ratio} |")
    return "\n".join(lines)


def per_round_md(rows):
    """Each engine's ratio in every round, in round order, so one slow spell (of an engine or
    of the reference) can be seen rather than inferred from a range."""
    lines = []
    for r in rows:
        if len(r["ratios"]) > 1 and r["label"] != REFERENCE:
            lines.append(f"- {r['label']}, batch {r['batch']}: "
                         + " / ".join(f"{x:.2f}x" for x in r["ratios"]))
    return "\n".join(lines)


def plot_gnuplot(rows, labels, outdir, png, title):
    dat = os.path.join(outdir, "plot.dat")
    with open(dat, "w") as f:
        for label in labels:
            f.write(f"# {label}\n# batch img_per_s_median img_per_s_min img_per_s_max\n")
            for r in sorted((r for r in rows if r["label"] == label), key=lambda r: r["batch"]):
                f.write(f"{r['batch']} {r['img_per_s_median']} {r['img_per_s_min']} "
                        f"{r.get('img_per_s_max', r['img_per_s_median'])}\n")
            f.write("\n\n")
    batches = sorted({r["batch"] for r in rows})
    plots = ", ".join(
        f"'plot.dat' index {i} using 1:2:3:4 with yerrorlines lw 2 pt 7 title \"{label}\""
        for i, label in enumerate(labels))
    gp = os.path.join(outdir, "plot.gp")
    with open(gp, "w") as f:
        f.write(f"""set terminal pngcairo size 1000,640 font 'sans,11'
set termoption noenhanced
set output '{os.path.basename(png)}'
set title "{title}"
set xlabel 'batch size'
set ylabel 'images / second (median; bars: slowest..fastest pass)'
set logscale x 2
set xrange [{batches[0] / 1.4}:{batches[-1] * 1.4}]
set xtics ({', '.join(str(b) for b in batches)})
set yrange [0:*]
set grid
set key outside right top
plot {plots}
""")
    subprocess.run(["gnuplot", "plot.gp"], cwd=outdir, check=True)


def plot_matplotlib(rows, labels, png, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(10, 6.4))
    for label in labels:
        rs = sorted((r for r in rows if r["label"] == label), key=lambda r: r["batch"])
        x = [r["batch"] for r in rs]
        y = [r["img_per_s_median"] for r in rs]
        lo = [r["img_per_s_median"] - r["img_per_s_min"] for r in rs]
        hi = [r.get("img_per_s_max", r["img_per_s_median"]) - r["img_per_s_median"] for r in rs]
        ax.errorbar(x, y, yerr=[lo, hi], marker="o", capsize=3, label=label)
    batches = sorted({r["batch"] for r in rows})
    ax.set_xscale("log", base=2)
    ax.set_xticks(batches)
    ax.set_xticklabels([str(b) for b in batches])
    ax.set_ylim(bottom=0)
    ax.set_xlabel("batch size")
    ax.set_ylabel("images / second (median; bars: slowest..fastest pass)")
    ax.set_title(title)
    ax.grid(True)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    fig.savefig(png, dpi=100)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--raw", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--title", default="VGG16 img/s")
    ap.add_argument("--command", default="bench/engines.sh")
    ap.add_argument("--notes", default="", help="file whose text goes into summary.md")
    args = ap.parse_args()

    rows = load(args.raw)
    if not rows:
        sys.exit(f"report.py: no measurements in {args.raw}")
    rows = merge_rounds(rows)
    labels, out = table(rows)
    txt = text_table(out)
    print(txt)
    with open(os.path.join(args.out, "table.txt"), "w") as f:
        f.write(txt + "\n")

    png = os.path.join(args.out, "engines.png")
    plotted = None
    try:
        if shutil.which("gnuplot"):
            plot_gnuplot(rows, labels, args.out, png, args.title)
            plotted = "gnuplot"
        else:
            plot_matplotlib(rows, labels, png, args.title)
            plotted = "matplotlib"
    except Exception as e:  # the table matters more than the picture
        print(f"report.py: no plot: {e}", file=sys.stderr)

    notes = open(args.notes).read().strip() if args.notes and os.path.exists(args.notes) else ""
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write(f"# {args.title}\n\n")
        f.write(f"Command: `{args.command}`\n\n")
        if notes:
            f.write(notes + "\n\n")
        f.write("Ratio: in each round, img/s median divided by ONNX Runtime's img/s median at "
                "the same batch size in that round; the table gives the median of the rounds "
                "and their range. img/s median is the median of the round medians; img/s min "
                "is the slowest pass of any round.\n\n")
        f.write(md_table(out) + "\n")
        rounds = per_round_md(rows)
        if rounds:
            ref = [r for r in rows if r["label"] == REFERENCE]
            f.write("\nRatio in each round, rounds in order (ONNX Runtime img/s median per round: "
                    + "; ".join(f"batch {r['batch']} " + " / ".join(f"{x:.2f}" for x in r["round_medians"])
                                for r in ref)
                    + "):\n\n" + rounds + "\n")
        if plotted:
            f.write(f"\nPlot: engines.png (drawn with {plotted}).\n")
    if plotted:
        print(f"plot: {png} ({plotted})")


if __name__ == "__main__":
    main()
