"""network.bntt: per-step batch statistics and affine maps, running statistics for eval,
saved and resumed with the run, refused by e-prop, replayed spike-identically in Brian2
(per-step gain and offset as TimedArrays); the temporal early-exit analysis."""

from __future__ import annotations


import numpy as np
import pytest
import torch

import tasks
from analysis.early_exit import early_exit
from cognet.core.bntt import BNTT
from cognet.training.config import ConfigError, build_config
from cognet.training.model import load_model
from cognet.training.trainer import Trainer, config_hash, train

F64 = torch.float64


def test_training_mode_normalises_each_step_and_updates_running_statistics():
    g = torch.Generator().manual_seed(0)
    I = torch.randn(6, 10, 4, generator=g, dtype=F64) * torch.arange(1, 7, dtype=F64)[:, None, None] + 3.0
    bn = BNTT(8, 4, dtype=F64)  # room for longer trials; only the first 6 steps are touched
    with torch.no_grad():
        bn.gamma.copy_(torch.linspace(0.5, 2.0, 32, dtype=F64).view(8, 4))
        bn.beta.copy_(torch.linspace(-1.0, 1.0, 32, dtype=F64).view(8, 4))
    out = bn(I)
    for t in range(6):
        want = (I[t] - I[t].mean(0)) / torch.sqrt(I[t].var(0, unbiased=False) + bn.eps) * bn.gamma[t] + bn.beta[t]
        torch.testing.assert_close(out[t], want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(bn.running_mean[:6], 0.1 * I.mean(1), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(bn.running_var[:6], 0.9 + 0.1 * I.var(1, unbiased=True), rtol=1e-12, atol=1e-12)
    assert torch.equal(bn.running_mean[6:], torch.zeros(2, 4, dtype=F64))
    # eval: the fixed affine map of the running statistics, the same for every trial
    bn.eval()
    gain, offset = bn.affine(6)
    torch.testing.assert_close(bn(I), I * gain[:, None] + offset[:, None], rtol=0, atol=0)
    torch.testing.assert_close(gain, bn.gamma[:6] / torch.sqrt(bn.running_var[:6] + bn.eps))
    with pytest.raises(ValueError, match="8 steps"):
        bn(torch.zeros(9, 2, 4, dtype=F64))


def test_config_hash_and_eprop_refusal(tmp_path):
    assert "bntt" not in build_config("copy").to_dict()["network"]
    assert config_hash(build_config("copy", sets=["network.bntt=false"])) == config_hash(build_config("copy"))
    assert config_hash(build_config("copy", sets=["network.bntt=true"])) != config_hash(build_config("copy"))
    with pytest.raises(ConfigError, match="train.batch_size"):
        build_config("copy", sets=["network.bntt=true", "train.batch_size=1"])
    cfg = build_config("copy", rule="eprop-symmetric", sets=["network.bntt=true", "network.n_rec=10"])
    with pytest.raises(ConfigError, match="network.bntt"):
        Trainer(cfg)
    from click.testing import CliRunner

    from cognet.cli import main

    res = CliRunner().invoke(main, ["train", "--task", "copy", "--rule", "eprop-random", "--set", "network.bntt=true",
                                    "--set", "network.n_rec=8", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "Error:" in res.output and "network.bntt" in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)


@pytest.fixture(scope="module")
def bntt_run(tmp_path_factory):
    sets = ["network.n_rec=24", "train.iterations=8", "train.batch_size=8", "train.eval_every=4",
            "train.eval_trials=16", "train.checkpoint_every=2", "task.n_bits=2", "network.bntt=true",
            "train.lr=0.05"]
    cfg = build_config("copy", sets=sets)
    out = tmp_path_factory.mktemp("bntt") / "run"
    train(cfg, out, progress=False)
    return cfg, out


def test_bntt_trains_saves_statistics_and_resumes_identically(bntt_run, tmp_path, kill_at):
    cfg, out = bntt_run
    net, _ = load_model(out / "model.safetensors")
    assert net.bntt is not None and not net.training
    assert net.needs_reference_path and not net.uses_dropout
    task = tasks.get_task(cfg.task, cfg.task_params, cfg.network.dt_ms)
    assert net.bntt.steps == task.T
    assert float(net.bntt.running_mean.abs().sum()) > 0  # statistics were learnt and saved
    assert float((net.bntt.gamma.detach() - 1).abs().sum()) > 0  # and the affine map trained
    # a kill after iteration 4 and a resume give the same model (running statistics checkpointed)
    part = tmp_path / "part"
    kill_at(cfg, part, 4)
    train(cfg, part, progress=False)
    again, _ = load_model(part / "model.safetensors")
    for (k, v), (_, w) in zip(net.state_dict().items(), again.state_dict().items()):
        assert torch.equal(v, w), k


def test_bntt_brian2_replay_is_spike_identical(bntt_run):
    from cognet.brian import bridge
    from cognet.brian.replay import verify_run

    cfg, out = bntt_run
    res = verify_run(out, trials=8, target="numpy", write=False)
    assert res["identical_trial_fraction"] == 1.0 and res["torch"]["spikes"] > 0
    assert res["torch"]["accuracy"] == res["brian2"]["accuracy"]
    # the per-step map is far from the identity (so the replay had to carry it)
    net, _ = load_model(out / "model.safetensors", dtype=F64)
    gain, offset = net.bntt.affine()
    assert float((gain - 1).abs().max()) > 0.5 and float(offset.abs().max()) > 0.1
    x = np.zeros((net.bntt.steps, 2, net.n_in))
    with pytest.raises(ValueError, match="input_gain and input_offset"):
        bridge.simulate(net.w_in.detach().double().numpy(), net.effective_w_rec().detach().double().numpy(),
                        net.neurons, x, target="numpy", input_gain=np.ones((x.shape[0], net.n)))


def test_early_exit_shifts_the_answer_windows(bntt_run):
    cfg, out = bntt_run
    net, _ = load_model(out / "model.safetensors")
    task = tasks.get_task(cfg.task, cfg.task_params, cfg.network.dt_ms)
    res = early_exit(net, task, [0, 5], trials=20, seed=3)
    # k = 0 is the ordinary evaluation of the same trials
    from cognet.training.trainer import evaluate

    ev = evaluate(net, task, 20, 3)
    r0, r5 = res["rows"]
    assert r0["sequence_accuracy"] == ev["sequence_accuracy"] and r0["bit_accuracy"] == pytest.approx(ev["bit_accuracy"])
    # k = 5 is the readout of windows 5 steps earlier, computed by hand on one batch
    batch = task.sample(20, torch.Generator().manual_seed(3), split="test")
    with torch.no_grad():
        z = net(batch.x, batch.windows).z
        shifted = [(s - 5, e - 5) for s, e in batch.windows]
        want = task.score(net.readout(z, shifted), batch)
    assert r5["bit_accuracy"] == pytest.approx(want["bit_accuracy"]) and r5["saved_ms"] == 5.0
    first = min(s for s, _ in batch.windows)
    with pytest.raises(ValueError, match=f"k <= {first}"):
        early_exit(net, task, [first + 1], trials=2)


def test_gamma_starts_at_bntt_gamma_times_v_th():
    cfg = build_config("copy", sets=["network.bntt=true", "network.bntt_gamma=0.2", "network.v_th=2.0",
                                     "network.n_rec=8"])
    t = Trainer(cfg)
    assert torch.allclose(t.net.bntt.gamma, torch.full_like(t.net.bntt.gamma, 0.4))
    assert "bntt_gamma" not in build_config("copy").to_dict()["network"]
    assert build_config("copy", sets=["network.bntt=true"]).to_dict()["network"]["bntt_gamma"] == 0.3
    with pytest.raises(ConfigError, match="network.bntt_gamma"):
        build_config("copy", sets=["network.bntt_gamma=0"])


def test_bntt_with_dropout_trains_and_cli_reports_early_exit(tmp_path, tiny_sets):
    import json

    from click.testing import CliRunner

    from cognet.cli import main

    out = tmp_path / "run"  # (`cognet train` itself is exercised in test_training; its report costs ~8 s)
    train(build_config("parity", sets=tiny_sets + ["network.bntt=true", "network.dropout=0.2",
                                                   "network.input_dropout=0.1"]), out, progress=False)
    net, cfg = load_model(out / "model.safetensors")
    assert net.bntt is not None and net.dropout == 0.2 and cfg.network.input_dropout == 0.1
    res = CliRunner().invoke(main, ["eval", str(out), "--trials", "16", "--early-exit", "0,2", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert [r["k"] for r in data["early_exit"]] == [0, 2]
    assert data["early_exit"][0]["sequence_accuracy"] == data["sequence_accuracy"]
    res = CliRunner().invoke(main, ["eval", str(out), "--early-exit", "x"])
    assert res.exit_code == 2 and "--early-exit" in res.output


def test_exporters_refuse_bntt_instead_of_dropping_it(tmp_path):
    """NIR and the standalone Brian2 script cannot carry the per-step input map: refused, nothing written."""
    import pytest

    from cognet.interchange import exporter
    from cognet.training import Trainer, build_config

    run = tmp_path / "run"
    cfg = build_config(task="xor", sets=["network.n_rec=12", "network.bntt=true", "network.reset=zero",
                                         "network.refractory_ms=0", "network.alif_fraction=0",
                                         "train.iterations=2", "train.batch_size=4", "train.eval_every=2",
                                         "train.eval_trials=8"])
    Trainer(cfg, out_dir=run, progress=False).run()
    for fmt, out in (("nir", tmp_path / "x.nir"), ("brian2", tmp_path / "script")):
        with pytest.raises(ValueError, match="bntt"):
            exporter(fmt)(run, out)
        assert not out.exists()
