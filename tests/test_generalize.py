"""cognet generalize: evaluation at other task-parameter values, refusals, intervals, Brian2 replay."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch


def _save_untrained(run_dir: Path, task: str, sets):
    import tasks
    from cognet.training.config import build_config
    from cognet.training.model import build_network, neuron_params, save_model

    cfg = build_config(task=task, sets=["network.n_rec=24", "network.input_scale=4.0", "network.rec_scale=1.0", *sets])
    t = tasks.get_task(cfg.task, cfg.task_params, cfg.network.dt_ms)
    net = build_network(t.n_in, t.n_out, neuron_params(cfg.network, np.random.default_rng(0)), cfg.network,
                        cfg.surrogate, generator=torch.Generator().manual_seed(0))
    run_dir.mkdir(parents=True, exist_ok=True)
    save_model(run_dir / "model.safetensors", net, cfg)
    return run_dir


@pytest.fixture(scope="module")
def add_run(tmp_path_factory):
    return _save_untrained(tmp_path_factory.mktemp("gen") / "add", "add", ["task.n_bits=3"])


def test_wilson_matches_trainer_interval():
    from analysis.generalize import wilson_ci95
    from cognet.training.trainer import proportion_ci95

    for k, n in [(0, 10), (7, 10), (10, 10), (230, 256)]:
        assert wilson_ci95(k / n, n) == pytest.approx(proportion_ci95(k, n), abs=1e-9)


def test_clustered_bit_interval_between_trial_and_bit_counts():
    from analysis.generalize import clustered_bit_ci95, wilson_ci95

    m, N = 8, 200
    # every bit of a trial right or wrong together: the information is that of N trials
    right = np.array([m] * 150 + [0] * 50)
    ci, deff = clustered_bit_ci95(right, np.full(N, m))
    assert deff == pytest.approx(m) and ci == pytest.approx(wilson_ci95(0.75, N))
    # independent bits: close to a plain interval over the N m bits, much narrower than the above
    rng = np.random.default_rng(0)
    right = rng.binomial(m, 0.75, size=N)
    p = right.sum() / (N * m)
    ci2, deff2 = clustered_bit_ci95(right, np.full(N, m))
    assert 1.0 <= deff2 < 1.5
    plain = wilson_ci95(p, N * m)
    assert ci2[1] - ci2[0] == pytest.approx(plain[1] - plain[0], rel=0.25)
    assert ci2[1] - ci2[0] < 0.6 * (ci[1] - ci[0])
    # all right: no information on the correlation, so the conservative n_eff = N
    ci3, deff3 = clustered_bit_ci95(np.full(N, m), np.full(N, m))
    assert deff3 == m and ci3[1] == 1.0 and ci3[0] == pytest.approx(wilson_ci95(1.0, N)[0])


def test_generalize_rows_match_trainer_evaluate(add_run):
    import tasks
    from analysis.generalize import generalize_run
    from cognet.training.model import load_model
    from cognet.training.trainer import derive_seeds, evaluate

    res = generalize_run(add_run, "task.n_bits", [3, 5, "6"], trials=40)
    assert res["trained_value"] == 3 and res["values"] == [3, 5, 6] and res["longest_value"] == 6
    rows = res["rows"]
    assert [r["trained"] for r in rows] == [True, False, False]
    assert [r["T_steps"] for r in rows] == [(n + 1) * 20 for n in (3, 5, 6)]
    assert [r["answers_per_trial"] for r in rows] == [4, 6, 7]
    net, cfg = load_model(add_run / "model.safetensors")
    for r in rows:
        task = tasks.get_task("add", {"n_bits": r["value"]})
        ref = evaluate(net.eval(), task, 40, derive_seeds(cfg.seed)["test"])
        assert r["bit_accuracy"] == pytest.approx(ref["bit_accuracy"])
        assert r["sequence_accuracy"] == pytest.approx(ref["sequence_accuracy"])
        assert r["sequence_accuracy_ci95"] == pytest.approx(ref["sequence_accuracy_ci95"])
        assert r["mean_rate_hz"] == pytest.approx(ref["mean_rate_hz"])
        assert r["chance"] == task.chance()
        lo, hi = r["bit_accuracy_ci95"]
        assert lo <= r["bit_accuracy"] <= hi
        assert r["spikes_per_neuron_per_symbol"] == pytest.approx(r["mean_rate_hz"] * 0.02)
    assert rows[0]["mean_rate_hz"] > 0
    # reproducible: same seed, same numbers
    again = generalize_run(add_run, "n_bits", [5], trials=40)
    assert again["rows"][0]["bit_accuracy"] == rows[1]["bit_accuracy"]


def test_refusals_name_the_value(add_run, tmp_path):
    from analysis.generalize import generalize_run
    from cognet.core.errors import ConfigError

    count_run = _save_untrained(tmp_path / "count", "count", ["task.n_bits=4"])
    with pytest.raises(ConfigError, match=r"task.n_bits=8 changes the network's sizes.*n_out=4.*n_out=3"):
        generalize_run(count_run, "task.n_bits", [4, 5, 8], trials=4)
    with pytest.raises(ConfigError, match="not a parameter of task 'add'"):
        generalize_run(add_run, "task.length", [3], trials=4)
    with pytest.raises(ConfigError, match=r"task.n_bits=0"):
        generalize_run(add_run, "task.n_bits", [0], trials=4)
    with pytest.raises(ConfigError, match="repeats"):
        generalize_run(add_run, "task.n_bits", [4, 4.0], trials=4)


def _cli(*args):
    from click.testing import CliRunner

    from cognet.cli.main import main

    return CliRunner().invoke(main, list(args))


def test_cli_writes_json_and_figure_and_refuses_with_exit_2(add_run):
    res = _cli("generalize", str(add_run), "--values", "3,6", "--trials", "16", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    on_disk = json.loads((add_run / "generalize.json").read_text())
    assert on_disk["rows"] == out["rows"] and len(out["rows"]) == 2
    assert (add_run / "generalize.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = _cli("generalize", str(add_run), "--param", "task.encoding", "--values", "population")
    assert bad.exit_code == 2 and bad.stderr.startswith("Error: task.encoding='population' changes the network")
    assert "Traceback" not in bad.stderr
    missing = _cli("generalize", str(add_run.parent / "nothing"), "--values", "3")
    assert missing.exit_code == 2 and "model.safetensors missing" in missing.stderr


def test_brian2_replays_longest_setting(add_run):
    pytest.importorskip("brian2")
    from cognet.experiments.generalize import generalize

    res = generalize(add_run, "task.n_bits", [3, 6, 4], trials=8, brian2=True, brian2_target="numpy", figure=False)
    b = res["brian2"]
    assert b["value"] == 6 and b["task_overrides"] == {"n_bits": 6} and b["trials"] == 8
    assert b["identical_trial_fraction"] == 1.0 and b["spike_match_fraction"] == 1.0
    assert b["torch_accuracy"] == b["brian2_accuracy"]
    saved = json.loads((add_run / "generalize.json").read_text())
    assert saved["brian2"]["identical_trial_fraction"] == 1.0


# -- cognet experiment length-generalization ---------------------------------------------------------
def _fake_lengths(acc_by_task):
    """evaluate_lengths stand-in: per task, bit accuracy at each length (4, 8, 16)."""
    def fake(run_dir, factors, trials):
        task = Path(run_dir).name.split("-")[0]
        rows = []
        for n, acc in zip((4, 8, 16), acc_by_task[task]):
            rows.append({"value": n, "trained": n == 4, "bit_accuracy": acc, "sequence_accuracy": acc ** n,
                         "sequence_accuracy_ci95": [0, 1], "mean_rate_hz": 10.0,
                         "chance": {"bit_accuracy": 0.5, "sequence_accuracy": 0.5 ** n}})
        return {"trained_value": 4, "values": [4, 8, 16], "rows": rows, "dropped": []}
    return fake


def test_length_generalization_verdicts(tmp_path, monkeypatch):
    import cognet.experiments.generalize as gen
    from cognet.experiments.claims import EXPERIMENTS, Options

    accs = {"add": (0.99, 0.985, 0.98), "copy": (0.99, 0.6, 0.51), "parity": (0.95, 0.8, 0.7)}
    monkeypatch.setattr(gen, "evaluate_lengths", _fake_lengths(accs))
    rows = []
    for task in accs:
        for rule in ("bptt", "eprop-random"):
            for seed in range(3):
                d = tmp_path / f"{task}-{rule}-{seed}"
                d.mkdir()
                (d / "model.safetensors").write_bytes(b"")
                (d / "summary.json").write_text('{"eval_trials": 16}')
                rows.append({"task": task, "rule": rule, "seed": seed, "run_dir": str(d), "metric": "sequence_accuracy",
                             "status": "trained", "chance": 0.06})
    exp = EXPERIMENTS["length-generalization"]
    an = exp.analyse(rows, Options(out=tmp_path))
    v = an.numbers["verdicts"]
    assert v["add"]["kind"] == "algorithm-like" and v["copy"]["kind"] == "lookup-like"
    assert v["parity"]["kind"] == "partial"
    assert v["add"]["retention"]["mean"] == pytest.approx((0.98 - 0.5) / (0.99 - 0.5))
    assert v["copy"]["longest_n_bits"] == 16 and v["copy"]["learnt_runs"] == 6
    assert "Algorithm-like (accuracy per bit holds): add; lookup-like (collapses to chance): copy" in an.verdict
    cell = next(g for g in an.table if g["task"] == "copy" and g["rule"] == "bptt" and g["n_bits"] == 8)
    assert cell["bit_accuracy_mean"] == pytest.approx(0.6) and cell["n"] == 3 and cell["bit_ci_lo"] == pytest.approx(0.6)
    assert rows[0]["bit_retention"] == pytest.approx(v["add"]["retention"]["mean"])
    import io

    buf = io.BytesIO()
    exp.plot(rows, an, buf)
    assert buf.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(Exception, match="varies task.n_bits"):
        exp.task_list(Options(out=tmp_path, tasks=("multiply",)))


@pytest.mark.slow
def test_length_generalization_tiny_end_to_end(tmp_path):
    import tasks
    from cognet.experiments.claims import Options, run_experiment
    from cognet.experiments.generalize import length_values

    sets = ["network.n_rec=16", "train.batch_size=8", "train.eval_every=4", "train.eval_trials=16"]
    res = run_experiment("length-generalization", Options(out=tmp_path, seeds=1, iterations=4, tasks=("parity", "count"),
                                                          sets=sets))
    assert res["n_runs"] == 6 and res["errors"] == 0
    data = json.loads((tmp_path / "results.json").read_text())
    cells = {(g["task"], g["rule"], g["n_bits"]) for g in data["table"]}
    assert ("parity", "bptt", 16) in cells and ("parity", "eprop-random", 8) in cells
    assert ("parity", "eprop-symmetric", 4) in cells
    # count trains at 4 bits; 8 and 16 bits would need more output bits, so 7 is its longest test
    assert {n for t, _, n in cells if t == "count"} == {4, 7}
    assert data["numbers"]["verdicts"]["count"]["longest_n_bits"] == 7
    count_run = next(r["run_dir"] for r in data["runs"] if r["task"] == "count")
    assert length_values(count_run, [1, 2, 4]) == {"trained": 4, "values": [4, 7], "dropped": [8, 16]}
    assert (Path(count_run) / "length-generalization.json").exists()
    assert (tmp_path / "figure.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert tasks.get_task("count", {"n_bits": 7}).n_out == 3


# -- cognet experiment sparse: lowest target that holds, extra axes ------------------------------------
def test_sparse_lowest_target_per_setting():
    from cognet.experiments.claims import EXPERIMENTS, Options

    sp = EXPERIMENTS["sparse"]
    acc = {(100, 1.0): 0.2, (100, 3.0): 0.85, (100, 5.0): 0.95, (300, 1.0): 0.91, (300, 3.0): 0.97, (300, 5.0): 0.97}
    rows = [{"task": "add", "network.n_rec": n, "rate_target_hz": t, "seed": s, "metric": "sequence_accuracy",
             "accuracy": a + 0.01 * s, "sequence_accuracy": a + 0.01 * s, "mean_rate_hz": t * 0.95 + 0.01 * s,
             "chance": 0.06, "iterations": 100, "wall_s": 1.0, "status": "trained"}
            for (n, t), a in acc.items() for s in range(5)]
    # a diverged run counts at chance: it pulls 300 neurons at 1 Hz below the threshold
    rows.append({**rows[15], "seed": 5, "status": "diverged", "accuracy": 0.06, "sequence_accuracy": float("nan"),
                 "mean_rate_hz": float("nan")})
    an = sp.analyse(rows, Options(out=Path("/nonexistent"), axes={"network.n_rec": [100, 300]}))
    low = an.numbers["lowest_target"]
    assert low["add, network.n_rec=100"]["target_hz"] == 5.0
    assert low["add, network.n_rec=300"]["target_hz"] == 3.0
    assert low["add, network.n_rec=300"]["lowest_measured_rate_hz_of_a_run"] == pytest.approx(0.95)
    ci = low["add, network.n_rec=100"]["sequence_accuracy"]
    assert ci["mean"] == pytest.approx(0.97) and ci["lo"] < 0.97 < ci["hi"] and ci["n"] == 5
    assert "add, network.n_rec=100: 5 Hz (sequence accuracy 0.970" in an.verdict
    assert {g["network.n_rec"] for g in an.table} == {100, 300}
    import io

    buf = io.BytesIO()
    sp.plot(rows[:-1], an, buf)
    assert buf.getvalue()[:4] == b"\x89PNG"


def test_sparse_axes_validated_and_only_for_sparse(tmp_path):
    from cognet.core.errors import ConfigError
    from cognet.experiments.claims import Options, build_runs

    _, runs = build_runs("sparse", Options(out=tmp_path, seeds=5, axes={"network.n_rec": [100, 300],
                                                                         "task.step_ms": [20, 40]}))
    assert len(runs) == 2 * 2 * 5 * 5
    assert {(r.cfg.network.n_rec, r.cfg.task_params["step_ms"]) for r in runs} == {(100, 20), (100, 40), (300, 20),
                                                                                  (300, 40)}
    assert sorted({r.cfg.train.rate_target_hz for r in runs}) == [1.0, 2.0, 3.0, 5.0, 10.0]
    with pytest.raises(ConfigError, match="unknown config key 'network.size'"):
        build_runs("sparse", Options(out=tmp_path, axes={"network.size": [1]}))
    with pytest.raises(ConfigError, match="--axis is not available for experiment 'rules'"):
        build_runs("rules", Options(out=tmp_path, axes={"network.n_rec": [100]}))
    from click.testing import CliRunner

    from cognet.cli.main import main

    res = CliRunner().invoke(main, ["experiment", "sparse", "--out", str(tmp_path), "--axis", "network.n_rec"])
    assert res.exit_code == 2 and "--axis expects KEY=V1,V2" in res.output
