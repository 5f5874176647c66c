"""How much recurrent credit each task needs: the cosine with BPTT's gradient, hop by hop.

    python3 docs/results/hop_alignment.py ALIGN_DIR [ALIGN_DIR ...]
    python3 docs/results/hop_alignment.py table      # the table again, from the committed CSV

Each ALIGN_DIR holds the ``alignment.json`` of one ``cognet align --task T --set
train.iterations=300 --every 50 --compare eprop-symmetric,hop-symmetric,eprop-random,hop-random
--set hop.hops=K --out ALIGN_DIR`` (a BPTT run; at every 50th iteration the same batch is given
to BPTT and to each compared rule), or of the same run with ``--compare
eprop-symmetric,mdgl-symmetric`` (the MDGL column: e-prop plus the part of the one-hop credit
that arrives within one step, :mod:`rules.mdgl`). e-prop is the hop rule at K = 0, so its rows
are entered as ``K = 0`` (the runs follow the same BPTT trajectory, so every folder gives e-prop
the same cosines). Writes ``docs/results/hop-alignment.csv`` (task, feedback, K or ``mdgl``, weight, mean cosine over
the measurements, last cosine) and prints the Markdown table of ``docs/tasks.md``: per task the
mean ``w_rec`` cosine at K = 0, 1, 2, ... with symmetric feedback. The table leaves random
feedback out: along BPTT's trajectory ``W_out`` never comes to align with a random ``B`` (that
happens only when the random-feedback rule itself trains), so those cosines stay near 0 at any K
and each run draws its own ``B``; the CSV keeps them.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
MDGL = "mdgl"  # the credit column of the MDGL rules (the online one-hop term; rules.mdgl)
FEEDBACK = {"eprop-symmetric": ("symmetric", 0), "eprop-random": ("random", 0),
            "hop-symmetric": ("symmetric", None), "hop-random": ("random", None),
            "mdgl-symmetric": ("symmetric", MDGL), "mdgl-random": ("random", MDGL)}
PARAMS = ("w_in", "w_rec")


def collect(dirs):
    """``{(task, feedback, K, param): (mean cosine, last cosine)}`` from the runs' alignment.json
    (``K``: the hop count, or ``"mdgl"`` for the MDGL rules)."""
    out = {}
    for d in dirs:
        res = json.loads((Path(d) / "alignment.json").read_text())
        task = res["config"]["task"]["name"]
        hops = int(res.get("compared_sections", {}).get("hop", {}).get("hops", 1))
        for rule, per in res["summary"].items():
            if rule not in FEEDBACK:
                continue
            fb, k = FEEDBACK[rule]
            k = hops if k is None else k
            for param in PARAMS:
                if param in per:
                    out[(task, fb, k, param)] = (per[param]["mean_cosine"], per[param]["last"])
    return out


def _order(k):
    """Columns: K = 0 (e-prop), then MDGL (a part of the one-hop credit), then K = 1, 2, ..."""
    return (0.5 if k == MDGL else float(k))


def render(rows) -> str:
    ks = sorted({k for (_, fb, k, _) in rows if fb == "symmetric"}, key=_order)
    tasks = sorted({t for (t, _, _, _) in rows})
    head = "| task | " + " | ".join("symmetric MDGL" if k == MDGL else f"symmetric K={k}" for k in ks) + " |"
    lines = [head, "|---|" + "---|" * len(ks)]
    for t in tasks:
        cells = []
        for k in ks:
            v = rows.get((t, "symmetric", k, "w_rec"))
            cells.append("" if v is None else f"{v[0]:.3f}")
        lines.append(f"| `{t}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def from_csv(path: Path = HERE / "hop-alignment.csv"):
    """The rows of :func:`collect`, read back from the CSV this script writes."""
    with open(path, newline="") as fh:
        return {(r["task"], r["feedback"], r["hops"] if r["hops"] == MDGL else int(r["hops"]), r["param"]):
                (float(r["mean_cosine"]), float(r["last_cosine"])) for r in csv.DictReader(fh)}


def main(dirs) -> None:
    if dirs == ["table"]:
        print(render(from_csv()))
        return
    rows = collect(dirs)
    if not rows:
        raise SystemExit("Error: no alignment.json with e-prop, hop or MDGL rules in the given folders")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["task", "feedback", "hops", "param", "mean_cosine", "last_cosine"])
    for (t, fb, k, p), (mean, last) in sorted(rows.items(), key=lambda kv: (kv[0][0], kv[0][1], _order(kv[0][2]),
                                                                          kv[0][3])):
        w.writerow([t, fb, k, p, f"{mean:.3f}", f"{last:.3f}"])
    (HERE / "hop-alignment.csv").write_text(buf.getvalue())
    print(render(rows))


if __name__ == "__main__":
    main(sys.argv[1:])
