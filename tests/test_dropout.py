"""network.dropout / network.input_dropout: one mask per trial held over time, 1/(1-p)
rescaling, off in eval mode, reproducible and resumable, e-prop exact with the masks, hashes
of runs at the default unchanged, Brian2 replay of a dropout-trained run identical."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cognet.core.network import RSNN, DropoutMasks
from cognet.core.params import NeuronParams
from cognet.core.surrogate import Surrogate
from cognet.training.config import ConfigError, build_config
from cognet.training.model import load_model
from cognet.training.trainer import config_hash, train

F64 = torch.float64


def make_net(p=0.4, p_in=0.0, n=16, n_in=6, seed=3):
    neurons = NeuronParams.mixed(n, 0.5, 0.3, 200.0, np.random.default_rng(seed), refractory_ms=2.0)
    return RSNN(n_in, neurons, 2, surrogate=Surrogate.make("triangle"), input_scale=4.0, rec_scale=1.5,
                generator=torch.Generator().manual_seed(seed), dtype=F64, dropout=p, input_dropout=p_in)


def inputs(T=40, B=5, n_in=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, n_in, generator=g) < 0.25).to(F64)


WINDOWS = [(10, 20), (30, 40)]


def test_masks_are_per_trial_binary_and_rescaled():
    net = make_net(p=0.3, p_in=0.5)
    m = net.dropout_masks(4000)
    assert m.rec.shape == (4000, 16) and m.inp.shape == (4000, 6)
    for mask, p in ((m.rec, 0.3), (m.inp, 0.5)):
        assert sorted(torch.unique(mask).tolist()) == [0.0, 1.0 / (1.0 - p)]
        assert float((mask == 0).double().mean()) == pytest.approx(p, abs=0.02)
        assert float(mask.mean()) == pytest.approx(1.0, abs=0.03)  # E[m] = 1
    net.eval()
    assert net.dropout_masks(4) is None
    # a fused engine must not run a network with dropout; a plain one needs no reference path
    assert net.needs_reference_path and not make_net(p=0.0).needs_reference_path


def test_mask_is_held_over_time_and_acts_as_a_pruned_network():
    """Trial b with mask m behaves at every step like the plain network whose recurrent and
    readout weights from neuron j are multiplied by m_j (and inputs' columns by u_i): a mask
    redrawn per step would not."""
    net = make_net(p=0.4, p_in=0.3)
    x = inputs()
    out = net(x, WINDOWS)
    assert out.masks is not None and out.masks.rec.shape == (5, 16)
    assert bool((out.masks.rec == 0).any()) and bool((out.masks.inp == 0).any())
    for b in range(x.shape[1]):
        ref = make_net(p=0.0)
        with torch.no_grad():
            ref.w_in.copy_(net.w_in * out.masks.inp[b][None, :])
            ref.w_rec.copy_(net.w_rec * out.masks.rec[b][None, :])
            ref.w_out.copy_(net.w_out * out.masks.rec[b][None, :])
            ref.b_out.copy_(net.b_out)
        r = ref(x[:, b:b + 1], WINDOWS)
        assert torch.equal(r.z[:, 0], out.z[:, b]), b
        torch.testing.assert_close(r.logits[:, 0], out.logits[:, b], rtol=1e-12, atol=1e-12)
    # the spikes differ from the undropped network (the mask matters)
    net.eval()
    assert not torch.equal(net(x, WINDOWS).z, out.z)


def test_eval_mode_is_the_plain_network_and_draws_nothing():
    net = make_net(p=0.5, p_in=0.5)
    plain = make_net(p=0.0)
    plain.load_state_dict(net.state_dict())
    x = inputs()
    net.eval()
    state = net.dropout_generator.get_state()
    a, b = net(x, WINDOWS), plain(x, WINDOWS)
    assert a.masks is None and torch.equal(a.z, b.z) and torch.equal(a.logits, b.logits)
    assert torch.equal(net.dropout_generator.get_state(), state)


def test_bptt_gradient_flows_only_through_kept_units():
    net = make_net(p=0.5)
    x = inputs(B=1)
    masks = DropoutMasks(rec=torch.tensor([[0.0, 2.0] * 8], dtype=F64), inp=None)
    out = net(x, WINDOWS, masks=masks)
    out.logits.sum().backward()
    dropped = masks.rec[0] == 0
    assert float(net.w_out.grad[:, dropped].abs().sum()) == 0.0
    assert float(net.w_out.grad[:, ~dropped].abs().sum()) > 0.0


def test_config_keys_hash_and_errors(tmp_path):
    base = build_config("copy")
    assert "dropout" not in base.to_dict()["network"]  # at the default: not part of the identity
    same = build_config("copy", sets=["network.dropout=0.0", "network.input_dropout=0"])
    assert config_hash(same) == config_hash(base)
    on = build_config("copy", sets=["network.dropout=0.2"])
    assert on.to_dict()["network"]["dropout"] == 0.2 and config_hash(on) != config_hash(base)
    for bad in ("network.dropout=1.0", "network.dropout=-0.1", "network.input_dropout=1.5"):
        with pytest.raises(ConfigError, match=bad.split("=")[0]):
            build_config("copy", sets=[bad])
    from click.testing import CliRunner

    from cognet.cli import main

    res = CliRunner().invoke(main, ["train", "--task", "copy", "--set", "network.dropout=1", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "Error:" in res.output and "network.dropout" in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)


@pytest.mark.parametrize("rule", ["bptt", pytest.param("eprop-symmetric", marks=pytest.mark.slow)])
def test_training_reproducible_resumable_and_dropout_changes_it(tmp_path, tiny_sets, rule, kill_at):
    sets = tiny_sets + ["network.dropout=0.3", "network.input_dropout=0.2"]
    cfg = build_config("copy", rule=rule, sets=sets + ["task.n_bits=2"])
    s1 = train(cfg, tmp_path / "a", progress=False)
    part = tmp_path / "b"
    kill_at(cfg, part, 4)
    s2 = train(cfg, part, progress=False)
    assert s2["resumed_from_iteration"] == 4
    a, _ = load_model(tmp_path / "a" / "model.safetensors")
    b, _ = load_model(part / "model.safetensors")
    for (k, v), (_, w) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(v, w), k
    assert s1["sequence_accuracy"] == s2["sequence_accuracy"]
    assert not a.training and a.dropout == 0.3 and a.input_dropout == 0.2
    plain = train(build_config("copy", rule=rule, sets=tiny_sets + ["task.n_bits=2"]), tmp_path / "c", progress=False)
    c, _ = load_model(tmp_path / "c" / "model.safetensors")
    assert not torch.equal(a.w_rec, c.w_rec)
    assert plain["iterations"] == s1["iterations"]


def test_brian2_replay_of_dropout_run_is_identical(tmp_path, tiny_sets):
    from cognet.brian.replay import verify_run

    cfg = build_config("copy", sets=tiny_sets + ["task.n_bits=2", "network.dropout=0.5", "network.input_scale=4.0"])
    out = tmp_path / "run"
    train(cfg, out, progress=False)
    res = verify_run(out, trials=6, target="numpy", write=False)
    assert res["identical_trial_fraction"] == 1.0 and res["torch"]["spikes"] > 0
    assert res["torch"]["accuracy"] == res["brian2"]["accuracy"]
