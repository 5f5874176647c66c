"""Training loop, run directory, resume, determinism, config and error handling."""

import json
import math

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from cognet.cli.main import main
from cognet.training.config import ConfigError, RunConfig, build_config
from cognet.training.io import CorruptFileError, load_tensors, read_jsonl
from cognet.training.model import load_model
from cognet.core.network import readout_matrix
from cognet.training.trainer import Trainer, TrainingDiverged, eval_run, train


def test_readout_matrix_matches_brute_force():
    T, kappa, windows = 12, 0.8, [(0, 3), (5, 6), (8, 12)]
    M = readout_matrix(windows, T, kappa).numpy()
    F = np.array([[kappa ** (t - s) if s <= t else 0.0 for s in range(T)] for t in range(T)])
    np.testing.assert_allclose(M, np.stack([F[a:b].mean(0) for a, b in windows]), rtol=1e-12)
    with pytest.raises(ValueError, match="does not fit"):
        readout_matrix([(10, 14)], T, kappa)


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="network.bogus"):
        build_config("add", sets=["network.bogus=1"])
    with pytest.raises(ConfigError, match=r"network.reset must be one of \['subtract', 'zero'\]"):
        build_config("add", sets=["network.reset=soft"])
    with pytest.raises(ConfigError, match="train.lr must be positive"):
        build_config("add", sets=["train.lr=-1"])
    with pytest.raises(ConfigError, match="unknown task 'nope'"):
        build_config("nope")
    with pytest.raises(ConfigError, match="unknown rule 'sgd'"):
        build_config("add", rule="sgd")
    with pytest.raises(ConfigError, match="unknown task key"):
        build_config("add", sets=["task.widthh=3"])
    with pytest.raises(ConfigError, match="key=value"):
        build_config("add", sets=["network.n_rec"])


def test_yaml_config_file(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump({"task": {"name": "copy", "n_bits": 3}, "network": {"n_rec": 30},
                                 "train": {"lr": 0.005}}))
    cfg = build_config(config_file=str(f), sets=["train.lr=0.002"])
    assert cfg.task == "copy" and cfg.task_params == {"n_bits": 3}
    assert cfg.network.n_rec == 30 and cfg.train.lr == 0.002
    roundtrip = RunConfig.from_dict(cfg.to_dict())
    assert roundtrip.to_dict() == cfg.to_dict()
    bad = tmp_path / "bad.yaml"
    bad.write_text("network: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        build_config(config_file=str(bad))


def _weights(net):
    return {k: v.detach().clone() for k, v in net.named_parameters()}


def test_same_seed_same_weights(tiny_sets):
    cfg = build_config("add", sets=tiny_sets)
    a, b = Trainer(cfg, progress=False), Trainer(cfg, progress=False)
    a.run(), b.run()
    for k, v in _weights(a.net).items():
        assert torch.equal(v, _weights(b.net)[k]), k
    c = Trainer(build_config("add", seed=1, sets=tiny_sets), progress=False)
    c.run()
    assert not torch.equal(_weights(a.net)["w_rec"], _weights(c.net)["w_rec"])


def test_run_directory_contents(tmp_path, tiny_sets):
    out = tmp_path / "run"
    cfg = build_config("copy", sets=tiny_sets + ["task.n_bits=3"])
    s = train(cfg, out, progress=False)
    for name in ("config.yaml", "model.safetensors", "checkpoint.safetensors", "metrics.jsonl", "summary.json"):
        assert (out / name).exists(), name
    summary = json.loads((out / "summary.json").read_text())
    for key in ("task", "rule", "seed", "bit_accuracy", "sequence_accuracy", "mean_rate_hz", "silent_fraction",
                "iterations", "wall_s"):
        assert key in summary
    assert summary["iterations"] == 6 and len(summary["rates_hz"]) == 20
    rows = read_jsonl(out / "metrics.jsonl")
    assert [r["iteration"] for r in rows if not r.get("eval")] == [1, 2, 3, 4, 5, 6]
    assert yaml.safe_load((out / "config.yaml").read_text())["task"]["n_bits"] == 3
    # the saved model reproduces the trainer's test scores
    again = eval_run(out, trials=cfg.train.eval_trials)
    assert again["bit_accuracy"] == pytest.approx(s["bit_accuracy"])
    lo, hi = summary["sequence_accuracy_ci95"]
    assert lo <= summary["sequence_accuracy"] <= hi and hi - lo > 0
    assert again["sequence_accuracy_ci95"] == pytest.approx([lo, hi])
    net, cfg2 = load_model(out / "model.safetensors")
    assert cfg2.to_dict() == RunConfig.from_dict(cfg.resolved_dict()).to_dict()
    # a finished run is not retrained
    assert train(cfg, out, progress=False)["resumed"] == "already complete"


def test_killed_run_resumes_to_identical_result(tmp_path, tiny_sets, kill_at):
    cfg = build_config("add", sets=tiny_sets)
    full = tmp_path / "full"
    train(cfg, full, progress=False)
    part = tmp_path / "part"
    # simulate a kill during iteration 5 (the last checkpoint was written at iteration 4)
    kill_at(cfg, part, 4)
    assert not (part / "summary.json").exists()
    # a torn metrics line from the kill must not break the resume
    with open(part / "metrics.jsonl", "a") as fh:
        fh.write('{"iteration": 5, "loss": 0.')
    s = train(cfg, part, progress=False)
    assert s["resumed_from_iteration"] == 4 and s["iterations"] == 6
    a, _ = load_model(full / "model.safetensors")
    b, _ = load_model(part / "model.safetensors")
    for (k, v), (_, w) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(v, w), k
    its = [r["iteration"] for r in read_jsonl(part / "metrics.jsonl") if not r.get("eval")]
    assert its == [1, 2, 3, 4, 5, 6]


def test_corrupt_checkpoint_is_reported(tmp_path, tiny_sets):
    cfg = build_config("add", sets=tiny_sets)
    out = tmp_path / "r"
    train(cfg, out, progress=False)
    (out / "summary.json").unlink()
    (out / "checkpoint.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(CorruptFileError, match="checkpoint.safetensors is corrupt"):
        train(cfg, out, progress=False)
    # --restart recovers
    assert train(cfg, out, progress=False, restart=True)["iterations"] == 6


def test_other_config_in_same_dir_is_refused(tmp_path, tiny_sets):
    out = tmp_path / "r"
    train(build_config("add", sets=tiny_sets), out, progress=False)
    before = (out / "model.safetensors").read_bytes()
    with pytest.raises(ConfigError, match="different configuration"):
        train(build_config("add", sets=tiny_sets + ["train.lr=0.5"]), out, progress=False)
    assert (out / "model.safetensors").read_bytes() == before


def test_nan_is_caught(tiny_sets):
    cfg = build_config("add", sets=tiny_sets)
    t = Trainer(cfg, progress=False)
    with torch.no_grad():
        t.net.w_out.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="loss became nan at iteration 1"):
        t.run()


def test_model_file_is_safetensors_with_neuron_params(tmp_path, tiny_sets):
    out = tmp_path / "r"
    train(build_config("add", sets=tiny_sets), out, progress=False)
    tensors, meta = load_tensors(out / "model.safetensors")
    assert {"w_in", "w_rec", "w_out", "b_out", "neurons.tau_mem_ms", "neurons.beta"} <= set(tensors)
    assert (tensors["neurons.beta"][:10] == 0).all() and (tensors["neurons.beta"][10:] > 0).all()
    assert torch.all(tensors["w_rec"].diagonal() == 0)


def test_training_rises_well_above_chance():
    # a real (short) training run: add with 3 bits must leave chance (0.5 bit accuracy) far behind
    cfg = build_config("add", sets=["task.n_bits=3", "train.iterations=250", "train.eval_every=250",
                                    "train.eval_trials=256", "train.batch_size=32"])
    s = Trainer(cfg, progress=False).run()
    assert s["bit_accuracy"] > 0.75
    assert s["sequence_accuracy"] > 0.3  # chance: 1/16
    assert 1.0 < s["mean_rate_hz"] < 30.0


def test_cli_train_json_and_errors(tmp_path, tiny_sets):
    runner = CliRunner()
    args = ["train", "--task", "add", "--out", str(tmp_path / "r"), "--json"]
    for s in tiny_sets:
        args += ["--set", s]
    res = runner.invoke(main, args)
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["task"] == "add" and summary["iterations"] == 6
    res = runner.invoke(main, ["train", "--task", "nope"])
    assert res.exit_code == 2 and "unknown task 'nope'" in res.output
    res = runner.invoke(main, ["train", "--set", "network.n_rec=-3"])
    assert res.exit_code == 2 and "network.n_rec must be positive" in res.output
    res = runner.invoke(main, ["eval", str(tmp_path / "missing")])
    assert res.exit_code == 2 and "no trained model" in res.output
    res = runner.invoke(main, ["eval", str(tmp_path / "r"), "--trials", "8", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["trials"] == 8
    res = runner.invoke(main, ["tasks"])
    assert res.exit_code == 0 and "add" in res.output and "copy" in res.output


def test_task_recommendations_per_rule_and_user_override():
    bptt = build_config("evidence", rule="bptt")
    eprop = build_config("evidence", rule="eprop-random")
    assert bptt.surrogate.peak == 0.1 and eprop.surrogate.peak == 0.3
    assert bptt.network.n_rec == 100 and bptt.train.batch_size == 32  # the task's general recommendations
    assert build_config("evidence", rule="bptt", sets=["surrogate.peak=0.2"]).surrogate.peak == 0.2
    assert build_config("evidence", sets=["rule=bptt"]).surrogate.peak == 0.1


def test_proportion_ci95_is_the_wilson_interval():
    from cognet.training.trainer import proportion_ci95

    # Wilson score interval, z = 1.96: 50 of 100 -> 0.5 +- 0.0962; 0 of 10 -> [0, 0.2775]
    assert proportion_ci95(50, 100) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    assert proportion_ci95(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    # 0.90 on 256 trials is known to about +-0.04; on 9x the trials about 3x more narrowly
    lo, hi = proportion_ci95(230, 256)
    assert 0.85 < lo < 0.86 and 0.92 < hi < 0.93
    lo2, hi2 = proportion_ci95(2074, 2304)
    assert 0.3 < (hi2 - lo2) / (hi - lo) < 0.36


def test_keep_best_ends_with_the_best_validation_weights(tmp_path, tiny_sets):
    from cognet.training.trainer import derive_seeds, evaluate
    import tasks

    sets = tiny_sets + ["train.iterations=12", "train.eval_every=1", "train.lr=0.05", "train.keep_best=true"]
    cfg = build_config("add", sets=sets)
    out = tmp_path / "best"
    s = train(cfg, out, progress=False)
    evals = [r for r in read_jsonl(out / "metrics.jsonl") if r.get("eval")]
    # the selected evaluation: best sequence accuracy, then best bit accuracy, earliest on a tie
    best = max(evals, key=lambda r: (r["sequence_accuracy"], r["bit_accuracy"], -r["iteration"]))
    assert s["best_iteration"] == best["iteration"] and s["iterations"] == 12
    assert best["iteration"] < 12  # this setting's last weights are not the best (else the test proves little)
    net, _ = load_model(out / "model.safetensors")
    task = tasks.get_task(cfg.task, cfg.task_params, cfg.network.dt_ms)
    again = evaluate(net, task, 16, derive_seeds(cfg.seed)["eval"], split="eval")
    assert again["sequence_accuracy"] == best["sequence_accuracy"]
    assert again["bit_accuracy"] == pytest.approx(best["bit_accuracy"], abs=1e-9)
    # the checkpoint goes on from the last weights, not the selected ones
    ck, _ = load_tensors(out / "checkpoint.safetensors")
    assert any(not torch.equal(ck[f"model.{k}"], v) for k, v in net.named_parameters())
    # without keep_best the same training ends with the last weights
    last = tmp_path / "last"
    s_last = train(build_config("add", sets=sets[:-1]), last, progress=False)
    assert "best_iteration" not in s_last
    net_last, _ = load_model(last / "model.safetensors")
    ck_last, _ = load_tensors(last / "checkpoint.safetensors")
    assert all(torch.equal(ck_last[f"model.{k}"], v) for k, v in net_last.named_parameters())
    assert all(torch.equal(ck[f"model.{k}"], v) for k, v in net_last.named_parameters())


def test_keep_best_survives_a_kill(tmp_path, tiny_sets, kill_at):
    sets = tiny_sets + ["train.iterations=12", "train.eval_every=1", "train.lr=0.05", "train.keep_best=true"]
    cfg = build_config("add", sets=sets)
    full = tmp_path / "full"
    s_full = train(cfg, full, progress=False)
    assert s_full["best_iteration"] < 10  # so the resumed run must take it from the checkpoint
    part = tmp_path / "part"
    kill_at(cfg, part, 10)
    s = train(cfg, part, progress=False)
    assert s["resumed_from_iteration"] == 10 and s["best_iteration"] == s_full["best_iteration"]
    a, _ = load_model(full / "model.safetensors")
    b, _ = load_model(part / "model.safetensors")
    for (k, v), (_, w) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(v, w), k


def test_rate_target_schedule_anneals_and_holds_early_stop(tmp_path, tiny_sets):
    """train.rate_target_start_hz: the target moves geometrically from the start value to
    train.rate_target_hz over rate_anneal_fraction of the iterations; the rule trains with
    each step's target; no evaluation during the anneal stops the run or is kept."""
    cfg = build_config("xor", sets=tiny_sets + ["train.iterations=12", "train.eval_every=1",
                                                "train.rate_target_hz=2", "train.rate_target_start_hz=32",
                                                "train.rate_anneal_fraction=0.5", "train.target_accuracy=0.001",
                                                "train.keep_best=true"])
    tc = cfg.train
    assert tc.anneal_iterations() == 6
    assert [tc.rate_target_at(i) for i in (0, 3, 6, 11)] == pytest.approx([32.0, 8.0, 2.0, 2.0])
    s = train(cfg, tmp_path / "anneal", progress=False)
    recs = [r for r in read_jsonl(tmp_path / "anneal" / "metrics.jsonl") if not r.get("eval")]
    assert [r["rate_target_hz"] for r in recs] == pytest.approx([tc.rate_target_at(i) for i in range(len(recs))])
    # any score beats a 0.001 target: without the schedule the first evaluation stops the run
    assert s["iterations"] == 6 and s["stopped_early"] and s["best_iteration"] == 6
    plain = train(build_config("xor", sets=tiny_sets + ["train.iterations=12", "train.eval_every=1",
                                                        "train.target_accuracy=0.001"]), tmp_path / "plain",
                  progress=False)
    assert plain["iterations"] == 1
    # the regulariser really sees the scheduled target: the first step is a 32 Hz run's first step
    from cognet.training.trainer import config_hash

    first = {}
    for f0 in (32, 2):
        train(build_config("xor", sets=tiny_sets + ["train.iterations=1", f"train.rate_target_hz={f0}"]),
              tmp_path / f"fixed{f0}", progress=False)
        first[f0] = read_jsonl(tmp_path / f"fixed{f0}" / "metrics.jsonl")[0]["reg_loss"]
    assert recs[0]["reg_loss"] == first[32] != first[2]
    assert config_hash(cfg) != config_hash(build_config("xor", sets=tiny_sets + ["train.iterations=12",
                                                                                 "train.rate_target_hz=2"]))
    with pytest.raises(ConfigError, match="rate_anneal_fraction"):
        build_config("add", sets=["train.rate_target_start_hz=10", "train.rate_anneal_fraction=0"])
    with pytest.raises(ConfigError, match="rate_target_start_hz"):
        build_config("add", sets=["train.rate_target_start_hz=10", "train.rate_target_hz=0"])
    # hash-neutral while off; the fraction only counts with a schedule
    assert config_hash(build_config("add", sets=["train.rate_anneal_fraction=0.3"])) == config_hash(build_config("add"))
