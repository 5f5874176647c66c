"""The fused engine against the reference (torch) engine: same spikes, same gradients."""

import itertools
import warnings

import numpy as np
import pytest
import torch

from cognet.core import fused
from cognet.core.functional import ALIFState, constants, simulate
from cognet.core.network import RSNN
from cognet.core.params import NeuronParams
from cognet.core.surrogate import SHAPES, Surrogate
from cognet.training.config import build_config


def _params(n, rng, reset, adaptive, refractory):
    beta = np.where(rng.random(n) < 0.6, rng.uniform(0.05, 0.6, n), 0.0) if adaptive else 0.0
    return NeuronParams(
        n=n, reset=reset, tau_mem_ms=tuple(rng.uniform(8, 40, n)), v_th=tuple(rng.uniform(0.6, 1.4, n)),
        refractory_ms=tuple(rng.integers(0, 4, n).astype(float)) if refractory else 0.0,
        tau_adapt_ms=tuple(rng.uniform(15, 200, n)), beta=tuple(beta) if adaptive else 0.0,
    )


def _case(seed, reset="subtract", adaptive=True, refractory=True, T=25, B=3, n=9, dtype=torch.float64,
          state=False):
    rng = np.random.default_rng(seed)
    p = _params(n, rng, reset, adaptive, refractory)
    g = torch.Generator().manual_seed(seed)
    cur = (torch.rand(T, B, n, generator=g, dtype=dtype) * 1.2 - 0.2).requires_grad_()
    w = (torch.randn(n, n, generator=g, dtype=dtype) * 0.5).requires_grad_()
    st = None
    if state:
        st = ALIFState(torch.randn(B, n, generator=g, dtype=dtype).requires_grad_(),
                       torch.rand(B, n, generator=g, dtype=dtype).requires_grad_(),
                       (torch.rand(B, n, generator=g, dtype=dtype) < 0.3).to(dtype).requires_grad_(),
                       torch.randint(0, 2, (B, n), generator=g).to(dtype))
    return p, cur, w, st, g


def _run(sim, p, cur, w, st, sur, g_seed, dtype, record, **kw):
    c = constants(p, dtype=dtype)
    leaves = [cur, w] + ([st.v, st.a, st.z] if st is not None else [])
    traj = sim(cur, w, c, sur, st, record_state=record, **kw)
    g = torch.Generator().manual_seed(g_seed)
    T, B, n = cur.shape
    loss = (traj.z * torch.randn(T, B, n, generator=g, dtype=dtype)).sum()
    loss = loss + (traj.final.v * torch.randn(B, n, generator=g, dtype=dtype)).sum()
    if c.adaptive:
        loss = loss + (traj.final.a * torch.randn(B, n, generator=g, dtype=dtype)).sum()
    if record:
        loss = loss + (traj.v * torch.randn(T, B, n, generator=g, dtype=dtype)).sum() * 0.1
        loss = loss + (traj.a * torch.randn(T, B, n, generator=g, dtype=dtype)).sum() * 0.1
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    return traj, [torch.zeros_like(x) if gr is None else gr for x, gr in zip(leaves, grads)]


def _rel(a, b):
    scale = b.abs().max().item()
    return (a - b).abs().max().item() / (scale if scale > 0 else 1.0)


def _compare(p, cur, w, st, sur, dtype=torch.float64, record=False, dense=fused.DENSE_THRESHOLD, tol=1e-10, **kw):
    ref, g_ref = _run(simulate, p, cur, w, st, sur, 1, dtype, record, **kw)
    fus, g_fus = _run(lambda *a, **k: fused.simulate_fused(*a, dense_threshold=dense, **k),
                      p, cur, w, st, sur, 1, dtype, record, **kw)
    assert torch.equal(ref.z, fus.z), f"{int((ref.z != fus.z).sum())} spikes differ"
    rate = ref.z.mean().item()
    assert 0.02 < rate < 0.8, f"test network should spike sometimes, not always (rate {rate})"
    assert torch.equal(ref.final.r, fus.final.r)
    torch.testing.assert_close(fus.final.v, ref.final.v, rtol=1e-12, atol=1e-12)
    if record:
        torch.testing.assert_close(fus.v, ref.v, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(fus.a, ref.a, rtol=1e-12, atol=1e-12)
    for name, a, b in zip(["currents", "w_rec", "v0", "a0", "z0"], g_fus, g_ref):
        assert b.abs().max() > 0 or name not in ("currents", "w_rec"), f"reference gradient of {name} is all zero"
        assert _rel(a, b) <= tol, f"gradient of {name}: relative error {_rel(a, b):.3g}"
    return ref


SWITCHES = list(itertools.product(["subtract", "zero"], [False, True], [False, True], [False, True],
                                  [False, True], [False, True]))


@pytest.mark.parametrize("reset,adaptive,refractory,detach_reset,detach_recurrent,leak_aware", SWITCHES)
def test_fused_equals_reference_float64(reset, adaptive, refractory, detach_reset, detach_recurrent, leak_aware):
    seed = SWITCHES.index((reset, adaptive, refractory, detach_reset, detach_recurrent, leak_aware))
    p, cur, w, st, _ = _case(seed, reset, adaptive, refractory, state=True)
    ref = _compare(p, cur, w, st, Surrogate(), detach_reset=detach_reset, detach_recurrent=detach_recurrent,
                   leak_aware=leak_aware)
    if refractory:  # the refractory period really held some spikes back
        free = simulate(cur.detach(), w.detach(), constants(p.replace(refractory_ms=0.0), dtype=torch.float64),
                        Surrogate(), ALIFState(*(s.detach() for s in st)))
        assert not torch.equal(free.z, ref.z)


@pytest.mark.parametrize("reset,adaptive,refractory,detach_reset,detach_recurrent,leak_aware", SWITCHES)
def test_masked_backward_product_equals_reference(monkeypatch, reset, adaptive, refractory, detach_reset,
                                                  detach_recurrent, leak_aware):
    # BACKWARD_DENSE_THRESHOLD = 1: at every step (but the first) dv[t] W only where sd[t-1] != 0
    monkeypatch.setattr(fused, "BACKWARD_DENSE_THRESHOLD", 1.0)
    seed = SWITCHES.index((reset, adaptive, refractory, detach_reset, detach_recurrent, leak_aware))
    p, cur, w, st, _ = _case(500 + seed, reset, adaptive, refractory, state=True)
    sur = Surrogate("triangle", width=0.3)  # compact support: many sd entries are exactly 0
    ref = _compare(p, cur, w, st, sur, record=True, detach_reset=detach_reset, detach_recurrent=detach_recurrent,
                   leak_aware=leak_aware)
    c = constants(p, dtype=torch.float64)
    u = (ref.v - c.v_th - c.beta * ref.a) / c.v_th if adaptive else (ref.v - c.v_th) / c.v_th
    zero = float((u.abs() >= 0.3).double().mean())
    assert 0.2 < zero < 0.98, f"the test network's sd should be partly zero (zero fraction {zero:.2f})"


@pytest.mark.parametrize("back", [0.0, 1.0])
@pytest.mark.parametrize("name", sorted(SHAPES))
def test_backward_product_masked_or_whole_every_shape(monkeypatch, name, back):
    monkeypatch.setattr(fused, "BACKWARD_DENSE_THRESHOLD", back)
    p, cur, w, st, _ = _case(600 + sorted(SHAPES).index(name), "zero", True, True, state=True)
    _compare(p, cur, w, st, Surrogate.make(name, width=0.5, peak=0.4), detach_reset=False, leak_aware=True)
    rng = np.random.default_rng(650 + sorted(SHAPES).index(name))
    x = _input_spikes(40, 3, 25, 0.1, torch.float64, 8)
    _compare_rsnn(_params(12, rng, "subtract", True, True), x, Surrogate.make(name, width=0.5, peak=0.4),
                  state=_random_state(3, 12, 4), detach_reset=False)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_every_surrogate_shape(name):
    p, cur, w, st, _ = _case(100 + sorted(SHAPES).index(name), "subtract", True, True)
    _compare(p, cur, w, st, Surrogate.make(name, width=0.7, peak=0.4), detach_reset=False)


@pytest.mark.parametrize("T,B,n", [(1, 1, 1), (2, 1, 3), (5, 2, 1)])
def test_tiny_shapes(T, B, n):
    p, cur, w, st, _ = _case(40 + T + n, "zero", True, True, T=T, B=B, n=n, state=True)
    with torch.no_grad():
        cur.mul_(3.0)  # make them spike
    ref, g_ref = _run(simulate, p, cur, w, st, Surrogate(), 1, torch.float64, True, detach_reset=False)
    fus, g_fus = _run(fused.simulate_fused, p, cur, w, st, Surrogate(), 1, torch.float64, True, detach_reset=False)
    assert torch.equal(ref.z, fus.z) and torch.equal(ref.final.r, fus.final.r)
    for a, b in zip(g_fus, g_ref):
        assert _rel(a, b) <= 1e-10


@pytest.mark.parametrize("dense", [0.0, 1.0])
def test_sparse_and_dense_paths_and_recorded_state(dense):
    # dense = 0: every step's recurrent input and weight gradient as a matmul; 1: always from spike lists
    p, cur, w, st, _ = _case(7, "zero", True, True, state=True)
    _compare(p, cur, w, st, Surrogate(), record=True, dense=dense, detach_reset=False)


def test_float32_spikes_identical_and_gradients_close():
    p, cur, w, st, _ = _case(11, "subtract", True, True, T=120, B=8, n=48, dtype=torch.float32)
    ref, g_ref = _run(simulate, p, cur, w, None, Surrogate(), 1, torch.float32, False)
    fus, g_fus = _run(fused.simulate_fused, p, cur, w, None, Surrogate(), 1, torch.float32, False)
    assert torch.equal(ref.z, fus.z)
    for a, b in zip(g_fus[:2], g_ref[:2]):
        assert _rel(a, b) < 1e-4


def _rsnn_pair(density, dtype, T=60, B=4, n_in=30, n=20, record=False):
    rng = np.random.default_rng(3)
    p = NeuronParams.mixed(n=n, alif_fraction=0.5, beta=0.3, tau_adapt_ms=(20, 200), rng=rng, refractory_ms=2.0)
    x = (torch.rand(T, B, n_in, generator=torch.Generator().manual_seed(0)) < density).to(dtype)
    windows = [(T // 2, T // 2 + 10), (T - 10, T)]
    out = {}
    for engine in ("reference", "fused"):
        net = RSNN(n_in, p, 3, generator=torch.Generator().manual_seed(5), dtype=dtype, engine=engine,
                   input_scale=6.0, detach_reset=False)
        o = net(x, windows, record_state=record)
        o.logits.pow(2).sum().add(o.z.sum() * 0.01).backward()
        out[engine] = (o, {k: q.grad.clone() for k, q in net.named_parameters()}, net)
    return out


@pytest.mark.parametrize("density", [0.1, 0.5])  # event-driven and dense input projection
def test_rsnn_engines_same_logits_and_parameter_gradients(density):
    out = _rsnn_pair(density, torch.float64)
    (o_r, g_r, _), (o_f, g_f, _) = out["reference"], out["fused"]
    assert torch.equal(o_r.z, o_f.z) and 0.01 < float(o_r.z.detach().mean()) < 0.5
    torch.testing.assert_close(o_f.logits, o_r.logits, rtol=1e-12, atol=1e-12)
    for k in g_r:
        assert _rel(g_f[k], g_r[k]) <= 1e-10, k
    assert g_f["w_rec"].diagonal().abs().max() == 0  # the self-connection mask still holds


def test_float32_rsnn_differences_are_threshold_rounding():
    # float32 with the event-driven input projection (inputs summed in another order than the
    # matmul): any spike that differs first must sit at threshold within float32 rounding
    out = _rsnn_pair(0.15, torch.float32, T=200, B=16, n_in=60, n=64, record=True)
    (o_r, g_r, net), (o_f, g_f, _) = out["reference"], out["fused"]
    assert float(o_r.z.detach().mean()) > 0.01
    diff = (o_r.z != o_f.z).reshape(o_r.z.shape[0], -1).any(1).nonzero()
    if len(diff):
        t = int(diff[0])
        c = net.consts
        x = (o_r.trajectory.v[t] - c.v_th - c.beta * o_r.trajectory.a[t]) / c.v_th
        where = o_r.z[t] != o_f.z[t]
        assert x[where].abs().max() < 1e-5, "a spike differs away from threshold"
    else:  # identical: gradients then agree to float32 rounding
        for k in g_r:
            assert _rel(g_f[k], g_r[k]) < 1e-4, k


def test_engine_selection(monkeypatch):
    sur = Surrogate()
    cpu = torch.device("cpu")
    assert fused.resolve_engine("auto", cpu, torch.float32, sur) == "fused"
    assert fused.resolve_engine("reference", cpu, torch.float32, sur) == "reference"
    assert fused.resolve_engine("auto", torch.device("cuda"), torch.float32, sur) == "reference"
    monkeypatch.setitem(fused._backend, "warned", False)
    with pytest.warns(RuntimeWarning, match="float16"):
        assert fused.resolve_engine("auto", cpu, torch.float16, sur) == "reference"
    with pytest.raises(ValueError, match="CPU only"):
        fused.resolve_engine("fused", torch.device("cuda"), torch.float32, sur)
    with pytest.raises(ValueError, match="engine must be one of"):
        fused.resolve_engine("fast", cpu, torch.float32, sur)
    with pytest.raises(ValueError, match="engine must be one of"):
        RSNN(2, NeuronParams(n=3), 1, engine="fast")
    # a backend that cannot be built: auto warns once and runs the reference engine
    monkeypatch.setitem(fused._backend, "module", None)
    monkeypatch.setitem(fused._backend, "error", "fused engine unavailable (test)")
    monkeypatch.setitem(fused._backend, "warned", False)
    net = RSNN(2, NeuronParams(n=3), 1)
    x = torch.ones(5, 1, 2)
    with pytest.warns(RuntimeWarning, match="fused engine unavailable"):
        net(x, [(0, 5)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net(x, [(0, 5)])  # no second warning
    with pytest.raises(ValueError, match="unavailable"):
        RSNN(2, NeuronParams(n=3), 1, engine="fused")(x, [(0, 5)])


def test_train_engine_key_validated_and_not_hashed():
    from cognet.training.trainer import config_hash

    base = build_config(task="dup-rev")
    # hashes of runs made before the key existed (runs keep their directories)
    assert config_hash(build_config()) == "2a6abd2d5a"
    assert config_hash(base) == "071434369d"
    for engine in ("fused", "reference"):
        assert config_hash(build_config(task="dup-rev", sets=[f"train.engine={engine}"])) == "071434369d"
    from cognet.core.errors import ConfigError

    with pytest.raises(ConfigError, match="train.engine"):
        build_config(sets=["train.engine=fast"])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_readout_matmul_equals_einsum(dtype):
    # RSNN.readout computes M @ z as one matmul; it must give einsum's numbers bit for bit
    # (runs made before keep their results)
    net = RSNN(3, NeuronParams(n=24), 4, dtype=dtype)
    g = torch.Generator().manual_seed(2)
    for T, B, windows in [(200, 16, [(190, 200)]), (120, 5, [(10, 30), (50, 70), (100, 120)])]:
        z = (torch.rand(T, B, 24, generator=g) < 0.05).to(dtype).requires_grad_()
        M = net.readout_weights(windows, T)
        expected = torch.nn.functional.linear(torch.einsum("wt,tbn->wbn", M, z), net.w_out, net.b_out)
        got = net.readout(z, windows)
        assert torch.equal(got, expected)
        G = torch.randn(got.shape, generator=g, dtype=dtype)
        assert torch.equal(torch.autograd.grad(got, z, G)[0], torch.autograd.grad(expected, z, G)[0])


def test_default_run_files_do_not_mention_the_engine_and_resume_on_the_recorded_engine(tmp_path, tiny_sets):
    """config.yaml of a default run is what it was before the engine key existed; a checkpoint
    records the engine its steps ran on, and a resumed `auto` run goes on with it (a checkpoint
    from before the fused engine existed resumes on the reference engine)."""
    import yaml

    from cognet.training import Trainer, build_config
    from cognet.training.io import load_tensors, save_tensors

    out = tmp_path / "run"
    cfg = build_config(task="xor", sets=tiny_sets)
    tr = Trainer(cfg, out_dir=out, progress=False)
    tr.run()
    assert "engine" not in yaml.safe_load((out / "config.yaml").read_text())["train"]
    tensors, meta = load_tensors(out / "checkpoint.safetensors")
    assert meta["engine"] == tr.engine_used()
    # an old checkpoint: no engine recorded
    del meta["engine"]
    save_tensors(out / "checkpoint.safetensors", tensors, meta)
    again = Trainer(cfg, out_dir=out, progress=False)
    assert again.load_checkpoint()
    assert again.net.engine == "reference"
    # the same run directory is accepted with an explicit engine (speed only, not identity)
    explicit = build_config(task="xor", sets=[*tiny_sets, "train.engine=reference"])
    assert Trainer(explicit, out_dir=out, progress=False).run()["resumed"] == "already complete"


# ---- the input projection fused into the kernels (simulate_fused_inputs, RSNN's fused path) ----

def _input_spikes(T, B, k, density, dtype, seed, graded=False):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(T, B, k, generator=g) < density).to(dtype)
    if graded:  # some non-binary inputs: the xv != 1 branch of the projection
        x = x * torch.where(torch.rand(T, B, k, generator=g) < 0.3, 0.5, 1.0).to(dtype)
    return x


def _rsnn_grads(p, x, engine, sur, state=None, **kw):
    T, B, n_in = x.shape
    net = RSNN(n_in, p, 3, generator=torch.Generator().manual_seed(5), dtype=x.dtype, engine=engine,
               input_scale=5.0, surrogate=sur, **kw)
    st = None
    if state is not None:
        st = ALIFState(*(s.clone().requires_grad_() for s in state[:3]), state[3].clone())
    o = net(x, [(T // 2, T // 2 + 8), (T - 8, T)], state=st)
    g = torch.Generator().manual_seed(9)
    loss = o.logits.pow(2).sum() + (o.z * torch.randn(o.z.shape, generator=g, dtype=x.dtype)).sum() * 0.1
    loss = loss + (o.trajectory.final.v * torch.randn(B, net.n, generator=g, dtype=x.dtype)).sum()
    leaves = [q for _, q in net.named_parameters()] + ([st.v, st.a, st.z] if st is not None else [])
    names = [k for k, _ in net.named_parameters()] + (["v0", "a0", "z0"] if st is not None else [])
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    return o, {k: torch.zeros_like(q) if gr is None else gr for k, q, gr in zip(names, leaves, grads)}


def _compare_rsnn(p, x, sur, state=None, tol=1e-10, **kw):
    o_r, g_r = _rsnn_grads(p, x, "reference", sur, state, **kw)
    o_f, g_f = _rsnn_grads(p, x, "fused", sur, state, **kw)
    assert type(o_f.z.grad_fn).__name__ == "_FusedInputALIFBackward"  # the fused projection ran
    assert torch.equal(o_r.z, o_f.z), f"{int((o_r.z != o_f.z).sum())} spikes differ"
    rate = float(o_r.z.detach().mean())
    assert 0.02 < rate < 0.8, f"test network should spike sometimes, not always (rate {rate})"
    torch.testing.assert_close(o_f.logits, o_r.logits, rtol=1e-12, atol=1e-12)
    for k in g_r:
        assert g_r[k].abs().max() > 0 or k in ("v0", "a0", "z0"), f"reference gradient of {k} is all zero"
        assert _rel(g_f[k], g_r[k]) <= tol, f"gradient of {k}: relative error {_rel(g_f[k], g_r[k]):.3g}"
    return o_r


def _random_state(B, n, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, n, generator=g, dtype=torch.float64), torch.rand(B, n, generator=g, dtype=torch.float64),
            (torch.rand(B, n, generator=g, dtype=torch.float64) < 0.3).double(),
            torch.randint(0, 2, (B, n), generator=g).double())


@pytest.mark.parametrize("reset,adaptive,refractory,detach_reset,detach_recurrent,leak_aware", SWITCHES)
def test_fused_inputs_rsnn_equals_reference_float64(reset, adaptive, refractory, detach_reset, detach_recurrent,
                                                    leak_aware):
    seed = SWITCHES.index((reset, adaptive, refractory, detach_reset, detach_recurrent, leak_aware))
    rng = np.random.default_rng(200 + seed)
    n, B = 12, 3
    p = _params(n, rng, reset, adaptive, refractory)
    x = _input_spikes(40, B, 25, 0.1, torch.float64, seed, graded=seed % 2 == 1)
    _compare_rsnn(p, x, Surrogate(), state=_random_state(B, n, seed) if seed % 3 else None,
                  detach_reset=detach_reset, detach_recurrent=detach_recurrent, leak_aware=leak_aware)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_fused_inputs_every_surrogate_shape(name):
    rng = np.random.default_rng(300 + sorted(SHAPES).index(name))
    p = _params(12, rng, "subtract", True, True)
    x = _input_spikes(40, 3, 25, 0.1, torch.float64, 7)
    _compare_rsnn(p, x, Surrogate.make(name, width=0.7, peak=0.4), detach_reset=False, leak_aware=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("record,dense", [(False, fused.DENSE_THRESHOLD), (True, 0.0), (True, 0.15), (True, 1.0)])
def test_fused_inputs_bit_identical_to_projection_then_kernel(dtype, record, dense):
    # the fused projection is the same sum in the same order as project_inputs: every spike and
    # every recorded v and a bit for bit as simulate_fused(project_inputs(x, w_in)), in float32 too.
    # dense (one threshold for inputs and spikes): 0 = inputs dense (unfused: one matmul) and every
    # recurrent step a matmul; 0.15 = fused inputs (~11 % nonzero), recurrent steps mixed; 1 = all events
    rng = np.random.default_rng(21)
    p = _params(40, rng, "zero", True, True)
    c = constants(p, dtype=dtype)
    x = _input_spikes(150, 6, 50, 0.12, dtype, 3, graded=True)
    g = torch.Generator().manual_seed(4)
    w_in = (torch.randn(40, 50, generator=g, dtype=dtype) * 0.8).requires_grad_()
    w = (torch.randn(40, 40, generator=g, dtype=dtype) * 0.3).requires_grad_()
    kw = dict(record_state=record, detach_reset=False, dense_threshold=dense)
    a = fused.simulate_fused_inputs(x, w_in, w, c, Surrogate(), **kw)
    # project_inputs at the same threshold: at dense 0 both take the matmul (whose summation order
    # is the BLAS kernel's: on AVX-512 machines it differs from the event sum's in float64's last bit)
    b = fused.simulate_fused(fused.project_inputs(x, w_in, dense), w, c, Surrogate(), **kw)
    x_dense = float(torch.count_nonzero(x)) > dense * x.numel()
    assert type(a.z.grad_fn).__name__ == ("_FusedALIFBackward" if x_dense else "_FusedInputALIFBackward")
    assert 0.02 < float(a.z.detach().mean()) < 0.5
    if dense == 0.15:  # both recurrent paths taken
        frac = (a.z.detach() != 0).double().mean((1, 2))
        assert bool((frac > dense).any()) and bool((frac <= dense).any())
    assert torch.equal(a.z, b.z) and torch.equal(a.final.v, b.final.v) and torch.equal(a.final.a, b.final.a)
    assert torch.equal(a.final.r, b.final.r)
    if record:
        assert torch.equal(a.v, b.v) and torch.equal(a.a, b.a)
    G = torch.randn(a.z.shape, generator=g, dtype=dtype)
    ga = torch.autograd.grad((a.z * G).sum() + a.final.v.sum(), [w_in, w])
    gb = torch.autograd.grad((b.z * G).sum() + b.final.v.sum(), [w_in, w])
    for u, v in zip(ga, gb):  # dW_in summed over the steps in another order (backward in time)
        assert _rel(u, v) <= (1e-12 if dtype == torch.float64 else 1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fused_inputs_float32_same_spikes_as_reference(seed):
    rng = np.random.default_rng(400 + seed)
    p = NeuronParams.mixed(n=48, alif_fraction=0.5, beta=0.3, tau_adapt_ms=(20, 200), rng=rng, refractory_ms=2.0)
    x = _input_spikes(150, 8, 40, 0.08, torch.float32, seed)
    o_r, g_r = _rsnn_grads(p, x, "reference", Surrogate(), detach_reset=False)
    o_f, g_f = _rsnn_grads(p, x, "fused", Surrogate(), detach_reset=False)
    assert type(o_f.z.grad_fn).__name__ == "_FusedInputALIFBackward"
    assert 0.01 < float(o_r.z.detach().mean()) < 0.5
    assert torch.equal(o_r.z, o_f.z)
    for k in g_r:
        assert _rel(g_f[k], g_r[k]) < 1e-4, k


def test_fused_inputs_fallbacks_dense_and_differentiable_x():
    rng = np.random.default_rng(5)
    p = _params(12, rng, "subtract", True, False)
    # dense x (more than DENSE_THRESHOLD nonzero): one matmul, then the kernel given the currents
    x = _input_spikes(40, 3, 25, 0.5, torch.float64, 1)
    assert float((x != 0).double().mean()) > fused.DENSE_THRESHOLD
    o_r, g_r = _rsnn_grads(p, x * 0.3, "reference", Surrogate())
    o_f, g_f = _rsnn_grads(p, x * 0.3, "fused", Surrogate())
    assert type(o_f.z.grad_fn).__name__ == "_FusedALIFBackward"
    assert torch.equal(o_r.z, o_f.z) and 0.02 < float(o_r.z.detach().mean()) < 0.8
    for k in g_r:
        assert _rel(g_f[k], g_r[k]) <= 1e-10, k
    # x that needs a gradient: the currents as a matmul, and dL/dx through it
    c = constants(p, dtype=torch.float64)
    xs = _input_spikes(40, 3, 25, 0.1, torch.float64, 2).requires_grad_()
    w_in = torch.randn(12, 25, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 3
    w = torch.randn(12, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 0.5
    a = fused.simulate_fused_inputs(xs, w_in, w, c, Surrogate())
    b = simulate(torch.nn.functional.linear(xs, w_in), w, c, Surrogate())
    assert type(a.z.grad_fn).__name__ == "_FusedALIFBackward"
    assert torch.equal(a.z, b.z)
    G = torch.randn(a.z.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    assert _rel(torch.autograd.grad((a.z * G).sum(), xs)[0], torch.autograd.grad((b.z * G).sum(), xs)[0]) <= 1e-10


def test_input_events_density_decision_and_contents():
    # one C++ scan: the events are x's nonzero entries in row-major order, and None exactly when
    # more than dense_threshold of x is nonzero (the decision a count_nonzero would make)
    g = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.float64):
        for density in (0.0, 0.05, 0.19, 0.21, 0.6):
            x = (torch.rand(30, 4, 17, generator=g) < density).to(dtype)
            x[3] = 0.0  # a silent step
            ev = fused.input_events(x)
            dense = float(torch.count_nonzero(x)) > fused.DENSE_THRESHOLD * x.numel()
            assert (ev is None) == dense
            if ev is not None:
                _, ptr, idx = ev
                nz = x.reshape(-1, 17).nonzero()
                assert torch.equal(idx.long(), nz[:, 1])
                assert torch.equal(ptr.diff(), torch.bincount(nz[:, 0], minlength=120))
    # exactly at the threshold: sparse; one more nonzero entry: dense
    x = torch.zeros(10, 2, 5)
    limit = int(fused.DENSE_THRESHOLD * x.numel())
    x.view(-1)[torch.randperm(x.numel(), generator=g)[:limit]] = 1.0
    assert fused.input_events(x) is not None
    x.view(-1)[(x.view(-1) == 0).nonzero()[0]] = 1.0
    assert fused.input_events(x) is None
    assert fused.input_events(torch.zeros(0, 2, 5)) is None
    assert fused.input_events(torch.ones(4, 2, 5).requires_grad_()) is None


@pytest.mark.parametrize("n", [7, 100, 1030])  # the kernel's blocks: tail only; 64 + 8s + tail; 16 x 64 + tail
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_project_inputs_is_the_ordered_column_sum(dtype, n):
    # project_inputs (event-driven) adds the active inputs' columns in index order, from 0, and its
    # weight gradient adds x[r, j] G[r] over the rows r = (t, b) in ascending order, from 0
    x = _input_spikes(20, 3, 30, 0.15, dtype, 8, graded=True)
    w_in = torch.randn(n, 30, dtype=dtype, generator=torch.Generator().manual_seed(1)).requires_grad_()
    got = fused.project_inputs(x, w_in)
    assert type(got.grad_fn.next_functions[0][0]).__name__ == "_SparseProjectionBackward"  # under a view
    want = torch.zeros(20, 3, n, dtype=dtype)
    with torch.no_grad():
        for t in range(20):
            for b in range(3):
                for j in range(30):
                    xv = x[t, b, j]
                    if xv != 0:
                        want[t, b] += w_in[:, j] if xv == 1 else xv * w_in[:, j]
    assert torch.equal(got.detach(), want)
    G = torch.randn(got.shape, dtype=dtype, generator=torch.Generator().manual_seed(2))
    gw = torch.autograd.grad((got * G).sum(), w_in)[0]
    torch.testing.assert_close(gw, torch.einsum("tbn,tbk->nk", G, x))
    want_gw = torch.zeros(30, n, dtype=dtype)
    for t in range(20):
        for b in range(3):
            for j in range(30):
                xv = x[t, b, j]
                if xv != 0:
                    want_gw[j] += G[t, b] if xv == 1 else xv * G[t, b]
    assert torch.equal(gw, want_gw.t())


@pytest.mark.parametrize("density", [0.1, 0.5])  # fused input projection / dense x (currents given)
@pytest.mark.parametrize("loss_on", ["logits", "z", "both"])
def test_fused_readout_gradient_folded_into_the_kernel(density, loss_on):
    # RSNN's fused path returns the filtered readout from the autograd function and adds its
    # gradient into dL/dz inside the kernel: logits bit for bit those of RSNN.readout, every
    # parameter's gradient as the reference's, whether the loss reads the logits, z, or both
    rng = np.random.default_rng(17)
    p = _params(14, rng, "zero", True, True)
    x = _input_spikes(50, 3, 25, density, torch.float64, 4) * (0.3 if density > 0.3 else 1.0)
    windows = [(10, 20), (25, 35), (40, 50)]
    grads, outs = {}, {}
    for engine in ("reference", "fused"):
        net = RSNN(25, p, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64, engine=engine,
                   input_scale=5.0, detach_reset=False)
        o = net(x, windows)
        g = torch.Generator().manual_seed(1)
        loss = 0.0
        if loss_on in ("logits", "both"):
            loss = loss + (o.logits * torch.randn(o.logits.shape, generator=g, dtype=torch.float64)).sum()
        if loss_on in ("z", "both"):
            loss = loss + (o.z * torch.randn(o.z.shape, generator=g, dtype=torch.float64)).sum()
        names = [k for k, q in net.named_parameters()]
        gr = torch.autograd.grad(loss, list(net.parameters()), allow_unused=True)
        grads[engine] = {k: torch.zeros_like(q) if v is None else v for k, q, v in zip(names, net.parameters(), gr)}
        outs[engine] = (o, net)
    (o_r, _), (o_f, net_f) = outs["reference"], outs["fused"]
    expected = "_FusedInputALIFBackward" if density < fused.DENSE_THRESHOLD else "_FusedALIFBackward"
    assert type(o_f.z.grad_fn).__name__ == expected
    assert torch.equal(o_r.z, o_f.z) and 0.02 < float(o_r.z.detach().mean()) < 0.8
    with torch.no_grad():
        assert torch.equal(o_f.logits, net_f.readout(o_f.z, windows))
    for k in grads["reference"]:
        want = grads["reference"][k]
        if k in ("w_in", "w_rec") or loss_on != "z":
            assert want.abs().max() > 0, k
        assert _rel(grads["fused"][k], want) <= 1e-10, k


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rate_penalty_gradient_reaches_the_kernel_per_neuron_and_equals_torchs_mean(monkeypatch, dtype):
    # rules.base.rate_penalty's gradient of z is one value per neuron broadcast over [T, B]: the
    # kernel adds it per row (no [T, B, n] tensor); the same numbers as torch's z.mean backward
    import rules.base as rb

    seen = []
    real = fused._grads_in

    def spy(ctx, z, gz, *rest):
        out = real(ctx, z, gz, *rest)
        seen.append(out[0][0].dim())
        return out

    monkeypatch.setattr(fused, "_grads_in", spy)

    def grads(custom):
        p = NeuronParams(n=40, beta=[0.0] * 20 + [0.5] * 20, refractory_ms=2.0)
        net = RSNN(30, p, 3, generator=torch.Generator().manual_seed(1), dtype=dtype, engine="fused",
                   input_scale=5.0)
        x = (torch.rand(80, 6, 30, generator=torch.Generator().manual_seed(2)) < 0.1).to(dtype)
        o = net(x, [(40, 50), (70, 80)])
        if custom:
            reg = rb.rate_penalty(o.z, 1.0, 10.0, 0.5)
        else:
            rates = o.z.mean(dim=(0, 1)) * 1000.0
            reg = 0.5 * ((rb._deviation(rates, 10.0, "neuron") / rb.rate_scale(10.0)) ** 2).mean()
        (o.logits.pow(2).sum() + reg).backward()
        return {k: q.grad.clone() for k, q in net.named_parameters()}

    a = grads(True)
    b = grads(False)
    assert seen == [1, 3]  # per neuron with rate_penalty, a whole [T, B, n] tensor with torch's mean
    for k in a:
        assert torch.equal(a[k], b[k]), k


_FAULTS = r"""
import resource, torch
from cognet.core import fused
mod = fused.load_backend()
T, B, N = 64, 128, 1024  # the kernel's [T, B, n] outputs are 32 MiB each
g = torch.Generator().manual_seed(0)
cur = torch.rand(T, B, N, generator=g) * 0.12
w = torch.randn(N, N, generator=g) * 0.02
z0 = torch.zeros(B, N); one = torch.ones(N)
def forward():
    return mod.forward(cur, w, z0, z0, z0, z0, one * 0.95, one * 0.99, one, one * 0.1, one * 2,
                       2 | 4 | 32 | 64, 0, 1.0, 0.3, 0.2)
forward()  # the first call faults its memory in (its outputs are freed at once)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(2):
    forward()
print(fused._malloc["kept"], resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(fused.glibc() is None, reason="glibc's mallopt only")
def test_keep_freed_memory_reuses_large_blocks():
    """With the fused engine's malloc setting, a kernel call's freed 32 MiB outputs are reused by
    the next call (no page faults); with glibc's defaults (COGNET_MALLOC=default) each one is
    mmapped anew and faulted in page by page (8192 faults of 4 KiB each)."""
    import os
    import subprocess
    import sys

    def faults(env_value):
        env = dict(os.environ)
        env.pop("COGNET_MALLOC", None)
        if env_value is not None:
            env["COGNET_MALLOC"] = env_value
        out = subprocess.run([sys.executable, "-c", _FAULTS], env=env, capture_output=True, text=True, check=True)
        kept, n = out.stdout.split()
        return kept == "True", int(n)

    kept, n_kept = faults(None)
    default, n_default = faults("default")
    assert kept and not default
    assert faults("keep")[0]
    assert n_default >= 2 * 4096  # two calls' 2 x 32 MiB faulted in again (4 KiB pages; fewer if huge pages)
    assert n_kept < n_default / 20


def test_keep_freed_memory_warns_about_an_unknown_setting(monkeypatch):
    monkeypatch.setattr(fused, "_malloc", {"done": False, "kept": False})
    monkeypatch.setenv("COGNET_MALLOC", "defualt")
    with pytest.warns(RuntimeWarning, match="COGNET_MALLOC='defualt' is neither 'default' nor 'keep'"):
        fused.keep_freed_memory()
