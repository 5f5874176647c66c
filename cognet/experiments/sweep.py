"""Sweeps: explicit lists of run configurations, executed locally or on a cluster.

A *run* is a pure function of its configuration: :func:`cognet.training.trainer.train` trains
``cfg`` into a run directory, returns the stored summary when that directory already
holds a finished run, and resumes from ``checkpoint.safetensors`` when it holds a killed
one. A sweep therefore needs no state of its own beyond its list of runs:

* :func:`grid` expands axes into points (the Cartesian product, first axis slowest);
  seeds are ordinary config values, nothing random is derived here;
* :func:`make_runs` turns points into :class:`SweepRun` objects, each with the run
  directory ``<root>/<task>-<rule>-seed<seed>-<config hash>`` (:func:`cognet.training.trainer.default_run_dir`),
  so the same configuration always lands in the same folder;
* :func:`execute` runs the unfinished ones with an executor -- ``local`` (in this
  process, or ``jobs`` worker processes with one torch thread each) or ``slurm``
  (submitit job array; optional dependency) -- and returns one result row per run.

Re-running a sweep skips finished runs (and runs recorded as diverged, which are
deterministic failures) and resumes killed ones. A run whose loss or gradient diverged
leaves ``failed.json`` in its folder and is scored at chance level (it learnt nothing).
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence

from cognet.training.config import ConfigError, RunConfig, build_config, set_key
from cognet.training.io import atomic_write, read_json, write_json

EXECUTORS = ("local", "slurm")
FAILED_FILE = "failed.json"


# -- grids -----------------------------------------------------------------------------------
def grid(axes: Mapping[str, Sequence[Any]]) -> List[Dict[str, Any]]:
    """Cartesian product of ``axes`` (name -> values), first axis varying slowest.

    >>> grid({"a": [1, 2], "b": ["x"]})
    [{'a': 1, 'b': 'x'}, {'a': 2, 'b': 'x'}]
    """
    names = list(axes)
    for name in names:
        vals = axes[name]
        if isinstance(vals, (str, bytes)) or not isinstance(vals, Sequence) or len(vals) == 0:
            raise ValueError(f"grid axis {name!r} needs a non-empty list of values, got {vals!r}")
    return [dict(zip(names, combo)) for combo in itertools.product(*(axes[n] for n in names))]


@dataclass
class SweepRun:
    """One configuration of a sweep: its labels (the grid point), config and run directory."""

    labels: Dict[str, Any]
    cfg: RunConfig
    run_dir: Path

    def config_dict(self) -> Dict[str, Any]:
        return self.cfg.resolved_dict()


def make_runs(points: Iterable[Mapping[str, Any]], to_sets: Callable[[Mapping[str, Any]], Mapping[str, Any]],
              root: Path, task: Optional[str] = None, base_sets: Sequence[str] = (),
              config_file: Optional[str] = None) -> List[SweepRun]:
    """Build the runs of a sweep.

    Each point is mapped by ``to_sets`` to config overrides (dotted key -> value; a
    ``task`` key picks the task, whose recommended settings then apply first). The
    config of a point is: defaults, the task's recommended settings, ``config_file``,
    ``base_sets`` (``key=value`` strings, e.g. the user's ``--set``), then the point's
    overrides. Two points with the same resolved config are rejected (they would share
    a run directory).
    """
    from cognet.training.trainer import default_run_dir

    runs: List[SweepRun] = []
    seen: Dict[Path, Dict[str, Any]] = {}
    for point in points:
        sets = dict(to_sets(point))
        point_task = sets.pop("task", task)
        cfg = build_config(task=point_task, config_file=config_file, sets=list(base_sets))
        for k, v in sets.items():
            set_key(cfg, k, v)
        cfg.validate()
        run_dir = default_run_dir(cfg, root=str(root))
        if run_dir in seen:
            raise ConfigError(f"sweep points {seen[run_dir]} and {dict(point)} give the same configuration")
        seen[run_dir] = dict(point)
        runs.append(SweepRun(dict(point), cfg, run_dir))
    return runs


# -- run state ---------------------------------------------------------------------------------
def run_state(run_dir: Path) -> str:
    """``finished`` | ``diverged`` | ``partial`` (a checkpoint, no summary) | ``new``."""
    run_dir = Path(run_dir)
    if (run_dir / "summary.json").exists() and (run_dir / "model.safetensors").exists():
        return "finished"
    if (run_dir / FAILED_FILE).exists():
        try:
            if read_json(run_dir / FAILED_FILE).get("status") == "diverged":
                return "diverged"
        except Exception:  # noqa: BLE001 - an unreadable marker means: try again
            pass
    if (run_dir / "checkpoint.safetensors").exists():
        return "partial"
    return "new"


def _row(cfg_dict: Mapping[str, Any], run_dir: Path, summary: Optional[Mapping[str, Any]], status: str,
         error: Optional[str] = None) -> Dict[str, Any]:
    import tasks

    task = cfg_dict["task"]["name"]
    metric = tasks.get_task_class(task).stop_metric
    row: Dict[str, Any] = {"task": task, "rule": cfg_dict["rule"], "seed": cfg_dict["seed"], "status": status,
                           "metric": metric, "run_dir": str(run_dir)}
    if summary is not None:
        row.update({
            "accuracy": float(summary[metric]), "bit_accuracy": float(summary["bit_accuracy"]),
            "sequence_accuracy": float(summary["sequence_accuracy"]),
            "mean_rate_hz": float(summary["mean_rate_hz"]), "silent_fraction": float(summary["silent_fraction"]),
            "iterations": int(summary["iterations"]), "wall_s": float(summary["wall_s"]),
            "stopped_early": bool(summary.get("stopped_early", False)), "n_rec": int(summary["n_rec"]),
            "chance": float(summary["chance"][metric]),
        })
    else:  # diverged or error: no model; a diverged run learnt nothing and is scored at chance
        chance = tasks.get_task(task, {k: v for k, v in cfg_dict["task"].items() if k != "name"},
                                cfg_dict["network"]["dt_ms"]).chance()[metric]
        row.update({"accuracy": float(chance) if status == "diverged" else math.nan, "bit_accuracy": math.nan,
                    "sequence_accuracy": math.nan, "mean_rate_hz": math.nan, "silent_fraction": math.nan,
                    "iterations": 0, "wall_s": math.nan, "stopped_early": False,
                    "n_rec": int(cfg_dict["network"]["n_rec"]), "chance": float(chance)})
    if error:
        row["error"] = error
    return row


def run_one(cfg_dict: Dict[str, Any], run_dir: str, retry_failed: bool = False) -> Dict[str, Any]:
    """Train one configuration into ``run_dir`` (idempotent; resumes) and return its result row.

    A plain function of JSON-able arguments, so that worker processes and cluster jobs
    can call it. Divergence is recorded in ``failed.json`` and reported as status
    ``diverged``; any other exception becomes status ``error`` with its message (the
    run is retried next time).
    """
    import torch

    from cognet.training.trainer import TrainingDiverged, config_hash, train

    torch.set_num_threads(int(cfg_dict.get("train", {}).get("threads", 1)))
    out = Path(run_dir)
    cfg = RunConfig.from_dict(cfg_dict)
    state = run_state(out)
    if state == "diverged" and not retry_failed:
        return _row(cfg_dict, out, None, "diverged", read_json(out / FAILED_FILE).get("error"))
    if state == "diverged":
        (out / FAILED_FILE).unlink()
    try:
        summary = train(cfg, out, progress=False)
    except TrainingDiverged as exc:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / FAILED_FILE, {"status": "diverged", "error": str(exc), "config_hash": config_hash(cfg)})
        return _row(cfg_dict, out, None, "diverged", str(exc))
    except Exception as exc:  # noqa: BLE001 - one broken run must not sink the sweep
        return _row(cfg_dict, out, None, "error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}")
    status = "skipped (finished)" if summary.get("resumed") == "already complete" else (
        "resumed" if summary.get("resumed_from_iteration") else "trained")
    return _row(cfg_dict, out, summary, status)


def _worker_init() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)


# -- executors -----------------------------------------------------------------------------------
@dataclass
class SlurmOptions:
    partition: Optional[str] = None
    time_min: int = 60
    cpus_per_task: int = 1
    mem_gb: float = 4.0
    array_parallelism: int = 64
    extra: Dict[str, Any] = field(default_factory=dict)


def execute(runs: Sequence[SweepRun], executor: str = "local", jobs: int = 1, folder: Optional[Path] = None,
            retry_failed: bool = False, slurm: Optional[SlurmOptions] = None,
            log: Optional[Callable[[str], None]] = None) -> List[Dict[str, Any]]:
    """Run every unfinished run of ``runs``; return one result row per run, in order.

    Finished runs are read back without starting anything. ``executor='local'`` with
    ``jobs=1`` trains in this process, one run after another; ``jobs>1`` uses a
    ``ProcessPoolExecutor`` (spawned workers, one torch thread each). ``'slurm'`` submits
    one submitit job array (``folder`` holds submitit's files and must be on a shared
    filesystem) and waits for it.
    """
    if executor not in EXECUTORS:
        raise ConfigError(f"executor must be one of {list(EXECUTORS)}, got {executor!r}")
    if jobs < 1:
        raise ConfigError(f"jobs must be >= 1, got {jobs}")
    if executor == "slurm":
        _require_submitit()
    say = log or (lambda s: None)
    rows: List[Optional[Dict[str, Any]]] = [None] * len(runs)
    todo: List[int] = []
    for i, r in enumerate(runs):
        st = run_state(r.run_dir)
        if st == "finished":
            rows[i] = _row(r.config_dict(), r.run_dir, read_json(r.run_dir / "summary.json"), "skipped (finished)")
        elif st == "diverged" and not retry_failed:
            rows[i] = run_one(r.config_dict(), str(r.run_dir), retry_failed)
            rows[i]["status"] = "diverged (recorded)"
        else:
            todo.append(i)
    say(f"{len(runs)} runs: {len(runs) - len(todo)} already done, {len(todo)} to run "
        f"({executor}{f', {jobs} jobs' if executor == 'local' and jobs > 1 else ''})")
    args = [(runs[i].config_dict(), str(runs[i].run_dir), retry_failed) for i in todo]

    def done(k: int, i: int, row: Dict[str, Any], t0: float) -> None:
        rows[i] = row
        lab = ", ".join(f"{a}={b}" for a, b in runs[i].labels.items())
        acc = row.get("accuracy")
        say(f"[{k}/{len(todo)}] {lab}: {row['status']}, {row['metric']} "
            f"{acc:.3f}" + (f", rate {row['mean_rate_hz']:.1f} Hz, {row['iterations']} it" if row.get("iterations") else "")
            + f" ({time.perf_counter() - t0:.0f} s elapsed)")

    t0 = time.perf_counter()
    if not todo:
        pass
    elif executor == "local" and jobs == 1:
        for k, (i, a) in enumerate(zip(todo, args), 1):
            done(k, i, run_one(*a), t0)
    elif executor == "local":
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=mp.get_context("spawn"),
                                 initializer=_worker_init) as pool:
            futs = {pool.submit(run_one, *a): i for i, a in zip(todo, args)}
            for k, fut in enumerate(as_completed(futs), 1):
                done(k, futs[fut], fut.result(), t0)
    else:
        jobs_ = _submit_slurm(args, Path(folder or "runs/slurm"), slurm or SlurmOptions())
        say(f"submitted {len(jobs_)} jobs (array {getattr(jobs_[0], 'job_id', '?')}); waiting")
        for k, (i, job) in enumerate(zip(todo, jobs_), 1):
            done(k, i, job.result(), t0)
    return [r for r in rows if r is not None]


def _require_submitit():
    try:
        import submitit
    except ImportError:
        raise ConfigError("the slurm executor needs the optional package submitit: pip install submitit "
                          "(or pip install 'cognet[slurm]'; or use --executor local)") from None
    return submitit


def _submit_slurm(args: List[tuple], folder: Path, opts: SlurmOptions) -> list:
    submitit = _require_submitit()
    ex = submitit.AutoExecutor(folder=str(folder))
    params: Dict[str, Any] = {"timeout_min": opts.time_min, "cpus_per_task": opts.cpus_per_task,
                              "mem_gb": opts.mem_gb, "slurm_array_parallelism": opts.array_parallelism}
    if opts.partition:
        params["slurm_partition"] = opts.partition
    params.update(opts.extra)
    ex.update_parameters(**params)
    cfgs, dirs, retry = zip(*args)
    return ex.map_array(run_one, list(cfgs), list(dirs), list(retry))


# -- result tables ---------------------------------------------------------------------------------
def mean_std(values: Sequence[float]) -> tuple:
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not vals:
        return math.nan, math.nan, 0
    m = sum(vals) / len(vals)
    s = math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
    return m, s, len(vals)


def aggregate(rows: Sequence[Mapping[str, Any]], by: Sequence[str],
              values: Sequence[str] = ("accuracy", "mean_rate_hz", "iterations", "wall_s")) -> List[Dict[str, Any]]:
    """Group ``rows`` by the keys ``by`` (first-seen order) and give mean, std and n of ``values``."""
    groups: Dict[tuple, List[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(r.get(k) for k in by), []).append(r)
    out = []
    for key, rs in groups.items():
        g: Dict[str, Any] = dict(zip(by, key))
        for v in values:
            m, s, n = mean_std([r.get(v, math.nan) for r in rs])
            g[f"{v}_mean"], g[f"{v}_std"] = m, s
        g["n"] = len(rs)
        g["diverged"] = sum(1 for r in rs if str(r.get("status", "")).startswith("diverged"))
        out.append(g)
    return out


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        if v == int(v) and abs(v) < 1e6:
            return str(int(v))
        if abs(v) < 0.01 or abs(v) >= 1e4:
            return f"{v:.3g}"
        return f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"
    return str(v)


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str],
                   headers: Optional[Sequence[str]] = None) -> str:
    headers = list(headers or columns)
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c, "")).replace("|", "/") for c in columns) + " |")
    return "\n".join(lines) + "\n"


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: r.get(c, "") for c in columns})
    atomic_write(path, buf.getvalue())


def write_manifest(path: Path, name: str, runs: Sequence[SweepRun], meta: Mapping[str, Any]) -> None:
    """``sweep.json``: the explicit list of runs (labels, run directory, resolved config)."""
    write_json(path, {"experiment": name, **meta,
                      "runs": [{"labels": r.labels, "run_dir": str(r.run_dir), "config": r.config_dict()}
                               for r in runs]})
