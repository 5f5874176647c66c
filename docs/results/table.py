"""Print README's multi-seed results table from ``results-per-seed.csv`` (one row per task, rule
and seed: held-out test accuracy in torch and Brian2, iterations, rate, wall time).

    python3 docs/results/table.py [docs/results/results-per-seed.csv]

Per task and rule: the mean over seeds and the range (min-max) of the sequence accuracy (the
run's own float32 test pass, ``summary.json``), each seed's value, the Brian2 agreement
(identical trials; "same accuracy" when Brian2's accuracy equals that of ``cognet verify``'s
float64 torch replay of the same trials), mean bit accuracy and mean rate.

Sequence accuracies are stored exactly (k/256 for the 256 test trials) at six decimals: with
three or four, 251/256 = 0.98047 became 0.9805 and printed as 0.981.
"""

from __future__ import annotations

import csv
import statistics
import sys
from collections import defaultdict
from pathlib import Path


def main(path: Path) -> None:
    groups = defaultdict(list)
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            groups[(r["task"], r["rule"])].append(r)
    print("| task | rule | neurons | seeds | iterations per seed | sequence acc. mean (range) | per seed | "
          "Brian2: identical trials, accuracy | bit acc. | mean rate (Hz) | wall per seed (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (task, rule), rs in sorted(groups.items()):
        rs.sort(key=lambda r: int(r["seed"]))
        seq = [float(r["seq_torch"]) for r in rs]
        ident = [r["identical"] for r in rs]
        # Brian2 against the float64 torch replay of the same trials (``cognet verify``)
        same = all(r["seq_brian2"] != "" and abs(float(r["seq_brian2"]) - float(r["seq_torch64"])) < 1e-9 for r in rs)
        if all(i != "" and float(i) == 1.0 for i in ident):
            b2 = f"100 % in every seed{', same accuracy' if same else ''}"
        else:
            b2 = " / ".join("not run" if i == "" else f"{100 * float(i):.0f} %" for i in ident)
        rng = f" ({min(seq):.3f}-{max(seq):.3f})" if len(seq) > 1 else ""
        walls = " / ".join("%.0f" % float(r["wall_s"]) for r in rs)
        print(f"| {task} | {rule} | {rs[0]['neurons']} | {len(rs)} | {' / '.join(r['iterations'] for r in rs)} | "
              f"{statistics.mean(seq):.3f}{rng} | {' / '.join(f'{x:.3f}' for x in seq)} | {b2} | "
              f"{statistics.mean(float(r['bit']) for r in rs):.3f} | "
              f"{statistics.mean(float(r['rate_hz']) for r in rs):.1f} | "
              f"{walls} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("results-per-seed.csv"))
