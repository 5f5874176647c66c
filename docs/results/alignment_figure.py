"""The gradient-alignment figure: e-prop's gradient against BPTT's on every task.

    python3 docs/results/alignment_figure.py ALIGN_DIR [ALIGN_DIR ...]

Each ALIGN_DIR holds the ``alignment.json`` of one ``cognet align --task T --set
train.iterations=300 --every 50 --out ALIGN_DIR`` (a BPTT run; at every 50th iteration the same
batch is given to BPTT and to each e-prop rule). Writes ``docs/results/alignment.png`` (left: the
mean cosine with BPTT's gradient of ``w_in`` and ``w_rec`` per task and rule; right: the ``w_rec``
cosine over the run) and ``docs/results/alignment-summary.csv`` (per task, rule and weight: mean,
first and last cosine, mean norm ratio), and prints the Markdown table of README.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).parent
RULES = ("eprop-symmetric", "eprop-random")
PARAMS = ("w_in", "w_rec")


def main(dirs) -> None:
    runs = {}
    for d in dirs:
        res = json.loads((Path(d) / "alignment.json").read_text())
        runs[res["config"]["task"]["name"]] = res
    tasks = sorted(runs)
    summary = []
    for t in tasks:
        for r in RULES:
            for p in PARAMS:
                # cognet align's own summary (mean, first and last finite cosine); the norm ratio
                # is not in it, so that one is averaged from the rows
                per = runs[t]["summary"].get(r, {}).get(p)
                if per is None:
                    continue
                rows = [x for x in runs[t]["rows"] if x["rule"] == r and x["param"] == p]
                summary.append({"task": t, "rule": r, "param": p, "mean_cosine": f"{per['mean_cosine']:.3f}",
                                "first": f"{per['first']:.3f}", "last": f"{per['last']:.3f}",
                                "norm_ratio": f"{statistics.mean(x['norm_ratio'] for x in rows):.3f}",
                                "measurements": len(rows)})
    with open(HERE / "alignment-summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, list(summary[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(summary)
    get = {(s["task"], s["rule"], s["param"]): s for s in summary}
    print("| task | eprop-symmetric `w_in` / `w_rec` | eprop-random `w_in` / `w_rec` |")
    print("|---|---|---|")
    for t in tasks:
        print(f"| {t} | " + " | ".join(" / ".join(get[(t, r, p)]["mean_cosine"] for p in PARAMS) for r in RULES) + " |")

    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 4.2), gridspec_kw={"width_ratios": [1.6, 1]})
    width = 0.2
    for k, (r, p) in enumerate([(r, p) for r in RULES for p in PARAMS]):
        xs = [i + (k - 1.5) * width for i in range(len(tasks))]
        ax.bar(xs, [float(get[(t, r, p)]["mean_cosine"]) for t in tasks], width,
               label=f"{r} {p}", color=("C0" if r == RULES[0] else "C1"), alpha=(1.0 if p == "w_rec" else 0.55))
    ax.set_xticks(range(len(tasks)))
    ax.set_xticklabels(tasks, rotation=40, ha="right")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_ylabel("mean cosine with BPTT's gradient")
    ax.set_ylim(-0.1, 1.0)
    ax.legend(fontsize=8, ncol=2)
    ax.set_title("task-loss gradient, same batch, 7 points of a 300-iteration BPTT run")
    for t in tasks:
        for r, ls in zip(RULES, ("-", "--")):
            rows = [x for x in runs[t]["rows"] if x["rule"] == r and x["param"] == "w_rec"]
            ax2.plot([x["iteration"] for x in rows], [x["cosine"] for x in rows], ls=ls, lw=1,
                     color=("C0" if r == RULES[0] else "C1"), alpha=0.7)
    ax2.plot([], [], color="C0", label="eprop-symmetric (each task)")
    ax2.plot([], [], color="C1", ls="--", label="eprop-random (each task)")
    ax2.axhline(0, color="grey", lw=0.8)
    ax2.set_xlabel("iteration of the BPTT run")
    ax2.set_ylabel("cosine, w_rec")
    ax2.set_ylim(-0.2, 1.0)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    (HERE / "alignment.png").write_bytes(buf.getvalue())
    print(f"\nwritten: {HERE / 'alignment.png'}, {HERE / 'alignment-summary.csv'}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
