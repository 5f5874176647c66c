"""Does per-trial dropout (``network.dropout``) or BNTT (``network.bntt``) help? A multi-seed measurement.

For each task, value of the studied key (``--key``, default ``network.dropout``) and seed, a
BPTT run is trained (same budget, early stop at the task's target accuracy as usual), then
its held-out test accuracy is measured at the trained length and at longer strings
(``analysis.generalize.generalize_run``, the run's own test stream, dropout off at
evaluation; a BNTT network cannot run longer trials, its cells are empty), and optionally
read k steps earlier (``--early-exit``, :mod:`analysis.early_exit`). Printed: mean sequence
accuracy over seeds with the 95 % t-interval (:func:`cognet.experiments.generalize.mean_ci95`),
the mean firing rate (test trials) and the iterations used. Results are also written to
``OUT/results.json``.

    PYTHONPATH=. python3 benchmarks/systems_generalization.py --out /tmp/dropout-bench \\
        --tasks parity,compare --values 0,0.1,0.2 --seeds 0,1,2 --iterations 600 --lengths 4,6,8
    PYTHONPATH=. python3 benchmarks/systems_generalization.py --out /tmp/bntt-bench --key network.bntt \\
        --values false,true --lengths 4 --early-exit 0,5,10
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import tasks
from analysis.early_exit import early_exit
from analysis.generalize import generalize_run
from cognet.experiments.generalize import mean_ci95
from cognet.training.config import build_config
from cognet.training.model import load_model
from cognet.training.trainer import derive_seeds, train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--tasks", default="parity,compare")
    ap.add_argument("--key", default="network.dropout", help="the config key compared")
    ap.add_argument("--values", "--rates", dest="values", default="0,0.1,0.2")
    ap.add_argument("--input-dropout", type=float, default=0.0, help="network.input_dropout when dropout > 0")
    ap.add_argument("--early-exit", default="", help="K1,K2: also score answers read K steps earlier")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--iterations", type=int, default=600)
    ap.add_argument("--lengths", default="4,6,8", help="n_bits values tested (the first is the trained one)")
    ap.add_argument("--trials", type=int, default=256)
    ap.add_argument("--set", action="append", default=[], help="extra --set items for every run")
    a = ap.parse_args()
    out = Path(a.out)
    lengths = [int(v) for v in a.lengths.split(",")]
    ks = [int(k) for k in a.early_exit.split(",") if k.strip()]
    values = [v.strip() for v in a.values.split(",")]
    rows = []
    for task in a.tasks.split(","):
        for value in values:
            for seed in [int(v) for v in a.seeds.split(",")]:
                sets = [f"train.iterations={a.iterations}", f"task.n_bits={lengths[0]}", f"{a.key}={value}", *a.set]
                if a.key == "network.dropout" and float(value) > 0:
                    sets.append(f"network.input_dropout={a.input_dropout}")
                cfg = build_config(task=task, rule="bptt", seed=seed, sets=sets)
                run_dir = out / f"{task}-{a.key.split('.')[-1]}{value}-s{seed}"
                t0 = time.perf_counter()
                s = train(cfg, run_dir, progress=False)
                accs = {}
                for n in lengths:
                    try:
                        g = generalize_run(run_dir, "task.n_bits", [n], trials=a.trials)
                        accs[n] = g["rows"][0]["sequence_accuracy"]
                    except ValueError:  # e.g. BNTT has no statistics for a longer trial
                        accs[n] = None
                row = {"task": task, "value": value, "seed": seed, "iterations": s["iterations"],
                       "rate_hz": s["mean_rate_hz"], "wall_s": time.perf_counter() - t0,
                       **{f"acc@{n}": accs[n] for n in lengths}}
                if ks:
                    net, _ = load_model(run_dir / "model.safetensors")
                    task_obj = tasks.get_task(cfg.task, cfg.task_params, cfg.network.dt_ms)
                    ee = early_exit(net, task_obj, ks, a.trials, derive_seeds(seed)["test"])
                    row.update({f"exit@{r['k']}": r["sequence_accuracy"] for r in ee["rows"]})
                rows.append(row)
                print(json.dumps(row), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(rows, indent=1))
    cols = [(f"acc@{n}", f"seq. acc. n_bits={n}") for n in lengths] + [(f"exit@{k}", f"read {k} steps earlier")
                                                                          for k in ks]
    print()
    print(f"| task | {a.key} | seeds | iterations | mean rate (Hz) | " + " | ".join(c for _, c in cols) + " |")
    print("|---|---|---|---|---|" + "---|" * len(cols))
    for task in a.tasks.split(","):
        for value in values:
            rs = [r for r in rows if r["task"] == task and r["value"] == value]
            cells = []
            for key, _ in cols:
                vals = [r[key] for r in rs if r[key] is not None]
                if not vals:
                    cells.append("n/a")
                    continue
                m = mean_ci95(vals, (0.0, 1.0))
                cells.append(f"{m['mean']:.3f} [{m['lo']:.3f}, {m['hi']:.3f}]" if m["n"] > 1 else f"{m['mean']:.3f}")
            its = sum(r["iterations"] for r in rs) / len(rs)
            rate = sum(r["rate_hz"] for r in rs) / len(rs)
            print(f"| {task} | {value} | {len(rs)} | {its:.0f} | {rate:.1f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
