"""Every surrogate's backward against its formula; forward is the exact Heaviside."""

import math

import numpy as np
import pytest
import torch

from cognet.core.functional import constants, simulate
from cognet.core.params import NeuronParams
from cognet.core.surrogate import SHAPES, Surrogate, leak_aware_factor


def formula(name, u):
    u = np.asarray(u, dtype=float)
    if name == "triangle":
        return np.maximum(0.0, 1.0 - np.abs(u))
    if name == "fast-sigmoid":
        return 1.0 / (1.0 + np.abs(u)) ** 2
    if name == "sigmoid":
        s = 1.0 / (1.0 + np.exp(-u))
        return 4.0 * s * (1.0 - s)
    if name == "exponential":
        return np.exp(-np.abs(u))
    if name == "gaussian":
        return np.exp(-u ** 2 / 2)
    if name == "arctan":
        return 1.0 / (1.0 + u ** 2)
    raise KeyError(name)


@pytest.mark.parametrize("name", sorted(SHAPES))
@pytest.mark.parametrize("width,peak", [(1.0, 0.3), (0.1, 1.0), (3.0, 0.05)])
def test_backward_matches_formula(name, width, peak):
    s = Surrogate(name, width, peak)
    x = torch.linspace(-4, 4, 161, dtype=torch.float64, requires_grad=True)
    z = s(x)
    assert torch.equal(z.detach(), (x > 0).double())
    z.backward(torch.ones_like(z))
    expected = peak * formula(name, x.detach().numpy() / width)
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-12, atol=1e-15)
    assert s.derivative(torch.tensor(0.0)).item() == pytest.approx(peak)  # peak is the value at threshold


def test_sigmoid_is_stable_far_from_threshold():
    s = Surrogate("sigmoid", 0.01, 1.0)
    x = torch.tensor([-1e4, 1e4], requires_grad=True)
    s(x).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_surrogate_scales_with_threshold():
    # dz/dv = peak * shape((v - A)/v_th / width) / v_th
    for v_th in (0.5, 2.0):
        p = NeuronParams(n=1, v_th=v_th, refractory_ms=0.0)
        cur = torch.tensor([[[0.8 * v_th]]], dtype=torch.float64, requires_grad=True)
        traj = simulate(cur, torch.zeros(1, 1, dtype=torch.float64), constants(p, dtype=torch.float64), Surrogate())
        traj.z.sum().backward()
        assert cur.grad.item() == pytest.approx(0.3 * (1 - 0.2) / v_th)


@pytest.mark.parametrize("bad", [{"name": "nope"}, {"width": 0.0}, {"peak": -1.0}])
def test_invalid_surrogate(bad):
    with pytest.raises(ValueError):
        Surrogate(**{"name": "triangle", "width": 1.0, "peak": 0.3, **bad})


def test_leak_aware_factor_formula():
    alpha = torch.tensor([math.exp(-1 / 20), math.exp(-1 / 10)], dtype=torch.float64)
    z = torch.zeros(5, 1, 2, dtype=torch.float64)
    z[1, 0, 0] = z[4, 0, 0] = 1.0  # neuron 0 fires at t=1 and t=4; neuron 1 is silent
    f = leak_aware_factor(z, alpha)
    lf = alpha[0] ** 3 + 1.0
    assert f[0, 0].item() == pytest.approx(1 + math.log(alpha[0]) * lf / 2)
    assert f[0, 1].item() == 1.0


def test_leak_aware_option_rescales_gradient():
    p = NeuronParams(n=3, v_th=1.0, refractory_ms=0.0)
    g = torch.Generator().manual_seed(1)
    cur = (torch.rand(30, 2, 3, generator=g, dtype=torch.float64) * 1.2)
    grads = []
    for leak in (False, True):
        c = cur.clone().requires_grad_(True)
        traj = simulate(c, torch.zeros(3, 3, dtype=torch.float64), constants(p, dtype=torch.float64), Surrogate(),
                        leak_aware=leak)
        traj.z.sum().backward()
        grads.append(c.grad)
        spikes = traj.z
    factor = leak_aware_factor(spikes.detach(), constants(p, dtype=torch.float64).alpha)
    assert spikes.sum() > 0 and (factor < 1).any()
    # without recurrence each step's spike only depends on its own and earlier currents;
    # the last step's gradient is the plain one times the factor
    torch.testing.assert_close(grads[1][-1], grads[0][-1] * factor)
