"""Pure step functions of the recurrent LIF/ALIF population.

The update for one step ``t-1 -> t`` (e-prop convention, see :mod:`cognet.core.params`)::

    I[t]   = W_in x[t]                                  (all steps in one matmul, outside)
    v[t]   = alpha v[t-1] + I[t] + W_rec z[t-1] - v_th z[t-1]       reset = "subtract"
    v[t]   = alpha v[t-1] (1 - z[t-1]) + I[t] + W_rec z[t-1]        reset = "zero"
    a[t]   = rho a[t-1] + z[t-1]
    A[t]   = v_th + beta a[t]
    z[t]   = H((v[t] - A[t]) / v_th) * [r[t-1] == 0]
    r[t]   = n_ref - 1 if z[t] else max(r[t-1] - 1, 0)

``H`` has a surrogate derivative (:mod:`cognet.core.surrogate`); refractory neurons have zero
pseudo-derivative. Gradient switches:

* ``detach_reset``: stop the gradient through the reset term ``z[t-1]`` (arXiv 2011.09964
  studies keeping it).
* ``detach_recurrent``: stop the gradient through ``z[t-1]`` in ``W_rec z[t-1]`` too.
  With both set, autodiff computes exactly the e-prop factorisation (Bellec et al. 2020):
  only the neuron's own adaptation path ``a[t] = rho a[t-1] + z[t-1]`` keeps its gradient.

Dropout (``rec_drop``, a ``[batch, n]`` mask ``m`` of values 0 or 1/(1-p), drawn once per
trial by :meth:`cognet.core.network.RSNN.dropout_masks` and held for all steps): the
recurrent input becomes ``W_rec (m * z[t-1])``; the neuron's own reset and adaptation
still see its own spikes ``z[t-1]``. ``None`` (the default) is the plain update.
"""

from __future__ import annotations

from typing import List, NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F

from cognet.core.params import NeuronParams
from cognet.core.surrogate import LeakAwareScale, Surrogate, leak_aware_factor


class ALIFState(NamedTuple):
    """State of a population at one step; every tensor is ``[batch, n]``."""

    v: torch.Tensor  # membrane potential
    a: torch.Tensor  # adaptation variable (threshold A = v_th + beta a)
    z: torch.Tensor  # spikes of this step
    r: torch.Tensor  # remaining refractory steps


class StepConstants(NamedTuple):
    """Per-neuron constants derived from :class:`NeuronParams`, as tensors ``[n]``."""

    alpha: torch.Tensor
    rho: torch.Tensor
    v_th: torch.Tensor
    beta: torch.Tensor
    n_ref: torch.Tensor
    reset_zero: bool
    adaptive: bool
    refractory: bool


def constants(p: NeuronParams, device=None, dtype=torch.float32) -> StepConstants:
    """Tensors of the step constants of ``p`` (decays computed exactly, in float64 first)."""

    def t(arr):
        return torch.as_tensor(arr, dtype=dtype, device=device)

    n_ref = p.refractory_steps
    return StepConstants(
        alpha=t(p.alpha), rho=t(p.rho), v_th=t(p.array("v_th")), beta=t(p.array("beta")),
        n_ref=t(n_ref), reset_zero=p.reset == "zero", adaptive=bool(p.adaptive.any()),
        refractory=bool((n_ref > 1).any()),
    )


def initial_state(batch: int, n: int, device=None, dtype=torch.float32) -> ALIFState:
    zeros = torch.zeros(batch, n, device=device, dtype=dtype)
    return ALIFState(zeros, zeros, zeros, zeros)


def alif_step(
    state: ALIFState,
    i_t: torch.Tensor,
    w_rec: Optional[torch.Tensor],
    c: StepConstants,
    spike_fn: Surrogate,
    detach_reset: bool = True,
    detach_recurrent: bool = False,
    rec_drop: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, ALIFState]:
    """Advance the population by one step; returns ``(z[t], state[t])``.

    ``i_t`` is the already projected input ``W_in x[t]`` ``[batch, n]``; ``w_rec`` is
    ``[n, n]`` (row = postsynaptic neuron) with any self-connection mask already applied, or
    ``None`` for a layer without recurrent connections (the conv front end).
    """
    z_prev = state.z
    z_rec = z_prev.detach() if detach_recurrent else z_prev
    z_res = z_prev.detach() if detach_reset else z_prev
    if rec_drop is not None:
        z_rec = z_rec * rec_drop
    # a feed-forward layer (cognet.core.conv) has no recurrent term; adding 0.0 is exact
    rec = F.linear(z_rec, w_rec) if w_rec is not None else 0.0
    if c.reset_zero:
        v = c.alpha * state.v * (1.0 - z_res) + i_t + rec
    else:
        v = c.alpha * state.v + i_t + rec - c.v_th * z_res
    if c.adaptive:
        a = c.rho * state.a + z_prev
        x = (v - c.v_th - c.beta * a) / c.v_th
    else:
        a = state.a
        x = (v - c.v_th) / c.v_th
    z = spike_fn(x)
    if c.refractory:
        z = z * (state.r == 0).to(z.dtype)
        r = torch.where(z > 0, torch.clamp(c.n_ref - 1.0, min=0.0), torch.clamp(state.r - 1.0, min=0.0))
    else:
        r = state.r
    return z, ALIFState(v, a, z, r)


class Trajectory(NamedTuple):
    z: torch.Tensor  # spikes [T, B, n]
    v: Optional[torch.Tensor]  # membrane potential [T, B, n] if recorded
    a: Optional[torch.Tensor]  # adaptation [T, B, n] if recorded
    final: ALIFState


def simulate(
    currents: torch.Tensor,
    w_rec: Optional[torch.Tensor],
    c: StepConstants,
    spike_fn: Surrogate,
    state: Optional[ALIFState] = None,
    detach_reset: bool = True,
    detach_recurrent: bool = False,
    leak_aware: bool = False,
    record_state: bool = False,
    rec_drop: Optional[torch.Tensor] = None,
) -> Trajectory:
    """Run :func:`alif_step` over ``currents = W_in x`` of shape ``[T, B, n]``.

    The input is unbound once (indexing ``currents[t]`` inside the loop would make the
    backward pass quadratic in T). With ``leak_aware`` the surrogate is rescaled per sample
    and neuron by the Lee et al. (2020) factor once the sequence is complete. ``rec_drop``:
    the per-trial dropout mask of the recurrent spikes (see the module docstring).
    """
    T, B, n = currents.shape
    if state is None:
        state = initial_state(B, n, currents.device, currents.dtype)
    holder: dict = {}
    zs: List[torch.Tensor] = []
    vs: List[torch.Tensor] = []
    as_: List[torch.Tensor] = []
    for i_t in currents.unbind(0):
        z, state = alif_step(state, i_t, w_rec, c, spike_fn, detach_reset, detach_recurrent, rec_drop)
        if leak_aware:
            z = LeakAwareScale.apply(z, holder)
            state = state._replace(z=z)
        zs.append(z)
        if record_state:
            vs.append(state.v)
            as_.append(state.a)
    z_all = torch.stack(zs)
    if leak_aware:
        with torch.no_grad():
            holder["factor"] = leak_aware_factor(z_all.detach(), c.alpha)
    return Trajectory(
        z=z_all,
        v=torch.stack(vs) if record_state else None,
        a=torch.stack(as_) if record_state else None,
        final=state,
    )
