"""e-prop: traces by hand, exactness against autodiff, online/chunk invariance, rules, CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import rules
import tasks
from cognet.training.config import build_config
from rules.eprop import EpropConfig
from cognet.core.network import RSNN
from cognet.core.params import NeuronParams
from cognet.core.surrogate import Surrogate
from rules.base import rate_penalty
from rules.bptt import BPTT
from rules.eprop import EpropAdaptive, EpropRandom, EpropSymmetric, eprop_run, trace_history

F64 = torch.float64


class TC:  # the train-config fields the rules read
    def __init__(self, rate_target_hz=10.0, rate_reg=0.5, rate_reg_form="neuron"):
        self.rate_target_hz, self.rate_reg, self.rate_reg_form = rate_target_hz, rate_reg, rate_reg_form


def make_net(n=12, n_in=7, n_out=3, reset="subtract", alif=0.5, refractory_ms=3.0, tau_mem=20.0, seed=1,
             tau_out_ms=15.0, dtype=F64):
    p = NeuronParams.mixed(n, alif, 0.3, (50.0, 300.0), np.random.default_rng(seed), tau_mem_ms=tau_mem,
                           v_th=1.0, reset=reset, refractory_ms=refractory_ms)
    return RSNN(n_in, p, n_out, tau_out_ms=tau_out_ms, surrogate=Surrogate.make("triangle"), input_scale=4.0,
                rec_scale=1.5, generator=torch.Generator().manual_seed(seed), dtype=dtype)


class ToyTask:
    """A classes task with several answer windows of different lengths (uses tasks.base losses)."""

    output = "classes"

    def __init__(self, n_out=3):
        self.n_out = n_out

    loss = tasks.base.Task.loss
    loss_grad_logits = tasks.base.Task.loss_grad_logits

    def batch(self, T=70, B=4, n_in=7, seed=2, windows=((10, 18), (25, 47), (55, 70))):
        g = torch.Generator().manual_seed(seed)
        x = (torch.rand(T, B, n_in, generator=g) < 0.2).to(F64)
        target = torch.randint(0, self.n_out, (len(windows), B), generator=g)
        mask = torch.ones(len(windows), B, dtype=torch.bool)
        if len(windows) > 1:
            mask[1, 0] = False  # one masked answer
        return tasks.base.Batch(x=x, target=target, mask=mask, windows=list(windows), phases={})


def rel(a, b):
    return float((a - b).norm() / b.norm().clamp(min=1e-300))


def autodiff_grads(net, task, batch, tc, detach_recurrent=True):
    net.detach_recurrent, net.detach_reset = detach_recurrent, True
    res = BPTT(net, task, tc).step(batch)
    grads = {k: getattr(net, k).grad.clone() for k in ("w_in", "w_rec", "w_out", "b_out")}
    net.detach_recurrent = False
    return grads, res


# ---------------------------------------------------------------------------------------
# hand-made example
# ---------------------------------------------------------------------------------------
def test_traces_two_neuron_example_by_hand():
    """Neuron 0 LIF, neuron 1 ALIF; alpha = rho = kappa = 0.5, beta = (0, 0.5), v_th = 1,
    triangle surrogate (psi = 0.3 max(0, 1 - |x|)), n_ref = 2, subtract reset.
    One input, spiking at t = 0, 1. W_in = (1.5, 0.8), W_rec[0,1] = 0.5, W_rec[1,0] = 0.6.

    Voltages: v0 = (1.5, 0.8) -> z = (1, 0); v1 = (0.75+1.5-1, 0.4+0.8+0.6) = (1.25, 1.8),
    neuron 0 refractory -> z = (0, 1); v2 = (0.625+0.5, 0.9-1) = (1.125, -0.1), a1 = 1 ->
    z = (1, 0); v3 = (0.5625-1, -0.05+0.6) = (-0.4375, 0.55), a1 = 0.5 -> z = (0, 0).
    psi: t0 (0.15, 0.24); t1 (0 [refractory; would be 0.225], 0.06); t2 (0.2625, 0);
    t3 (0, 0.3 (1 - 0.7) = 0.09).
    """
    ln2 = math.log(2.0)
    p = NeuronParams(n=2, tau_mem_ms=1 / ln2, tau_adapt_ms=1 / ln2, beta=[0.0, 0.5], v_th=1.0,
                     refractory_ms=2.0, reset="subtract")
    net = RSNN(1, p, 1, tau_out_ms=1 / ln2, surrogate=Surrogate("triangle", 1.0, 0.3), dtype=F64)
    with torch.no_grad():
        net.w_in.copy_(torch.tensor([[1.5], [0.8]], dtype=F64))
        net.w_rec.copy_(torch.tensor([[0.0, 0.5], [0.6, 0.0]], dtype=F64))
    x = torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=F64)[:, None, None]
    h = trace_history(net, x)
    assert h["z"][:, 0].tolist() == [[1, 0], [0, 1], [1, 0], [0, 0]]
    psi = torch.tensor([[0.15, 0.24], [0.0, 0.06], [0.2625, 0.0], [0.0, 0.09]], dtype=F64)
    torch.testing.assert_close(h["psi"][:, 0], psi, rtol=0, atol=1e-12)
    # synapse index: 0 = input, 1 = from neuron 0, 2 = from neuron 1
    ev, ea, e, eb = (h[k][:, 0] for k in ("eps_v", "eps_a", "e", "ebar"))
    # input synapses: eps_v = 1, 1.5, 0.75, 0.375 for both neurons
    torch.testing.assert_close(ev[:, :, 0], torch.tensor([[1, 1], [1.5, 1.5], [0.75, 0.75], [0.375, 0.375]], dtype=F64))
    # ALIF input synapse: eps_a = 0, 0.24*1 = 0.24, 0.06*1.5 + (0.5 - 0.5*0.06)*0.24 = 0.2028, 0.5*0.2028 = 0.1014
    torch.testing.assert_close(ea[:, 1, 0], torch.tensor([0, 0.24, 0.2028, 0.1014], dtype=F64))
    # e = psi (eps_v - beta eps_a): neuron 1: 0.24, 0.06*(1.5-0.12) = 0.0828, 0, 0.09*(0.375-0.0507) = 0.029187
    torch.testing.assert_close(e[:, 1, 0], torch.tensor([0.24, 0.0828, 0.0, 0.029187], dtype=F64))
    # neuron 0 (LIF): 0.15*1, 0 (refractory), 0.2625*0.75 = 0.196875, 0
    torch.testing.assert_close(e[:, 0, 0], torch.tensor([0.15, 0.0, 0.196875, 0.0], dtype=F64))
    # recurrent 0 -> 1: eps_v = 0, 1, 0.5, 1.25; eps_a = 0, 0, 0.06, 0.03; e = 0, 0.06, 0, 0.09*(1.25-0.015)
    torch.testing.assert_close(ev[:, 1, 1], torch.tensor([0, 1, 0.5, 1.25], dtype=F64))
    torch.testing.assert_close(ea[:, 1, 1], torch.tensor([0, 0, 0.06, 0.03], dtype=F64))
    torch.testing.assert_close(e[:, 1, 1], torch.tensor([0, 0.06, 0, 0.11115], dtype=F64))
    # recurrent 1 -> 0: eps_v = 0, 0, 1, 0.5; e = 0, 0, 0.2625, 0
    torch.testing.assert_close(e[:, 0, 2], torch.tensor([0, 0, 0.2625, 0], dtype=F64))
    # self-connections are zero
    assert float(e[:, 0, 1].abs().sum()) == 0.0 and float(e[:, 1, 2].abs().sum()) == 0.0
    # readout-filtered trace, kappa = 0.5: 0.24, 0.12+0.0828, 0.1014, 0.0507+0.029187
    torch.testing.assert_close(eb[:, 1, 0], torch.tensor([0.24, 0.2028, 0.1014, 0.079887], dtype=F64))


# ---------------------------------------------------------------------------------------
# exactness against autodiff
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("alif", [0.0, 0.5, 1.0])
def test_symmetric_eprop_equals_stop_gradient_autodiff(reset, alif):
    net = make_net(reset=reset, alif=alif)
    task, tc = ToyTask(), TC()
    batch = task.batch()
    want, res_ad = autodiff_grads(net, task, batch, tc)
    rule = EpropSymmetric(net, task, tc, eprop_cfg=EpropConfig(chunk_steps=9))
    res = rule.step(batch)
    assert 5.0 < float(res.z.mean()) * 1000 < 400.0  # the network spikes, not saturated
    for name, g in want.items():
        assert rel(getattr(net, name).grad, g) <= 1e-9, name
    assert res.loss == pytest.approx(res_ad.loss, rel=1e-12)
    assert res.reg_loss == pytest.approx(res_ad.reg_loss, rel=1e-12)
    torch.testing.assert_close(res.logits, res_ad.logits, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("engine", ["reference", "fused"])
@pytest.mark.parametrize("form", ["neuron", "population", "above"])
def test_every_rate_regulariser_form_equals_autodiff(form, engine):
    """train.rate_reg_form: the online rules' per-neuron factor (rate_penalty_grad) is the
    derivative of the same E_reg that BPTT differentiates, in every form."""
    from rules.base import rate_penalty_grad

    net = make_net(alif=0.5)
    net.engine = engine
    task, tc = ToyTask(), TC(rate_target_hz=60.0, rate_reg=2.0, rate_reg_form=form)
    batch = task.batch()
    want, res_ad = autodiff_grads(net, task, batch, tc)
    rates = res_ad.z.mean(dim=(0, 1)) * 1000.0
    assert bool((rates > 60.0).any()) and bool((rates < 60.0).any())  # "above" has both sides to tell apart
    res = EpropSymmetric(net, task, tc, eprop_cfg=EpropConfig(chunk_steps=9)).step(batch)
    for name, g in want.items():
        assert rel(getattr(net, name).grad, g) <= 1e-9, name
    assert res.reg_loss == pytest.approx(res_ad.reg_loss, rel=1e-12) and res.reg_loss > 0
    # the forms are different functions of the rates
    r = rates.detach().requires_grad_(True)
    e = rate_penalty(r[None, None], 1000.0, 60.0, 2.0, form)  # z = r / 1000 Hz at dt = 1 s: rates r
    other = {f: float(rate_penalty(rates[None, None], 1000.0, 60.0, 2.0, f)) for f in ("neuron", "population", "above")}
    assert len(set(round(v, 9) for v in other.values())) == 3
    (g,) = torch.autograd.grad(e, r)
    torch.testing.assert_close(rate_penalty_grad(rates, 60.0, 2.0, form), g, rtol=1e-12, atol=1e-15)


def test_rate_regulariser_form_is_checked():
    from rules.base import rate_penalty_grad

    with pytest.raises(ValueError, match="rate regulariser form"):
        rate_penalty(torch.zeros(3, 2, 4), 1.0, 5.0, 1.0, "mean")
    with pytest.raises(ValueError, match="rate regulariser form"):
        rate_penalty_grad(torch.zeros(4), 5.0, 1.0, "pop")


def test_heterogeneous_membrane_time_constants_and_chunk_invariance():
    net = make_net(tau_mem=list(np.linspace(8.0, 40.0, 12)))
    task, tc = ToyTask(), TC()
    batch = task.batch()
    want, _ = autodiff_grads(net, task, batch, tc)
    for chunk in (1, 5, 16, 1000):
        EpropSymmetric(net, task, tc, eprop_cfg=EpropConfig(chunk_steps=chunk)).step(batch)
        for name, g in want.items():
            assert rel(getattr(net, name).grad, g) <= 1e-9, (name, chunk)


def test_zero_recurrent_weights_symmetric_eprop_equals_full_bptt():
    net = make_net()
    with torch.no_grad():
        net.w_rec.zero_()
    task, tc = ToyTask(), TC()
    batch = task.batch()
    want, _ = autodiff_grads(net, task, batch, tc, detach_recurrent=False)  # full BPTT, detached reset
    EpropSymmetric(net, task, tc).step(batch)
    for name, g in want.items():
        assert rel(getattr(net, name).grad, g) <= 1e-9, name


class _FeedbackLinear(torch.autograd.Function):
    """y = W zf + b whose backward sends dE/dy to zf through B instead of W^T."""

    @staticmethod
    def forward(ctx, zf, w, b, fb):
        ctx.save_for_backward(zf, fb)
        return torch.nn.functional.linear(zf, w, b)

    @staticmethod
    def backward(ctx, gy):
        zf, fb = ctx.saved_tensors
        gw = torch.einsum("...k,...j->kj", gy, zf)
        return gy @ fb.t(), gw, gy.reshape(-1, gy.shape[-1]).sum(0), None


def test_random_feedback_equals_autodiff_with_feedback_matrix():
    net = make_net(alif=0.5)
    task, tc = ToyTask(), TC()
    batch = task.batch()
    rule = EpropRandom(net, task, tc, torch.Generator().manual_seed(5))
    fb = rule.B.clone()
    assert rel(fb, net.w_out.detach().t()) > 0.5
    rule.step(batch)
    got = {k: getattr(net, k).grad.clone() for k in ("w_in", "w_rec", "w_out", "b_out")}
    # autodiff through the same stop-gradient network, readout gradient routed through B
    net.detach_recurrent = net.detach_reset = True
    z = net(batch.x, batch.windows).z
    M = net.readout_weights(batch.windows, z.shape[0])
    logits = _FeedbackLinear.apply(torch.einsum("wt,tbn->wbn", M, z), net.w_out, net.b_out, fb)
    loss = task.loss(logits, batch) + rate_penalty(z, 1.0, tc.rate_target_hz, tc.rate_reg)
    net.zero_grad()
    loss.backward()
    for name in got:
        assert rel(got[name], getattr(net, name).grad) <= 1e-9, name


def test_unfiltered_variant_uses_plain_traces():
    """filtered=False: dW = sum_w L_w sum_{t in w} e[t] (checked with the per-step reference),
    and with kappa = 0 (no readout memory) it is again the exact gradient."""
    net = make_net()
    task = ToyTask()
    batch = task.batch()
    fb = net.w_out.detach().t()

    def dl(w, logit):
        full = torch.zeros(len(batch.windows), batch.x.shape[1], 3, dtype=F64)
        full[w] = logit
        return task.loss_grad_logits(full, batch)[w]

    out = eprop_run(net, batch.x, batch.windows, dl, fb, filtered=False, rate_reg=0.0, chunk_steps=6)
    h = trace_history(net, batch.x)
    want = torch.zeros(net.n, net.n_in + net.n, dtype=F64)
    for w, (s, e) in enumerate(batch.windows):
        L = dl(w, out.logits[w]) @ fb.t() / (e - s)
        want += torch.einsum("bj,bji->ji", L, h["e"][s:e].sum(0))
    assert rel(out.grads["w_in"], want[:, :net.n_in]) <= 1e-9
    assert rel(out.grads["w_rec"], want[:, net.n_in:]) <= 1e-9
    filt = eprop_run(net, batch.x, batch.windows, dl, fb, filtered=True, rate_reg=0.0)
    assert rel(out.grads["w_rec"], filt.grads["w_rec"]) > 1e-3  # a real approximation here
    net0 = make_net(tau_out_ms=1e-3)  # kappa = exp(-1000) = 0
    want0, _ = autodiff_grads(net0, task, batch, TC())
    EpropSymmetric(net0, task, TC(), eprop_cfg=EpropConfig(filtered=False)).step(batch)
    for name, g in want0.items():
        assert rel(getattr(net0, name).grad, g) <= 1e-9, name


def test_forward_spikes_identical_to_rsnn_float32_on_a_task():
    task = tasks.get_task("add")
    batch = task.sample(16, torch.Generator().manual_seed(0))
    net = make_net(n=40, n_in=task.n_in, n_out=1, dtype=torch.float32, refractory_ms=2.0)
    z = net(batch.x, batch.windows).z
    res = EpropRandom(net, task, TC(), eprop_cfg=EpropConfig(chunk_steps=7)).step(batch)
    assert torch.equal(res.z[0], z.mean(0))
    assert float(z.detach().sum()) > 0


def test_errors_name_the_problem():
    net = make_net()
    task = ToyTask()
    batch = task.batch(windows=((10, 30), (20, 40), (50, 70)))
    with pytest.raises(ValueError, match="non-overlapping"):
        EpropSymmetric(net, task, TC()).step(batch)
    net.leak_aware = True
    with pytest.raises(ValueError, match="leak_aware"):
        EpropSymmetric(net, task, TC())


# ---------------------------------------------------------------------------------------
# adaptive feedback, state, registry, CLI
# ---------------------------------------------------------------------------------------
def test_adaptive_feedback_follows_w_out_and_checkpoints():
    net = make_net(alif=0.5)
    task, tc = ToyTask(), TC()
    rule = EpropAdaptive(net, task, tc, torch.Generator().manual_seed(3), eprop_cfg=EpropConfig(adaptive_decay=0.1))
    gap0 = rule.B - net.w_out.detach().t()
    assert float(gap0.norm()) > 0.5
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    w_out0 = net.w_out.detach().clone()
    for i in range(10):
        rule.step(task.batch(T=30, windows=((10, 30),), seed=i))
        opt.step()
    rule._adapt_feedback()  # hand B the last update too
    # B - W_out^T only decays: (1 - d)^k (B0 - W_out0^T), while W_out itself moved
    torch.testing.assert_close(rule.B - net.w_out.detach().t(), 0.9 ** 11 * gap0, rtol=1e-9, atol=1e-12)
    assert rel(net.w_out.detach(), 0.9 ** 11 * w_out0) > 0.1
    state = {k: v.clone() for k, v in rule.state_tensors().items()}
    assert set(state) == {"feedback", "prev_w_out"}
    other = EpropAdaptive(net, task, tc, torch.Generator().manual_seed(99))
    other.load_state_tensors(state)
    assert torch.equal(other.B, rule.B) and torch.equal(other.prev_w_out, rule.prev_w_out)
    with pytest.raises(ValueError, match="does not know"):
        other.load_state_tensors({"bogus": torch.zeros(1)})


def test_rules_registered_and_config_section():
    for name in ("eprop-symmetric", "eprop-random", "eprop-adaptive"):
        assert name in rules.RULES
    cfg = build_config(task="add", rule="eprop-random", sets=["eprop.filtered=false", "eprop.chunk_steps=16"])
    assert cfg.eprop.filtered is False and cfg.eprop.chunk_steps == 16
    from cognet.training.config import ConfigError

    with pytest.raises(ConfigError, match="eprop.chunk_steps"):
        build_config(task="add", sets=["eprop.chunk_steps=0"])


def test_cli_train_eprop_writes_summary(tmp_path):
    from click.testing import CliRunner

    from cognet.cli.main import main

    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["train", "--task", "add", "--rule", "eprop-random", "--out", str(out), "--json",
                                  "--set", "train.iterations=4", "--set", "train.eval_every=2",
                                  "--set", "train.eval_trials=16", "--set", "train.batch_size=8"])
    assert r.exit_code == 0, r.output
    s = json.loads((out / "summary.json").read_text())
    assert s["rule"] == "eprop-random" and s["iterations"] == 4 and s["peak_rss_mb"] > 0
    assert 0.0 <= s["sequence_accuracy"] <= 1.0
    # resume/restart safety: the rule's feedback matrix is in the checkpoint
    from cognet.training.io import load_tensors

    tensors, _ = load_tensors(out / "checkpoint.safetensors")
    assert "rule.feedback" in tensors


# ---------------------------------------------------------------------------------------
# the evidence-accumulation task
# ---------------------------------------------------------------------------------------
def test_evidence_task_layout():
    t = tasks.get_task("evidence")
    assert (t.n_in, t.n_out, t.T) == (40, 2, 2250)
    b = t.sample(200, torch.Generator().manual_seed(0))
    assert b.x.shape == (2250, 200, 40) and b.windows == [(2100, 2250)]
    n_right = torch.tensor(b.info["n_right"])
    assert torch.equal(b.target[0], (n_right >= 4).long())
    cues = b.info["cue_right"]
    for c in range(7):  # cue c occupies [50 + 150 c, 150 + 150 c) on its side only
        s, e = 50 + 150 * c, 150 + 150 * c
        side = b.active[s // 50, :, :2]
        assert torch.equal(side.argmax(-1), cues[:, c]) and torch.all(side.sum(-1) == 1)
        assert torch.all(b.active[(s - 50) // 50, :, :2] == 0)
    rates = b.x.mean(dim=(0, 1)).view(4, 10).mean(1) * 1000
    assert abs(float(rates[3]) - 10.0) < 1.0  # noise 10 Hz all the time
    assert abs(float(rates[2]) - 40.0 * 150 / 2250) < 0.5  # recall cue only in the last 150 ms
    assert abs(float(rates[0] + rates[1]) - 40.0 * 700 / 2250) < 1.0  # 7 cues of 100 ms
    assert float((torch.tensor(b.info["n_right"]) >= 4).float().mean()) == pytest.approx(0.5, abs=0.12)
    with pytest.raises(ValueError, match="n_cues"):
        tasks.get_task("evidence", {"n_cues": 6})
    cfg = build_config(task="evidence", rule="eprop-random")
    assert cfg.network.tau_adapt_ms == 2000.0 and cfg.train.batch_size == 32
    # the tutorial's 100 neurons are the task's recommendation; e-prop's own is the wider network
    assert build_config(task="evidence", rule="bptt").network.n_rec == 100 and cfg.network.n_rec == 300


# ---------------------------------------------------------------------------------------
# dropout (network.dropout / network.input_dropout): the same masks in e-prop and autodiff
# ---------------------------------------------------------------------------------------
def _dropout_net(reset="subtract", alif=0.5, p=0.3, p_in=0.25):
    net = make_net(reset=reset, alif=alif)
    net.dropout, net.input_dropout = p, p_in
    return net


@pytest.mark.parametrize("reset,alif", [("subtract", 0.5), ("zero", 1.0), ("subtract", 0.0)])
def test_symmetric_eprop_with_dropout_equals_stop_gradient_autodiff(reset, alif):
    from cognet.core.network import DropoutMasks

    net = _dropout_net(reset, alif)
    task, tc = ToyTask(), TC()
    batch = task.batch()
    masks = net.dropout_masks(batch.x.shape[1], torch.Generator().manual_seed(11))
    assert bool((masks.rec == 0).any()) and bool((masks.inp == 0).any())
    net.detach_recurrent = net.detach_reset = True
    out = net(batch.x, batch.windows, masks=masks)
    loss = task.loss(out.logits, batch) + rate_penalty(out.z, 1.0, tc.rate_target_hz, tc.rate_reg)
    net.zero_grad()
    loss.backward()
    want = {k: getattr(net, k).grad.clone() for k in ("w_in", "w_rec", "w_out", "b_out")}
    net.detach_recurrent = False
    got = eprop_run(net, batch.x, batch.windows, lambda w, lg: task.loss_grad_logits(
        torch.stack([lg if i == w else torch.zeros_like(lg) for i in range(len(batch.windows))]), batch)[w],
        net.w_out.detach().t(), rate_target_hz=tc.rate_target_hz, rate_reg=tc.rate_reg, chunk_steps=7, masks=masks)
    for name, g in want.items():
        assert rel(got.grads[name], g) <= 1e-9, name
    torch.testing.assert_close(got.logits, out.logits.detach(), rtol=1e-12, atol=1e-12)
    # without the masks e-prop computes another gradient (the masks are really used)
    plain = eprop_run(net, batch.x, batch.windows, lambda w, lg: torch.zeros_like(lg), net.w_out.detach().t(),
                      masks=DropoutMasks(None, None))
    assert not torch.equal(plain.logits, got.logits)


def test_eprop_rule_draws_masks_from_the_network_generator():
    net = _dropout_net()
    task, tc = ToyTask(), TC()
    batch = task.batch()
    net.dropout_generator.manual_seed(4)
    r1 = EpropSymmetric(net, task, tc).step(batch)
    g1 = net.w_rec.grad.clone()
    net.dropout_generator.manual_seed(4)
    r2 = EpropSymmetric(net, task, tc).step(batch)
    assert torch.equal(g1, net.w_rec.grad) and torch.equal(r1.logits, r2.logits)
    r3 = EpropSymmetric(net, task, tc).step(batch)  # the next draw: other masks
    assert not torch.equal(r3.logits, r1.logits)
    net.eval()  # no dropout at evaluation: the same as the plain network
    r4 = EpropSymmetric(net, task, tc).step(batch)
    net.dropout = net.input_dropout = 0.0
    r5 = EpropSymmetric(net, task, tc).step(batch)
    assert torch.equal(r4.logits, r5.logits)


def test_random_feedback_with_dropout_equals_autodiff_with_feedback_matrix():
    net = _dropout_net(alif=0.5)
    task, tc = ToyTask(), TC()
    batch = task.batch()
    rule = EpropRandom(net, task, tc, torch.Generator().manual_seed(5))
    masks = net.dropout_masks(batch.x.shape[1], torch.Generator().manual_seed(2))
    fb = rule.B.clone()
    got = eprop_run(net, batch.x, batch.windows, lambda w, lg: task.loss_grad_logits(
        torch.stack([lg if i == w else torch.zeros_like(lg) for i in range(len(batch.windows))]), batch)[w],
        fb, rate_target_hz=tc.rate_target_hz, rate_reg=tc.rate_reg, masks=masks).grads
    net.detach_recurrent = net.detach_reset = True
    out = net(batch.x, batch.windows, masks=masks)
    M = net.readout_weights(batch.windows, out.z.shape[0])
    zf = torch.einsum("wt,tbn->wbn", M, out.z * masks.rec)
    logits = _FeedbackLinear.apply(zf, net.w_out, net.b_out, fb)
    loss = task.loss(logits, batch) + rate_penalty(out.z, 1.0, tc.rate_target_hz, tc.rate_reg)
    net.zero_grad()
    loss.backward()
    for name in got:
        assert rel(got[name], getattr(net, name).grad) <= 1e-9, name
