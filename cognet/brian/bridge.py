"""Brian2 bridge: rebuild a trained :class:`~cognet.core.network.RSNN` in Brian2 and replay trials.

The Brian2 model is generated from the network's :class:`~cognet.core.params.NeuronParams`
(:func:`neuron_model`); no neuron constant is written twice. With ``dt`` the Brian2 step::

    dv/dt = -v / tau_m                      (exact integration: v <- alpha v per step)
    da/dt = -a / tau_a                      (ALIF only;          a <- rho a per step)
    threshold:  v - v_th - beta a > 0       (strict, as the torch Heaviside)
    reset:      v -= v_th / alpha           (reset="subtract")  or  v = 0 (reset="zero")
                a += 1 / rho                (ALIF only)
    refractory: t_ref = n_ref dt, membrane keeps integrating (no "unless refractory")
    input:      v_post += w_in              (Synapses, event-driven on_pre, no delay)
    recurrent:  v_post += w_rec             (Synapses, event-driven on_pre, one-step delay)

Batch normalisation through time (``network.bntt``, fixed at evaluation to
``I'[t] = gain[t] * W_in x[t] + offset[t]``, :mod:`cognet.core.bntt`): the input synapses
become ``v_post += w_in * bn_gain(t, j)`` and ``v += bn_offset(t, i)`` runs once per training
step after the decay (``groups`` slot, after the state update, before the synapses), both
``TimedArray`` s of ``[T, B n]`` values on the training step.

Schedule. The network runs with ``['start', 'groups', 'synapses', 'thresholds', 'resets',
'end']`` (synapses before thresholds; Brian2's default is thresholds first), and the input
SpikeGeneratorGroup emits in the ``start`` slot. Within step ``t``: the state decays
(``v <- alpha v``, ``a <- rho a``), the synapses add this step's input spikes ``W_in x[t]``
and the recurrent spikes of step ``t-1`` (the one-step delay comes from the schedule), then
the threshold is checked, then the reset adds its amount, which the next step decays once;
that is why the reset and the adaptation jump are divided by the decay factors. The result
is, step for step, the torch update of :mod:`cognet.core.functional`::

    v[t] = alpha v[t-1] + W_in x[t] + W_rec z[t-1] - v_th z[t-1]    (or zero reset)
    a[t] = rho a[t-1] + z[t-1];   z[t] = H(v[t] - v_th - beta a[t]),  0 while refractory

so in float64 the spike trains are identical (up to floating-point ties at threshold).

Many trials run in one Brian2 simulation: trial ``b`` is a disconnected copy of the
network on neurons ``b*n ... b*n + n - 1`` of one NeuronGroup (and inputs
``b*n_in ...``), so hundreds of trials cost one build.

Finer time steps (continuous-time check): :func:`simulate_network` with ``params =
neurons.with_dt(dt_fine)`` keeps all time constants and the refractory period in ms, puts the
input spikes of coarse step ``k`` at time ``k * dt_coarse``, and keeps the recurrent delay
at ``rec_delay_ms`` (default: one coarse step) with a synaptic delay of
``rec_delay_ms - dt_fine`` on top of the one-step delay of the schedule.

Code generation targets: ``numpy`` (no compiler, Python overhead each step), ``cython``
(runtime; compiled code objects cached on disk, the first compile on a fresh machine takes
30-50 s) and ``cpp_standalone`` (one C++ project per network shape, in
``$COGNET_BRIAN2_DIR`` or ``~/.cache/cognet/brian2-standalone``; files whose content did not
change are not rewritten, so a rebuild only recompiles what changed, yet main.cpp holds the
array sizes and is recompiled for new inputs). ``target=None`` picks the fastest for the job:
``cython`` once its compiled code for this model structure is cached, ``numpy`` before that
and when no compiler works (with a warning); see :func:`resolve_target`. A compiled target
that fails to build falls back to ``numpy`` with a warning.
"""

from __future__ import annotations

import gc
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np

from cognet.core.params import NeuronParams

TARGETS = ("numpy", "cython", "cpp_standalone")
#: the compiled target chosen by default once its code is cached (see :func:`resolve_target`)
DEFAULT_TARGET = "cython"
#: Brian2's exponential-Euler integrator writes the exact solution v <- v exp(-dt/tau_m),
#: a <- a exp(-dt/tau_a) for these uncoupled linear equations (the same code as
#: method="exact", checked in the tests) without sympy's matrix exponential (1-2 s per build)
INTEGRATOR = "exponential_euler"
SCHEDULE = ["start", "groups", "synapses", "thresholds", "resets", "end"]

_UNITS = {"1": None, "ms": "ms"}


class Brian2Unavailable(RuntimeError):
    """Brian2 cannot be imported or no code generation target works."""


# ---------------------------------------------------------------------------------------
# model generation
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NeuronModel:
    """Brian2 description of a population, generated from :class:`NeuronParams`.

    ``constants`` go into the run namespace (values shared by all neurons); ``per_neuron``
    become ``(constant)`` parameters of the NeuronGroup (one value per neuron). Each entry is
    ``name -> (value, unit)`` with unit ``"1"`` (dimensionless) or ``"ms"``.
    """

    equations: str
    threshold: str
    reset: str
    refractory: Optional[str]
    constants: Dict[str, Tuple[float, str]]
    per_neuron: Dict[str, Tuple[np.ndarray, str]]
    dt_ms: float
    n: int


def neuron_model(p: NeuronParams) -> NeuronModel:
    """Generate the Brian2 equations, threshold, reset and refractoriness of ``p``.

    A quantity equal for all neurons becomes a namespace constant, otherwise a per-neuron
    parameter line (``tau_m : second (constant)``) in the equations; LIF-only populations
    get no adaptation variable, and populations without a refractory period of more than one
    step get no ``refractory``.
    """
    consts: Dict[str, Tuple[float, str]] = {}
    per: Dict[str, Tuple[np.ndarray, str]] = {}

    def put(name: str, values: np.ndarray, unit: str) -> None:
        values = np.asarray(values, dtype=np.float64)
        if np.all(values == values[0]):
            consts[name] = (float(values[0]), unit)
        else:
            per[name] = (values.copy(), unit)

    lines = ["dv/dt = -v / tau_m : 1"]
    put("tau_m", p.array("tau_mem_ms"), "ms")
    put("v_th", p.array("v_th"), "1")
    adaptive = bool(p.adaptive.any())
    if adaptive:
        lines.append("da/dt = -a / tau_a : 1")
        put("tau_a", p.array("tau_adapt_ms"), "ms")
        put("beta", p.array("beta"), "1")
        put("a_jump", 1.0 / p.rho, "1")
        threshold = "v - v_th - beta * a > 0"
    else:
        threshold = "v - v_th > 0"
    if p.reset == "subtract":
        put("v_reset", p.array("v_th") / p.alpha, "1")
        reset = ["v -= v_reset"]
    else:
        reset = ["v = 0"]
    if adaptive:
        reset.append("a += a_jump")
    n_ref = p.refractory_steps
    refractory = None
    if (n_ref > 1).any():
        put("t_ref", n_ref * p.dt_ms, "ms")
        refractory = "t_ref"
    for name, (_, unit) in per.items():
        lines.append(f"{name} : {'second' if unit == 'ms' else '1'} (constant)")
    return NeuronModel(
        equations="\n".join(lines), threshold=threshold, reset="\n".join(reset), refractory=refractory,
        constants=consts, per_neuron=per, dt_ms=p.dt_ms, n=p.n,
    )


# ---------------------------------------------------------------------------------------
# targets
# ---------------------------------------------------------------------------------------
_COMPILER_OK: Optional[bool] = None
_WARNED_NO_COMPILER = False


def compiler_works() -> bool:
    """Whether a C++ compiler builds a trivial program and Cython is installed (cached)."""
    global _COMPILER_OK
    if _COMPILER_OK is None:
        cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
        ok = False
        if cxx and importlib.util.find_spec("Cython") is not None:
            with tempfile.TemporaryDirectory() as tmp:
                src = Path(tmp) / "t.cpp"
                src.write_text("int main() { return 0; }\n")
                try:
                    ok = subprocess.run([cxx, str(src), "-o", str(Path(tmp) / "t")], capture_output=True,
                                        timeout=60).returncode == 0
                except (OSError, subprocess.SubprocessError):
                    ok = False
        _COMPILER_OK = ok
    return _COMPILER_OK


def _cython_signature(model: NeuronModel, delayed: bool) -> str:
    """Key of the code Brian2's cython target compiles for this model structure."""
    import brian2

    parts = (brian2.__version__, sys.version_info[:2], model.equations, model.threshold, model.reset,
             model.refractory, delayed, sorted(model.constants), SCHEDULE, INTEGRATOR)
    return hashlib.sha1(repr(parts).encode()).hexdigest()[:16]


def _cython_marker(model: NeuronModel, delayed: bool) -> Optional[Path]:
    try:
        from brian2.codegen.runtime.cython_rt.extension_manager import get_cython_cache_dir

        cache = Path(get_cython_cache_dir())
    except Exception:  # pragma: no cover - brian2 internals moved
        return None
    return cache / "cognet-warm" / _cython_signature(model, delayed)


def cython_is_warm(model: NeuronModel, delayed: bool) -> bool:
    """Whether a cython run of this model structure has completed with the current cache."""
    marker = _cython_marker(model, delayed)
    return marker is not None and marker.exists()


def resolve_target(target: Optional[str], model: Optional[NeuronModel] = None, delayed: bool = False) -> str:
    """The code generation target to use.

    An explicit ``target`` (or ``$COGNET_BRIAN2_TARGET``) wins. Otherwise ``cython`` when its
    compiled code for this model structure is already cached, else ``numpy``; without a
    working compiler ``numpy``, with a warning. Measured with benchmarks/brian2_verify.py
    (256 trials x 500 steps x 128 neurons, 4.2 M synapses, 2 cores): the Brian2 run takes
    2.3-2.7 s with warm cython, 3.3-3.4 s with numpy, 8-9 s with cpp_standalone (main.cpp,
    which holds the input array sizes, is recompiled for every new input set); build and
    imports make the whole verification cost about the same CPU time with numpy (7.3-7.7 s)
    as with warm cython (8.0-8.8 s), while a cold cython compile costs 30-70 s. So numpy
    until the cache is warm (run once with ``target="cython"``), then cython, which wins on
    longer simulations (finer steps) by about 2 ms per step.
    """
    global _WARNED_NO_COMPILER
    if target is None:
        target = os.environ.get("COGNET_BRIAN2_TARGET") or None
    if target is not None:
        if target not in TARGETS:
            raise ValueError(f"unknown Brian2 target {target!r}; choose one of {', '.join(TARGETS)}")
        return target
    if not compiler_works():
        if not _WARNED_NO_COMPILER:
            warnings.warn("no working C++ compiler (or Cython) found: Brian2 runs with the numpy target; "
                          "install a compiler for the faster cython / cpp_standalone targets",
                          RuntimeWarning, stacklevel=3)
            _WARNED_NO_COMPILER = True
        return "numpy"
    if model is not None and cython_is_warm(model, delayed):
        return DEFAULT_TARGET
    return "numpy"


def standalone_dir() -> Path:
    base = os.environ.get("COGNET_BRIAN2_DIR")
    return Path(base) if base else Path.home() / ".cache" / "cognet" / "brian2-standalone"


# ---------------------------------------------------------------------------------------
# simulation
# ---------------------------------------------------------------------------------------
@dataclass
class Brian2Run:
    """Result of :func:`simulate`: spikes ``z`` ``[T, B, n]`` (uint8) at step ``dt_ms``."""

    z: np.ndarray
    dt_ms: float
    target: str
    build_s: float
    run_s: float
    wall_s: float
    n_synapses: int
    info: Dict[str, Any] = field(default_factory=dict)


def _import_brian2():
    try:
        import brian2  # noqa: F401
    except Exception as exc:  # pragma: no cover - depends on the installation
        raise Brian2Unavailable(f"brian2 cannot be imported ({exc}); install brian2 and numpy<2.4") from exc
    return brian2


def simulate(
    w_in: np.ndarray,
    w_rec: np.ndarray,
    params: NeuronParams,
    x: np.ndarray,
    input_dt_ms: Optional[float] = None,
    rec_delay_ms: Optional[float] = None,
    target: Optional[str] = None,
    input_gain: Optional[np.ndarray] = None,
    input_offset: Optional[np.ndarray] = None,
) -> Brian2Run:
    """Simulate ``B`` trials of the network in one Brian2 run.

    Args:
        w_in: input weights ``[n, n_in]`` (row = postsynaptic neuron).
        w_rec: recurrent weights ``[n, n]`` with any mask applied (zeros are not connected).
        params: neuron parameters; their ``dt_ms`` is the Brian2 step.
        x: input spikes ``[T_in, B, n_in]`` on a grid of ``input_dt_ms`` (default: the Brian2
            step); spike ``x[k]`` arrives at time ``k * input_dt_ms``, which must be a whole
            number of Brian2 steps.
        rec_delay_ms: recurrent delay (default one Brian2 step; at least one step and a whole
            number of steps).
        target: ``numpy``, ``cython``, ``cpp_standalone`` or None (see :func:`resolve_target`).
        input_gain, input_offset: the fixed BNTT map per input step ``[T_in, n]`` (both or
            neither; see the module docstring).
    """
    w_in = np.asarray(w_in, dtype=np.float64)
    w_rec = np.asarray(w_rec, dtype=np.float64)
    x = np.asarray(x)
    n = params.n
    if w_rec.shape != (n, n):
        raise ValueError(f"w_rec must be [{n}, {n}] for n={n} neurons, got {w_rec.shape}")
    if w_in.ndim != 2 or w_in.shape[0] != n:
        raise ValueError(f"w_in must be [{n}, n_in], got {w_in.shape}")
    if x.ndim != 3 or x.shape[2] != w_in.shape[1]:
        raise ValueError(f"x must be [T, B, {w_in.shape[1]}], got {x.shape}")
    if not (np.isfinite(w_in).all() and np.isfinite(w_rec).all()):
        raise ValueError("weights contain NaN or inf")
    dt = params.dt_ms
    input_dt = dt if input_dt_ms is None else float(input_dt_ms)
    factor = input_dt / dt
    if factor < 1 - 1e-9 or abs(factor - round(factor)) > 1e-6:
        raise ValueError(f"input_dt_ms={input_dt} must be a whole multiple of the Brian2 dt_ms={dt}")
    factor = int(round(factor))
    rec_delay = dt if rec_delay_ms is None else float(rec_delay_ms)
    delay_steps = rec_delay / dt
    if delay_steps < 1 - 1e-9 or abs(delay_steps - round(delay_steps)) > 1e-6:
        raise ValueError(f"rec_delay_ms={rec_delay} must be a whole number (>= 1) of Brian2 steps of {dt} ms")
    delay_steps = int(round(delay_steps))
    if x.size and ((x != 0) & (x != 1)).any():
        raise ValueError("input spikes x must be 0 or 1")
    T_in, B, n_in = x.shape
    T = T_in * factor
    bn = None
    if (input_gain is None) != (input_offset is None):
        raise ValueError("input_gain and input_offset come together (the BNTT map), got only one")
    if input_gain is not None:
        bn = (np.asarray(input_gain, dtype=np.float64), np.asarray(input_offset, dtype=np.float64))
        for name, arr in zip(("input_gain", "input_offset"), bn):
            if arr.shape != (T_in, n):
                raise ValueError(f"{name} must be [{T_in}, {n}] (input steps, neurons), got {arr.shape}")
            if not np.isfinite(arr).all():
                raise ValueError(f"{name} contains NaN or inf")
    chosen = resolve_target(target, neuron_model(params), delay_steps > 1)
    try:
        return _simulate(w_in, w_rec, params, x, factor, delay_steps, T, chosen, bn)
    except Brian2Unavailable:
        raise
    except Exception as exc:
        if chosen == "numpy" or not _looks_like_build_failure(exc):
            raise
        warnings.warn(f"Brian2 target {chosen!r} failed to build ({type(exc).__name__}: {str(exc)[:200]}); "
                      "falling back to the numpy target", RuntimeWarning, stacklevel=2)
        return _simulate(w_in, w_rec, params, x, factor, delay_steps, T, "numpy", bn)


def _looks_like_build_failure(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return any(k in text for k in ("compil", "cython", "gcc", "g++", "make", "distutils", "setuptools",
                                   "project", "linker", "build", "command"))


def _simulate(w_in, w_rec, params, x, factor, delay_steps, T, target, bn=None) -> Brian2Run:
    b2 = _import_brian2()
    from brian2 import ms

    t_start = time.perf_counter()
    model = neuron_model(params)
    n = params.n
    T_in, B, n_in = x.shape
    dt = params.dt_ms * ms

    # input spikes: trial b's input neuron i is generator neuron b*n_in + i
    k, b, i = np.nonzero(x)
    gen_idx = (b * n_in + i).astype(np.int64)
    gen_times = (k * factor).astype(np.float64) * params.dt_ms  # ms, on the Brian2 grid
    # synapses of all copies
    post_in, pre_in = np.nonzero(w_in)
    post_rec, pre_rec = np.nonzero(w_rec)
    offs = np.arange(B, dtype=np.int64)
    syn_in_i = (offs[:, None] * n_in + pre_in[None, :]).ravel()
    syn_in_j = (offs[:, None] * n + post_in[None, :]).ravel()
    syn_in_w = np.tile(w_in[post_in, pre_in], B)
    syn_rec_i = (offs[:, None] * n + pre_rec[None, :]).ravel()
    syn_rec_j = (offs[:, None] * n + post_rec[None, :]).ravel()
    syn_rec_w = np.tile(w_rec[post_rec, pre_rec], B)

    namespace = {name: (val * ms if unit == "ms" else val) for name, (val, unit) in model.constants.items()}
    if bn is not None:  # trial b's neuron j is group neuron b*n + j: tile the [T_in, n] maps B times
        input_dt = params.dt_ms * factor * ms
        namespace["bn_gain"] = b2.TimedArray(np.tile(bn[0], (1, B)), dt=input_dt, name="bn_gain")
        namespace["bn_offset"] = b2.TimedArray(np.tile(bn[1], (1, B)), dt=input_dt, name="bn_offset")

    standalone = target == "cpp_standalone"
    lock = None
    if standalone:
        shape_key = hashlib.sha1(repr((n, n_in, B, T, model.equations, model.threshold, model.reset,
                                       model.refractory, delay_steps, len(syn_in_i), len(syn_rec_i), bn is not None))
                                 .encode()).hexdigest()[:12]
        directory = standalone_dir() / shape_key
        directory.mkdir(parents=True, exist_ok=True)
        lock = _Lock(directory / ".lock")
        lock.acquire()
        b2.set_device("cpp_standalone", directory=str(directory), build_on_run=False)
    old_prefs = (b2.prefs.codegen.target, b2.prefs.core.default_float_dtype)
    if not standalone:
        b2.prefs.codegen.target = target
    b2.prefs.core.default_float_dtype = np.float64
    frozen = False
    try:
        G = b2.NeuronGroup(B * n, model.equations, threshold=model.threshold, reset=model.reset,
                           refractory=model.refractory if model.refractory else False, method=INTEGRATOR,
                           dt=dt, name="rsnn", namespace=namespace)
        for name, (vals, unit) in model.per_neuron.items():
            tiled = np.tile(vals, B)
            setattr(G, name, tiled * ms if unit == "ms" else tiled)
        if bn is not None:
            G.run_regularly("v += bn_offset(t, i)", dt=params.dt_ms * factor * ms, when="groups", order=1,
                            name="bn_offset_op")
        gen = b2.SpikeGeneratorGroup(B * n_in, gen_idx, gen_times * ms, dt=dt, when="start", name="inputs")
        objects = [G, gen]
        if len(syn_in_i):  # Brian2 refuses Synapses without synapses
            on_pre = "v_post += w * bn_gain(t, j)" if bn is not None else "v_post += w"
            S_in = b2.Synapses(gen, G, "w : 1 (constant)", on_pre=on_pre, dt=dt, name="syn_in",
                               namespace=namespace)
            S_in.connect(i=syn_in_i, j=syn_in_j)
            S_in.w = syn_in_w
            objects.append(S_in)
        rec_kwargs = {}
        if delay_steps > 1:
            rec_kwargs["delay"] = (delay_steps - 1) * params.dt_ms * ms
        if len(syn_rec_i):
            S_rec = b2.Synapses(G, G, "w : 1 (constant)", on_pre="v_post += w", dt=dt, name="syn_rec",
                                namespace=namespace, **rec_kwargs)
            S_rec.connect(i=syn_rec_i, j=syn_rec_j)
            S_rec.w = syn_rec_w
            objects.append(S_rec)
        mon = b2.SpikeMonitor(G, name="spikes")
        net = b2.Network(*objects, mon)
        net.schedule = SCHEDULE
        if not standalone:
            # Brian2 calls gc.collect() in every run(); with torch loaded that is slow
            gc.collect()
            gc.freeze()
            frozen = True
        t_build = time.perf_counter()
        net.run(T * dt, namespace=namespace)
        if standalone:
            b2.device.build(directory=str(directory), compile=True, run=True, clean=False, with_output=False)
        t_run = time.perf_counter()
        idx = np.asarray(mon.i[:], dtype=np.int64)
        steps = np.rint(np.asarray(mon.t_[:], dtype=np.float64) / (params.dt_ms * 1e-3)).astype(np.int64)
    finally:
        b2.prefs.codegen.target, b2.prefs.core.default_float_dtype = old_prefs
        if frozen:
            gc.unfreeze()
        if standalone:
            b2.device.reinit()
            b2.set_device("runtime")
            if lock is not None:
                lock.release()
    z = np.zeros((T, B, n), dtype=np.uint8)
    if idx.size:
        if steps.min() < 0 or steps.max() >= T:
            raise RuntimeError("Brian2 returned spikes outside the simulated time")
        np.add.at(z, (steps, idx // n, idx % n), 1)
        if z.max() > 1:
            raise RuntimeError("Brian2 returned two spikes of one neuron in one step")
    if target == "cython":
        marker = _cython_marker(model, delay_steps > 1)
        if marker is not None:
            try:
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.touch()
            except OSError:
                pass
    t_end = time.perf_counter()
    return Brian2Run(
        z=z, dt_ms=params.dt_ms, target=target, build_s=t_build - t_start, run_s=t_run - t_build,
        wall_s=t_end - t_start, n_synapses=len(syn_in_i) + len(syn_rec_i),
        info={"trials": B, "steps": T, "input_spikes": int(gen_idx.size)},
    )


class _Lock:
    """An exclusive lock file (fcntl), so two processes do not build one project at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fh = None

    def acquire(self) -> None:
        self.fh = open(self.path, "w")
        try:
            import fcntl

            fcntl.flock(self.fh, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - non-POSIX
            pass

    def release(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None


def simulate_network(net, x, params: Optional[NeuronParams] = None, input_dt_ms: Optional[float] = None,
                     rec_delay_ms: Optional[float] = None, target: Optional[str] = None) -> Brian2Run:
    """:func:`simulate` for an :class:`~cognet.core.network.RSNN` (weights read from ``net``).

    ``params`` defaults to ``net.neurons``; pass ``net.neurons.with_dt(dt)`` for a finer step,
    with ``input_dt_ms`` and ``rec_delay_ms`` set to the network's own step.
    """
    import torch

    with torch.no_grad():
        w_in = net.w_in.detach().double().cpu().numpy()
        w_rec = net.effective_w_rec().detach().double().cpu().numpy()
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    gain = offset = None
    if getattr(net, "bntt", None) is not None:
        if net.bntt.training:
            raise ValueError("a network with BNTT replays in Brian2 only in eval mode (fixed per-step map); call net.eval()")
        with torch.no_grad():
            gain, offset = (a.detach().double().cpu().numpy() for a in net.bntt.affine(x.shape[0]))
    return simulate(w_in, w_rec, params or net.neurons, x, input_dt_ms, rec_delay_ms, target, gain, offset)
