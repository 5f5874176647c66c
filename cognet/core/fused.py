"""The fused, event-driven engine: the whole LIF/ALIF sequence as one autograd function.

Same equations, same switches and the same order of floating-point operations as the
reference engine (:func:`cognet.core.functional.simulate`, kept unchanged as the oracle);
the time loops of the forward and of the backward pass run in C++
(``fused_kernel.cpp``) instead of the interpreter, so one step costs a few element-wise
passes over ``[B, N]`` instead of ~10 small autograd ops forward and more backward.

Forward, per step (``zp = z[t-1]``; see :mod:`cognet.core.functional` for the model)::

    I[t][b] = sum_{j : x[t][b, j] != 0} x[t][b, j] W_in[:, j]  (input projection, when fused: below)
    rec[b]  = sum_{j : zp[b, j] != 0} zp[b, j] W[:, j]          (event-driven: spiking columns)
    v, a, z, r as in alif_step;  sd[t] = peak * shape(x / width) * [r[t-1] == 0]

Backward (adjoints ``dv[t] = dL/dv[t]`` etc.; ``f`` = leak-aware factor or 1)::

    dL/dz[t] = (gradient of z[t] from the outputs) + sum_w M[w, t] dL/dF[w]   (readout fused: below)
    gx      = (dL/dz[t]) f sd[t] / v_th
    dv[t]   = gx + alpha dv[t+1]                 (reset zero: alpha (1 - z[t]) dv[t+1])
    da[t]   = -beta gx + rho da[t+1]             (ALIF; LIF: a never changes)
    dL/dz[t-1] += da[t]                          (adaptation path, always kept)
               + (dv[t] W)                       (unless detach_recurrent; where sd[t-1] != 0: below)
               - v_th dv[t]  | - alpha v[t-1] dv[t]   (unless detach_reset; subtract | zero)
    dW[:, j] += sum_b dv[t][b] zp[b, j]                   (event-driven, from the spikes)
    dL/dI[t] = dv[t]                                       (currents given: simulate_fused)
    dW_in[:, j] += sum_b x[t][b, j] dv[t][b]               (projection fused: from the input events)

The backward's one dense product per step, ``dv[t] W`` (when it is computed whole), calls the Fortran BLAS that torch
links (``sgemm_``/``dgemm_``, looked up at run time in torch's own library; ``at::addmm_``
where it is absent): the same arithmetic as ``addmm_`` without ~10 us of dispatch per step,
which at N = 128 was a third of the backward pass. ``load_backend().blas_direct()`` says
which one runs.

The same build holds the e-prop engine's kernel (``eprop_adjoint``, see
:mod:`rules.eprop_fused`): the adjoint of the eligibility traces over one chunk, backward in
time, with the weight update accumulated from the presynaptic events.

The input projection ``W_in x`` is event-driven the same way: the columns of the active
inputs, and ``dW_in`` from the same input events (at the task's input densities of 2-5 % that
is 20-50x less arithmetic than the dense matmul, which at ``dup-rev``'s 280 inputs was a third
of a fused iteration). :func:`simulate_fused_inputs` (what :class:`~cognet.core.network.RSNN`
runs on this engine) fuses it into the kernels: the forward projects each step's ``[B, n]``
currents into a scratch buffer right before the step (the same sum, in the same order, as
:func:`project_inputs`: from 0, the active inputs' columns in index order, so the spikes are
bit-identical to ``simulate_fused(project_inputs(x, W_in))``), and the backward adds each
step's ``dv[t]`` into ``dW_in`` straight away. Why: otherwise a ``[T, B, n]`` currents tensor
and a ``[T, B, n]`` ``dL/dI`` are each written once and read once only to pass data between
the projection and the population (with the projection's own passes over ``x`` and its
autograd node, ~20 % of a fused iteration at N = 128). The events of ``x`` (row pointers and
column indices, :func:`input_events`) come from one scan of ``x`` in C++, which also makes the
density decision and stops early once ``x`` is too dense; forward and backward both read
them. Unfused (currents given: :func:`simulate_fused`) is everything else: dense ``x``, an
``x`` that needs a gradient, the conv front end, BNTT, the e-prop engine.

The readout: :func:`simulate_fused_readout` (what RSNN runs) also returns the filtered
spikes ``F = M z`` (``M [W, T]``, :func:`cognet.core.network.readout_matrix`; computed with the
same torch product as ``RSNN.readout``, so the logits are the same numbers), and its backward
adds ``M[w, t] dL/dF[w]`` into ``dL/dz[t]`` inside the step loop. Why: through autograd, the
readout's gradient is the ``[T, B, n]`` product ``M^T dL/dF`` (an outer product for one window),
written once, then added to z's other gradients and read once by the kernel: with its page
faults ~10 % of a fused iteration at N = 128. Outputs that no loss reads get no zero-filled
gradient (``set_materialize_grads(False)``).

How the event sums run (2026-12-07): each one, ``dst[n] = ((dst[n] + c_0 src_0[n]) + c_1
src_1[n]) + ...`` over a list of events, keeps the running sums of 64 entries in registers over
all the events and reads and writes ``dst`` once (the same sums, rounded in the same order, as
one pass over ``dst`` per event). The weight gradients (BPTT's ``dW`` and ``dW_in``, e-prop's
update) are regrouped by presynaptic index first, keeping trials in ascending order, so that a
row of ``dW^T`` is read and written once per step instead of once per event, and are split over
threads by columns (the same sums at any thread count). The neuron update is branch-free, so
the compiler vectorises it. All bit-identical to before (``benchmarks/engine_ab.py``).

Sparse vs dense: the recurrent input and the weight gradient are accumulated from the
spike lists while at most ``DENSE_THRESHOLD`` of the ``B x N`` entries of ``z[t-1]``
spiked, and as one matmul (``at::mm``, torch's BLAS and thread count) above it. The input
projection decides once for the whole ``x`` (at most ``DENSE_THRESHOLD`` of its entries
nonzero: event-driven, else one matmul). The threshold was measured with
``benchmarks/engine_threshold.py``.

The backward's ``dv[t] W`` (``dv`` is dense) is needed only where the surrogate derivative
``sd[t-1]`` is nonzero: ``dL/dz[t-1]`` reaches the loss through ``gx = dL/dz[t-1] f sd[t-1] /
v_th`` alone (the adaptation and reset terms take ``gx`` too). Where ``sd[t-1]`` has at most
``BACKWARD_DENSE_THRESHOLD`` nonzero entries (the triangle has compact support, and a
refractory neuron has ``sd = 0``) those entries are computed as dot products of ``dv[t][b]``
with the rows of ``W^T``; the others keep their value without the product, which the next
step multiplies by 0. Above it, and at ``t = 0`` (``dL/dz[-1]`` is returned whole), the whole
product. In a trained ``dup-rev`` network (ALIF, triangle width 1) 0.9 % of the entries are
nonzero (20 % at initialisation). ``benchmarks/engine_threshold.py --backward`` (N = 128 and
512, T = 200, batch 32, one thread, the triangle's width setting the density): a whole
iteration takes 0.79-0.91x at 3 % nonzero entries, 0.91-1.21x at 7 %, 1.3-1.5x at 27 %, so the
threshold is 5 %. The gradients differ from the whole product's only in summation order.

Why a C++ extension and not numba: the one dense product per backward step has to run on a
tuned BLAS; a C++ loop calls torch's own ``at::mm_out`` (MKL here, honouring
``torch.set_num_threads``) with no interpreter in between, while numba would need scipy's
BLAS (not installed, its own thread pool) or a hand-written product. The build
(``torch.utils.cpp_extension.load_inline``, ``-O3 -ffp-contract=off -march=native``) is
cached under torch's extension directory (``TORCH_EXTENSIONS_DIR``, default
``~/.cache/torch_extensions``) under a name hashed from the source, the torch version, the
flags and the CPU's model and instruction-set flags, so it compiles once per machine (about
45 s of CPU time, 1-2 min on a loaded machine) and loads in a fraction of a second afterwards.
Vectorised (SIMD) IEEE arithmetic rounds exactly as scalar code; contraction into fused
multiply-adds is what would change results, and ``-ffp-contract=off`` forbids it.

Exactness: ``-ffp-contract=off`` keeps every product and sum rounded as in torch, so the
only difference from the reference is the order in which the recurrent sum (and the
event-driven input projection) adds the (spiking) columns. In float64 that is ~1e-16 relative and the spikes are identical; in
float32 a neuron exactly at threshold (within ~1e-7) may flip, which is threshold rounding,
not a different model. Gradients agree to ~1e-14 relative in float64.

Selection (:func:`resolve_engine`): ``reference`` is the torch code; ``fused`` this engine
(CPU, float32/float64, the built-in surrogate shapes; anything else is an error);
``auto`` picks ``fused`` where it applies and ``reference`` otherwise (CUDA, other
dtypes, a shape the kernel does not know, or a backend that cannot be built: then one
warning, never a crash). The engine changes speed, not the model, so ``train.engine`` is
left out of a run's config hash.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Optional, Tuple

import torch
from torch.autograd.function import once_differentiable

from cognet.core.functional import ALIFState, StepConstants, Trajectory, initial_state
from cognet.core.surrogate import Surrogate, leak_aware_factor

ENGINES = ("auto", "fused", "reference")
#: kernel ids of the surrogate shapes (fused_kernel.cpp, shape_fn)
SHAPE_IDS = {"triangle": 0, "fast-sigmoid": 1, "sigmoid": 2, "exponential": 3, "gaussian": 4, "arctan": 5}
#: fraction of spiking entries of z[t-1] above which the recurrent input / weight gradient
#: use one matmul instead of the spike lists (measured, see module docstring)
DENSE_THRESHOLD = 0.2
#: fraction of nonzero entries of sd[t-1] up to which the backward computes ``dv[t] W`` only
#: where sd[t-1] != 0 (one dot product each) instead of the whole ``[B, n]`` product; 0: always
#: the whole product (measured, see module docstring)
BACKWARD_DENSE_THRESHOLD = 0.05

_RESET_ZERO, _ADAPTIVE, _REFRACTORY, _RECORD, _KEEP_V = 1, 2, 4, 8, 16
_DETACH_RESET, _DETACH_REC, _LEAK = 32, 64, 128

_SOURCE = Path(__file__).with_name("fused_kernel.cpp")
_backend = {"module": None, "error": None, "warned": False}


def _cpu_signature() -> str:
    """The CPU's model and instruction-set flags: part of the build's name, so that a build
    cache shared between machines never loads code compiled for another CPU (``-march=native``)."""
    import platform

    sig = platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith(("model name", "flags", "Features")):
                    sig += line
                    if line.startswith(("flags", "Features")):
                        break
    except OSError:
        pass
    return sig


def build_kernel(src: str, prefix: str = "cognet_fused"):
    """The extension module of kernel source ``src``, compiled once per machine into torch's
    extension cache under ``prefix`` and a hash of the source, torch's version, the CPU and the
    flags (see the module docstring); :func:`load_backend` builds this checkout's kernel with it,
    ``benchmarks/engine_ab.py`` an earlier commit's beside it."""
    from torch.utils.cpp_extension import load_inline

    flags = ["-O3", "-ffp-contract=off", "-march=native"]
    tag = hashlib.sha256("\0".join([src, torch.__version__, _cpu_signature(), *flags]).encode()).hexdigest()[:12]
    return load_inline(
        name=f"{prefix}_{tag}", cpp_sources=[src], functions=None,  # bindings: end of the source
        extra_cflags=flags, extra_ldflags=["-ldl"], verbose=False,
    )


def load_backend():
    """The compiled kernel module, building it on first use; raises ``RuntimeError`` if it
    cannot be built or loaded (the reason in the message)."""
    if _backend["module"] is not None:
        return _backend["module"]
    if _backend["error"] is not None:
        raise RuntimeError(_backend["error"])
    try:
        if os.environ.get("COGNET_NO_FUSED"):
            raise RuntimeError("disabled by COGNET_NO_FUSED")
        mod = build_kernel(_SOURCE.read_text())
    except Exception as exc:  # any build/load failure: remembered, reported once by auto
        _backend["error"] = f"fused engine unavailable ({type(exc).__name__}: {str(exc).strip()[:300]})"
        raise RuntimeError(_backend["error"]) from None
    _backend["module"] = mod
    keep_freed_memory()
    return mod


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
#: bytes: blocks below this come from the heap and are reused once freed (glibc's default is
#: at most 32 MiB, and a kernel output ``[chunk, B, n]`` of 64 x 128 x 1024 floats is 32 MiB)
KEEP_FREED_BYTES = 1 << 30
_malloc = {"done": False, "kept": False}


def keep_freed_memory() -> bool:
    """Let glibc's ``malloc`` keep freed blocks of up to :data:`KEEP_FREED_BYTES` for reuse
    (``mallopt`` ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD``), once per process; called when
    the fused engine loads. Returns whether the setting is in force.

    Why: by default every block of 32 MiB or more is a fresh ``mmap``, returned to the system
    when freed, so each training iteration page-faults its ``[T, B, n]`` tensors in again,
    zero-filled by the kernel (``dup-rev``, 1024 neurons, batch 128: about 15 % of the
    iteration's time in page faults under ``perf``). Kept, they are reused: 400 iterations of
    that run took 142 s against 220 s with glibc's defaults (same losses; peak memory 822 MB
    against 881 MB), ``benchmarks/engine_ab.py --malloc`` 0.69x the time per ``rule.step``. The
    price: the process holds on to freed blocks (up to its peak) instead of handing them back
    between iterations.
    ``COGNET_MALLOC=default`` leaves glibc's settings alone (``keep``, or unset: this setting; any
    other value is warned about once and treated as ``keep``); elsewhere (not glibc) it does
    nothing."""
    if _malloc["done"]:
        return _malloc["kept"]
    _malloc["done"] = True
    choice = os.environ.get("COGNET_MALLOC", "")
    if choice == "default":
        return False
    if choice not in ("", "keep"):
        warnings.warn(f"cognet: COGNET_MALLOC={choice!r} is neither 'default' nor 'keep'; keeping freed "
                      "blocks (the default)", RuntimeWarning, stacklevel=2)
    libc = glibc()
    if libc is None:
        return False
    try:
        ok = libc.mallopt(_M_MMAP_THRESHOLD, KEEP_FREED_BYTES) == 1
        ok = ok and libc.mallopt(_M_TRIM_THRESHOLD, KEEP_FREED_BYTES) == 1
    except (OSError, AttributeError, TypeError):
        return False
    _malloc["kept"] = bool(ok)
    return _malloc["kept"]


def glibc():
    """The C library through ``ctypes`` with ``mallopt``'s signature set, where it is glibc;
    else None (:func:`keep_freed_memory`, and ``benchmarks/engine_ab.py --malloc``)."""
    try:
        import ctypes
        import ctypes.util

        name = ctypes.util.find_library("c")
        libc = ctypes.CDLL(name) if name else None
        mallopt = getattr(libc, "mallopt", None) if libc is not None else None
        if mallopt is None or not hasattr(libc, "gnu_get_libc_version"):  # glibc only
            return None
        mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    except (OSError, AttributeError, TypeError):
        return None
    return libc


def fused_supported(device: torch.device, dtype: torch.dtype, surrogate: Surrogate) -> Optional[str]:
    """``None`` if the fused engine applies, else the reason it does not."""
    if device.type != "cpu":
        return f"the fused engine runs on CPU only (tensors on {device.type})"
    if dtype not in (torch.float32, torch.float64):
        return f"the fused engine supports float32 and float64, not {dtype}"
    if surrogate.name not in SHAPE_IDS:
        return f"the fused engine has no kernel for surrogate {surrogate.name!r}"
    return None


def resolve_engine(engine: str, device: torch.device, dtype: torch.dtype, surrogate: Surrogate) -> str:
    """``"fused"`` or ``"reference"`` for the requested ``engine`` (see the module docstring)."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {list(ENGINES)}, got {engine!r}")
    if engine == "reference":
        return "reference"
    reason = fused_supported(device, dtype, surrogate)
    if reason is None:
        try:
            load_backend()
        except RuntimeError as exc:
            reason = str(exc)
    if reason is None:
        return "fused"
    if engine == "fused":
        raise ValueError(f"engine 'fused' requested but {reason}")
    if device.type == "cpu" and not _backend["warned"]:  # CUDA: reference is the plan, not a fallback
        _backend["warned"] = True
        warnings.warn(f"cognet: {reason}; using the reference engine", RuntimeWarning, stacklevel=3)
    return "reference"


def _empty(like: torch.Tensor) -> torch.Tensor:
    return like.new_empty(0)


def _run_forward(ctx, mod_forward, inputs, w_rec, v0, a0, z0, r0, readout, c, shape_id, width, peak, flags,
                 dense):
    """The kernel's forward (``inputs``: the currents, or the input spikes, their events and
    ``W_in``), the filtered readout ``M z`` if ``readout`` (``M [W, T]``) is given, and what the
    backward keeps; shared by both autograd functions."""
    ctx.set_materialize_grads(False)  # an unused output gets no zero-filled [T, B, n] gradient
    w_rec = w_rec.detach().contiguous()
    v0, a0, z0, r0 = (s.detach().contiguous() for s in (v0, a0, z0, r0))
    z, sd, vall, aall, vT, aT, rT = mod_forward(
        *inputs, w_rec, v0, a0, z0, r0, c.alpha, c.rho, c.v_th, c.beta, c.n_ref,
        flags, shape_id, width, peak, dense)
    factor = _empty(z)
    if flags & _LEAK:
        factor = leak_aware_factor(z, c.alpha).contiguous()
    filtered = _empty(z)
    if readout is not None:  # the same product as RSNN.readout (same numbers)
        T, B, n = z.shape
        readout = readout.detach().contiguous()
        filtered = (readout @ z.reshape(T, B * n)).reshape(readout.shape[0], B, n)
    ctx.readout = readout
    ctx.c, ctx.flags, ctx.dense = c, flags, dense
    ctx.mark_non_differentiable(rT)
    record = bool(flags & _RECORD)
    return ((w_rec, z, sd, vall, v0, z0, factor),
            (z, (vall if record else _empty(z)), (aall if record else _empty(z)), vT, aT, rT, filtered))


def _grads_in(ctx, z, gz, gv, ga, gvT, gaT, gf):
    """The output gradients as the kernel's backward takes them (empty: none), then the
    readout ``M`` and ``dL/d(filtered)`` (both empty: no readout, or no gradient through it)."""
    def g(x):
        return _empty(z) if x is None or x.numel() == 0 else x.contiguous()
    if ctx.readout is None or gf is None:
        rd = (_empty(z), _empty(z))
    else:
        rd = (ctx.readout, gf.contiguous())
    if gz is not None and gz.dim() == 3 and gz.stride(0) == 0 and gz.stride(1) == 0:
        gz = gz[0, 0]  # one value per neuron, broadcast over steps and trials (rules.base.rate_penalty)
    return (g(gz), g(gv), g(ga), g(gvT), g(gaT)), rd


class _FusedALIF(torch.autograd.Function):
    """The population given its input currents ``[T, B, n]`` (any origin); returns ``dL/dI``."""

    @staticmethod
    def forward(ctx, currents, w_rec, v0, a0, z0, r0, readout, c, shape_id, width, peak, flags, dense):  # type: ignore[override]
        mod = load_backend()
        keep, out = _run_forward(ctx, mod.forward, (currents.detach().contiguous(),), w_rec, v0, a0, z0, r0,
                                 readout, c, shape_id, width, peak, flags, dense)
        ctx.save_for_backward(*keep)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, gz, gv, ga, gvT, gaT, _gr, gf):  # type: ignore[override]
        w_rec, z, sd, vall, v0, z0, factor = ctx.saved_tensors
        c = ctx.c
        grads, rd = _grads_in(ctx, z, gz, gv, ga, gvT, gaT, gf)
        di, dw, dv0, da0, dz0 = load_backend().backward(
            *grads, z, sd, vall, v0, z0, factor, w_rec, c.alpha, c.rho, c.v_th, c.beta, ctx.flags, ctx.dense,
            BACKWARD_DENSE_THRESHOLD, *rd)
        return di, dw, dv0, da0, dz0, None, None, None, None, None, None, None, None


class _FusedInputALIF(torch.autograd.Function):
    """The population with its input projection ``I[t] = W_in x[t]`` fused in: ``x [T, B, K]``
    (no gradient) and its input events (``input_events``); returns ``dL/dW_in``, no ``dL/dI``."""

    @staticmethod
    def forward(ctx, x, ptr, idx, w_in, w_rec, v0, a0, z0, r0, readout, c, shape_id, width, peak, flags, dense):  # type: ignore[override]
        mod = load_backend()
        keep, out = _run_forward(ctx, mod.forward_inputs, (x, ptr, idx, w_in.detach().contiguous()), w_rec,
                                 v0, a0, z0, r0, readout, c, shape_id, width, peak, flags, dense)
        ctx.save_for_backward(x, ptr, idx, *keep)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, gz, gv, ga, gvT, gaT, _gr, gf):  # type: ignore[override]
        x, ptr, idx, w_rec, z, sd, vall, v0, z0, factor = ctx.saved_tensors
        c = ctx.c
        grads, rd = _grads_in(ctx, z, gz, gv, ga, gvT, gaT, gf)
        dwin, dw, dv0, da0, dz0 = load_backend().backward_inputs(
            x, ptr, idx, *grads, z, sd, vall, v0, z0, factor, w_rec,
            c.alpha, c.rho, c.v_th, c.beta, ctx.flags, ctx.dense, BACKWARD_DENSE_THRESHOLD, *rd)
        return None, None, None, dwin, dw, dv0, da0, dz0, None, None, None, None, None, None, None, None


def input_events(x: torch.Tensor, dense_threshold: float = DENSE_THRESHOLD):
    """The nonzero entries of ``x`` (``[T, B, K]`` or ``[R, K]``) as ``(x, ptr, idx)``: ``x``
    contiguous, row pointers and column indices of its rows ``[R, K]`` (one scan of ``x`` in
    C++); ``None`` if more than ``dense_threshold`` of ``x`` is nonzero, if ``x`` needs a
    gradient or is empty (then the projection is one matmul)."""
    if x.requires_grad or x.numel() == 0:
        return None
    x = x.detach().contiguous()
    ptr, idx = load_backend().input_events(x, float(dense_threshold))
    return None if ptr.numel() == 0 else (x, ptr, idx)


class _SparseProjection(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x2, ptr, idx, w_in):  # type: ignore[override]
        ctx.save_for_backward(x2, ptr, idx)
        return load_backend().project_forward(x2, ptr, idx, w_in.detach().contiguous())

    @staticmethod
    @once_differentiable
    def backward(ctx, g):  # type: ignore[override]
        x2, ptr, idx = ctx.saved_tensors
        return None, None, None, load_backend().project_backward(x2, ptr, idx, g.contiguous())


def project_inputs(x: torch.Tensor, w_in: torch.Tensor, dense_threshold: float = DENSE_THRESHOLD) -> torch.Tensor:
    """``W_in x`` for all steps ``[T, B, n]``: event-driven from the nonzero inputs while at most
    ``dense_threshold`` of ``x`` is nonzero (and ``x`` needs no gradient), else one matmul.

    The sparse sum adds the active inputs' columns in index order, so ``currents`` can differ
    from the matmul's in the last bit where more than two inputs are active at once (float32:
    threshold rounding, see the module docstring; float64: far below any threshold)."""
    T, B, k = x.shape
    ev = input_events(x.reshape(T * B, k), dense_threshold)
    if ev is None:
        return torch.nn.functional.linear(x, w_in)
    return _SparseProjection.apply(*ev, w_in).view(T, B, -1)


def _flags(c: StepConstants, detach_reset: bool, detach_recurrent: bool, leak_aware: bool, record_state: bool) -> int:
    flags = ((_RESET_ZERO if c.reset_zero else 0) | (_ADAPTIVE if c.adaptive else 0)
             | (_REFRACTORY if c.refractory else 0) | (_RECORD if record_state else 0)
             | (_DETACH_RESET if detach_reset else 0) | (_DETACH_REC if detach_recurrent else 0)
             | (_LEAK if leak_aware else 0))
    if c.reset_zero and not detach_reset:
        flags |= _KEEP_V
    return flags


def _kernel_args(like: torch.Tensor, B: int, n: int, readout: Optional[torch.Tensor], c: StepConstants,
                 spike_fn: Surrogate, state: Optional[ALIFState], detach_reset: bool, detach_recurrent: bool,
                 leak_aware: bool, record_state: bool, dense_threshold: float) -> tuple:
    """The arguments both autograd functions take after ``w_rec`` (initial state, readout,
    constants, surrogate, flags, threshold), once the engine is known to cover ``like``'s
    device and dtype and ``spike_fn``; ``state=None``: the zero state of ``B x n`` neurons."""
    reason = fused_supported(like.device, like.dtype, spike_fn)
    if reason is not None:
        raise ValueError(reason)
    if state is None:
        state = initial_state(B, n, like.device, like.dtype)
    flags = _flags(c, detach_reset, detach_recurrent, leak_aware, record_state)
    return (state.v, state.a, state.z, state.r, readout, c, SHAPE_IDS[spike_fn.name], float(spike_fn.width),
            float(spike_fn.peak), flags, float(dense_threshold))


def _trajectory(out, record_state: bool) -> Trajectory:
    z, vall, aall, vT, aT, rT = out[:6]
    return Trajectory(
        z=z, v=vall if record_state else None, a=aall if record_state else None,
        final=ALIFState(vT, aT, z[-1], rT),
    )


def simulate_fused(
    currents: torch.Tensor,
    w_rec: torch.Tensor,
    c: StepConstants,
    spike_fn: Surrogate,
    state: Optional[ALIFState] = None,
    detach_reset: bool = True,
    detach_recurrent: bool = False,
    leak_aware: bool = False,
    record_state: bool = False,
    dense_threshold: float = DENSE_THRESHOLD,
) -> Trajectory:
    """:func:`cognet.core.functional.simulate` on the fused engine (same arguments, same result)."""
    _, B, n = currents.shape
    tail = _kernel_args(currents, B, n, None, c, spike_fn, state, detach_reset, detach_recurrent, leak_aware,
                        record_state, dense_threshold)
    return _trajectory(_FusedALIF.apply(currents, w_rec, *tail), record_state)


def simulate_fused_inputs(
    x: torch.Tensor,
    w_in: torch.Tensor,
    w_rec: torch.Tensor,
    c: StepConstants,
    spike_fn: Surrogate,
    state: Optional[ALIFState] = None,
    detach_reset: bool = True,
    detach_recurrent: bool = False,
    leak_aware: bool = False,
    record_state: bool = False,
    dense_threshold: float = DENSE_THRESHOLD,
) -> Trajectory:
    """:func:`simulate_fused` of the currents ``W_in x`` (``x [T, B, K]`` input spikes, ``w_in
    [n, K]``), with the projection fused into the kernels while ``x`` is sparse (at most
    ``dense_threshold`` nonzero) and needs no gradient: the same spikes, bit for bit, as
    ``simulate_fused(project_inputs(x, w_in), ...)``, without the ``[T, B, n]`` currents and
    their gradient. Otherwise exactly that (dense or differentiable ``x``: one matmul)."""
    return simulate_fused_readout(x, w_in, w_rec, None, c, spike_fn, state, detach_reset, detach_recurrent,
                                  leak_aware, record_state, dense_threshold)[0]


def simulate_fused_readout(
    x: torch.Tensor,
    w_in: torch.Tensor,
    w_rec: torch.Tensor,
    readout: Optional[torch.Tensor],
    c: StepConstants,
    spike_fn: Surrogate,
    state: Optional[ALIFState] = None,
    detach_reset: bool = True,
    detach_recurrent: bool = False,
    leak_aware: bool = False,
    record_state: bool = False,
    dense_threshold: float = DENSE_THRESHOLD,
) -> Tuple[Trajectory, Optional[torch.Tensor]]:
    """:func:`simulate_fused_inputs` and the filtered readout ``M z`` (``readout``: ``M [W, T]``,
    see :func:`cognet.core.network.readout_matrix`; ``[W, B, n]``, the same numbers as
    ``(M @ z.reshape(T, B * n)).reshape(W, B, n)``), whose gradient the kernel's backward adds
    into ``dL/dz[t]`` step by step instead of autograd building the ``[T, B, n]`` product
    ``M^T dL/d(filtered)`` (and adding it to the other gradients of ``z``). What
    :class:`~cognet.core.network.RSNN` runs on this engine. ``readout=None``: ``(trajectory, None)``."""
    tail = _kernel_args(x, x.shape[1], w_in.shape[0], readout, c, spike_fn, state, detach_reset, detach_recurrent,
                        leak_aware, record_state, dense_threshold)
    ev = input_events(x, dense_threshold)
    if ev is None:  # dense or differentiable x: the currents as one matmul
        out = _FusedALIF.apply(torch.nn.functional.linear(x, w_in), w_rec, *tail)
    else:
        out = _FusedInputALIF.apply(*ev, w_in, w_rec, *tail)
    return _trajectory(out, record_state), (out[6] if readout is not None else None)
