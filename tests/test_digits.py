"""The digits task and the spiking conv front end (issue 21, item 3): the fixed split, the
codings, the conv layer against torch's conv2d and a hand-written LIF step, its explicit
synapses and pooling matrix, training from the CLI on tiny settings (loss falls), eval and a
spike-identical Brian2 replay of both layers, the config switches (absent at default, refused
where they do not apply) and the clean error without scikit-learn."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

import tasks
import tasks.images
from cognet.cli import main
from cognet.core.conv import ConvFrontEnd, ConvGeometry, conv_synapses, pool_matrix
from cognet.core.params import NeuronParams
from cognet.training.config import ConfigError, build_config, conv_geometry
from cognet.training.trainer import Trainer, config_hash

F64 = torch.float64
TINY = ["--set", "network.n_rec=16", "--set", "network.conv_channels=3", "--set", "train.iterations=30",
        "--set", "train.batch_size=32", "--set", "train.eval_every=15", "--set", "train.eval_trials=24",
        "--set", "task.step_ms=16", "--set", "task.train_images=32", "--set", "train.lr=0.02",
        "--set", "train.rate_reg=0", "--set", "train.checkpoint_every=0"]


@pytest.fixture
def sklearn():
    return pytest.importorskip("sklearn")  # a fallback: the test extra installs scikit-learn


def test_split_is_stratified_disjoint_and_fixed(sklearn):
    a, b = tasks.get_task("digits").splits(), tasks.get_task("digits").splits()
    for k in ("train", "eval", "test"):
        assert np.array_equal(a[k], b[k])  # the same split in every run, whatever the run seed
    sets = [set(a[k].tolist()) for k in ("train", "eval", "test")]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert len(sets[0] | sets[1] | sets[2]) == 1797
    assert (len(a["train"]), len(a["eval"]), len(a["test"])) == (1259, 179, 359)
    _, labels = tasks.images.load_images()
    counts = np.bincount(labels[a["test"]], minlength=10)
    assert counts.min() >= 34 and counts.max() <= 37  # stratified: about 20 % of every class
    other = tasks.get_task("digits", {"split_seed": 1}).splits()
    assert not np.array_equal(other["test"], a["test"])


def test_batches_draw_from_their_split_and_codings(sklearn):
    task = tasks.get_task("digits")
    g = torch.Generator().manual_seed(0)
    test = task.sample(359, g, split="test")
    assert sorted(test.info["image"]) == task.splits()["test"].tolist()  # each test image once
    assert test.x.shape == (40, 359, 64) and test.target.shape == (1, 359) and test.windows == [(20, 40)]
    train = task.sample(32, g)
    assert set(train.info["image"]) <= set(task.splits()["train"].tolist())
    images, labels = tasks.images.load_images()
    assert train.target[0].tolist() == labels[train.info["image"]].tolist()
    # rate code: dark pixels never fire; the mean count follows the intensity
    dark = torch.as_tensor(images[train.info["image"]] == 0)
    assert not bool(train.x.transpose(0, 1)[dark[:, None, :].expand(-1, 40, -1)].any())
    lat = tasks.get_task("digits", {"coding": "latency"}).sample(8, torch.Generator().manual_seed(1))
    lit = lat.active[0] > 0
    assert torch.equal(lat.x.sum(0), lit.float())  # one spike per lit pixel, none for dark ones
    first = lat.x.argmax(0)[lit]
    want = torch.round((1 - lat.active[0][lit]) * 9).long()
    assert torch.equal(first, want)


GEOMS = [ConvGeometry((1, 8, 8), 3, 3, 1, 2), ConvGeometry((1, 8, 8), 2, 3, 0, 3), ConvGeometry((2, 6, 6), 2, 5, 1, 1)]


@pytest.mark.parametrize("geom", GEOMS)
def test_conv_currents_synapses_and_pooling_match_conv2d(geom):
    front = ConvFrontEnd(geom, NeuronParams(n=1), generator=torch.Generator().manual_seed(0), dtype=F64)
    x = (torch.rand(4, 5, geom.n_pixels, generator=torch.Generator().manual_seed(1), dtype=F64) < 0.4).to(F64)
    want = F.conv2d(x.reshape(20, *geom.image), front.weight, padding=geom.padding).reshape(4, 5, -1).detach()
    torch.testing.assert_close(front.currents(x).detach(), want, rtol=1e-12, atol=1e-12)
    # the explicit synapses (one per kernel tap inside the image) compute the same convolution
    pre, post, tap = conv_synapses(geom)
    M = np.zeros((geom.n_conv, geom.n_pixels))
    np.add.at(M, (post, pre), front.weight.detach().numpy().reshape(-1)[tap])
    np.testing.assert_allclose(x.numpy() @ M.T, want.numpy(), rtol=1e-12, atol=1e-12)
    # sum-pooling: the module's reshape-sum equals the pooling matrix and torch's avg_pool x q^2
    z = (torch.rand(4, 5, geom.n_conv, generator=torch.Generator().manual_seed(2), dtype=F64) < 0.3).to(F64)
    P = torch.as_tensor(pool_matrix(geom))
    assert torch.equal(front.pool(z), z @ P.T)
    h, w = geom.conv_hw
    q = geom.pool
    oracle = F.avg_pool2d(z.reshape(20, geom.channels, h, w), q) * q * q
    assert torch.equal(front.pool(z), oracle.reshape(4, 5, -1))


def test_conv_layer_is_lif_on_conv2d_by_hand():
    geom = ConvGeometry((1, 8, 8), 2, 3, 1, 2)
    like = NeuronParams(n=5, tau_mem_ms=10.0, v_th=0.5, refractory_ms=3.0)
    front = ConvFrontEnd(geom, like, generator=torch.Generator().manual_seed(3), dtype=F64, scale=3.0)
    assert front.neurons.n == geom.n_conv and not front.neurons.adaptive.any()
    x = (torch.rand(12, 3, 64, generator=torch.Generator().manual_seed(4), dtype=F64) < 0.5).to(F64)
    out = front(x)
    alpha, v_th, n_ref = np.exp(-1 / 10.0), 0.5, 3
    I = F.conv2d(x.reshape(36, 1, 8, 8), front.weight, padding=1).reshape(12, 3, -1).detach()
    v = torch.zeros(3, geom.n_conv, dtype=F64)
    z = torch.zeros_like(v)
    r = torch.zeros_like(v)
    zs = []
    for t in range(12):
        v = alpha * v + I[t] - v_th * z
        z = ((v - v_th) / v_th > 0).to(F64) * (r == 0).to(F64)
        r = torch.where(z > 0, torch.full_like(r, n_ref - 1), torch.clamp(r - 1, min=0))
        zs.append(z)
    want = torch.stack(zs)
    assert want.sum() > 0
    assert torch.equal(out.z, want)
    s = front.pool(want)
    assert torch.equal(out.pooled[0], torch.zeros_like(s[0])) and torch.equal(out.pooled[1:], s[:-1])  # one step late


def test_config_switches(sklearn):
    assert not any(k.startswith("conv_") for k in build_config("copy").to_dict()["network"])
    assert config_hash(build_config("copy", sets=["network.conv_kernel=5"])) == config_hash(build_config("copy"))
    d = build_config("digits").to_dict()["network"]
    assert d["conv_channels"] == 8 and d["conv_kernel"] == 3 and d["conv_pool"] == 2
    with pytest.raises(ConfigError, match="needs an image task"):
        build_config("copy", sets=["network.conv_channels=4"])
    with pytest.raises(ConfigError, match="conv_pool=4 must divide"):
        build_config("digits", sets=["network.conv_pool=4", "network.conv_padding=0"])
    with pytest.raises(ConfigError, match="do not combine"):
        build_config("digits", sets=["network.bntt=true"])
    geom = conv_geometry(build_config("digits").network, tasks.get_task("digits"))
    assert (geom.n_conv, geom.n_pooled) == (512, 128)
    cfg = build_config("digits", rule="eprop-symmetric", sets=["network.n_rec=8", "network.conv_channels=2"])
    with pytest.raises(ConfigError, match="conv front end"):
        Trainer(cfg)
    plain = Trainer(build_config("digits", sets=["network.conv_channels=0", "network.n_rec=8"]))
    assert plain.net.conv is None and plain.net.w_in.shape == (8, 64)


@pytest.mark.parametrize("leak_aware", [False, True])
def test_forward_shapes_and_training_reduces_loss(sklearn, leak_aware):
    cfg = build_config("digits", sets=[s for s in TINY if s != "--set"] + [f"surrogate.leak_aware={leak_aware}"])
    t = Trainer(cfg, None, progress=False)
    net = t.net
    assert net.needs_reference_path and t.engine_used() == "reference"
    assert net.w_in.shape == (16, 3 * 4 * 4) and net.conv.weight.shape == (3, 1, 3, 3)
    b = t.task.sample(5, torch.Generator().manual_seed(0))
    out = net(b.x, b.windows)
    assert out.z.shape == (16, 5, 16) and out.conv_z.shape == (16, 5, 3 * 64) and out.logits.shape == (1, 5, 10)
    losses = []
    net.train()
    for _ in range(30):
        batch = t.task.sample(32, t.g_train)
        res = t.rule.step(batch)
        t.opt.step()
        losses.append(res.task_loss)
    assert net.conv.weight.grad is not None and float(net.conv.weight.grad.abs().sum()) > 0
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 0.5  # measured: 2.44 -> 1.11 (leak-aware: 2.42 -> 0.89)


def test_cli_train_eval_verify_identical(sklearn, tmp_path):
    out = tmp_path / "run"
    runner = CliRunner()
    res = runner.invoke(main, ["train", "--task", "digits", "--quiet", "--json", "--out", str(out)] + TINY)
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output.strip().splitlines()[-1])
    assert summary["eval_trials"] == 24 and "conv_mean_rate_hz" in summary and summary["n_conv"] == 192
    res = runner.invoke(main, ["eval", str(out), "--trials", "20"])
    assert res.exit_code == 0 and "conv front end" in res.output, res.output
    res = runner.invoke(main, ["eval", str(out), "--json"])  # default: every test image once
    assert res.exit_code == 0, res.output
    assert json.loads(res.output.strip().splitlines()[-1])["trials"] == 359
    res = runner.invoke(main, ["verify", str(out), "--trials", "20", "--target", "numpy", "--json"])
    assert res.exit_code == 0, res.output
    v = json.loads(res.output.strip().splitlines()[-1])
    assert v["identical_trial_fraction"] == 1.0 and v["conv"]["identical_trial_fraction"] == 1.0
    assert v["identical_trial_fraction_all_layers"] == 1.0
    assert v["conv"]["torch_mean_rate_hz"] > 0 and v["torch"]["spikes"] > 0
    assert v["accuracy_difference"] == 0.0
    for fmt, dest in (("brian2", tmp_path / "script"), ("nir", tmp_path / "g.nir")):  # refused, not silently wrong
        res = runner.invoke(main, ["export", str(out), "--format", fmt, "--out", str(dest)])
        assert res.exit_code == 2 and "conv front end" in res.output and not dest.exists(), res.output


def test_brian2_replay_of_a_random_conv_network_is_identical(sklearn):
    from cognet.brian.bridge import front_end, simulate_network
    from cognet.training.model import build_network, neuron_params

    cfg = build_config("digits", sets=["network.n_rec=10", "network.conv_channels=2", "network.conv_padding=0",
                                       "network.conv_pool=3", "network.alif_fraction=0.5", "network.conv_scale=2.0"])
    task = tasks.get_task("digits")
    net = build_network(64, 10, neuron_params(cfg.network, np.random.default_rng(0)), cfg.network, cfg.surrogate,
                        generator=torch.Generator().manual_seed(0), dtype=F64,
                        conv=conv_geometry(cfg.network, task)).eval()
    b = task.sample(67, torch.Generator().manual_seed(1), "test")
    with torch.no_grad():
        out = net(b.x, b.windows)
    one = simulate_network(net, b.x, target="numpy")  # 67 trials of a small network fit one run
    # the budget counts every synapse of a trial's copy, the conv front end's (pixel -> conv) too:
    # a budget of 30 trials' worth of synapses gives runs of 30, 30 and 7 trials
    per_trial = one.n_synapses // 67
    assert per_trial > len(front_end(net.conv).pre)
    split = simulate_network(net, b.x, target="numpy", max_synapses=30 * per_trial)
    assert one.info["runs"] == 1 and split.info["runs"] == 3 and out.conv_z.sum() > 0 and out.z.sum() > 0
    for run in (one, split):
        assert np.array_equal(run.z_front, out.conv_z.numpy().astype(np.uint8))
        assert np.array_equal(run.z, out.z.numpy().astype(np.uint8))


def test_without_sklearn_a_clean_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    monkeypatch.setattr(tasks.images, "_DATA", None)
    res = CliRunner().invoke(main, ["train", "--task", "digits", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2, res.output
    assert "Error:" in res.output and "pip install cognet[vision]" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "x").exists()
    res = CliRunner().invoke(main, ["tasks"])  # the listing still works without the extra
    assert res.exit_code == 0 and "digits" in res.output
