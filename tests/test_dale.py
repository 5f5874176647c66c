"""Dale's law (``network.dale``): signs per neuron, the balanced initialisation, the projection
after every update, training with BPTT and e-prop, the model file check, Brian2 replay and
MDGL's four cell types; and per-neuron membrane time constants (``network.tau_mem_max_ms``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cognet.core.network import RSNN, dale_signs
from cognet.core.params import NeuronParams


def mixed(n=40, alif_fraction=0.5):
    return NeuronParams.mixed(n=n, alif_fraction=alif_fraction, beta=0.5, tau_adapt_ms=(20.0, 200.0),
                              rng=np.random.default_rng(0))


def test_signs_split_each_cell_type():
    p = mixed(40, 0.5)
    s = dale_signs(p, 0.8)
    alif = p.adaptive
    for kind in (alif, ~alif):
        assert (s[kind] < 0).sum() == 4 and (s[kind] > 0).sum() == 16
    # the inhibitory neurons are the last of each type
    assert np.all(s[np.flatnonzero(~alif)[-4:]] < 0) and np.all(s[np.flatnonzero(alif)[-4:]] < 0)
    assert set(np.unique(dale_signs(mixed(10, 0.0), 0.7))) == {-1.0, 1.0}
    for bad in (0.0, 1.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="exc_fraction"):
            dale_signs(p, bad)


def test_initial_weights_obey_the_signs_and_are_balanced():
    n = 400
    p = mixed(n, 0.6)
    net = RSNN(5, p, 2, rec_scale=0.5, generator=torch.Generator().manual_seed(1), dale=True, exc_fraction=0.8)
    plain = RSNN(5, p, 2, rec_scale=0.5, generator=torch.Generator().manual_seed(1))
    w = net.effective_w_rec().detach()
    s = net.rec_sign.reshape(-1)
    assert net.dale_violations() == 0 and plain.dale_violations() == 0
    assert bool((w[:, s > 0] >= 0).all()) and bool((w[:, s < 0] <= 0).all())
    assert int((w != 0).sum()) == n * (n - 1)  # every synapse but the diagonal is on
    # balanced: the mean row sum is zero to within its spread (the unsigned one is zero by symmetry)
    rows = w.sum(1)
    assert abs(float(rows.mean())) < 3 * float(rows.std()) / n ** 0.5
    # the same second moment as the unsigned initialisation (rec_scale keeps its meaning)
    ratio = float(w.pow(2).mean()) / float(plain.effective_w_rec().detach().pow(2).mean())
    assert 0.9 < ratio < 1.1
    # the other weights are drawn as without Dale's law (the same generator stream)
    assert torch.equal(net.w_in, plain.w_in) and torch.equal(net.w_out, plain.w_out)


def test_constrain_zeroes_exactly_the_crossed_weights():
    net = RSNN(5, mixed(30), 2, generator=torch.Generator().manual_seed(0), dale=True)
    s = net.rec_sign.reshape(-1)
    with torch.no_grad():
        net.w_rec.add_(torch.randn(30, 30, generator=torch.Generator().manual_seed(2)) * 0.2)
        net.w_rec.fill_diagonal_(0.3)
    before = net.w_rec.detach().clone()
    wrong = (before * s[None, :] < 0) & ~torch.eye(30, dtype=torch.bool)
    assert int(wrong.sum()) > 20 and net.dale_violations() == int(wrong.sum())
    net.constrain_()
    after = net.w_rec.detach()
    assert net.dale_violations() == 0
    assert bool((after[wrong] == 0).all()) and bool((torch.diagonal(after) == 0).all())
    keep = ~wrong & ~torch.eye(30, dtype=torch.bool)
    assert torch.equal(after[keep], before[keep])


@pytest.mark.parametrize("rule", ["bptt", "eprop-random"])
def test_training_keeps_dales_law_and_learns(tmp_path, rule):
    """A real run: the loss falls, the projection clips some weights, none has the wrong sign."""
    from cognet.training.config import build_config
    from cognet.training.model import load_model
    from cognet.training.trainer import train

    sets = ["network.n_rec=40", "network.dale=true", "network.exc_fraction=0.75", "train.batch_size=16",
            "train.iterations=60", "train.eval_every=30", "train.eval_trials=16"]
    cfg = build_config(task="copy", rule=rule, sets=sets)
    out = tmp_path / rule
    train(cfg, out, progress=False)
    losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()
              if not json.loads(line).get("eval")]
    assert sum(losses[-10:]) < 0.9 * sum(losses[:10])
    summary = json.loads((out / "summary.json").read_text())
    rates = np.asarray(summary["rates_hz"])
    sign = dale_signs(load_model(out / "model.safetensors")[0].neurons, 0.75)
    assert summary["exc_mean_rate_hz"] == pytest.approx(rates[sign > 0].mean())
    assert summary["inh_mean_rate_hz"] == pytest.approx(rates[sign < 0].mean())
    net, loaded = load_model(out / "model.safetensors")
    assert loaded.network.dale and loaded.network.exc_fraction == 0.75
    assert net.dale_violations() == 0
    w = net.effective_w_rec().detach()
    clipped = int((w == 0).sum()) - net.n  # beyond the diagonal
    assert clipped > 0, "no weight reached zero: the projection never acted"
    assert float(w[:, net.rec_sign.reshape(-1) < 0].abs().sum()) > 0  # inhibition survives


def test_config_keys_and_errors():
    from click.testing import CliRunner

    from cognet.cli.main import main
    from cognet.core.errors import ConfigError
    from cognet.training.config import build_config
    from cognet.training.trainer import config_hash

    plain = build_config("copy")
    assert "dale" not in plain.to_dict()["network"] and "exc_fraction" not in plain.to_dict()["network"]
    assert config_hash(build_config("copy", sets=["network.exc_fraction=0.5"])) == config_hash(plain)
    on = build_config("copy", sets=["network.dale=true"])
    assert config_hash(on) != config_hash(plain)
    assert config_hash(build_config("copy", sets=["network.dale=true", "network.exc_fraction=0.5"])) != config_hash(on)
    with pytest.raises(ConfigError, match="exc_fraction"):
        build_config("copy", sets=["network.dale=true", "network.exc_fraction=1.0"])
    r = CliRunner().invoke(main, ["train", "--task", "copy", "--quiet", "--set", "network.dale=true",
                                  "--set", "network.exc_fraction=0"])
    assert r.exit_code == 2 and "Error:" in r.output and "network.exc_fraction" in r.output
    assert "Traceback" not in r.output


@pytest.fixture(scope="module")
def dale_run(tmp_path_factory):
    """A run directory with an untrained 24-neuron Dale copy network (model.safetensors)."""
    from cognet.training.config import build_config
    from cognet.training.model import build_network, neuron_params, save_model
    import tasks

    cfg = build_config(task="copy", sets=["network.n_rec=24", "task.n_bits=3", "network.input_scale=4.0",
                                          "network.rec_scale=1.0", "network.dale=true"])
    task = tasks.get_task(cfg.task, cfg.task_params, cfg.network.dt_ms)
    net = build_network(task.n_in, task.n_out, neuron_params(cfg.network, np.random.default_rng(0)), cfg.network,
                        cfg.surrogate, generator=torch.Generator().manual_seed(0))
    run_dir = tmp_path_factory.mktemp("dale")
    save_model(run_dir / "model.safetensors", net, cfg)
    return run_dir


def test_a_model_file_with_a_wrong_sign_is_refused(dale_run, tmp_path):
    from click.testing import CliRunner

    from cognet.cli.main import main
    from cognet.training.io import CHECKSUM_KEY, CorruptFileError, load_tensors, save_tensors
    from cognet.training.model import load_model

    net, _ = load_model(dale_run / "model.safetensors")
    assert net.dale_violations() == 0
    tensors, meta = load_tensors(dale_run / "model.safetensors")
    meta = {k: v for k, v in meta.items() if k != CHECKSUM_KEY}
    j = int(torch.nonzero(net.rec_sign.reshape(-1) < 0)[0])
    tensors["w_rec"][(j + 1) % net.n, j] = 0.5  # an inhibitory neuron made excitatory on one synapse
    crafted = tmp_path / "run"
    crafted.mkdir()
    save_tensors(crafted / "model.safetensors", tensors, meta)  # valid checksums: only the sign is wrong
    with pytest.raises(CorruptFileError, match="wrong sign"):
        load_model(crafted / "model.safetensors")
    r = CliRunner().invoke(main, ["eval", str(crafted)])
    assert r.exit_code == 2 and "Error:" in r.output and "wrong sign" in r.output and "Traceback" not in r.output


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_brian2_replays_a_dale_network_spike_for_spike(dale_run):
    pytest.importorskip("brian2")
    from cognet.brian.replay import verify_run

    res = verify_run(dale_run, trials=8, target="numpy", write=False)
    assert res["identical_trial_fraction"] == 1.0 and res["torch"]["mean_rate_hz"] > 1.0


def test_mdgl_cell_types_under_dales_law():
    from rules.mdgl import cell_type_weights, cell_types

    net = RSNN(5, mixed(40, 0.5), 2, generator=torch.Generator().manual_seed(0), dale=True)
    kind = cell_types(net)
    assert sorted(torch.unique(kind).tolist()) == [0, 1, 2, 3]
    assert [int((kind == k).sum()) for k in range(4)] == [16, 16, 4, 4]
    w = net.effective_w_rec().detach()
    m = cell_type_weights(net, w)
    s = net.rec_sign.reshape(-1)
    # the block means keep Dale's signs: excitatory columns >= 0, inhibitory ones <= 0, strictly off the diagonal
    off = ~torch.eye(40, dtype=torch.bool)
    assert bool((m[:, s > 0][off[:, s > 0]] > 0).all()) and bool((m[:, s < 0][off[:, s < 0]] < 0).all())
    # 16 blocks, each one value: block (LIF-E -> ALIF-I) is the mean of those synapses
    post, pre = kind == 3, kind == 0
    assert torch.allclose(m[post][:, pre], w[post][:, pre].mean().expand(4, 16))
    assert len(torch.unique(m[off])) == 16
    # without Dale's law there are two types (ALIF / LIF), as before
    plain = RSNN(5, mixed(40, 0.5), 2, generator=torch.Generator().manual_seed(0))
    assert sorted(torch.unique(cell_types(plain)).tolist()) == [0, 1]


def test_heterogeneous_membrane_time_constants():
    """``network.tau_mem_max_ms``: per-neuron tau_mem ~ U(tau_mem_ms, max), drawn after the
    adaptation constants (which stay those of the homogeneous network); hash-neutral when off."""
    from cognet.core.errors import ConfigError
    from cognet.training.config import build_config
    from cognet.training.model import neuron_params
    from cognet.training.trainer import config_hash

    base = build_config("dup-rev", sets=["network.n_rec=200"])
    het = build_config("dup-rev", sets=["network.n_rec=200", "network.tau_mem_max_ms=100"])
    assert config_hash(build_config("dup-rev", sets=["network.n_rec=200", "network.tau_mem_max_ms=0"])) == config_hash(base)
    assert config_hash(het) != config_hash(base) and "tau_mem_max_ms" not in base.to_dict()["network"]
    p0 = neuron_params(base.network, np.random.default_rng(3))
    p1 = neuron_params(het.network, np.random.default_rng(3))
    tau = p1.array("tau_mem_ms")
    assert np.all(p0.array("tau_mem_ms") == 20.0)
    assert tau.min() >= 20.0 and tau.max() <= 100.0 and tau.std() > 15.0
    assert np.array_equal(p0.array("tau_adapt_ms"), p1.array("tau_adapt_ms"))
    for bad in ("10", "20", "-5"):
        with pytest.raises(ConfigError, match="tau_mem_max_ms"):
            build_config("copy", sets=[f"network.tau_mem_max_ms={bad}"])


def test_adaptation_range_below_its_minimum_is_an_error():
    """``network.tau_adapt_max_ms`` between 0 and ``tau_adapt_ms`` used to be ignored silently
    (one constant); it is named instead."""
    from cognet.core.errors import ConfigError
    from cognet.training.config import build_config

    # copy's recommendation draws tau_a ~ U(10, 200) ms: a minimum above 200 contradicts it
    with pytest.raises(ConfigError, match=r"tau_adapt_max_ms must be 0 .*tau_adapt_ms=300.0, got 200.0"):
        build_config("copy", sets=["network.tau_adapt_ms=300"])
    for bad in ("5", "10"):
        with pytest.raises(ConfigError, match="tau_adapt_max_ms"):
            build_config("copy", sets=[f"network.tau_adapt_max_ms={bad}"])
    cfg = build_config("copy", sets=["network.tau_adapt_ms=300", "network.tau_adapt_max_ms=0"])
    assert (cfg.network.tau_adapt_ms, cfg.network.tau_adapt_max_ms) == (300.0, 0.0)
    # a run saved while the value was ignored still loads (its network has one constant)
    cfg.network.tau_adapt_max_ms = 200.0
    assert cfg.validate() is cfg
