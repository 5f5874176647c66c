"""README's measured tables are what the scripts in docs/results print from the committed per-seed
files: a re-measured CSV without a re-printed table (or the other way round) fails here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "results"


def _printed(*args: str) -> list:
    out = subprocess.run([sys.executable, str(RESULTS / args[0]), *args[1:]], capture_output=True, text=True,
                         check=True).stdout
    return [line for line in out.splitlines() if line.strip()]


@pytest.mark.parametrize("doc", ["README.md", "docs/results.md"])
def test_eprop_comparison_table_matches_its_csv(doc):
    text = (ROOT / doc).read_text()
    lines = _printed("eprop_table.py", "table")
    rows = [line for line in lines if line.startswith("| ")]
    assert len(rows) >= 13  # the header and twelve tasks
    for line in lines:
        assert line in text, f"{doc} lacks the printed line {line[:80]!r}"


def test_eprop_table_gaps_are_the_differences_of_the_means():
    import csv
    import statistics

    rows = list(csv.DictReader(open(RESULTS / "eprop-per-seed.csv", newline="")))
    bptt = [r for r in csv.DictReader(open(RESULTS / "results-per-seed.csv", newline="")) if r["rule"] == "bptt"]
    printed = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in _printed("eprop_table.py", "table")
               if line.startswith("| ") and not line.startswith("| task")}
    for task in ("count", "reverse"):
        b = statistics.mean(float(r["seq_torch"]) for r in bptt if r["task"] == task)
        e = statistics.mean(float(r["seq"]) for r in rows if r["task"] == task and r["rule"] == "eprop-random")
        assert printed[task][5] == f"{e - b:+.3f}"
        assert len([r for r in rows if r["task"] == task and r["rule"] == "eprop-random"]) >= 3


def test_results_table_matches_its_csv():
    text = (ROOT / "README.md").read_text()
    for line in _printed("table.py"):
        assert line in text, line[:80]


@pytest.mark.parametrize("encoding", ["binary", "onehot"])
def test_duprev_positions_adds_up_to_the_runs_own_scores(tmp_path, encoding):
    """The per-answer errors of docs/results/duprev_positions.py are the task's own scores, split
    by cue: on the same 256 held-out trials the bit error over all answers is 1 - evaluate's bit
    accuracy, and the two cues' sequence accuracies, weighted by their trials, are its sequence accuracy."""
    import importlib.util

    import tasks
    from cognet.training.config import build_config
    from cognet.training.model import load_model
    from cognet.training.trainer import derive_seeds, evaluate, train

    spec = importlib.util.spec_from_file_location("duprev_positions", RESULTS / "duprev_positions.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    sets = ["network.n_rec=24", "train.iterations=3", "train.eval_every=3", "train.eval_trials=16",
            "task.length=2", "task.width=2", "task.unseen_fraction=0.25", f"task.encoding={encoding}"]
    cfg = build_config(task="dup-rev", sets=sets)
    train(cfg, tmp_path / "run", progress=False)
    _, res = mod.positions(tmp_path / "run", trials=256)
    assert set(res) == {"duplicate", "reverse"}
    net, cfg = load_model(tmp_path / "run" / "model.safetensors")
    task = tasks.get_task(cfg.task, cfg.task_params, cfg.network.dt_ms)
    ev = evaluate(net, task, 256, derive_seeds(cfg.seed)["test"])
    assert sum(r["trials"] for r in res.values()) == 256
    assert all(len(r["bit_error"]) == 3 for r in res.values())  # L = 2 symbols and the EOS answer
    bit_err = sum(r["trials"] * sum(r["bit_error"]) / 3 for r in res.values()) / 256
    assert 0 < bit_err  # an untrained network errs somewhere
    assert bit_err == pytest.approx(1 - ev["bit_accuracy"], abs=1e-5)
    seq = sum(r["trials"] * r["sequence_accuracy"] for r in res.values()) / 256
    assert seq == pytest.approx(ev["sequence_accuracy"], abs=1e-6)
    correct, trials, (lo, hi) = mod.pooled(res)  # the script's "both" row: the same score, as a count
    assert trials == 256 and correct / 256 == pytest.approx(ev["sequence_accuracy"], abs=1e-9)
    assert lo <= correct / 256 <= hi and (lo, hi) == tuple(ev["sequence_accuracy_ci95"])


def test_hop_alignment_rows_and_all_hops_align_with_bptt(tmp_path):
    """docs/results/hop_alignment.py reads `cognet align` output with the hop and MDGL rules: e-prop's
    rows enter as K = 0, MDGL's in a column of their own, and with K = T - 1 hops hop-symmetric's w_rec gradient is BPTT's (cosine 1)."""
    import importlib.util
    import json

    import tasks
    from cognet.experiments.alignment import gradient_alignment, write_alignment
    from cognet.training.config import build_config

    spec = importlib.util.spec_from_file_location("hop_alignment", RESULTS / "hop_alignment.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    sets = ["network.n_rec=24", "train.iterations=4", "train.batch_size=8", "task.n_bits=3"]
    T = tasks.get_task("copy", {"n_bits": 3}, 1.0).T
    dirs = []
    for hops in (1, T - 1):
        cfg = build_config("copy", sets=sets + [f"hop.hops={hops}"])
        res = gradient_alignment(cfg, ("eprop-symmetric", "hop-symmetric", "hop-random", "mdgl-symmetric"), every=2)
        write_alignment(res, tmp_path / f"k{hops}")
        dirs.append(tmp_path / f"k{hops}")
    rows = mod.collect(dirs)
    assert {k for (_, fb, k, p) in rows if fb == "symmetric" and p == "w_rec"} == {0, mod.MDGL, 1, T - 1}
    assert rows[("copy", "symmetric", T - 1, "w_rec")][0] == pytest.approx(1.0, abs=1e-4)
    assert rows[("copy", "symmetric", 0, "w_rec")][0] < 1.0 - 1e-4
    table = mod.render(rows)
    assert table.splitlines()[0].startswith("| task | symmetric K=0 | symmetric MDGL | symmetric K=1")
    # the CSV written from these rows reads back to the same rows (the MDGL key included)
    csv_path = tmp_path / "rows.csv"
    mod.HERE = tmp_path
    mod.main([str(d) for d in dirs])
    (tmp_path / "hop-alignment.csv").rename(csv_path)
    assert mod.from_csv(csv_path) == {k: (round(a, 3), round(b, 3)) for k, (a, b) in rows.items()}
    assert json.loads((tmp_path / "k1" / "alignment.json").read_text())["compared_sections"]["hop"]["hops"] == 1


def test_hop_alignment_table_in_tasks_doc_matches_its_csv():
    text = (ROOT / "docs" / "tasks.md").read_text()
    lines = _printed("hop_alignment.py", "table")
    assert len(lines) == 15  # header, rule and thirteen tasks
    for line in lines:
        assert line in text, line[:80]


def test_duprev_batch_128_rows_are_their_run_records():
    """The CSV rows of ``eprop-random``'s ``dup-rev`` seeds 1 and 2 are what ``collect`` reads
    from the kept run records (summary and Brian2 check), and docs/tasks.md quotes each
    record's 8192-trial score as the scoring script printed it."""
    import re

    records = RESULTS / "duprev-eprop-random-bs128"
    collected = _printed("eprop_table.py", "collect", str(records))[1:]
    assert [line.split(",")[2] for line in collected] == ["1", "2"]
    csv_lines = (RESULTS / "eprop-per-seed.csv").read_text().splitlines()
    for line in collected:
        assert line in csv_lines and line.endswith(",1.0000")  # Brian2-identical on every trial
    tasks_doc = (ROOT / "docs" / "tasks.md").read_text()
    for seed in (1, 2):
        both = (records / f"seed{seed}" / "positions-8192.txt").read_text()
        acc, lo, hi = re.search(r"\| both \| (0\.\d{3}) \(95 % CI (0\.\d{3})-(0\.\d{3}), \d+/8192\)", both).groups()
        assert float(lo) > 0.90  # issue 20's target, on the larger sample
        assert f"| {seed} | " in tasks_doc and f"{acc} ({lo}-{hi})" in tasks_doc
