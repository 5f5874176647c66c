"""The hop-truncated rules (rules.hops) against their oracles: e-prop at K = 0, BPTT of the same
network at K >= T - 1, and in between an autodiff graph of K + 1 stacked copies of the network
whose k-th copy takes its recurrent input from the spikes of copy k - 1 (so every credit path
crosses at most K recurrent synapses)."""

from __future__ import annotations

import pytest
import torch

from cognet.core.functional import simulate
from cognet.core.errors import ConfigError
from rules.base import rate_penalty
from rules.eprop import EpropConfig, EpropRandom, EpropSymmetric
from rules.hops import HopConfig, HopRandom, HopSymmetric

from test_eprop import TC, ToyTask, autodiff_grads, make_net, rel

NAMES = ("w_in", "w_rec", "w_out", "b_out")


def grads_of(net):
    return {k: getattr(net, k).grad.clone() for k in NAMES}


def stacked_copies_oracle(net, task, batch, tc, hops):
    """Autodiff of the loss on the top of ``hops + 1`` stacked copies (reference engine)."""
    x = batch.x.to(net.w_in.dtype)
    w_rec = net.effective_w_rec()
    cur = torch.nn.functional.linear(x, net.w_in)
    traj = simulate(cur, w_rec, net.consts, net.surrogate, None, detach_reset=True, detach_recurrent=True)
    z = traj.z
    for _ in range(hops):
        rec = torch.zeros_like(cur)
        rec[1:] = torch.nn.functional.linear(z[:-1], w_rec)  # W_rec z[t-1] of the copy below
        z_up = simulate(cur + rec, None, net.consts, net.surrogate, None, detach_reset=True,
                        detach_recurrent=True).z
        assert torch.equal(z_up, traj.z)  # the same forward in every copy
        z = z_up
    loss = task.loss(net.readout(z, batch.windows), batch) + rate_penalty(
        z, net.neurons.dt_ms, tc.rate_target_hz, tc.rate_reg, tc.rate_reg_form)
    net.zero_grad(set_to_none=True)
    loss.backward()
    return grads_of(net)


@pytest.mark.parametrize("engine", ["reference", "fused"])
@pytest.mark.parametrize("reset,alif", [("subtract", 0.5), ("zero", 1.0), ("subtract", 0.0)])
def test_zero_hops_is_symmetric_eprop(engine, reset, alif):
    net = make_net(reset=reset, alif=alif)
    net.engine = engine
    task, tc = ToyTask(), TC()
    batch = task.batch()
    res_e = EpropSymmetric(net, task, tc, eprop_cfg=EpropConfig()).step(batch)
    want = grads_of(net)
    res = HopSymmetric(net, task, tc, hop_cfg=HopConfig(hops=0)).step(batch)
    for name in NAMES:
        assert rel(getattr(net, name).grad, want[name]) <= 1e-9, name
    assert res.loss == pytest.approx(res_e.loss, rel=1e-12)
    torch.testing.assert_close(res.logits, res_e.logits, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(res.z, res_e.z, rtol=0, atol=1e-15)


@pytest.mark.parametrize("engine", ["reference", "fused"])
def test_zero_hops_random_is_random_eprop_with_the_same_matrix(engine):
    net = make_net(alif=0.5)
    net.engine = engine
    task, tc = ToyTask(), TC()
    batch = task.batch()
    e = EpropRandom(net, task, tc, torch.Generator().manual_seed(5))
    e.step(batch)
    want = grads_of(net)
    h = HopRandom(net, task, tc, torch.Generator().manual_seed(5), hop_cfg=HopConfig(hops=0))
    assert torch.equal(h.B, e.B)  # drawn the same way
    h.step(batch)
    for name in NAMES:
        assert rel(getattr(net, name).grad, want[name]) <= 1e-9, name


@pytest.mark.parametrize("engine", ["reference", "fused"])
@pytest.mark.parametrize("reset,alif", [("subtract", 0.5), ("zero", 1.0)])
def test_all_hops_is_bptt_of_the_same_network(engine, reset, alif):
    net = make_net(reset=reset, alif=alif)
    net.engine = engine
    task, tc = ToyTask(), TC()
    batch = task.batch()
    want, _ = autodiff_grads(net, task, batch, tc, detach_recurrent=False)  # BPTT, reset detached
    T = batch.x.shape[0]
    HopSymmetric(net, task, tc, hop_cfg=HopConfig(hops=T - 1)).step(batch)
    for name in NAMES:
        assert rel(getattr(net, name).grad, want[name]) <= 1e-9, name


@pytest.mark.parametrize("engine", ["reference", "fused"])
@pytest.mark.parametrize("hops", [1, 2])
@pytest.mark.parametrize("reset,alif", [("subtract", 0.5), ("zero", 0.0)])
def test_k_hops_equal_the_stacked_copies_oracle(engine, hops, reset, alif):
    net = make_net(reset=reset, alif=alif)
    task, tc = ToyTask(), TC()
    batch = task.batch()
    want = stacked_copies_oracle(net, task, batch, tc, hops)
    net.engine = engine
    HopSymmetric(net, task, tc, hop_cfg=HopConfig(hops=hops)).step(batch)
    got = grads_of(net)
    for name in NAMES:
        assert rel(got[name], want[name]) <= 1e-9, name
    # the hop term is not negligible here: K hops differ from K - 1 and from BPTT
    HopSymmetric(net, task, tc, hop_cfg=HopConfig(hops=hops - 1)).step(batch)
    assert rel(got["w_rec"], net.w_rec.grad) > 1e-3
    full, _ = autodiff_grads(net, task, batch, tc, detach_recurrent=False)
    assert rel(got["w_rec"], full["w_rec"]) > 1e-4


def test_hops_move_the_update_towards_bptt():
    """The w_rec update's distance from BPTT's direction, 1 - cosine, shrinks with every hop
    (in this small network by more than 10x per hop: most credit paths are short)."""
    net = make_net(alif=0.5)
    task, tc = ToyTask(), TC()
    batch = task.batch()
    full, _ = autodiff_grads(net, task, batch, tc, detach_recurrent=False)
    cos = []
    for k in range(4):
        HopSymmetric(net, task, tc, hop_cfg=HopConfig(hops=k)).step(batch)
        g = net.w_rec.grad
        cos.append(float((g * full["w_rec"]).sum() / (g.norm() * full["w_rec"].norm())))
    gap = [1.0 - c for c in cos]
    assert all(gap[k + 1] < 0.1 * gap[k] for k in range(3)) and gap[0] > 1e-4, cos


def test_config_section_errors_and_refusals(tmp_path):
    from cognet.training.config import RunConfig, set_key
    from cognet.training.trainer import config_hash

    cfg = RunConfig(task="copy", rule="hop-random")
    set_key(cfg, "hop.hops", "2")
    assert cfg.hop.hops == 2 and cfg.to_dict()["hop"] == {"hops": 2, "feedback_std": 1.0}
    assert "hop" not in RunConfig(task="copy", rule="eprop-random").to_dict()
    assert "hop" not in RunConfig(task="copy", rule="bptt").to_dict()
    # the hop section does not move other rules' hashes
    a = RunConfig(task="copy", rule="bptt")
    b = RunConfig(task="copy", rule="bptt")
    set_key(b, "hop.hops", "3")
    assert config_hash(a) == config_hash(b)
    for key, value, msg in (("hop.hops", "-1", "hop.hops"), ("hop.feedback_std", "0", "hop.feedback_std")):
        c = RunConfig(task="copy", rule="hop-symmetric")
        set_key(c, key, value)
        with pytest.raises(ConfigError, match=msg):
            c.validate()
    net = make_net()
    net.dropout = 0.2
    with pytest.raises(ConfigError, match="dropout"):
        HopSymmetric(net, ToyTask(), TC())


def test_cli_trains_hop_rule(tmp_path):
    """A short real run through the CLI: the loss falls and the feedback matrix is checkpointed."""
    import json

    from click.testing import CliRunner

    from cognet.cli.main import main
    from cognet.training.io import load_tensors

    out = tmp_path / "a"
    r = CliRunner().invoke(main, [
        "train", "--task", "copy", "--rule", "hop-random", "--quiet", "--json", "--out", str(out),
        "--set", "network.n_rec=40", "--set", "train.batch_size=16", "--set", "train.eval_every=30",
        "--set", "train.eval_trials=16", "--set", "hop.hops=1", "--set", "train.iterations=60"])
    assert r.exit_code == 0, r.output
    assert json.loads((out / "summary.json").read_text())["rule"] == "hop-random"
    losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()
              if not json.loads(line).get("eval")]
    assert len(losses) == 60 and sum(losses[-10:]) < 0.9 * sum(losses[:10])
    tensors, _ = load_tensors(out / "checkpoint.safetensors")
    assert "rule.feedback" in tensors


@pytest.mark.parametrize("rule,extra", [("hop-random", "hop.hops=2"), ("mdgl-random", "mdgl.weights=cell-type")])
def test_killed_credit_rule_run_resumes_to_identical_weights(tmp_path, tiny_sets, kill_at, rule, extra):
    """The rules on rules.hops.CreditRule (hop-*, mdgl-*) checkpoint their feedback matrix."""
    from cognet.training.config import build_config
    from cognet.training.model import load_model
    from cognet.training.trainer import train

    cfg = build_config("copy", rule=rule, sets=tiny_sets + [extra])
    train(cfg, tmp_path / "full", progress=False)
    kill_at(cfg, tmp_path / "part", 4)
    s = train(cfg, tmp_path / "part", progress=False)
    assert s["resumed_from_iteration"] == 4
    a, _ = load_model(tmp_path / "full" / "model.safetensors")
    b, _ = load_model(tmp_path / "part" / "model.safetensors")
    for (k, v), (_, w) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(v, w), k
