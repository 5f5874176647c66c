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

    res = generalize_run(add_run, "task.n_bits", [3, 5, "8"], trials=40)
    assert res["trained_value"] == 3 and res["values"] == [3, 5, 8] and res["longest_value"] == 8
    rows = res["rows"]
    assert [r["trained"] for r in rows] == [True, False, False]
    assert [r["T_steps"] for r in rows] == [(n + 1) * 20 for n in (3, 5, 8)]
    assert [r["answers_per_trial"] for r in rows] == [4, 6, 9]
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
