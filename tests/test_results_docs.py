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
