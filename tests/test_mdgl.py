"""The MDGL rules (rules.mdgl) against an autodiff oracle: the e-prop network (reset and
recurrent input stopped) whose spikes reach the loss a second way, through the voltage of the
one step after them only -- ``z_up[t] = z[t] + free[t] (H(x[t] + dv[t]/v_th) - H(x[t]))`` with
``dv[t] = W~ z[t-1]`` entering as a zero-valued perturbation and ``x`` itself stopped -- so the
extra credit a spike gets is ``sum_j W~_jp psi_j[t+1] dE/dz_j[t+1]`` and nothing more."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cognet.core.errors import ConfigError
from cognet.core.functional import alif_step, initial_state
from rules.base import rate_penalty
from rules.eprop import EpropConfig, EpropRandom, EpropSymmetric
from rules.hops import HopConfig, HopSymmetric
from rules.mdgl import MdglConfig, MdglRandom, MdglSymmetric, cell_type_weights

from test_eprop import TC, ToyTask, _FeedbackLinear, autodiff_grads, make_net, rel

NAMES = ("w_in", "w_rec", "w_out", "b_out")


def grads_of(net):
    return {k: getattr(net, k).grad.clone() for k in NAMES}


def block_means(net, w):
    """The oracle's own cell-type weights: numpy loops over the ALIF / LIF blocks."""
    w = w.detach().numpy()
    types = np.asarray(net.neurons.adaptive, dtype=bool)
    mask = net.rec_mask.numpy() > 0
    out = np.zeros_like(w)
    for a in (True, False):
        for b in (True, False):
            cells = [(j, p) for j in range(w.shape[0]) for p in range(w.shape[1])
                     if types[j] == a and types[p] == b and mask[j, p]]
            if cells:
                m = sum(w[j, p] for j, p in cells) / len(cells)
                for j, p in cells:
                    out[j, p] = m
    return torch.as_tensor(out)


def one_step_oracle(net, task, batch, tc, weights="exact", fb=None):
    """Autodiff of the loss on ``z_up`` (module docstring), stepping the reference alif_step."""
    c = net.consts
    x_in = batch.x.to(net.w_in.dtype)
    w_rec = net.effective_w_rec()
    cur = torch.nn.functional.linear(x_in, net.w_in)
    state = initial_state(x_in.shape[1], net.n, dtype=x_in.dtype)
    zs, xs, free = [], [], []
    for i_t in cur.unbind(0):
        free.append((state.r == 0).to(x_in.dtype))
        z, state = alif_step(state, i_t, w_rec, c, net.surrogate, True, True)
        xs.append(((state.v - c.v_th - c.beta * state.a) / c.v_th).detach())
        zs.append(z)
    z0 = torch.stack(zs)
    w_t = (w_rec if weights == "exact" else block_means(net, w_rec)).detach()
    dv = torch.zeros_like(z0)
    rec = torch.nn.functional.linear(z0[:-1], w_t)
    dv[1:] = rec - rec.detach()
    x = torch.stack(xs)
    z_up = z0 + torch.stack(free) * (net.surrogate(x + dv / c.v_th) - net.surrogate(x).detach())
    assert torch.equal(z_up, z0)  # the perturbation is zero-valued
    filt = net.filtered_windows(z_up, batch.windows)
    logits = (torch.nn.functional.linear(filt, net.w_out, net.b_out) if fb is None
              else _FeedbackLinear.apply(filt, net.w_out, net.b_out, fb))
    loss = task.loss(logits, batch) + rate_penalty(z_up, net.neurons.dt_ms, tc.rate_target_hz, tc.rate_reg,
                                                   tc.rate_reg_form)
    net.zero_grad(set_to_none=True)
    loss.backward()
    return grads_of(net)


@pytest.mark.parametrize("engine", ["reference", "fused"])
@pytest.mark.parametrize("weights", ["exact", "cell-type"])
@pytest.mark.parametrize("reset,alif,refractory_ms", [("subtract", 0.5, 3.0), ("zero", 1.0, 3.0),
                                                      ("subtract", 0.0, 1.0)])
def test_mdgl_equals_the_one_step_oracle(engine, weights, reset, alif, refractory_ms):
    net = make_net(reset=reset, alif=alif, refractory_ms=refractory_ms)
    task, tc = ToyTask(), TC()
    batch = task.batch()
    want = one_step_oracle(net, task, batch, tc, weights)
    net.engine = engine
    MdglSymmetric(net, task, tc, mdgl_cfg=MdglConfig(weights=weights)).step(batch)
    got = grads_of(net)
    for name in NAMES:
        assert rel(got[name], want[name]) <= 1e-9, name
    # the extra term is not negligible: MDGL differs from e-prop and from one full hop
    EpropSymmetric(net, task, tc, eprop_cfg=EpropConfig()).step(batch)
    assert rel(got["w_rec"], net.w_rec.grad) > (1e-3 if weights == "exact" else 1e-6)
    HopSymmetric(net, task, tc, hop_cfg=HopConfig(hops=1)).step(batch)
    assert rel(got["w_rec"], net.w_rec.grad) > 1e-3


@pytest.mark.parametrize("engine", ["reference", "fused"])
def test_mdgl_random_uses_eprop_randoms_matrix_and_equals_its_oracle(engine):
    net = make_net(alif=0.5)
    net.engine = engine
    task, tc = ToyTask(), TC()
    batch = task.batch()
    e = EpropRandom(net, task, tc, torch.Generator().manual_seed(5))
    m = MdglRandom(net, task, tc, torch.Generator().manual_seed(5))
    assert torch.equal(m.B, e.B)
    want = one_step_oracle(net, task, batch, tc, fb=m.B)
    m.step(batch)
    for name in NAMES:
        assert rel(getattr(net, name).grad, want[name]) <= 1e-9, name


def test_cell_type_weights_are_the_block_means():
    net = make_net(n=10, alif=0.4)
    w = net.effective_w_rec().detach()
    got = cell_type_weights(net, w)
    torch.testing.assert_close(got, block_means(net, w), rtol=1e-12, atol=1e-15)
    assert float(got.diagonal().abs().max()) == 0.0  # no self-connections appear
    assert len(torch.unique(got[net.rec_mask > 0])) == 4  # one value per block


def test_mdgl_moves_the_update_towards_bptt():
    """On the toy network the MDGL w_rec update is closer to BPTT's direction than e-prop's
    and farther than one full hop's (which carries the same paths' whole credit)."""
    net = make_net(alif=0.5)
    task, tc = ToyTask(), TC()
    batch = task.batch()
    full, _ = autodiff_grads(net, task, batch, tc, detach_recurrent=False)

    def cos(rule):
        rule.step(batch)
        g = net.w_rec.grad
        return float((g * full["w_rec"]).sum() / (g.norm() * full["w_rec"].norm()))

    c_e = cos(EpropSymmetric(net, task, tc, eprop_cfg=EpropConfig()))
    c_m = cos(MdglSymmetric(net, task, tc))
    c_h = cos(HopSymmetric(net, task, tc, hop_cfg=HopConfig(hops=1)))
    assert c_e < c_m < c_h, (c_e, c_m, c_h)


def test_config_section_errors_and_refusals():
    from cognet.training.config import RunConfig, set_key
    from cognet.training.trainer import config_hash

    cfg = RunConfig(task="copy", rule="mdgl-random")
    set_key(cfg, "mdgl.weights", "cell-type")
    assert cfg.to_dict()["mdgl"] == {"weights": "cell-type", "feedback_std": 1.0}
    for rule in ("bptt", "eprop-random", "hop-random"):
        assert "mdgl" not in RunConfig(task="copy", rule=rule).to_dict()
    a, b = RunConfig(task="copy", rule="hop-random"), RunConfig(task="copy", rule="hop-random")
    set_key(b, "mdgl.weights", "cell-type")
    assert config_hash(a) == config_hash(b)
    for key, value in (("mdgl.weights", "mean"), ("mdgl.feedback_std", "-1"), ("mdgl.feedback_std", "nan")):
        c = RunConfig(task="copy", rule="mdgl-symmetric")
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            set_key(c, key, value)  # a value set_key cannot take fails here, others in validate()
            c.validate()
    net = make_net()
    net.dropout = 0.2
    with pytest.raises(ConfigError, match="dropout"):
        MdglSymmetric(net, ToyTask(), TC())


def test_cli_trains_mdgl_rule_and_a_bad_value_is_an_error(tmp_path):
    """A short real run through the CLI: the loss falls and the feedback matrix is
    checkpointed; a bad mdgl value is a one-line Error with exit code 2."""
    import json

    from click.testing import CliRunner

    from cognet.cli.main import main
    from cognet.training.io import load_tensors

    out = tmp_path / "a"
    base = ["train", "--task", "copy", "--rule", "mdgl-random", "--quiet", "--json", "--out", str(out),
            "--set", "network.n_rec=40", "--set", "train.batch_size=16", "--set", "train.eval_every=30",
            "--set", "train.eval_trials=16", "--set", "train.iterations=60"]
    r = CliRunner().invoke(main, base)
    assert r.exit_code == 0, r.output
    assert json.loads((out / "summary.json").read_text())["rule"] == "mdgl-random"
    losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()
              if not json.loads(line).get("eval")]
    assert len(losses) == 60 and sum(losses[-10:]) < 0.9 * sum(losses[:10])
    tensors, _ = load_tensors(out / "checkpoint.safetensors")
    assert "rule.feedback" in tensors
    bad = CliRunner().invoke(main, base[:-2] + ["--out", str(tmp_path / "b"), "--set", "mdgl.weights=blocks"])
    assert bad.exit_code == 2 and "Error:" in bad.output and "mdgl.weights" in bad.output
    assert "Traceback" not in bad.output

