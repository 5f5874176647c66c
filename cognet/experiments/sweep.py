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

While a run trains, its folder holds ``running.json`` (host, pid, Slurm job id); an
exception other than divergence leaves ``error.json``. :func:`sweep_status` reads these
(and asks Slurm about the recorded job ids) to list every run of a sweep as done, running,
failed or pending.

Slurm without accounting (no ``sacct``): submitit cannot see that a job was cancelled or
vanished, and would wait forever for its result. :func:`wait_slurm` therefore polls
``squeue`` and ``scontrol show job`` itself, with a timeout on every command: a job that
ends without a result is reported as ``cancelled``/``failed`` (Slurm's state), one that
neither command knows any more as ``vanished``, and when Slurm cannot be reached for
``unreachable_s`` the remaining jobs are reported ``unknown``. The run folder, not the
job, is the source of truth: a job that vanished after finishing its run counts as done.

Estimates (:func:`estimate`): seconds per iteration measured on each distinct network
shape with a few training steps (and one validation pass), times the iterations of every
run still to do -- an upper bound when runs stop early.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import os
import socket
import subprocess
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from cognet.training.config import ConfigError, RunConfig, build_config, set_key
from cognet.training.io import atomic_write, read_json, write_json

EXECUTORS = ("local", "slurm")
FAILED_FILE = "failed.json"
RUNNING_FILE = "running.json"
ERROR_FILE = "error.json"
# row statuses of runs that produced no result (excluded from tables; re-running the sweep retries them)
NO_RESULT = ("error", "cancelled", "failed", "vanished", "unknown")


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
              config_file: Optional[str] = None, rule_recommendations: bool = False) -> List[SweepRun]:
    """Build the runs of a sweep.

    Each point is mapped by ``to_sets`` to config overrides (dotted key -> value; a
    ``task`` key picks the task, whose recommended settings then apply first). The
    config of a point is: defaults, the task's recommended settings, ``config_file``,
    ``base_sets`` (``key=value`` strings, e.g. the user's ``--set``), then the point's
    overrides. Two points with the same resolved config are rejected (they would share
    a run directory).

    With ``rule_recommendations`` a point's ``rule`` also picks the task's recommendations for
    that rule (``Task.recommended_for_rule``, e.g. e-prop's wider network), as ``cognet train
    --rule`` does: right for "each rule at its recommended settings" (``cognet reproduce``).
    Without it (the claim experiments) every rule gets the same network and budget, so that a
    difference between rules is the rules'.
    """
    from cognet.training.trainer import default_run_dir

    runs: List[SweepRun] = []
    seen: Dict[Path, Dict[str, Any]] = {}
    for point in points:
        sets = dict(to_sets(point))
        point_task = sets.pop("task", task)
        point_rule = sets.get("rule") if rule_recommendations else None
        cfg = build_config(task=point_task, rule=point_rule, config_file=config_file, sets=list(base_sets))
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
    out.mkdir(parents=True, exist_ok=True)
    if (out / ERROR_FILE).exists():
        (out / ERROR_FILE).unlink()
    write_json(out / RUNNING_FILE, {"host": socket.gethostname(), "pid": os.getpid(), "slurm_job_id": _slurm_job_id(),
                                    "started_unix": time.time()})
    try:
        summary = train(cfg, out, progress=False)
    except TrainingDiverged as exc:
        write_json(out / FAILED_FILE, {"status": "diverged", "error": str(exc), "config_hash": config_hash(cfg)})
        return _row(cfg_dict, out, None, "diverged", str(exc))
    except Exception as exc:  # noqa: BLE001 - one broken run must not sink the sweep
        msg = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
        write_json(out / ERROR_FILE, {"status": "error", "error": msg, "time_unix": time.time()})
        return _row(cfg_dict, out, None, "error", msg)
    finally:
        if (out / RUNNING_FILE).exists():
            (out / RUNNING_FILE).unlink()
    status = "skipped (finished)" if summary.get("resumed") == "already complete" else (
        "resumed" if summary.get("resumed_from_iteration") else "trained")
    return _row(cfg_dict, out, summary, status)


def _slurm_job_id() -> Optional[str]:
    """This process's Slurm job id as squeue prints it (``<array job>_<task>`` for array tasks)."""
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID")


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
    poll_s: float = 2.0  # how often squeue/scontrol are asked
    unreachable_s: float = 120.0  # give up (status unknown) when Slurm does not answer this long
    extra: Dict[str, Any] = field(default_factory=dict)


def execute(runs: Sequence[SweepRun], executor: str = "local", jobs: int = 1, folder: Optional[Path] = None,
            retry_failed: bool = False, slurm: Optional[SlurmOptions] = None,
            log: Optional[Callable[[str], None]] = None,
            progress: Optional[Callable[[int, int], None]] = None,
            estimate_first: bool = False) -> List[Dict[str, Any]]:
    """Run every unfinished run of ``runs``; return one result row per run, in order.

    Finished runs are read back without starting anything. ``executor='local'`` with
    ``jobs=1`` trains in this process, one run after another; ``jobs>1`` uses a
    ``ProcessPoolExecutor`` (spawned workers, one torch thread each). ``'slurm'`` submits
    one submitit job array (``folder`` holds submitit's files and must be on a shared
    filesystem) and waits for it with :func:`wait_slurm` (never longer than Slurm knows the
    jobs). ``progress(done, total)`` is called with the number of runs done so far (at
    the start and after each run); ``estimate_first`` logs :func:`estimate` before anything
    starts.
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
    if estimate_first and todo:
        par = jobs if executor == "local" else _slurm_parallel(slurm or SlurmOptions())
        say(estimate([runs[i] for i in todo], parallel=par)["text"])
    args = [(runs[i].config_dict(), str(runs[i].run_dir), retry_failed) for i in todo]
    tick = progress or (lambda d, n: None)
    tick(len(runs) - len(todo), len(runs))

    def done(k: int, i: int, row: Dict[str, Any], t0: float) -> None:
        rows[i] = row
        tick(len(runs) - len(todo) + k, len(runs))
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
        opts = slurm or SlurmOptions()
        jobs_ = _submit_slurm(args, Path(folder or "runs/slurm"), opts)
        say(f"submitted {len(jobs_)} jobs (array {str(getattr(jobs_[0], 'job_id', '?')).split('_')[0]}); waiting")
        count = itertools.count(1)
        wait_slurm(jobs_, [a[:2] for a in args], lambda j, row: done(next(count), todo[j], row, t0),
                   poll_s=opts.poll_s, unreachable_s=opts.unreachable_s)
    return [r for r in rows if r is not None]


def _slurm_parallel(opts: SlurmOptions) -> int:
    """How many array tasks can run at once: the array limit, or fewer if the cluster (``sinfo``:
    CPUs of the partition) has fewer CPUs for ``cpus_per_task`` each."""
    cmd = ["sinfo", "-h", "-o", "%C"] + (["-p", opts.partition] if opts.partition else [])
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=SLURM_CMD_TIMEOUT_S).stdout.split()
        total = sum(int(x.split("/")[3]) for x in out)  # allocated/idle/other/total
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
        return opts.array_parallelism
    return max(1, min(opts.array_parallelism, total // max(1, opts.cpus_per_task))) if total else opts.array_parallelism


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


# -- Slurm without accounting: poll squeue / scontrol ------------------------------------------------
SLURM_ENDED = ("COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY",
               "BOOT_FAIL", "DEADLINE", "REVOKED", "SPECIAL_EXIT")
SLURM_CMD_TIMEOUT_S = 20.0


def slurm_states(job_ids: Sequence[str], timeout_s: float = SLURM_CMD_TIMEOUT_S) -> Optional[Dict[str, str]]:
    """Slurm's state (``PENDING``, ``RUNNING``, ``CANCELLED``, ...) of each job id that Slurm
    still knows, from ``squeue`` (pending and running jobs, array tasks expanded) and, for
    the others, ``scontrol show job`` (ended jobs, until ``MinJobAge``). Job ids Slurm has
    forgotten are missing from the answer. ``None`` when squeue cannot be run or fails
    (controller unreachable). Every command has a timeout: this never hangs."""
    ids = [str(j) for j in job_ids]
    if not ids:
        return {}
    try:
        res = subprocess.run(["squeue", "-h", "-r", "-o", "%i|%T", "-j", ",".join(ids)], capture_output=True,
                             text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired):
        return None
    states: Dict[str, str] = {}
    if res.returncode == 0:
        for line in res.stdout.splitlines():
            jid, _, st = line.strip().partition("|")
            states[jid] = st
    elif "Invalid job id" not in res.stderr:  # squeue fails when every id is unknown; anything else: unreachable
        return None
    for jid in ids:
        if jid in states:
            continue
        try:
            res = subprocess.run(["scontrol", "-o", "show", "job", jid], capture_output=True, text=True,
                                 timeout=timeout_s)
        except (OSError, subprocess.TimeoutExpired):
            return None
        for rec in res.stdout.splitlines():
            f = dict(kv.split("=", 1) for kv in rec.split() if "=" in kv)
            tid = f.get("ArrayTaskId")
            key = f"{f.get('ArrayJobId')}_{tid}" if f.get("ArrayJobId") and tid else f.get("JobId")
            if key == jid and "JobState" in f:
                states[jid] = f["JobState"]
    return states


def row_from_run_dir(cfg_dict: Mapping[str, Any], run_dir: Path, status_if_missing: str,
                     error: Optional[str] = None) -> Dict[str, Any]:
    """The row of a run read from its folder: finished, diverged, or ``status_if_missing``."""
    run_dir = Path(run_dir)
    st = run_state(run_dir)
    if st == "finished":
        return _row(cfg_dict, run_dir, read_json(run_dir / "summary.json"), "trained")
    if st == "diverged":
        return _row(cfg_dict, run_dir, None, "diverged", read_json(run_dir / FAILED_FILE).get("error"))
    return _row(cfg_dict, run_dir, None, status_if_missing, error)


def wait_slurm(jobs: Sequence[Any], args: Sequence[tuple], on_done: Callable[[int, Dict[str, Any]], None],
               poll_s: float = 2.0, unreachable_s: float = 120.0, vanish_polls: int = 3) -> None:
    """Wait for submitit ``jobs`` (``args[j]`` = (config dict, run dir) of job ``j``), calling
    ``on_done(j, row)`` once per job, and return when every job has a row.

    A job is done when submitit's result file exists (the row ``run_one`` returned). Otherwise
    Slurm is polled (:func:`slurm_states`): a job in an end state without a result file gets
    the row of its run folder (finished or diverged there, else status ``cancelled`` for
    ``CANCELLED``, ``failed`` for every other end state); a job neither squeue nor scontrol
    knows for ``vanish_polls`` polls in a row gets status ``vanished``; if Slurm does not
    answer for ``unreachable_s``, every remaining job gets status ``unknown``. Rows without a
    result carry an ``error`` text naming the job and its state; re-running the sweep resumes
    those runs from their checkpoints.
    """
    left = dict(enumerate(jobs))
    missing = {j: 0 for j in left}
    ended_seen = {j: 0 for j in left}
    last_answer = time.monotonic()

    def finish(j: int, row: Dict[str, Any]) -> None:
        del left[j]
        on_done(j, row)

    while left:
        for j, job in list(left.items()):
            if Path(job.paths.result_pickle).exists():
                try:
                    row = job.result()
                except Exception as exc:  # noqa: BLE001 - the job ran but raised outside run_one
                    row = row_from_run_dir(args[j][0], Path(args[j][1]), "failed",
                                           f"slurm job {job.job_id} raised {type(exc).__name__}: {exc}")
                finish(j, row)
        if not left:
            break
        states = slurm_states([str(job.job_id) for job in left.values()])
        now = time.monotonic()
        if states is None:
            if now - last_answer > unreachable_s:
                for j, job in list(left.items()):
                    finish(j, row_from_run_dir(args[j][0], Path(args[j][1]), "unknown",
                                               f"slurm job {job.job_id}: Slurm did not answer for {unreachable_s:.0f} s"
                                               "; state unknown (re-run the sweep to resume)"))
                break
        else:
            last_answer = now
            for j, job in list(left.items()):
                st = states.get(str(job.job_id))
                if st is None:
                    missing[j] += 1
                    if missing[j] >= vanish_polls:
                        finish(j, row_from_run_dir(args[j][0], Path(args[j][1]), "vanished",
                                                   f"slurm job {job.job_id} vanished: neither squeue nor scontrol "
                                                   "knows it (cancelled while pending, or forgotten after MinJobAge) "
                                                   "and it left no result (re-run the sweep to resume)"))
                    continue
                missing[j] = 0
                base = st.split()[0].rstrip("+")
                if base in SLURM_ENDED:
                    ended_seen[j] += 1
                    if ended_seen[j] >= 2:  # one more poll for a result file written just before the end
                        finish(j, row_from_run_dir(args[j][0], Path(args[j][1]),
                                                   "cancelled" if base == "CANCELLED" else "failed",
                                                   f"slurm job {job.job_id} ended {base} without a result "
                                                   "(re-run the sweep to resume from its checkpoint)"))
        if left:
            time.sleep(poll_s)


# -- sweep status ---------------------------------------------------------------------------------
STATUS_ORDER = ("done", "running", "failed", "pending")


def _checkpoint_iteration(run_dir: Path) -> Optional[int]:
    path = Path(run_dir) / "checkpoint.safetensors"
    if not path.exists():
        return None
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            return int((f.metadata() or {}).get("iteration", 0))
    except Exception:  # noqa: BLE001 - a torn checkpoint: the trainer will report it
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_status(run_dir: Path, slurm_live: Optional[Mapping[str, str]] = None) -> Tuple[str, str]:
    """(``done`` | ``running`` | ``failed`` | ``pending``, a detail) of one run folder.

    ``running``: ``running.json`` names a live process on this host, or a Slurm job that
    ``slurm_live`` (job id -> state) reports as running. A stale marker (the process was
    killed) leaves the run ``pending`` (it resumes from its checkpoint). ``failed``:
    diverged (``failed.json``) or an error (``error.json``)."""
    run_dir = Path(run_dir)
    st = run_state(run_dir)
    if st == "finished":
        s = read_json(run_dir / "summary.json")
        return "done", f"{s.get('iterations')} it, {_fmt(float(s.get('wall_s', math.nan)))} s"
    if st == "diverged":
        return "failed", "diverged: " + str(read_json(run_dir / FAILED_FILE).get("error", "")).splitlines()[0]
    it = _checkpoint_iteration(run_dir)
    at = f"checkpoint at iteration {it}" if it is not None else "no checkpoint yet"
    marker = run_dir / RUNNING_FILE
    if marker.exists():
        try:
            m = read_json(marker)
        except Exception:  # noqa: BLE001
            m = {}
        jid = m.get("slurm_job_id")
        if jid and slurm_live is not None and str(slurm_live.get(str(jid), "")).startswith(("RUNNING", "COMPLETING")):
            return "running", f"slurm job {jid}, {at}"
        if not jid and m.get("host") == socket.gethostname() and m.get("pid") and _pid_alive(m["pid"]):
            return "running", f"pid {m['pid']}, {at}"
        where = f"slurm job {jid}" if jid else f"pid {m.get('pid')} on {m.get('host')}"
        interrupted = f"interrupted ({where} is gone), {at}; resumes"
    else:
        interrupted = f"{at}; resumes" if it is not None else "not started"
    if (run_dir / ERROR_FILE).exists():
        try:
            err = str(read_json(run_dir / ERROR_FILE).get("error", "")).splitlines()[0]
        except Exception:  # noqa: BLE001
            err = "unreadable error.json"
        return "failed", f"error: {err} (retried on the next run of the sweep)"
    return "pending", interrupted


def sweep_status(folder: Path) -> Dict[str, Any]:
    """Every run of the sweep in ``folder`` (its ``sweep.json``) with its :func:`run_status`,
    and the count per status. Slurm is asked (once, bounded) about job ids the runs record."""
    folder = Path(folder)
    manifest = folder / "sweep.json"
    if not manifest.exists():
        raise FileNotFoundError(f"{folder} holds no sweep (sweep.json missing)")
    data = read_json(manifest)
    runs = data.get("runs")
    if not isinstance(runs, list):
        raise ValueError(f"{manifest}: no list of runs")
    for r in runs:  # a relative run_dir is relative to where the sweep ran; else look under <folder>/runs
        rd = Path(r["run_dir"])
        if not rd.is_absolute() and not rd.exists() and (folder / "runs" / rd.name).exists():
            r["run_dir"] = str(folder / "runs" / rd.name)
    job_ids = []
    for r in runs:
        marker = Path(r["run_dir"]) / RUNNING_FILE
        if marker.exists():
            try:
                jid = read_json(marker).get("slurm_job_id")
            except Exception:  # noqa: BLE001
                jid = None
            if jid:
                job_ids.append(str(jid))
    live = slurm_states(job_ids) if job_ids else {}
    rows = []
    for r in runs:
        status, detail = run_status(Path(r["run_dir"]), live)
        rows.append({"labels": r.get("labels", {}), "run_dir": r["run_dir"], "status": status, "detail": detail})
    counts = {k: sum(1 for r in rows if r["status"] == k) for k in STATUS_ORDER}
    return {"folder": str(folder), "experiment": data.get("experiment"), "runs": rows, "counts": counts,
            "slurm_reachable": live is not None}


# -- estimates ---------------------------------------------------------------------------------------
def _shape_key(cfg: RunConfig) -> str:
    d = cfg.resolved_dict()
    return json_key({"task": d["task"], "rule": d["rule"], "network": d["network"],
                     "batch": d["train"].get("batch_size"), "eval_trials": d["train"].get("eval_trials")})


def json_key(obj: Any) -> str:
    import json

    return json.dumps(obj, sort_keys=True, default=str)


def seconds_per_iteration(cfg: RunConfig, steps: int = 2) -> Tuple[float, float]:
    """(training seconds per iteration, seconds per validation pass) of ``cfg``, measured on
    ``steps`` training steps after one warm-up step, and one validation pass, with the
    run's own thread count. Nothing is written."""
    import copy as _copy
    import dataclasses

    import torch

    from cognet.training.trainer import Trainer

    prev = torch.get_num_threads()
    torch.set_num_threads(int(cfg.train.threads))
    try:
        t = Trainer(_copy.deepcopy(cfg), None, progress=False)

        def step() -> None:
            t.net.train()
            b = t.task.sample(cfg.train.batch_size, t.g_train)
            b = dataclasses.replace(b, x=b.x.to(t.device), target=b.target.to(t.device), mask=b.mask.to(t.device))
            t.rule.step(b)
            t.opt.step()

        step()
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        per_it = (time.perf_counter() - t0) / steps
        t.evaluate()  # warm-up
        t0 = time.perf_counter()
        t.evaluate()
        per_eval = time.perf_counter() - t0
    finally:
        torch.set_num_threads(prev)
    return per_it, per_eval


def estimate(runs: Sequence[SweepRun], parallel: int = 1, steps: int = 2, max_shapes: int = 6) -> Dict[str, Any]:
    """Compute time of ``runs``: for each, its iterations x the measured seconds per
    iteration of its network shape (:func:`seconds_per_iteration`, at most ``max_shapes``
    shapes measured; the others use the mean), plus one validation pass per ``eval_every``
    and the final test. An upper bound when runs stop early. ``text`` says it in words, with
    the wall time at ``parallel`` runs at once."""
    measured: Dict[str, Tuple[float, float]] = {}
    total = 0.0
    its = 0
    for r in runs:
        key = _shape_key(r.cfg)
        if key not in measured and len(measured) < max_shapes:
            measured[key] = seconds_per_iteration(r.cfg, steps)
    mean_it = sum(v[0] for v in measured.values()) / max(1, len(measured))
    mean_ev = sum(v[1] for v in measured.values()) / max(1, len(measured))
    for r in runs:
        per_it, per_ev = measured.get(_shape_key(r.cfg), (mean_it, mean_ev))
        n = int(r.cfg.train.iterations)
        its += n
        total += n * per_it + (n // max(1, int(r.cfg.train.eval_every)) + 1) * per_ev
    par = max(1, min(int(parallel), len(runs)))
    wall = total / par
    text = (f"estimate: {len(runs)} runs x {its // max(1, len(runs))} iterations x {mean_it:.3f} s/iteration "
            f"(measured on {len(measured)} network shape{'s' if len(measured) != 1 else ''}, validation included) "
            f"= {_duration(total)} of compute, about {_duration(wall)} with {par} at a time "
            "(an upper bound when runs stop early)")
    return {"runs": len(runs), "iterations": its, "s_per_iteration": mean_it, "s_per_eval": mean_ev,
            "compute_s": total, "wall_s": wall, "parallel": par, "text": text}


def _duration(s: float) -> str:
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


# -- result tables ---------------------------------------------------------------------------------
def mean_std(values: Sequence[float]) -> tuple:
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not vals:
        return math.nan, math.nan, 0
    m = sum(vals) / len(vals)
    s = math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
    return m, s, len(vals)


def _t_half(sd: float, n: int) -> float:
    if n < 2:
        return math.nan
    from scipy.stats import t

    return float(t.ppf(0.975, n - 1)) * sd / math.sqrt(n)


def aggregate(rows: Sequence[Mapping[str, Any]], by: Sequence[str],
              values: Sequence[str] = ("accuracy", "mean_rate_hz", "iterations", "wall_s")) -> List[Dict[str, Any]]:
    """Group ``rows`` by the keys ``by`` (first-seen order) and give mean, std, the half-width
    of the 95 % t confidence interval of the mean (``_ci95``) and n of ``values``."""
    groups: Dict[tuple, List[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(r.get(k) for k in by), []).append(r)
    out = []
    for key, rs in groups.items():
        g: Dict[str, Any] = dict(zip(by, key))
        for v in values:
            vals = [r.get(v, math.nan) for r in rs]
            m, s, n = mean_std(vals)
            g[f"{v}_mean"], g[f"{v}_std"] = m, s
            g[f"{v}_ci95"] = _t_half(s, n)  # half-width of the 95 % t interval of the mean (nan below 2)
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
