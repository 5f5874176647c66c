"""``cognet reproduce``: every registered task with BPTT and e-prop, verified in Brian2, one table.

Steps (each resumable; re-running skips what is done):

1. a sweep over the symbolic suite (``tasks.suite_tasks()``; digits only when named) x ``rules`` (default ``bptt`` and ``eprop-random``; rules
   that are not registered are skipped with a note) at one seed, each task with its own
   recommended settings and iteration budget, and those it recommends for the rule
   (``Task.recommended_for_rule``: e-prop's wider network; early stop at ``train.target_accuracy``), a
   budget capped per rule where asked (``caps``, the command's ``--max-iterations RULE=N``:
   such a run has ``train.iterations = N`` in its config, and the table's notes say so);
2. Brian2 verification of each trained run with ``cognet.brian.replay.verify_run(run_dir)``
   when that module exists (its returned mapping is cached in ``<out>/brian2/<run>.json``);
   the Brian2 accuracy is read from the key named by the task's stop metric, at the top
   level or under a ``brian2`` sub-mapping;
3. analysis of the held-out spike trains with ``analysis.analyze_run(run_dir)`` when the
   analysis package is installed (report and figures in ``<run>/analysis-torch/``; its
   ``analysis.json`` is reused on re-runs): the mean over neurons of the ISI CV within a trial
   (averaged over trials; not the CV of intervals pooled over trials, which mostly measures how
   a neuron's rate differs between inputs) and of the local variation LV; rates come from ``summary.json``;
4. ``<out>/reproduce.md`` (+ ``.json``, ``.csv``): task, rule, neurons, iterations,
   held-out accuracy (torch and Brian2), mean rate, silent fraction, wall time.
"""

from __future__ import annotations

import importlib
import math
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from cognet.training.config import ConfigError, set_key
from cognet.training.io import atomic_write, read_json, write_json
from cognet.experiments.sweep import SlurmOptions, execute, grid, make_runs, markdown_table, write_csv, write_manifest

DEFAULT_RULES = ("bptt", "eprop-random")


def _optional(module: str, attr: str) -> Optional[Callable]:
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return None
    return getattr(mod, attr, None)


def _find_metric(res: Any, metric: str) -> Optional[float]:
    if isinstance(res, Mapping):
        for key in ("brian2", "brian"):
            sub = res.get(key)
            if isinstance(sub, Mapping) and isinstance(sub.get(metric), (int, float)):
                return float(sub[metric])
        if isinstance(res.get(metric), (int, float)):
            return float(res[metric])
    return None


def parse_caps(specs: Sequence[str]) -> Dict[str, int]:
    """``["eprop-random=2000", "5000"]`` -> ``{"eprop-random": 2000, "*": 5000}`` (``*``: every rule)."""
    import rules

    caps: Dict[str, int] = {}
    for spec in specs:
        rule, _, num = str(spec).rpartition("=")
        rule = rule.strip() or "*"
        try:
            n = int(num)
        except ValueError:
            n = 0
        if n < 1:
            raise ConfigError(f"--max-iterations {spec!r}: expected RULE=N or N with a whole number N >= 1")
        if rule != "*" and rule not in rules.RULES:
            raise ConfigError(f"--max-iterations {spec!r}: unknown rule {rule!r}; available: {', '.join(sorted(rules.RULES))}")
        if rule in caps:
            raise ConfigError(f"--max-iterations given twice for {'every rule' if rule == '*' else rule}")
        caps[rule] = n
    return caps


def _runs(out: Path, task_names: Sequence[str], rule_names: Sequence[str], seed: int, sets: Sequence[str],
          caps: Mapping[str, int]) -> Tuple[list, List[str]]:
    """The sweep runs of a reproduce table; a run whose iteration budget exceeds its rule's cap
    (``caps[rule]``, else ``caps["*"]``) trains with ``train.iterations`` = the cap (its own config,
    hence its own run directory). Returns the runs and one note per capped run."""
    from cognet.training.trainer import default_run_dir

    root = Path(out) / "runs"
    runs = make_runs(grid({"task": list(task_names), "rule": list(rule_names)}), lambda p: {**p, "seed": seed},
                     root, base_sets=list(sets), rule_recommendations=True)
    capped: List[str] = []
    for r in runs:
        cap = caps.get(r.cfg.rule, caps.get("*"))
        budget = r.cfg.train.iterations
        if cap is not None and budget > cap:
            set_key(r.cfg, "train.iterations", cap)
            r.cfg.validate()
            r.run_dir = default_run_dir(r.cfg, root=str(root))
            capped.append(f"{r.cfg.task}/{r.cfg.rule}: capped at {cap} of its {budget} iterations (--max-iterations)")
    return runs, capped


def reproduce(out: Path, rules_: Sequence[str] = DEFAULT_RULES, tasks_: Sequence[str] = (), seed: int = 0,
              sets: Sequence[str] = (), brian2: bool = True, jobs: int = 1, executor: str = "local",
              slurm: Optional[SlurmOptions] = None, log: Optional[Callable[[str], None]] = None,
              caps: Optional[Mapping[str, int]] = None) -> Dict[str, Any]:
    import rules
    import tasks

    say = log or (lambda s: None)
    out = Path(out)
    notes: List[str] = []
    task_names = list(tasks_) or tasks.suite_tasks()  # the symbolic suite (digits only when named)
    for t in task_names:
        if t not in tasks.TASKS:
            raise ConfigError(f"unknown task {t!r}; available: {', '.join(sorted(tasks.TASKS))}")
    rule_names = [r for r in rules_ if r in rules.RULES]
    for r in rules_:
        if r not in rules.RULES:
            notes.append(f"rule {r} is not registered (available: {', '.join(sorted(rules.RULES))}); skipped")
    if not rule_names:
        raise ConfigError(f"none of the rules {list(rules_)} is registered; available: {', '.join(sorted(rules.RULES))}")
    runs, capped = _runs(out, task_names, rule_names, seed, sets, caps or {})
    notes += capped
    write_manifest(out / "sweep.json", "reproduce", runs, {"sets": list(sets), "max_iterations": dict(caps or {})})
    rows = execute(runs, executor, jobs, out / "slurm", False, slurm, say)

    verify = _optional("cognet.brian.replay", "verify_run") if brian2 else None
    if brian2 and verify is None:
        notes.append("cognet.brian.replay.verify_run is not available: no Brian2 column")
    analyse = _optional("analysis", "analyze_run")
    if analyse is None:
        notes.append("analysis.analyze_run is not available: no ISI CV column")
    table = []
    for row, run in zip(rows, runs):
        entry = {"task": row["task"], "rule": row["rule"], "neurons": row["n_rec"], "iterations": row["iterations"],
                 "metric": row["metric"], "accuracy_torch": row["accuracy"], "accuracy_brian2": math.nan,
                 "mean_rate_hz": row["mean_rate_hz"], "silent_fraction": row["silent_fraction"],
                 "isi_cv": math.nan, "isi_lv": math.nan, "wall_s": row["wall_s"], "status": row["status"], "run_dir": row["run_dir"]}
        finished = row["status"] not in ("error", "diverged", "diverged (recorded)")
        if verify is not None and finished:
            cache = out / "brian2" / f"{run.run_dir.name}.json"
            if cache.exists():
                res = read_json(cache)
            else:
                say(f"Brian2 verification of {run.run_dir.name}")
                t0 = time.perf_counter()
                try:
                    res = verify(run.run_dir)
                except Exception as exc:  # noqa: BLE001 - report, keep the table
                    res = {"error": f"{type(exc).__name__}: {exc}"}
                    notes.append(f"Brian2 verification of {run.run_dir.name} failed: {res['error']}")
                if not isinstance(res, Mapping):
                    res = {"result": str(res)}
                res = {**res, "verify_wall_s": time.perf_counter() - t0}
                if "error" not in res:
                    write_json(cache, res)
            acc = _find_metric(res, row["metric"])
            if acc is not None:
                entry["accuracy_brian2"] = acc
        if analyse is not None and finished:
            cache = run.run_dir / "analysis-torch" / "analysis.json"
            try:
                res = read_json(cache) if cache.exists() else analyse(run.run_dir)
                for key, name in (("isi_cv", "isi_cv_per_trial"), ("isi_lv", "isi_lv")):
                    val = res.get(name, {}).get("mean") if isinstance(res.get(name), Mapping) else None
                    entry[key] = math.nan if val is None else float(val)
                entry["analysis"] = str(cache)
            except Exception as exc:  # noqa: BLE001
                notes.append(f"analysis of {run.run_dir.name} failed: {type(exc).__name__}: {exc}")
        table.append(entry)
    cols = ["task", "rule", "neurons", "iterations", "metric", "accuracy_torch", "accuracy_brian2", "mean_rate_hz",
            "silent_fraction", "isi_cv", "isi_lv", "wall_s", "status"]
    heads = ["task", "rule", "neurons", "iterations", "metric", "held-out acc. (torch)", "held-out acc. (Brian2)",
             "mean rate (Hz)", "silent", "ISI CV (per trial)", "ISI LV", "wall (s)", "status"]
    md = ["# cognet reproduce", "",
          f"Every registered task with {', '.join(rule_names)} (seed {seed}), each with its recommended settings; "
          "accuracy on held-out test trials.", "", markdown_table(table, cols, heads)]
    if notes:
        md += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    atomic_write(out / "reproduce.md", "\n".join(md) + "\n")
    write_json(out / "reproduce.json", {"rows": table, "notes": notes, "sets": list(sets)})
    write_csv(out / "reproduce.csv", table, cols + ["run_dir"])
    return {"rows": table, "notes": notes, "markdown": "\n".join(md), "path": str(out / "reproduce.md")}


def estimate(out: Path, rules_: Sequence[str] = DEFAULT_RULES, tasks_: Sequence[str] = (), seed: int = 0,
             sets: Sequence[str] = (), timed: int = 2, caps: Optional[Mapping[str, int]] = None) -> Dict[str, Any]:
    """What :func:`reproduce` would train, and for how long at most: for every run not yet
    finished, its iteration budget x its measured time per iteration
    (:func:`cognet.training.trainer.seconds_per_iteration`). An upper bound on training
    (early stopping shortens it); the Brian2 verification and the analysis come on top."""
    import rules
    import tasks

    from cognet.experiments.sweep import run_state
    from cognet.training.trainer import seconds_per_iteration

    task_names = list(tasks_) or tasks.suite_tasks()  # the symbolic suite (digits only when named)
    for t in task_names:
        if t not in tasks.TASKS:
            raise ConfigError(f"unknown task {t!r}; available: {', '.join(sorted(tasks.TASKS))}")
    rule_names = [r for r in rules_ if r in rules.RULES]
    runs, capped = _runs(Path(out), task_names, rule_names, seed, sets, caps or {})
    rows = []
    for run in runs:
        state = run_state(run.run_dir)
        row = {"task": run.cfg.task, "rule": run.cfg.rule, "state": state, "iterations": run.cfg.train.iterations,
               "s_per_iteration": None, "max_s": 0.0}
        if state != "finished":
            row["s_per_iteration"] = seconds_per_iteration(run.cfg, timed)
            row["max_s"] = row["s_per_iteration"] * row["iterations"]
        rows.append(row)
    return {"runs": rows, "n_runs": len(rows), "n_to_train": sum(r["state"] != "finished" for r in rows),
            "max_s": sum(r["max_s"] for r in rows), "capped": capped}


def estimate_lines(est: Mapping[str, Any]) -> List[str]:
    """The estimate as text: the total, then the longest runs."""
    hours = est["max_s"] / 3600.0
    lines = [f"estimate: {est['n_to_train']} of {est['n_runs']} runs to train, at most {hours:.2f} h of training "
             "(iteration budget x measured time per iteration; early stopping shortens it, Brian2 verification "
             "and analysis come on top)"]
    for r in sorted(est["runs"], key=lambda r: -r["max_s"])[:5]:
        if r["max_s"] > 0:
            lines.append(f"  {r['task']}/{r['rule']}: {r['iterations']} iterations x {r['s_per_iteration']:.3f} s "
                         f"= up to {r['max_s'] / 3600.0:.2f} h")
    lines += [f"  {c}" for c in est.get("capped", [])]
    return lines
