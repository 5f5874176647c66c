"""Sweeps: grid expansion, run-dir keying, skip/resume, divergence records, verdict logic, one tiny experiment."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from cognet.experiments import sweep
from cognet.training.config import ConfigError
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
    assert paired_verdict([-0.1, -0.12])[2] == -1
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


def test_experiment_grids_expand(tmp_path):
    exp, runs = build_runs("surrogate-scale", Options(out=tmp_path, seeds=1))
    assert len(runs) == 4 * 3
    widths = {(r.cfg.surrogate.name, r.cfg.surrogate.width) for r in runs}
    assert ("triangle", 0.1) in widths and ("fast-sigmoid", 2.5) in widths
    assert all(r.cfg.train.iterations == 1000 for r in runs)
    _, runs = build_runs("reset-gradient", Options(out=tmp_path, grid="full", seeds=2, iterations=50))
    import tasks

    assert len(runs) == len(tasks.TASKS) * 2 * 7 * 2 and {r.cfg.network.detach_reset for r in runs} == {True, False}
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
