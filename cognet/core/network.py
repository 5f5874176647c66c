"""The recurrent spiking network: input spikes -> LIF/ALIF population -> leaky readout.

A thin :class:`torch.nn.Module` around :func:`cognet.core.functional.simulate` (the
``reference`` engine) or :func:`cognet.core.fused.simulate_fused_readout` (the ``fused`` one,
with the input projection ``W_in x`` and the readout's gradient inside its kernels); the
``engine`` argument picks one (``auto``: fused on CPU, reference elsewhere, see
:func:`cognet.core.fused.resolve_engine`). Both give the same spikes and gradients.

Readout (non-spiking, leaky)::

    zf[t]  = kappa zf[t-1] + z[t],            kappa = exp(-dt / tau_out)
    y[t]   = W_out zf[t] + b_out
    logit_w = mean over the steps t of answer window w of y[t]

Since all of it is linear in the spikes, the window means are one matrix product with a
``[W, T]`` matrix (:func:`readout_matrix`), computed once per task timing.

Weight initialisation (documented defaults, see :class:`cognet.training.config.NetworkConfig`)::

    W_in  ~ N(0, (input_scale * v_th)^2 / n_in)
    W_rec ~ N(0, (rec_scale * v_th)^2 / n),  diagonal zero (no self-connections)
    W_out ~ N(0, 1 / n),  b_out = 0

Dale's law (``dale=True``): every neuron is excitatory (``s_j = +1``) or inhibitory
(``s_j = -1``, :func:`dale_signs`: a fraction ``1 - exc_fraction`` of the LIF and of the ALIF
neurons alike), and all of neuron j's outgoing recurrent weights carry its sign::

    W_rec[i, j] = s_j c_j |N(0, 1)| rec_scale v_th_i / sqrt(n) / sqrt(mean_k c_k^2)
    c_j = 1 (excitatory),  n_E / n_I (inhibitory)

so that each row's expected sum is zero (balanced input) and ``E[W_rec[i, j]^2]`` is that of
the unsigned initialisation. After every update :meth:`RSNN.constrain_` sets a weight that
crossed zero to 0 (projected gradient descent; the rule's gradient itself is not changed).
Input and readout weights are not constrained (the inputs are external spike trains).

Dropout (Syed et al. 2021: one mask per trial, held over time; off in ``eval()`` mode)::

    m_j   ~ Bernoulli(1 - p) / (1 - p)        per trial and recurrent neuron, p = dropout
    u_i   ~ Bernoulli(1 - p_in) / (1 - p_in)  per trial and input neuron,  p_in = input_dropout
    I[t]  = W_in (u * x[t])
    v[t]  = ... + W_rec (m * z[t-1])          (the neuron's own reset/adaptation use z)
    zf[t] = kappa zf[t-1] + m * z[t]          (the readout sees the masked spikes)

The masks come from ``dropout_generator`` (the trainer seeds it from the run, see
:mod:`cognet.training.trainer`), or are passed explicitly (``forward(masks=...)``), which is
how e-prop (:func:`rules.eprop.eprop_run`) and its autodiff oracle share one draw.

Batch normalisation through time (``bntt_steps > 0``, :mod:`cognet.core.bntt`) maps the
input currents ``I[t] = W_in (u * x[t])`` per step before the population integrates them.

Spiking convolutional front end (``front``, :mod:`cognet.core.conv`): the input spikes are
pixels of an image; a conv LIF layer and sum-pooling turn them into pooled spike counts
``s[t]``, and the population's input becomes ``I[t] = W_in s[t-1]`` (``W_in`` is
``[n, n_pooled]``; ``n_in`` stays the number of pixels).

Dropout, BNTT and the conv front end exist in this reference path only
(:attr:`RSNN.needs_reference_path`).
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from cognet.core.bntt import BNTT
from cognet.core.conv import ConvFrontEnd, ConvGeometry
from cognet.core.functional import ALIFState, Trajectory, constants, simulate
from cognet.core.fused import ENGINES, resolve_engine, simulate_fused_readout
from cognet.core.params import NeuronParams
from cognet.core.surrogate import Surrogate


def readout_matrix(windows: Sequence[Tuple[int, int]], T: int, kappa: float, dtype=torch.float64) -> torch.Tensor:
    """``M[w, s]`` such that ``logit_w = W_out (sum_s M[w, s] z[s]) + b_out``.

    ``windows`` holds half-open step ranges ``[start, end)``; the value at ``w`` is the
    mean over ``t`` in the window of ``sum_{s <= t} kappa^(t - s) z[s]``.
    """
    s = np.arange(T, dtype=float)
    M = np.zeros((len(windows), T))
    for w, (start, end) in enumerate(windows):
        if not 0 <= start < end <= T:
            raise ValueError(f"answer window {(start, end)} does not fit in a trial of {T} steps")
        first = np.maximum(s[:end], start)  # first t >= s inside the window
        # sum_{t=first}^{end-1} kappa^(t-s), in closed form (kappa < 1)
        M[w, :end] = kappa ** (first - s[:end]) * (1.0 - kappa ** (end - first)) / (1.0 - kappa) / (end - start)
    return torch.as_tensor(M, dtype=dtype)


def dale_signs(neurons: NeuronParams, exc_fraction: float) -> np.ndarray:
    """Per-neuron sign of the outgoing recurrent weights under Dale's law: ``+1`` excitatory,
    ``-1`` inhibitory. In each cell type (LIF, ALIF) the last ``round((1 - exc_fraction) k)`` of
    its ``k`` neurons are inhibitory, so both types have both signs."""
    if not 0.0 < exc_fraction < 1.0:
        raise ValueError(f"exc_fraction must be in (0, 1), got {exc_fraction!r}")
    signs = np.ones(neurons.n)
    adaptive = neurons.adaptive
    for kind in (~adaptive, adaptive):
        idx = np.flatnonzero(kind)
        n_inh = int(round((1.0 - exc_fraction) * idx.size))
        if n_inh:
            signs[idx[idx.size - n_inh:]] = -1.0
    return signs


class DropoutMasks(NamedTuple):
    """Per-trial dropout masks (values 0 or 1/(1-p)), held for every step of the trial."""

    rec: Optional[torch.Tensor]  # [B, n] on the recurrent spikes (None: no recurrent dropout)
    inp: Optional[torch.Tensor]  # [B, n_in] on the input spikes (None: no input dropout)


def _bernoulli_mask(batch: int, n: int, p: float, g: Optional[torch.Generator], dtype, device) -> Optional[torch.Tensor]:
    if p <= 0.0:
        return None
    keep = torch.rand(batch, n, generator=g, dtype=torch.float64) >= p
    return (keep.to(dtype) / (1.0 - p)).to(device)


class NetOutput(NamedTuple):
    z: torch.Tensor  # recurrent spikes [T, B, n]
    logits: torch.Tensor  # readout per answer window [W, B, n_out]
    trajectory: Trajectory
    masks: Optional[DropoutMasks] = None  # the dropout masks of this pass (None: no dropout)
    conv_z: Optional[torch.Tensor] = None  # spikes of the conv front end [T, B, n_conv] (None: none)


class RSNN(nn.Module):
    """Recurrent LIF/ALIF network with a leaky readout.

    Args:
        n_in: number of input neurons (spike trains).
        neurons: the population's :class:`NeuronParams` (single source of truth).
        n_out: number of readout units.
        tau_out_ms: readout time constant.
        surrogate: the spike function's surrogate derivative.
        detach_reset / detach_recurrent / leak_aware: see :func:`cognet.core.functional.simulate`.
        self_connections: allow autapses (default False: diagonal of W_rec held at 0).
        dropout / input_dropout: per-trial dropout rates of the recurrent and input spikes
            (0 = off; see the module docstring). Active only in training mode.
        bntt_steps: > 0 adds batch normalisation through time of the input currents for trials
            of up to that many steps (:class:`cognet.core.bntt.BNTT`); 0 = off.
        bntt_gamma: initial BNTT scale gamma in units of the neuron's v_th.
        conv: a :class:`~cognet.core.conv.ConvGeometry` adds the spiking conv front end
            (``n_in`` must be its pixel count); ``conv_scale`` sets its initial kernel scale.
        generator: torch generator for the initial weights.
        engine: ``auto`` | ``fused`` | ``reference`` (speed only; see :mod:`cognet.core.fused`).
        dale: sign-constrain ``W_rec`` by Dale's law (see the module docstring); ``exc_fraction``
            is the fraction of excitatory neurons.

    Inputs: ``x`` spikes ``[T, B, n_in]``, answer ``windows`` (list of (start, end)).
    Outputs: :class:`NetOutput` (spikes, per-window logits, trajectory).
    """

    def __init__(
        self,
        n_in: int,
        neurons: NeuronParams,
        n_out: int,
        tau_out_ms: float = 20.0,
        surrogate: Optional[Surrogate] = None,
        detach_reset: bool = True,
        detach_recurrent: bool = False,
        leak_aware: bool = False,
        self_connections: bool = False,
        input_scale: float = 1.0,
        rec_scale: float = 1.0,
        generator: Optional[torch.Generator] = None,
        dtype: torch.dtype = torch.float32,
        engine: str = "auto",
        dropout: float = 0.0,
        input_dropout: float = 0.0,
        bntt_steps: int = 0,
        bntt_gamma: float = 0.3,
        conv: Optional[ConvGeometry] = None,
        conv_scale: float = 1.0,
        dale: bool = False,
        exc_fraction: float = 0.8,
    ) -> None:
        super().__init__()
        if tau_out_ms <= 0:
            raise ValueError(f"tau_out_ms must be positive, got {tau_out_ms!r}")
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {list(ENGINES)}, got {engine!r}")
        self.engine = engine
        for name, p in (("dropout", dropout), ("input_dropout", input_dropout)):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {p!r}")
        self.dropout, self.input_dropout = float(dropout), float(input_dropout)
        #: source of the dropout masks (the trainer replaces it by one seeded from the run)
        self.dropout_generator = torch.Generator().manual_seed(0)
        self.neurons = neurons
        self.n_in, self.n, self.n_out = int(n_in), neurons.n, int(n_out)
        self.tau_out_ms = float(tau_out_ms)
        self.surrogate = surrogate or Surrogate()
        self.detach_reset = detach_reset
        self.detach_recurrent = detach_recurrent
        self.leak_aware = leak_aware
        self.self_connections = self_connections
        v_th = torch.as_tensor(neurons.array("v_th"), dtype=dtype)
        g = generator
        self.conv: Optional[ConvFrontEnd] = None
        if conv is not None:
            if conv.n_pixels != self.n_in:
                raise ValueError(f"the conv front end reads {conv.n_pixels} pixels but n_in={self.n_in}")
            self.conv = ConvFrontEnd(conv, neurons, self.surrogate, detach_reset, leak_aware, conv_scale,
                                     generator=g, dtype=dtype)
        n_front = self.n_front
        self.w_in = nn.Parameter(torch.randn(self.n, n_front, generator=g, dtype=dtype)
                                 * (input_scale / math.sqrt(n_front)) * v_th[:, None])
        w_rec = torch.randn(self.n, self.n, generator=g, dtype=dtype) * (rec_scale / math.sqrt(self.n)) * v_th[:, None]
        mask = torch.ones(self.n, self.n, dtype=dtype)
        if not self_connections:
            mask.fill_diagonal_(0.0)
        self.register_buffer("rec_mask", mask)
        self.dale, self.exc_fraction = bool(dale), float(exc_fraction)
        #: ``[1, n]`` sign of each presynaptic neuron's weights (None: no Dale's law)
        self.rec_sign: Optional[torch.Tensor] = None
        if dale:
            signs = dale_signs(neurons, exc_fraction)
            n_exc, n_inh = int((signs > 0).sum()), int((signs < 0).sum())
            col = np.where(signs > 0, 1.0, -(n_exc / n_inh if n_inh else 1.0))
            col /= math.sqrt(float(np.mean(col ** 2)))
            w_rec = w_rec.abs() * torch.as_tensor(col, dtype=dtype)[None, :]
            self.rec_sign = torch.as_tensor(signs, dtype=dtype)[None, :]
        self.w_rec = nn.Parameter(w_rec * mask)
        self.w_out = nn.Parameter(torch.randn(self.n_out, self.n, generator=g, dtype=dtype) / math.sqrt(self.n))
        self.b_out = nn.Parameter(torch.zeros(self.n_out, dtype=dtype))
        self.bntt: Optional[BNTT] = (BNTT(int(bntt_steps), self.n, dtype=dtype, gamma_init=bntt_gamma * v_th)
                                     if bntt_steps else None)
        self._refresh_constants(dtype)
        self._readout_cache: dict = {}

    # -- constants ------------------------------------------------------------------------
    def _refresh_constants(self, dtype=None, device=None) -> None:
        dtype = dtype or self.w_rec.dtype
        device = device or self.w_rec.device
        self.consts = constants(self.neurons, device=device, dtype=dtype)

    def _apply(self, fn, *args, **kwargs):  # keep derived constants on the module's device/dtype
        out = super()._apply(fn, *args, **kwargs)
        self._refresh_constants()
        self._readout_cache = {}
        return out

    @property
    def n_front(self) -> int:
        """Columns of ``W_in``: the pooled conv outputs with a front end, else ``n_in``."""
        return self.conv.geom.n_pooled if self.conv is not None else self.n_in

    @property
    def kappa(self) -> float:
        return math.exp(-self.neurons.dt_ms / self.tau_out_ms)

    def effective_w_rec(self) -> torch.Tensor:
        return self.w_rec * self.rec_mask

    @torch.no_grad()
    def constrain_(self) -> None:
        """Put ``W_rec`` back on its constraints after an update: masked synapses (the diagonal)
        to 0 and, under Dale's law, a weight of the wrong sign to 0."""
        self.w_rec.mul_(self.rec_mask)
        if self.rec_sign is not None:
            s = self.rec_sign.to(self.w_rec)
            self.w_rec.mul_(s).clamp_(min=0.0).mul_(s)  # exact: s is +-1

    def dale_violations(self) -> int:
        """How many recurrent weights break Dale's law (0 without it)."""
        if self.rec_sign is None:
            return 0
        return int(((self.effective_w_rec() * self.rec_sign.to(self.w_rec)) < 0).sum())

    def readout_weights(self, windows: Sequence[Tuple[int, int]], T: int) -> torch.Tensor:
        key = (tuple(map(tuple, windows)), T)
        M = self._readout_cache.get(key)
        if M is None:
            M = readout_matrix(windows, T, self.kappa).to(self.w_out.device, self.w_out.dtype)
            self._readout_cache[key] = M
        return M

    # -- dropout ------------------------------------------------------------------------------
    @property
    def uses_dropout(self) -> bool:
        """True when this network draws dropout masks in training mode (a fused engine must not
        run it: it implements neither the masks nor their gradients)."""
        return self.dropout > 0.0 or self.input_dropout > 0.0

    @property
    def needs_reference_path(self) -> bool:
        """True when dropout, BNTT or the conv front end is on: only this module's own forward
        (and e-prop's reference engine, for dropout) implements them, so no fused engine may run it."""
        return self.uses_dropout or self.bntt is not None or self.conv is not None

    def dropout_masks(self, batch: int, generator: Optional[torch.Generator] = None) -> Optional[DropoutMasks]:
        """Draw this trial batch's masks (``None`` in eval mode or with dropout off)."""
        if not (self.training and self.uses_dropout):
            return None
        g = generator if generator is not None else self.dropout_generator
        dtype, device = self.w_rec.dtype, self.w_rec.device
        return DropoutMasks(rec=_bernoulli_mask(batch, self.n, self.dropout, g, dtype, device),
                            inp=_bernoulli_mask(batch, self.n_in, self.input_dropout, g, dtype, device))

    def filtered_windows(self, z: torch.Tensor, windows: Sequence[Tuple[int, int]]) -> torch.Tensor:
        """Per-window means of the readout-filtered spikes ``[W, B, n]`` (``M z``, see
        :func:`readout_matrix`) from spikes ``[T, B, n]``: what ``W_out`` reads."""
        M = self.readout_weights(windows, z.shape[0])
        T, B, n = z.shape
        # one [W, T] x [T, B n] matmul: the same numbers as einsum("wt,tbn->wbn") (checked in
        # tests/test_engine.py), several times faster for one window
        return (M @ z.reshape(T, B * n)).reshape(M.shape[0], B, n)

    def readout(self, z: torch.Tensor, windows: Sequence[Tuple[int, int]]) -> torch.Tensor:
        """Per-window logits ``[W, B, n_out]`` from spikes ``[T, B, n]``."""
        return torch.nn.functional.linear(self.filtered_windows(z, windows), self.w_out, self.b_out)

    def forward(
        self,
        x: torch.Tensor,
        windows: Sequence[Tuple[int, int]],
        state: Optional[ALIFState] = None,
        record_state: bool = False,
        masks: Optional[DropoutMasks] = None,
    ) -> NetOutput:
        """``masks``: explicit dropout masks (default: drawn by :meth:`dropout_masks`, i.e.
        none in eval mode)."""
        if x.dim() != 3 or x.shape[-1] != self.n_in:
            raise ValueError(f"input must be [T, B, {self.n_in}], got {tuple(x.shape)}")
        x = x.to(self.w_in.dtype)
        if masks is None:
            masks = self.dropout_masks(x.shape[1])
        rec_drop = None
        if masks is not None:
            if masks.inp is not None:
                x = x * masks.inp
            rec_drop = masks.rec
        # dropout, BNTT and the conv front end exist in the reference path only (needs_reference_path)
        chosen = ("reference" if self.needs_reference_path
                  else resolve_engine(self.engine, x.device, x.dtype, self.surrogate))
        conv_z = None
        switches = dict(detach_reset=self.detach_reset, detach_recurrent=self.detach_recurrent,
                        leak_aware=self.leak_aware, record_state=record_state)
        if chosen == "fused":  # no conv, BNTT or dropout here (needs_reference_path)
            # the input projection fused into the kernels, event-driven from the input spikes
            # (one matmul where x is dense or needs a gradient), and the readout's gradient
            # added into dL/dz inside the kernel's backward; the same logits as self.readout
            traj, filtered = simulate_fused_readout(
                x, self.w_in, self.effective_w_rec(), self.readout_weights(windows, x.shape[0]), self.consts,
                self.surrogate, state, **switches)
            logits = torch.nn.functional.linear(filtered, self.w_out, self.b_out)
        else:
            if self.conv is not None:
                front = self.conv(x)
                conv_z = front.z
                currents = torch.nn.functional.linear(front.pooled, self.w_in)
            else:
                currents = torch.nn.functional.linear(x, self.w_in)  # all steps in one matmul
            if self.bntt is not None:
                currents = self.bntt(currents)
            traj = simulate(currents, self.effective_w_rec(), self.consts, self.surrogate, state,
                            rec_drop=rec_drop, **switches)
            z_seen = traj.z if rec_drop is None else traj.z * rec_drop
            logits = self.readout(z_seen, windows)
        return NetOutput(traj.z, logits, traj, masks, conv_z)
