"""Does per-trial dropout (``network.dropout``) help generalisation? A multi-seed measurement.

For each task, dropout rate p and seed, a BPTT run is trained (same budget, early stop at the
task's target accuracy as usual), then its held-out test accuracy is measured at the trained
length and at longer strings (``analysis.generalize.generalize_run``, the run's own test
stream, dropout off at evaluation). Printed: mean sequence accuracy over seeds with the
95 % t-interval (:func:`cognet.experiments.generalize.mean_ci95`), the mean firing rate and
the iterations used. Results are also written to ``OUT/dropout_generalization.json``.

    PYTHONPATH=. python3 benchmarks/dropout_generalization.py --out /tmp/dropout-bench \\
        --tasks parity,compare --rates 0,0.1,0.2 --seeds 0,1,2 --iterations 600 --lengths 4,6,8
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from analysis.generalize import generalize_run
from cognet.experiments.generalize import mean_ci95
from cognet.training.config import build_config
from cognet.training.trainer import train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--tasks", default="parity,compare")
    ap.add_argument("--rates", default="0,0.1,0.2")
    ap.add_argument("--input-dropout", type=float, default=0.0)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--iterations", type=int, default=600)
    ap.add_argument("--lengths", default="4,6,8", help="n_bits values tested (the first is the trained one)")
    ap.add_argument("--trials", type=int, default=256)
    ap.add_argument("--set", action="append", default=[], help="extra --set items for every run")
    a = ap.parse_args()
    out = Path(a.out)
    lengths = [int(v) for v in a.lengths.split(",")]
    rows = []
    for task in a.tasks.split(","):
        for p in [float(v) for v in a.rates.split(",")]:
            for seed in [int(v) for v in a.seeds.split(",")]:
                sets = [f"train.iterations={a.iterations}", f"task.n_bits={lengths[0]}",
                        f"network.dropout={p}", f"network.input_dropout={a.input_dropout if p > 0 else 0.0}", *a.set]
                cfg = build_config(task=task, rule="bptt", seed=seed, sets=sets)
                run_dir = out / f"{task}-p{p}-s{seed}"
                t0 = time.perf_counter()
                s = train(cfg, run_dir, progress=False)
                g = generalize_run(run_dir, "task.n_bits", lengths, trials=a.trials)
                accs = {r["value"]: r["sequence_accuracy"] for r in g["rows"]}
                row = {"task": task, "p": p, "seed": seed, "iterations": s["iterations"],
                       "rate_hz": s["mean_rate_hz"], "wall_s": time.perf_counter() - t0,
                       **{f"acc@{n}": accs[n] for n in lengths}}
                rows.append(row)
                print(json.dumps(row), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "dropout_generalization.json").write_text(json.dumps(rows, indent=1))
    print()
    print("| task | dropout p | seeds | iterations | mean rate (Hz) | " +
          " | ".join(f"seq. acc. n_bits={n} (95 % CI)" for n in lengths) + " |")
    print("|---|---|---|---|---|" + "---|" * len(lengths))
    for task in a.tasks.split(","):
        for p in [float(v) for v in a.rates.split(",")]:
            rs = [r for r in rows if r["task"] == task and r["p"] == p]
            cells = []
            for n in lengths:
                m = mean_ci95([r[f"acc@{n}"] for r in rs], (0.0, 1.0))
                cells.append(f"{m['mean']:.3f} [{m['lo']:.3f}, {m['hi']:.3f}]")
            its = sum(r["iterations"] for r in rs) / len(rs)
            rate = sum(r["rate_hz"] for r in rs) / len(rs)
            print(f"| {task} | {p} | {len(rs)} | {its:.0f} | {rate:.1f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
