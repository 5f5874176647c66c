"""Sweeps on a real Slurm cluster (``.ci/slurm.sh start``; run with ``pytest -m slurm``).

These tests never skip: without a cluster they fail and say how to start one. They use a
one-node cluster without accounting (no sacct), so every job state comes from squeue/scontrol.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from cognet.experiments import sweep
from cognet.training.io import load_tensors, read_json

pytestmark = pytest.mark.slurm

TINY = ["network.n_rec=20", "train.batch_size=8", "train.eval_every=10", "train.eval_trials=32",
        "train.checkpoint_every=5", "train.threads=1"]
# a run long enough to be interrupted after its first checkpoints, also after scancel's KillWait
# (submitit ignores SIGTERM; Slurm sends SIGKILL KillWait seconds later)
LONG_ITERS = 4000  # ~30 s at 20 neurons with the fused engine on a busy 2-core machine (150 was enough before it)
VOLATILE = {"wall_s", "peak_rss_mb", "resumed_from_iteration", "resumed"}


@pytest.fixture(scope="module")
def cluster():
    hint = "start the one-node cluster first: sudo .ci/slurm.sh start"
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        pytest.fail(f"Slurm client commands are not installed; {hint}")
    try:
        import submitit  # noqa: F401
    except ImportError:
        pytest.fail("the slurm tests need submitit: pip install 'cognet[slurm]'")
    res = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    states = res.stdout.split()
    if res.returncode != 0 or not any(s in ("idle", "mixed", "allocated") for s in states):
        pytest.fail(f"no usable Slurm node (sinfo: {res.stdout.strip() or res.stderr.strip()}); {hint}")
    return True


def _opts(**kw):
    base = dict(time_min=10, cpus_per_task=1, mem_gb=1.0, poll_s=0.5)
    base.update(kw)
    return sweep.SlurmOptions(**base)


def _runs(root: Path, seeds, iters, extra=()):
    return sweep.make_runs(sweep.grid({"seed": list(seeds)}), dict, root, task="add",
                           base_sets=TINY + [f"train.iterations={iters}"] + list(extra))


def _weights(run_dir: Path):
    return load_tensors(Path(run_dir) / "model.safetensors")[0]


def _same_weights(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert (wa[k] == wb[k]).all(), f"{k} differs between {a} and {b}"


def _summary(run_dir: Path):
    return {k: v for k, v in read_json(Path(run_dir) / "summary.json").items() if k not in VOLATILE}


def _files(run_dir: Path):
    return sorted(p.name for p in Path(run_dir).iterdir())


def _wait_for(cond, what: str, timeout_s: float = 180.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")


def _in_thread(fn, *args, **kw):
    box = {}

    def target():
        try:
            box["rows"] = fn(*args, **kw)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            box["exc"] = exc

    th = threading.Thread(target=target, daemon=True)
    th.start()

    def join(timeout_s: float = 300.0):
        th.join(timeout_s)
        assert not th.is_alive(), f"the sweep did not return within {timeout_s:.0f} s (a hang)"
        if "exc" in box:
            raise box["exc"]
        return box["rows"]

    return join


def _running_marker(run_dir: Path, min_iteration: int = 5):
    """running.json of a run inside a Slurm job that has written a checkpoint at >= min_iteration."""
    m = Path(run_dir) / sweep.RUNNING_FILE
    if not m.exists():
        return None
    it = sweep._checkpoint_iteration(run_dir)
    if it is None or it < min_iteration:
        return None
    try:
        data = read_json(m)
    except Exception:  # noqa: BLE001 - being written
        return None
    return data if data.get("slurm_job_id") else None


# -- (a) a job array gives what the local executor gives ----------------------------------------------
def test_job_array_matches_local_executor(cluster, tmp_path):
    local = _runs(tmp_path / "local", range(4), 20)
    slurm = _runs(tmp_path / "slurm", range(4), 20)
    rows_l = sweep.execute(local)
    ticks = []
    rows_s = sweep.execute(slurm, "slurm", folder=tmp_path / "submitit", slurm=_opts(),
                           progress=lambda d, n: ticks.append((d, n)))
    assert [r["status"] for r in rows_s] == ["trained"] * 4, [r.get("error") for r in rows_s]
    assert ticks[0] == (0, 4) and ticks[-1] == (4, 4)
    # each run ran in its own array task (submitit's log folders name the tasks)
    logs = {p.name.split("_")[0] for p in (tmp_path / "submitit").glob("*_*_log.out")}
    assert len(logs) == 1, logs  # one array job
    assert len(list((tmp_path / "submitit").glob("*_log.out"))) == 4
    for a, b, ra, rb in zip(local, slurm, rows_l, rows_s):
        assert a.run_dir.name == b.run_dir.name
        assert _files(a.run_dir) == _files(b.run_dir)
        assert _summary(a.run_dir) == _summary(b.run_dir)
        assert ra["accuracy"] == rb["accuracy"]
        _same_weights(a.run_dir, b.run_dir)
    # run again: nothing is submitted, everything is read back
    again = sweep.execute(slurm, "slurm", folder=tmp_path / "submitit", slurm=_opts())
    assert [r["status"] for r in again] == ["skipped (finished)"] * 4


# -- (b) scancel and SIGKILL mid-run, then resume ----------------------------------------------------
def test_cancelled_and_killed_jobs_resume_to_identical_weights(cluster, tmp_path):
    runs = _runs(tmp_path / "slurm", (0, 1), LONG_ITERS)
    join = _in_thread(sweep.execute, runs, "slurm", folder=tmp_path / "submitit", slurm=_opts())
    m0 = _wait_for(lambda: _running_marker(runs[0].run_dir), "run 0 to checkpoint inside its job")
    subprocess.run(["scancel", str(m0["slurm_job_id"])], check=True, timeout=30)
    m1 = _wait_for(lambda: _running_marker(runs[1].run_dir), "run 1 to checkpoint inside its job")
    os.kill(int(m1["pid"]), signal.SIGKILL)
    rows = join()
    assert rows[0]["status"] == "cancelled" and str(m0["slurm_job_id"]) in rows[0]["error"], rows[0]
    assert rows[1]["status"] == "failed" and "FAILED" in rows[1]["error"], rows[1]
    for r in runs:
        assert sweep.run_state(r.run_dir) == "partial", "the run finished before it was killed; raise LONG_ITERS"
        status, detail = sweep.run_status(r.run_dir, {})
        assert status == "pending" and "interrupted" in detail, detail
    # re-running the sweep resumes both from their checkpoints
    rows = sweep.execute(runs, "slurm", folder=tmp_path / "submitit", slurm=_opts())
    assert [r["status"] for r in rows] == ["resumed", "resumed"], [r.get("error") for r in rows]
    ref = _runs(tmp_path / "ref", (0, 1), LONG_ITERS)
    sweep.execute(ref, jobs=2)  # uninterrupted, locally
    for r, f in zip(runs, ref):
        assert read_json(r.run_dir / "summary.json")["resumed_from_iteration"] >= 5
        assert not (r.run_dir / sweep.RUNNING_FILE).exists()
        _same_weights(r.run_dir, f.run_dir)
        assert _summary(r.run_dir) == _summary(f.run_dir)


# -- (c) a diverging run is marked failed; the others finish -----------------------------------------
def test_diverging_run_marked_failed_others_finish(cluster, tmp_path):
    root = tmp_path / "slurm"
    points = [{"seed": 0, "rate_reg": 0.0}, {"seed": 1, "rate_reg": 1e300}, {"seed": 2, "rate_reg": 0.0}]
    runs = sweep.make_runs(points, lambda p: {"seed": p["seed"], "train.rate_reg": p["rate_reg"]}, root,
                           task="add", base_sets=TINY + ["train.iterations=10"])
    sweep.write_manifest(tmp_path / "sweep.json", "sweep", runs, {})
    rows = sweep.execute(runs, "slurm", folder=tmp_path / "submitit", slurm=_opts())
    assert [r["status"] for r in rows] == ["trained", "diverged", "trained"], [r.get("error") for r in rows]
    assert "loss became inf" in rows[1]["error"]
    assert rows[1]["accuracy"] == rows[1]["chance"]
    st = sweep.sweep_status(tmp_path)
    assert st["counts"] == {"done": 2, "running": 0, "failed": 1, "pending": 0}
    assert st["runs"][1]["status"] == "failed" and "diverged" in st["runs"][1]["detail"]


# -- (d) cancelled pending and vanished jobs: a clear status, never a hang ----------------------------
def test_cancelled_pending_and_vanished_jobs_are_detected(cluster, tmp_path):
    # task 0 runs long enough to be seen running, task 1 is short, task 2 is cancelled while pending
    its = {0: LONG_ITERS, 1: 20, 2: LONG_ITERS}
    runs = sweep.make_runs([{"seed": k} for k in its], lambda p: {"seed": p["seed"], "train.iterations": its[p["seed"]]},
                           tmp_path / "slurm", task="add", base_sets=TINY)
    sweep.write_manifest(tmp_path / "sweep.json", "sweep", runs, {})
    # one task at a time: tasks 1 and 2 wait in the queue
    join = _in_thread(sweep.execute, runs, "slurm", folder=tmp_path / "submitit", slurm=_opts(array_parallelism=1))
    m0 = _wait_for(lambda: _running_marker(runs[0].run_dir, 1), "task 0 to start")
    array = str(m0["slurm_job_id"]).split("_")[0]

    def pending():
        out = subprocess.run(["squeue", "-h", "-r", "-o", "%i|%T", "-j", array], capture_output=True, text=True,
                             timeout=30).stdout
        return {line.split("|")[0] for line in out.split() if line.endswith("PENDING")}

    assert f"{array}_2" in pending()
    st = sweep.sweep_status(tmp_path)
    assert st["runs"][0]["status"] == "running" and f"slurm job {array}_0" in st["runs"][0]["detail"]
    assert st["runs"][2]["status"] == "pending"
    t0 = time.monotonic()
    subprocess.run(["scancel", f"{array}_2"], check=True, timeout=30)  # a pending task: no accounting record
    subprocess.run(["scancel", f"{array}_0"], check=True, timeout=30)  # a running one
    rows = join(240)
    assert time.monotonic() - t0 < 200
    assert rows[0]["status"] == "cancelled" and "CANCELLED" in rows[0]["error"]
    assert rows[2]["status"] == "vanished" and "neither squeue nor scontrol" in rows[2]["error"]
    assert rows[1]["status"] == "trained"
    # a job id Slurm never knew: vanished after a few polls, not a wait forever

    class Ghost:
        job_id = "999999_0"

        class paths:
            result_pickle = tmp_path / "none.pkl"

    got = []
    t0 = time.monotonic()
    sweep.wait_slurm([Ghost()], [(runs[2].config_dict(), str(runs[2].run_dir))], lambda j, r: got.append(r),
                     poll_s=0.2)
    assert got[0]["status"] == "vanished" and time.monotonic() - t0 < 30
    # Slurm unreachable (no squeue on PATH): status unknown after unreachable_s, not a hang
    env_path = os.environ["PATH"]
    try:
        os.environ["PATH"] = str(tmp_path)
        got.clear()
        sweep.wait_slurm([Ghost()], [(runs[2].config_dict(), str(runs[2].run_dir))], lambda j, r: got.append(r),
                         poll_s=0.2, unreachable_s=1.0)
    finally:
        os.environ["PATH"] = env_path
    assert got[0]["status"] == "unknown" and "did not answer" in got[0]["error"]
