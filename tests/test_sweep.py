"""Sweeps: grid expansion, run-dir keying, skip/resume, divergence records, verdict logic, one tiny experiment."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from cognet.experiments import sweep
from cognet.training.config import ConfigError, build_config
from cognet.experiments.claims import (EXPERIMENTS, Analysis, Options, build_runs, check_learnt, paired_verdict)
from cognet.training.trainer import config_hash

TINY = ["network.n_rec=20", "train.iterations=10", "train.eval_every=10", "train.eval_trials=32",
        "train.checkpoint_every=5"]


def tiny_runs(root: Path, seeds=(0, 1), extra=()):
    return sweep.make_runs(sweep.grid({"seed": list(seeds)}), dict, root, task="add", base_sets=TINY + list(extra))


def test_grid_order_and_errors():
    pts = sweep.grid({"a": [1, 2], "b": ["x", "y"], "seed": [0]})
    assert pts == [{"a": 1, "b": "x", "seed": 0}, {"a": 1, "b": "y", "seed": 0},
                   {"a": 2, "b": "x", "seed": 0}, {"a": 2, "b": "y", "seed": 0}]
    with pytest.raises(ValueError, match="'b'"):
        sweep.grid({"a": [1], "b": []})
    with pytest.raises(ValueError, match="'a'"):
        sweep.grid({"a": "abc"})


def test_run_dirs_keyed_by_config_hash(tmp_path):
    runs = tiny_runs(tmp_path, seeds=(0, 1))
    again = tiny_runs(tmp_path, seeds=(0,))
    assert runs[0].run_dir == again[0].run_dir  # same config, same folder
    assert runs[0].run_dir != runs[1].run_dir
    for r in runs:
        assert r.run_dir.parent == tmp_path
        assert r.run_dir.name == f"add-bptt-seed{r.cfg.seed}-{config_hash(r.cfg)}"
    other = tiny_runs(tmp_path, seeds=(0,), extra=["train.lr=0.02"])
    assert other[0].run_dir != runs[0].run_dir
    # two grid points that resolve to one configuration would share a folder: rejected
    with pytest.raises(ConfigError, match="same configuration"):
        sweep.make_runs([{"x": 1}, {"x": 2}], lambda p: {"seed": 0}, tmp_path, task="add", base_sets=TINY)
    with pytest.raises(ConfigError, match="network.n_recc"):
        sweep.make_runs([{"x": 1}], lambda p: {"network.n_recc": 3}, tmp_path, task="add", base_sets=TINY)


def test_second_invocation_skips_finished_runs(tmp_path):
    runs = tiny_runs(tmp_path)
    rows = sweep.execute(runs)
    assert [r["status"] for r in rows] == ["trained", "trained"]
    assert all(r["iterations"] == 10 and 0 <= r["accuracy"] <= 1 for r in rows)
    stamps = [(r.run_dir / "summary.json").stat().st_mtime_ns for r in runs]
    again = sweep.execute(tiny_runs(tmp_path))
    assert [r["status"] for r in again] == ["skipped (finished)"] * 2
    assert [r["accuracy"] for r in again] == [r["accuracy"] for r in rows]
    assert [(r.run_dir / "summary.json").stat().st_mtime_ns for r in runs] == stamps


def test_killed_run_resumes_from_checkpoint(tmp_path, monkeypatch):
    import rules.bptt as bptt

    runs = tiny_runs(tmp_path, seeds=(3,), extra=["train.iterations=20"])
    real_step = bptt.BPTT.step
    calls = {"n": 0}

    def dying_step(self, batch):
        calls["n"] += 1
        if calls["n"] > 12:
            raise KeyboardInterrupt  # stands in for a kill after the checkpoint at iteration 10
        return real_step(self, batch)

    monkeypatch.setattr(bptt.BPTT, "step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        sweep.execute(runs)
    assert sweep.run_state(runs[0].run_dir) == "partial"
    assert not (runs[0].run_dir / "summary.json").exists()
    monkeypatch.setattr(bptt.BPTT, "step", real_step)
    rows = sweep.execute(runs)
    assert rows[0]["status"] == "resumed" and rows[0]["iterations"] == 20
    summary = json.loads((runs[0].run_dir / "summary.json").read_text())
    assert summary["resumed_from_iteration"] == 10
    assert sweep.run_state(runs[0].run_dir) == "finished"


def test_diverged_run_is_recorded_and_not_retried(tmp_path, monkeypatch):
    import cognet.training.trainer as ct

    runs = tiny_runs(tmp_path, seeds=(0,))
    calls = {"n": 0}

    def diverging(cfg, out, progress=None, restart=False):
        calls["n"] += 1
        raise ct.TrainingDiverged("loss became nan at iteration 3")

    monkeypatch.setattr(ct, "train", diverging)
    rows = sweep.execute(runs)
    assert rows[0]["status"] == "diverged" and calls["n"] == 1
    assert rows[0]["accuracy"] == pytest.approx(rows[0]["chance"])  # learnt nothing
    assert sweep.run_state(runs[0].run_dir) == "diverged"
    rows = sweep.execute(runs)
    assert rows[0]["status"] == "diverged (recorded)" and calls["n"] == 1
    sweep.execute(runs, retry_failed=True)
    assert calls["n"] == 2


def test_executor_errors(tmp_path):
    with pytest.raises(ConfigError, match="executor"):
        sweep.execute([], executor="ray")
    with pytest.raises(ConfigError, match="jobs"):
        sweep.execute([], jobs=0)
    try:
        import submitit  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="pip install submitit"):
            sweep.execute(tiny_runs(tmp_path, seeds=(0,)), executor="slurm", folder=tmp_path / "slurm")


# -- verdict logic on synthetic result tables ----------------------------------------------------
def _rows(spec, **extra):
    return [{"task": "add", "metric": "sequence_accuracy", "chance": 0.03, "mean_rate_hz": 10.0, "iterations": 400,
             "wall_s": 1.0, "status": "trained", **extra, **s} for s in spec]


def test_surrogate_scale_verdict():
    exp, opts = EXPERIMENTS["surrogate-scale"], Options(out=Path("/nonexistent"))
    scale_acc = {0.1: 0.2, 1.0: 0.9, 10.0: 0.6}
    rows = _rows([{"shape": sh, "scale": sc, "seed": s, "accuracy": a + 0.01 * i + 0.005 * s}
                  for i, sh in enumerate(["triangle", "gaussian", "arctan", "fast-sigmoid"])
                  for sc, a in scale_acc.items() for s in (0, 1)])
    an = exp.analyse(rows, opts)
    assert an.numbers["spread_across_scales"] == pytest.approx(0.7)
    assert an.numbers["spread_across_shapes"] == pytest.approx(0.03)
    assert "supporting Zenke & Vogels" in an.sentence and "best fast-sigmoid at 1x" in an.sentence
    shape_acc = {"triangle": 0.2, "gaussian": 0.9, "arctan": 0.5, "fast-sigmoid": 0.6}
    rows = _rows([{"shape": sh, "scale": sc, "seed": 0, "accuracy": a} for sh, a in shape_acc.items()
                  for sc in (0.1, 1.0, 10.0)])
    assert "contradicting" in exp.analyse(rows, opts).verdict


def test_reset_gradient_verdict():
    exp, opts = EXPERIMENTS["reset-gradient"], Options(out=Path("/nonexistent"))
    lrs = [0.001, 0.01, 0.1]
    kept = {0.001: 0.87, 0.01: 0.9, 0.1: 0.88}
    detached = {0.001: 0.5, 0.01: 0.9, 0.1: 0.2}
    rows = _rows([{"reset_gradient": rg, "lr": lr, "seed": s, "accuracy": acc[lr] + 0.01 * s}
                  for rg, acc in (("kept", kept), ("detached", detached)) for lr in lrs for s in (0, 1)])
    an = exp.analyse(rows, opts)
    assert an.numbers["paired_difference"] == pytest.approx((0.37 + 0 + 0.68) / 3)
    assert "supporting 2011.09964" in an.verdict
    assert an.numbers["kept"]["good_lrs"] == 3 and an.numbers["detached"]["good_lrs"] == 1
    rows = _rows([{"reset_gradient": rg, "lr": lr, "seed": s, "accuracy": kept[lr] + 0.003 * (rg == "kept") * s}
                  for rg in ("kept", "detached") for lr in lrs for s in (0, 1)])
    assert "so this run does not show" in exp.analyse(rows, opts).verdict


def test_no_clear_difference_wording():
    from cognet.experiments.claims import no_clear_difference

    assert "within noise" in no_clear_difference(0.015, 0.01)
    assert "consistent across seeds" in no_clear_difference(0.01, 0.001)


def test_paired_verdict_needs_more_than_noise():
    assert paired_verdict([0.1, 0.12, 0.09])[2] == 1
    assert paired_verdict([-0.1, -0.12, -0.11])[2] == -1
    assert paired_verdict([-0.1, -0.12])[2] == 0  # two seeds: t(1) = -11 is p = 0.058, not shown
    assert paired_verdict([0.3, -0.25, 0.2, -0.3])[2] == 0  # big but inconsistent differences
    assert paired_verdict([0.01, 0.015])[2] == 0  # below the tolerance
    assert math.isnan(paired_verdict([])[0])


def test_sparse_rules_leak_verdicts_and_chance_guard():
    opts = Options(out=Path("/nonexistent"))
    sp = EXPERIMENTS["sparse"]
    rows = _rows([{"rate_target_hz": t, "seed": 0, "accuracy": a, "mean_rate_hz": t * 1.1}
                  for t, a in ((2.0, 0.93), (5.0, 0.95), (10.0, 0.96))])
    assert "supporting accurate computation" in sp.analyse(rows, opts).verdict
    rows = _rows([{"rate_target_hz": t, "seed": 0, "accuracy": a, "mean_rate_hz": t * 1.1}
                  for t, a in ((2.0, 0.5), (5.0, 0.95))])
    assert "contradicting" in sp.analyse(rows, opts).verdict
    rows = _rows([{"rate_target_hz": t, "seed": 0, "accuracy": 0.9, "mean_rate_hz": 30.0} for t in (2.0, 5.0)])
    assert "did not get down" in sp.analyse(rows, opts).verdict
    ru = EXPERIMENTS["rules"]
    rows = _rows([{"rule": r, "seed": s, "accuracy": a} for r, a in (("bptt", 0.95), ("eprop-random", 0.93),
                                                                      ("eprop-symmetric", 0.7)) for s in (0, 1)])
    an = ru.analyse(rows, opts)
    assert "partial support" in an.verdict and "eprop-adaptive" in an.head
    le = EXPERIMENTS["leak-aware"]
    rows = _rows([{"derivative": d, "seed": s, "accuracy": 0.9 - 0.2 * (d == "leak-aware")}
                  for d in ("plain", "leak-aware") for s in (0, 1, 2)])
    assert "hurts" in le.analyse(rows, opts).verdict
    an = Analysis([{"accuracy_mean": 0.05}], [], [], "x. ", "supporting", {})
    check_learnt(an, [{"chance": 0.03}])
    assert "cannot test the claim" in an.sentence


def test_rules_experiment_needs_eprop(monkeypatch, tmp_path):
    import rules

    monkeypatch.setattr(rules, "RULES", {"bptt": rules.RULES["bptt"]})
    with pytest.raises(ConfigError, match="no e-prop rule is registered"):
        build_runs("rules", Options(out=tmp_path))


def test_reproduce_takes_each_rules_recommendations_and_experiments_do_not(tmp_path):
    """``cognet reproduce`` trains each rule at its recommended settings (as ``cognet train --rule``
    does: e-prop's wider network and longer budget on the symbolic tasks); a claim experiment
    compares the rules on the same network and budget."""
    from cognet.experiments.reproduce import _runs
    from cognet.training.trainer import default_run_dir

    runs, _ = _runs(tmp_path, ["count", "evidence"], ["bptt", "eprop-random"], 0, [], {})
    got = {(r.cfg.task, r.cfg.rule): r for r in runs}
    for task in ("count", "evidence"):
        for rule in ("bptt", "eprop-random"):
            cfg = build_config(task=task, rule=rule, seed=0)
            assert got[(task, rule)].run_dir == default_run_dir(cfg, root=str(tmp_path / "runs"))
    assert got[("count", "eprop-random")].cfg.network.n_rec == 300 and got[("count", "bptt")].cfg.network.n_rec == 100
    assert got[("evidence", "bptt")].cfg.surrogate.peak == 0.1  # bptt's own recommendation, too
    assert got[("evidence", "eprop-random")].cfg.train.target_accuracy == 0.97
    _, runs = build_runs("rules", Options(out=tmp_path / "exp", seeds=1))
    assert {r.cfg.network.n_rec for r in runs} == {100} and len({r.cfg.rule for r in runs}) > 2
    assert len({r.cfg.train.iterations for r in runs}) == 1


def test_experiment_grids_expand(tmp_path):
    exp, runs = build_runs("surrogate-scale", Options(out=tmp_path, seeds=1))
    assert len(runs) == 4 * 3
    widths = {(r.cfg.surrogate.name, r.cfg.surrogate.width) for r in runs}
    assert ("triangle", 0.1) in widths and ("fast-sigmoid", 2.5) in widths
    assert all(r.cfg.train.iterations == 1000 for r in runs)
    _, runs = build_runs("reset-gradient", Options(out=tmp_path, grid="full", seeds=2, iterations=50))
    import tasks

    assert len(runs) == len(tasks.suite_tasks()) * 2 * 7 * 2 and {r.cfg.network.detach_reset for r in runs} == {True, False}
    assert all(r.cfg.train.iterations == 50 for r in runs)


# -- one tiny experiment end to end (CLI) -------------------------------------------------------------
def test_tiny_experiment_end_to_end(tmp_path):
    from click.testing import CliRunner

    from cognet.cli.main import main

    out = tmp_path / "exp"
    args = ["experiment", "sparse", "--out", str(out), "--seeds", "1", "--iterations", "10",
            "--set", "network.n_rec=20", "--set", "train.eval_every=10", "--set", "train.eval_trials=32"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "5 runs (0 errors)" in res.output
    assert "estimate: 5 runs x 10 iterations x " in res.output and "s/iteration" in res.output
    assert "5/5" in res.stderr and "runs:" in res.stderr  # the progress bar over runs, on stderr
    data = json.loads((out / "results.json").read_text())
    assert len(data["runs"]) == 5 and len(data["table"]) == 5
    assert data["verdict"].startswith("Held-out accuracy add:")
    assert (out / "figure.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "results.csv").read_text().count("\n") == 6
    md = (out / "results.md").read_text()
    assert "| add | 2 |" in md and data["verdict"] in md
    manifest = json.loads((out / "sweep.json").read_text())
    assert len(manifest["runs"]) == 5 and manifest["runs"][0]["config"]["train"]["iterations"] == 10
    res = CliRunner().invoke(main, args + ["--json"])
    assert res.exit_code == 0, res.output
    again = json.loads(res.stdout if hasattr(res, "stdout") else res.output)
    assert again["verdict"] == data["verdict"]
    assert all(r["status"] == "skipped (finished)" for r in json.loads((out / "results.json").read_text())["runs"])


def test_reproduce_table_with_brian2_hook(tmp_path, monkeypatch):
    import sys
    import types

    from cognet.experiments.reproduce import reproduce

    calls = []

    def verify_run(run_dir):
        calls.append(Path(run_dir))
        return {"brian2": {"sequence_accuracy": 0.5, "bit_accuracy": 0.75}, "spike_match": 1.0}

    fake = types.ModuleType("cognet.brian.replay")
    fake.verify_run = verify_run
    monkeypatch.setitem(sys.modules, "cognet.brian.replay", fake)
    sets = ["network.n_rec=20", "train.iterations=5", "train.eval_every=5", "train.eval_trials=16"]
    res = reproduce(tmp_path, rules_=("bptt", "no-such-rule"), tasks_=("add",), sets=sets)
    (row,) = res["rows"]
    assert row["task"] == "add" and row["rule"] == "bptt" and row["neurons"] == 20 and row["iterations"] == 5
    assert row["accuracy_brian2"] == 0.5 and 0 <= row["accuracy_torch"] <= 1
    assert any("no-such-rule" in n for n in res["notes"])
    md = (tmp_path / "reproduce.md").read_text()
    assert "| add | bptt | 20 | 5 | sequence_accuracy |" in md and "| 0.500 |" in md
    reproduce(tmp_path, rules_=("bptt",), tasks_=("add",), sets=sets)
    assert len(calls) == 1  # the cached Brian2 result is reused
    with pytest.raises(ConfigError, match="none of the rules"):
        reproduce(tmp_path, rules_=("nope",), tasks_=("add",), sets=sets)


# -- paired statistics ----------------------------------------------------------------------------------
def test_paired_stats_match_scipy_and_hand_values():
    from scipy import stats as sst

    from cognet.experiments import stats

    d = [0.05, 0.02, 0.04, 0.01, 0.03]  # mean 0.03, sd sqrt(0.001 / 4) = 0.0158
    st = stats.paired_stats(d)
    m, sd = sum(d) / 5, float(__import__("numpy").std(d, ddof=1))
    assert st["n"] == 5 and st["df"] == 4 and st["mean"] == pytest.approx(m) and st["sd"] == pytest.approx(sd)
    half = sst.t.ppf(0.975, 4) * sd / math.sqrt(5)
    assert (st["ci_low"], st["ci_high"]) == (pytest.approx(m - half), pytest.approx(m + half))
    ref = sst.ttest_rel([0.5 + x for x in d], [0.5] * 5)  # the paired t-test on the two arms
    assert st["t"] == pytest.approx(ref.statistic) and st["p"] == pytest.approx(ref.pvalue)
    assert st["d_z"] == pytest.approx(m / sd)
    assert stats.decide(st, 0.02) == {"sign": 1, "kind": "effect"}  # p = 0.013, mean 0.03 >= 0.02
    assert stats.decide(st, 0.05)["kind"] == "small"  # clear, but below a 0.05 tolerance
    text = stats.describe(st)  # half-width t(0.975, 4) 2.776 x 0.00707 = 0.0196; t = 0.03 / 0.00707
    assert "95 % CI +0.010 to +0.050" in text and "t(4) = 4.243" in text and "p = 0.013" in text
    assert "d_z = 1.897" in text
    st = stats.paired_stats([0.05, 0.02, 0.04, -0.01, 0.03])  # one seed the other way: CI includes 0
    assert st["ci_low"] < 0 < st["ci_high"] and stats.decide(st, 0.02)["kind"] == "inconclusive"
    assert stats.decide(stats.paired_stats([0.004, 0.006, 0.005, 0.005]), 0.02)["kind"] == "small"
    assert stats.decide(stats.paired_stats([0.004, -0.003, 0.002, -0.001, 0.0]), 0.02)["kind"] == "equivalent"
    assert stats.decide(stats.paired_stats([0.3, -0.25, 0.2, -0.3]), 0.02)["kind"] == "inconclusive"
    one = stats.paired_stats([0.1])
    assert math.isnan(one["ci_low"]) and stats.decide(one, 0.02)["kind"] == "one-seed"
    assert "one seed" in stats.describe(one)
    flat = stats.paired_stats([0.1, 0.1, 0.1])
    assert flat["p"] == 0.0 and flat["ci_low"] == pytest.approx(0.1) and stats.decide(flat, 0.02)["sign"] == 1
    assert stats.t_ci_halfwidth([1.0, 2.0, 3.0]) == pytest.approx(sst.t.ppf(0.975, 2) * 1.0 / math.sqrt(3))


def test_verdicts_carry_ci_test_and_effect_size():
    opts = Options(out=Path("/nonexistent"))
    le = EXPERIMENTS["leak-aware"]
    noise = [0.03, -0.02, 0.01, -0.04, 0.02]
    rows = _rows([{"derivative": d, "seed": s, "accuracy": 0.8 + (noise[s] if d == "leak-aware" else 0.0)}
                  for d in ("plain", "leak-aware") for s in range(5)])
    an = le.analyse(rows, opts)
    assert "95 % CI" in an.head and "paired t-test (two-sided) over 5 seeds" in an.head and "d_z" in an.head
    assert an.numbers["kind"] == "inconclusive" and "cannot decide" in an.verdict
    assert an.numbers["paired"]["p"] == pytest.approx(__import__("scipy.stats").stats.ttest_1samp(noise, 0).pvalue)
    # the same spread around a clear +0.1: the interval excludes 0 -> supported
    rows = _rows([{"derivative": d, "seed": s, "accuracy": 0.7 + (0.1 + noise[s] if d == "leak-aware" else 0.0)}
                  for d in ("plain", "leak-aware") for s in range(5)])
    an = le.analyse(rows, opts)
    assert "helps here, supporting Lee" in an.verdict
    import io

    import matplotlib.figure

    saved = []
    orig = matplotlib.figure.Figure.savefig
    matplotlib.figure.Figure.savefig = lambda fig, *a, **k: (saved.append(fig), orig(fig, *a, **k))[1]
    try:
        buf = io.BytesIO()
        le.plot(rows, an, buf)
    finally:
        matplotlib.figure.Figure.savefig = orig
    assert buf.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"
    bars, diffs = saved[0].axes  # accuracy per setting, and the seed-paired differences with their CI
    assert "paired difference" in diffs.get_ylabel() and len(diffs.collections) >= 1
    ru = EXPERIMENTS["rules"]
    rows = _rows([{"rule": r, "seed": s, "accuracy": a + (noise[s] if r != "bptt" else 0)}
                  for r, a in (("bptt", 0.95), ("eprop-random", 0.93), ("eprop-symmetric", 0.5)) for s in range(5)])
    an = ru.analyse(rows, opts)
    # eprop-random: CI -0.054 .. +0.014 straddles -0.05 -> undecided; symmetric far below -> partial/contradict
    assert "Undecided" in an.verdict and "eprop-random" in an.verdict.split("Undecided")[1]
    assert an.numbers["eprop-symmetric"]["paired"]["ci_high"] < -0.05


def test_paper_grid_and_default_seeds(tmp_path):
    for name, exp in EXPERIMENTS.items():
        assert exp.seed_list(Options(out=tmp_path)) == list(range(5)), name
        assert len(exp.seed_list(Options(out=tmp_path, grid="paper"))) >= 10, name
    exp, runs = build_runs("rules", Options(out=tmp_path, grid="paper", seeds=1))
    assert {r.cfg.task for r in runs} == set(exp.paper_tasks) and len(exp.paper_tasks) >= 2
    assert all(r.cfg.train.iterations == 2000 for r in runs)
    _, runs = build_runs("leak-aware", Options(out=tmp_path, grid="paper"))
    assert len(runs) == 3 * 2 * 10


# -- sweep status and estimate ---------------------------------------------------------------------------
def test_sweep_status_lists_done_running_failed_pending(tmp_path):
    import os
    import socket

    from cognet.training.io import write_json

    runs = tiny_runs(tmp_path / "runs", seeds=(0, 1, 2, 3, 4))
    sweep.write_manifest(tmp_path / "sweep.json", "sweep", runs, {})
    sweep.execute(runs[:1])
    write_json(runs[1].run_dir / sweep.RUNNING_FILE, {"host": socket.gethostname(), "pid": os.getpid(),
                                                       "slurm_job_id": None})
    write_json(runs[2].run_dir / sweep.FAILED_FILE, {"status": "diverged", "error": "loss became nan at iteration 3"})
    dead = __import__("subprocess").Popen(["true"])
    dead.wait()
    write_json(runs[3].run_dir / sweep.RUNNING_FILE, {"host": socket.gethostname(), "pid": dead.pid,
                                                       "slurm_job_id": None})
    st = sweep.sweep_status(tmp_path)
    assert [r["status"] for r in st["runs"]] == ["done", "running", "failed", "pending", "pending"]
    assert st["counts"] == {"done": 1, "running": 1, "failed": 1, "pending": 2}
    assert "diverged: loss became nan" in st["runs"][2]["detail"]
    assert "interrupted" in st["runs"][3]["detail"] and st["runs"][4]["detail"] == "not started"
    from click.testing import CliRunner

    from cognet.cli.main import main

    res = CliRunner().invoke(main, ["sweep", "--status", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "5 runs: 1 done, 1 running, 1 failed, 2 pending" in res.output
    res = CliRunner().invoke(main, ["sweep", "--status", str(tmp_path / "nothing")])
    assert res.exit_code == 2 and "sweep.json missing" in res.output


def test_estimate_scales_with_runs_and_iterations(tmp_path, monkeypatch):
    calls = []

    def fake_spi(cfg, steps=2):
        calls.append(cfg.network.n_rec)
        return 0.01 * cfg.network.n_rec / 20, 0.5

    monkeypatch.setattr(sweep, "seconds_per_iteration", fake_spi)
    runs = tiny_runs(tmp_path, seeds=(0, 1, 2)) + tiny_runs(tmp_path, seeds=(0,), extra=["network.n_rec=40"])
    est = sweep.estimate(runs, parallel=2)
    assert sorted(calls) == [20, 40]  # one measurement per network shape, not per seed
    # 3 runs x 10 it x 0.01 + 1 x 10 x 0.02, plus (10 // 10 + 1) validation passes of 0.5 s each
    assert est["compute_s"] == pytest.approx(3 * 0.1 + 0.2 + 4 * 2 * 0.5)
    assert est["wall_s"] == pytest.approx(est["compute_s"] / 2) and "4 runs x 10 iterations" in est["text"]


def test_real_seconds_per_iteration_is_positive_and_writes_nothing(tmp_path):
    runs = tiny_runs(tmp_path, seeds=(0,))
    spi, ev = sweep.seconds_per_iteration(runs[0].cfg, steps=1)
    assert 0 < spi < 60 and 0 < ev < 60
    assert not runs[0].run_dir.exists()


@pytest.mark.slow
def test_local_sweep_resumes_after_sigkill_to_identical_weights(tmp_path):
    """A real kill -9 of a local `cognet sweep` process mid-run; re-running the sweep resumes it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from cognet.training.io import load_tensors

    sets = ["network.n_rec=20", "train.batch_size=8", "train.iterations=80", "train.eval_every=10",
            "train.eval_trials=32", "train.checkpoint_every=5"]
    cmd = [sys.executable, "-m", "cognet", "sweep", "--axis", "task=add", "--axis", "seed=0", "--out",
           str(tmp_path / "sw"), "--no-estimate"] + [a for s in sets for a in ("--set", s)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                        os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    (run,) = sweep.make_runs([{"task": "add", "seed": 0}], dict, tmp_path / "sw" / "runs", base_sets=sets)
    t0 = time.monotonic()
    while (sweep._checkpoint_iteration(run.run_dir) or 0) < 5:
        assert proc.poll() is None, "the sweep ended before its first checkpoint"
        assert time.monotonic() - t0 < 120
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    assert sweep.run_state(run.run_dir) == "partial", "the run finished before the kill; raise train.iterations"
    status, detail = sweep.run_status(run.run_dir)
    assert status == "pending" and "interrupted" in detail  # running.json names a dead pid
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert json.loads((run.run_dir / "summary.json").read_text())["resumed_from_iteration"] >= 5
    (ref,) = sweep.make_runs([{"task": "add", "seed": 0}], dict, tmp_path / "ref", base_sets=sets)
    sweep.execute([ref])
    a, b = load_tensors(run.run_dir / "model.safetensors")[0], load_tensors(ref.run_dir / "model.safetensors")[0]
    assert a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a)
