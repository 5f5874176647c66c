"""Neuron dynamics against closed forms and hand-made inputs."""

import math

import numpy as np
import pytest
import torch

from cognet.core.functional import alif_step, constants, initial_state, simulate
from cognet.core.params import NeuronParams
from cognet.core.surrogate import Surrogate

SUR = Surrogate()


def run(p: NeuronParams, currents, w_rec=None, record=True, **kw):
    currents = torch.as_tensor(currents, dtype=torch.float64)
    if currents.dim() == 1:
        currents = currents[:, None, None].expand(-1, 1, p.n).clone()
    c = constants(p, dtype=torch.float64)
    w = torch.zeros(p.n, p.n, dtype=torch.float64) if w_rec is None else torch.as_tensor(w_rec, dtype=torch.float64)
    return simulate(currents, w, c, SUR, record_state=record, **kw)


def test_lif_subthreshold_matches_closed_form():
    # constant drive I per step, no spikes: v[t] = I (1 - alpha^(t+1)) / (1 - alpha)
    p = NeuronParams(n=1, tau_mem_ms=20.0, v_th=100.0, dt_ms=1.0)
    I, T = 0.3, 200
    traj = run(p, np.full(T, I))
    alpha = math.exp(-1 / 20)
    expected = I * (1 - alpha ** np.arange(1, T + 1)) / (1 - alpha)
    np.testing.assert_allclose(traj.v[:, 0, 0].numpy(), expected, rtol=1e-12)
    assert traj.z.sum() == 0


def test_lif_decay_is_exact_exponential():
    p = NeuronParams(n=1, tau_mem_ms=7.0, v_th=100.0, dt_ms=0.5)
    cur = np.zeros(40)
    cur[0] = 2.0
    traj = run(p, cur)
    t_ms = np.arange(40) * 0.5
    np.testing.assert_allclose(traj.v[:, 0, 0].numpy(), 2.0 * np.exp(-t_ms / 7.0), rtol=1e-12)


def test_subtract_reset_and_spike_time():
    # a single kick of 1.5 v_th: spike at t=0, then v is reduced by v_th at the next step
    p = NeuronParams(n=1, v_th=1.0, tau_mem_ms=20.0, refractory_ms=0.0)
    cur = np.zeros(5)
    cur[0] = 1.5
    traj = run(p, cur)
    z = traj.z[:, 0, 0].numpy()
    v = traj.v[:, 0, 0].numpy()
    alpha = math.exp(-1 / 20)
    assert z.tolist() == [1, 0, 0, 0, 0]
    assert v[1] == pytest.approx(alpha * 1.5 - 1.0)


def test_zero_reset():
    p = NeuronParams(n=1, v_th=1.0, reset="zero", refractory_ms=0.0)
    cur = np.zeros(4)
    cur[0], cur[1] = 1.5, 0.25
    traj = run(p, cur)
    v = traj.v[:, 0, 0].numpy()
    assert traj.z[0, 0, 0] == 1
    assert v[1] == pytest.approx(0.25)  # alpha * 1.5 * (1 - 1) + 0.25


def test_threshold_is_strict():
    p = NeuronParams(n=1, v_th=1.0, refractory_ms=0.0)
    traj = run(p, [1.0, 0.0])
    assert traj.z.sum() == 0


@pytest.mark.parametrize("ref_ms,expected_isi", [(0.0, 1), (1.0, 1), (3.0, 3), (5.0, 5)])
def test_refractory_period(ref_ms, expected_isi):
    # a huge constant drive makes the neuron fire as often as refractoriness allows
    p = NeuronParams(n=1, v_th=1.0, refractory_ms=ref_ms)
    traj = run(p, np.full(30, 50.0))
    times = np.flatnonzero(traj.z[:, 0, 0].numpy())
    assert times[0] == 0
    assert set(np.diff(times)) == {expected_isi}


def test_refractory_neuron_keeps_integrating_and_has_no_gradient():
    p = NeuronParams(n=1, v_th=1.0, refractory_ms=4.0)
    cur = torch.tensor([[[2.0]], [[0.3]], [[0.3]], [[0.3]], [[0.3]]], dtype=torch.float64, requires_grad=True)
    traj = simulate(cur, torch.zeros(1, 1, dtype=torch.float64), constants(p, dtype=torch.float64), SUR,
                    record_state=True)
    alpha = math.exp(-1 / 20)
    # v keeps integrating during refractoriness (only spiking is blocked)
    assert traj.v[1, 0, 0].item() == pytest.approx(alpha * 2.0 + 0.3 - 1.0)
    assert traj.z[1:4].sum() == 0
    traj.z[1:4].sum().backward()
    assert cur.grad[1:4].abs().sum() == 0  # pseudo-derivative is zero while refractory


def test_adaptation_raises_threshold_and_decays():
    beta, tau_a = 0.5, 100.0
    p = NeuronParams(n=1, v_th=1.0, beta=beta, tau_adapt_ms=tau_a, refractory_ms=0.0)
    cur = np.zeros(50)
    cur[0] = 1.8
    traj = run(p, cur)
    assert traj.z.sum() == 1
    a = traj.a[:, 0, 0].numpy()
    rho = math.exp(-1 / tau_a)
    assert traj.z[0, 0, 0] == 1
    # a[t] = rho a[t-1] + z[t-1]: jumps by 1 one step after the spike, then decays
    assert a[0] == 0
    np.testing.assert_allclose(a[1:], rho ** np.arange(49), rtol=1e-12)


def test_adaptation_reduces_firing_rate():
    lif = NeuronParams(n=1, v_th=1.0, refractory_ms=0.0)
    alif = lif.replace(beta=0.3, tau_adapt_ms=200.0)
    drive = np.full(300, 0.2)
    assert run(alif, drive).z.sum() < 0.7 * run(lif, drive).z.sum()


def test_recurrent_spikes_arrive_one_step_later():
    p = NeuronParams(n=2, v_th=1.0, refractory_ms=0.0)
    cur = np.zeros((4, 1, 2))
    cur[0, 0, 0] = 2.0  # neuron 0 fires at t=0
    w = np.array([[0.0, 0.0], [0.7, 0.0]])  # 0 -> 1
    traj = run(p, cur, w_rec=w)
    v1 = traj.v[:, 0, 1].numpy()
    assert v1[0] == 0.0 and v1[1] == pytest.approx(0.7)


def test_mixed_population_per_neuron_parameters():
    rng = np.random.default_rng(0)
    p = NeuronParams.mixed(10, alif_fraction=0.4, beta=0.2, tau_adapt_ms=(100, 1000), rng=rng)
    assert p.adaptive.sum() == 4 and not p.adaptive[:6].any()
    taus = p.array("tau_adapt_ms")[6:]
    assert np.all((taus >= 100) & (taus <= 1000)) and len(set(taus)) == 4
    c = constants(p)
    assert c.adaptive and c.beta.shape == (10,)


def test_lsnn_conversion():
    p = NeuronParams.from_lsnn(n=3, v_th_lsnn=0.03, beta_lsnn=1.7, tau_mem_ms=20.0, tau_adapt_ms=200.0)
    alpha, rho = math.exp(-1 / 20), math.exp(-1 / 200)
    assert p.array("v_th")[0] == pytest.approx(0.03 / (1 - alpha))
    assert p.array("v_th")[0] == pytest.approx(0.615, abs=1e-3)  # e-prop's documented 0.615
    assert p.array("beta")[0] == pytest.approx(1.7 * (1 - rho) / (1 - alpha))


@pytest.mark.parametrize("kw,needle", [
    ({"n": 0}, "'n'"), ({"n": 3, "reset": "soft"}, "reset"), ({"n": 3, "tau_mem_ms": -1}, "tau_mem_ms"),
    ({"n": 3, "beta": [0.1, 0.2]}, "beta"), ({"n": 2, "v_th": float("nan")}, "v_th"),
])
def test_invalid_neuron_params_are_named(kw, needle):
    with pytest.raises(ValueError, match=needle):
        NeuronParams(**kw)


def test_step_is_pure():
    p = NeuronParams(n=3, beta=0.1, refractory_ms=2.0)
    c = constants(p)
    s0 = initial_state(2, 3)
    i = torch.full((2, 3), 1.5)
    w = torch.zeros(3, 3)
    z1, s1 = alif_step(s0, i, w, c, SUR)
    z2, s2 = alif_step(s0, i, w, c, SUR)
    assert torch.equal(z1, z2) and all(torch.equal(a, b) for a, b in zip(s1, s2))
    assert s0.v.abs().sum() == 0  # input state untouched
