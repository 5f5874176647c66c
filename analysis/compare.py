"""``cognet compare``: runs side by side (table), accuracy and rate per rule, overlaid learning curves.

Each row comes from a run directory's ``summary.json`` (held-out test trials), plus the
firing-regime numbers of ``analysis-torch/analysis.json`` where ``cognet analyze`` has run.
``accuracy`` is the task's stopping metric (sequence accuracy for ``add``, bit accuracy for
``copy``/``reverse``), so runs of one task are compared on the number training aimed at.

Runs are told apart by ``config``: a short hash of the run's ``config.yaml`` without its seed
(runs that differ only in the seed share it). The bar chart averages runs of one task, rule
and config (seeds); runs of different configs get their own bars, and every run its own
learning curve.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from cognet.training.io import read_json_object, read_jsonl, write_json

from . import plots

COLUMNS = [
    ("run", "run", "{}"), ("task", "task", "{}"), ("rule", "rule", "{}"), ("config", "config", "{}"),
    ("seed", "seed", "{}"),
    ("accuracy", "accuracy", "{:.3f}"), ("bit_accuracy", "bit acc", "{:.3f}"), ("sequence_accuracy", "seq acc", "{:.3f}"),
    ("mean_rate_hz", "rate Hz", "{:.2f}"), ("silent_fraction", "silent", "{:.2f}"), ("iterations", "iters", "{}"),
    ("wall_s", "wall s", "{:.1f}"), ("peak_rss_mb", "peak MB", "{:.0f}"), ("isi_cv", "ISI CV", "{:.2f}"),
    ("synchrony", "chi", "{:.3f}"),
]


def config_tag(run_dir: Path) -> Optional[str]:
    """Short hash of ``config.yaml`` without the seed (None if the run has no readable config)."""
    import yaml

    try:
        cfg = yaml.safe_load((Path(run_dir) / "config.yaml").read_text())
    except (OSError, yaml.YAMLError, RecursionError, UnicodeDecodeError):
        return None
    if not isinstance(cfg, dict):
        return None
    cfg = {k: v for k, v in cfg.items() if k != "seed"}
    return hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:6]


def run_row(run_dir: Path) -> Dict[str, Any]:
    run_dir = Path(run_dir)
    path = run_dir / "summary.json"
    if not path.exists():
        raise FileNotFoundError(f"{run_dir} holds no summary.json (not a finished cognet run)")
    s = read_json_object(path)
    import tasks

    metric = tasks.get_task_class(s["task"]).stop_metric if s.get("task") in tasks.TASKS else "bit_accuracy"
    row = {
        "run": str(run_dir), "task": s.get("task"), "rule": s.get("rule"), "config": config_tag(run_dir),
        "seed": s.get("seed"),
        "accuracy": s.get(metric), "accuracy_metric": metric,
        "bit_accuracy": s.get("bit_accuracy"), "sequence_accuracy": s.get("sequence_accuracy"),
        "mean_rate_hz": s.get("mean_rate_hz"), "silent_fraction": s.get("silent_fraction"),
        "iterations": s.get("iterations"), "wall_s": s.get("wall_s"), "peak_rss_mb": s.get("peak_rss_mb"),
        "isi_cv": None, "synchrony": None,
    }
    an = run_dir / "analysis-torch" / "analysis.json"
    if an.exists():
        a = read_json_object(an)
        row["isi_cv"] = a.get("isi_cv", {}).get("median")
        row["synchrony"] = a.get("synchrony", {}).get("chi")
    return row


def format_table(rows: List[Dict[str, Any]]) -> List[str]:
    cells = [[head for _, head, _ in COLUMNS]]
    for r in rows:
        line = []
        for key, _, fmt in COLUMNS:
            v = r.get(key)
            line.append("-" if v is None else fmt.format(v))
        cells.append(line)
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    return ["  ".join(c.ljust(w) if i < 4 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
            for line in cells]


def compare_runs(run_dirs: Sequence, out_dir: Optional[Path] = None, figures: bool = True) -> Dict[str, Any]:
    """Table rows for ``run_dirs``; with ``out_dir``, also figures and ``compare.json`` there."""
    if not run_dirs:
        raise ValueError("give at least one run directory")
    rows = [run_row(Path(d)) for d in run_dirs]
    configs: Dict[tuple, set] = {}
    for r in rows:
        configs.setdefault((r["task"], r["rule"]), set()).add(r["config"])
    for r in rows:  # the bar group: the rule, plus the config where one rule ran several on a task
        several = len(configs[(r["task"], r["rule"])]) > 1
        r["group"] = f"{r['rule']} [{r['config']}]" if several else r["rule"]
    result: Dict[str, Any] = {"runs": rows, "figures": {}}
    if out_dir is not None and figures:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        result["figures"]["accuracy_rate"] = str(plots.compare_bars(out / "accuracy_rate.png", rows))
        curves: Dict[str, Any] = {}
        for r in rows:  # one curve per run; the label names the config where it is needed to tell runs apart
            label = f"{r['task']}/{r['group']}/s{r['seed']}"
            if label in curves:
                label = f"{label} ({Path(r['run']).name})"
            k = 2
            while label in curves:
                label, k = f"{label} #{k}", k + 1
            curves[label] = read_jsonl(Path(r["run"]) / "metrics.jsonl")
        curves = {k: v for k, v in curves.items() if v}
        if curves:
            metrics = {r["accuracy_metric"] for r in rows}
            metric = metrics.pop() if len(metrics) == 1 else "bit_accuracy"
            result["figures"]["learning"] = str(plots.learning_curves(out / "learning.png", curves, metric=metric,
                                                                       title="learning curves"))
        write_json(out / "compare.json", result)
        result["out_dir"] = str(out)
    return result
