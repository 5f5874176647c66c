"""e-prop on the fused engine (rules/eprop_fused.py) against the reference engine (rules/eprop.py)
and against autodiff: same spikes, same logits, gradients within 1e-12 relative in float64."""

from __future__ import annotations

import copy
import itertools
import warnings

import numpy as np
import pytest
import torch

import tasks
from cognet.core import fused
from cognet.core.network import RSNN
from cognet.core.params import NeuronParams
from cognet.core.surrogate import SHAPES, Surrogate
from rules.bptt import BPTT
from rules.eprop import EpropAdaptive, EpropConfig, EpropRandom, EpropSymmetric, eprop_run
from rules.eprop_fused import eprop_run_fused

F64 = torch.float64
NAMES = ("w_in", "w_rec", "w_out", "b_out")


class TC:
    def __init__(self, rate_target_hz=10.0, rate_reg=0.5, rate_reg_form="neuron"):
        self.rate_target_hz, self.rate_reg, self.rate_reg_form = rate_target_hz, rate_reg, rate_reg_form


class ToyTask:
    """Three answer windows of different lengths; one spans several chunks."""

    output = "classes"
    n_out = 3
    loss = tasks.base.Task.loss
    loss_grad_logits = tasks.base.Task.loss_grad_logits

    def batch(self, T=70, B=4, n_in=7, seed=2, density=0.2, windows=((10, 18), (25, 47), (55, 70))):
        g = torch.Generator().manual_seed(seed)
        x = (torch.rand(T, B, n_in, generator=g) < density).to(F64)
        target = torch.randint(0, self.n_out, (len(windows), B), generator=g)
        mask = torch.ones(len(windows), B, dtype=torch.bool)
        mask[1, 0] = False
        return tasks.base.Batch(x=x, target=target, mask=mask, windows=list(windows), phases={})


def make_net(seed=1, n=12, n_in=7, reset="subtract", alif=0.5, refractory_ms=3.0, shape="triangle", dtype=F64,
             rec_scale=1.5, input_scale=4.0):
    rng = np.random.default_rng(seed)
    p = NeuronParams.mixed(n, alif, 0.3, (50.0, 300.0), rng, tau_mem_ms=tuple(rng.uniform(10, 40, n)),
                           v_th=tuple(rng.uniform(0.7, 1.3, n)), reset=reset, refractory_ms=refractory_ms)
    return RSNN(n_in, p, 3, tau_out_ms=15.0, surrogate=Surrogate.make(shape), input_scale=input_scale, rec_scale=rec_scale,
                generator=torch.Generator().manual_seed(seed), dtype=dtype)


def rel(a, b):
    return float((a - b).norm() / b.norm().clamp(min=1e-300))


def run(net, batch, feedback, engine, task=None, **kw):
    task = task or ToyTask()
    W = len(batch.windows)
    full = torch.zeros(W, batch.x.shape[1], net.n_out, dtype=net.w_out.dtype)

    def dl(w, logit):
        full.zero_()
        full[w] = logit
        return task.loss_grad_logits(full, batch)[w]

    return eprop_run(net, batch.x, batch.windows, dl, feedback, engine=engine, **kw)


def assert_same(out_f, out_r, tol=1e-12):
    assert torch.equal(out_f.spike_mean, out_r.spike_mean), "spikes differ"
    assert rel(out_f.logits, out_r.logits) <= 1e-14
    for k in NAMES:
        assert rel(out_f.grads[k], out_r.grads[k]) <= tol, k
        assert out_f.grads[k].shape == out_r.grads[k].shape


COMBOS = list(itertools.product(("subtract", "zero"), (0.0, 0.5), (0.0, 3.0), (True, False)))


@pytest.mark.parametrize("reset,alif,refractory_ms,filtered", COMBOS)
def test_fused_equals_reference_every_switch(reset, alif, refractory_ms, filtered):
    """LIF/ALIF x both resets x refractoriness x filtered, random / symmetric feedback, several
    chunk sizes (windows crossing chunk boundaries), with and without the rate regulariser."""
    task = ToyTask()
    batch = task.batch()
    net = make_net(seed=3, reset=reset, alif=alif, refractory_ms=refractory_ms)
    fb_random = torch.randn(net.n, net.n_out, generator=torch.Generator().manual_seed(9), dtype=F64)
    ref = {}
    for fb_name, fb in (("symmetric", net.w_out.detach().t()), ("random", fb_random)):
        for rate_reg in (0.0, 0.7):
            kw = dict(filtered=filtered, rate_reg=rate_reg, rate_target_hz=12.0)
            out_r = run(net, batch, fb, "reference", chunk_steps=9, **kw)
            assert out_r.grads["w_rec"].abs().sum() > 0  # a test that could fail
            for chunk in (1, 9, 16, 1000):
                out_f = run(net, batch, fb, "fused", chunk_steps=chunk, **kw)
                assert_same(out_f, out_r)
            ref[fb_name, rate_reg] = out_r
    # the switches matter: the feedback and the regulariser change the update
    assert rel(ref["random", 0.0].grads["w_rec"], ref["symmetric", 0.0].grads["w_rec"]) > 1e-3
    assert rel(ref["random", 0.7].grads["w_rec"], ref["random", 0.0].grads["w_rec"]) > 1e-6


def test_the_three_rules_on_both_engines():
    """eprop-symmetric / -random / -adaptive steps (several iterations, adaptive feedback
    changing): the fused and reference engines give the same updates."""
    task = ToyTask()
    for cls in (EpropSymmetric, EpropRandom, EpropAdaptive):
        nets, rules_, results = {}, {}, {}
        base = make_net(seed=5)
        for engine in ("reference", "fused"):
            nets[engine] = copy.deepcopy(base)
            nets[engine].engine = engine
            rules_[engine] = cls(nets[engine], task, TC(), torch.Generator().manual_seed(4),
                                 eprop_cfg=EpropConfig(chunk_steps=11))
        for it in range(3):
            batch = task.batch(seed=10 + it)
            for engine in ("reference", "fused"):
                results[engine] = rules_[engine].step(batch)
            r, f = results["reference"], results["fused"]
            assert f.loss == pytest.approx(r.loss, rel=1e-13), cls.name
            assert torch.equal(f.z, r.z)
            for k in NAMES:
                g_r, g_f = getattr(nets["reference"], k).grad, getattr(nets["fused"], k).grad
                assert rel(g_f, g_r) <= 1e-12, (cls.name, k, it)
            for engine in ("reference", "fused"):  # a plain SGD step keeps both networks in step
                with torch.no_grad():
                    for k in NAMES:
                        p = getattr(nets[engine], k)
                        p -= 0.05 * p.grad


@pytest.mark.parametrize("reset,alif", [("subtract", 0.5), ("zero", 0.5), ("zero", 0.0)])
def test_fused_eprop_equals_stop_gradient_autodiff(reset, alif):
    """The oracle: symmetric, filtered e-prop = autodiff of the stop-gradient network."""
    task = ToyTask()
    batch = task.batch()
    net = make_net(seed=7, reset=reset, alif=alif)
    tc = TC(rate_reg=0.5)
    net.detach_recurrent, net.detach_reset = True, True
    BPTT(net, task, tc).step(batch)
    want = {k: getattr(net, k).grad.clone() for k in NAMES}
    net.detach_recurrent = False
    net.engine = "fused"
    EpropSymmetric(net, task, tc, eprop_cfg=EpropConfig(chunk_steps=13)).step(batch)
    for k in NAMES:
        assert rel(getattr(net, k).grad, want[k]) <= 1e-12, k


def test_history_kept_or_recomputed_bit_identical():
    task = ToyTask()
    batch = task.batch()
    net = make_net(seed=11, reset="zero")
    fb = net.w_out.detach().t()
    outs = []
    for keep in (True, False):
        W = len(batch.windows)
        full = torch.zeros(W, batch.x.shape[1], net.n_out, dtype=F64)

        def dl(w, logit):
            full.zero_()
            full[w] = logit
            return task.loss_grad_logits(full, batch)[w]

        outs.append(eprop_run_fused(net, batch.x, batch.windows, dl, fb, rate_reg=0.3, chunk_steps=8,
                                    keep_history=keep))
    for k in NAMES:
        assert torch.equal(outs[0].grads[k], outs[1].grads[k]), k
    assert torch.equal(outs[0].logits, outs[1].logits)


def test_dense_inputs_and_spikes_and_every_surrogate():
    """Dense presynaptic steps take the matmul path; every surrogate shape the kernel knows."""
    task = ToyTask()
    dense = task.batch(density=0.7, seed=4)
    net = make_net(seed=2, refractory_ms=0.0, input_scale=12.0)
    fb = net.w_out.detach().t()
    out_r = run(net, dense, fb, "reference", chunk_steps=10, rate_reg=0.2)
    assert float(out_r.spike_mean.mean()) > 1.5 * fused.DENSE_THRESHOLD  # dense recurrent spikes too
    assert_same(run(net, dense, fb, "fused", chunk_steps=10, rate_reg=0.2), out_r)
    batch = task.batch()
    for shape in SHAPES:
        net = make_net(seed=6, shape=shape)
        fb = net.w_out.detach().t()
        assert_same(run(net, batch, fb, "fused", chunk_steps=12), run(net, batch, fb, "reference", chunk_steps=12))


def test_float32_same_spikes_close_gradients():
    task = ToyTask()
    batch = task.batch()
    net = make_net(seed=8, dtype=torch.float32)
    fb = net.w_out.detach().t()
    out_r = run(net, batch, fb, "reference", chunk_steps=16, rate_reg=0.3)
    out_f = run(net, batch, fb, "fused", chunk_steps=16, rate_reg=0.3)
    assert torch.equal(out_f.spike_mean, out_r.spike_mean)
    for k in NAMES:
        assert out_f.grads[k].dtype == torch.float32
        assert rel(out_f.grads[k], out_r.grads[k]) <= 1e-5, k


def test_engine_selection_and_fallback(monkeypatch):
    task = ToyTask()
    batch = task.batch(T=30, windows=((5, 12), (20, 30)))
    net = make_net(seed=1)
    fb = net.w_out.detach().t()
    with pytest.raises(ValueError, match="engine must be one of"):
        run(net, batch, fb, "fast")
    out_r = run(net, batch, fb, "reference")
    # a backend that cannot be built: auto warns once and runs the reference code
    monkeypatch.setitem(fused._backend, "module", None)
    monkeypatch.setitem(fused._backend, "error", "fused engine unavailable (test)")
    monkeypatch.setitem(fused._backend, "warned", False)
    with pytest.warns(RuntimeWarning, match="fused engine unavailable"):
        out_a = run(net, batch, fb, None)  # net.engine = auto
    for k in NAMES:
        assert torch.equal(out_a.grads[k], out_r.grads[k])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run(net, batch, fb, "auto")  # no second warning
    with pytest.raises(ValueError, match="unavailable"):
        run(net, batch, fb, "fused")


@pytest.mark.parametrize("n", [100, 300])  # 64-entry blocks, 8-entry blocks and a tail; two column ranges
def test_fused_equals_reference_wide_and_at_any_thread_count(n):
    """Wide enough that the kernel's blocked event sums use all three block sizes and split the
    weight-gradient columns between threads: equal to the reference in float64, and bit-identical
    with one and with two threads (float32 too)."""
    task = ToyTask()
    batch = task.batch(n_in=70, density=0.1)
    for dtype in (F64, torch.float32):
        net = make_net(seed=5, n=n, n_in=70, dtype=dtype, rec_scale=1.0, input_scale=2.0)
        b = tasks.base.Batch(x=batch.x.to(dtype), target=batch.target, mask=batch.mask, windows=batch.windows,
                             phases={})
        fb = torch.randn(n, net.n_out, generator=torch.Generator().manual_seed(9), dtype=dtype)
        kw = dict(filtered=True, rate_reg=0.5, rate_target_hz=12.0, chunk_steps=16)
        threads = torch.get_num_threads()
        try:
            torch.set_num_threads(1)
            one = run(net, b, fb, "fused", **kw)
            torch.set_num_threads(2)
            two = run(net, b, fb, "fused", **kw)
        finally:
            torch.set_num_threads(threads)
        assert one.grads["w_rec"].abs().sum() > 0 and one.spike_mean.sum() > 0
        for k in NAMES:
            assert torch.equal(one.grads[k], two.grads[k]), k
        if dtype == F64:
            assert_same(one, run(net, b, fb, "reference", **kw))
