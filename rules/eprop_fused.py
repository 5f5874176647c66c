"""e-prop on the fused engine: the same weight update as :func:`rules.eprop.eprop_run`,
computed from postsynaptic ``[T, B, n]`` quantities instead of per-synapse traces.

Why it is exact. Every eligibility trace of :mod:`rules.eprop` is linear in the presynaptic
input ``pre_i`` with coefficients that depend only on the postsynaptic neuron j (its
``alpha_t``, ``rho``, ``beta``, ``psi``). So is the whole update::

    dW_ji = sum_{b,t} c_j[t] e_ji[t]                       (per trial b; b left out below)
    c_j[t] = m_j[t] + cj_j,   m_j[t] = l_j[t] + kappa m_j[t+1]      (filtered = True)
                              m_j[t] = l_j[t]                        (filtered = False)

with ``l_j[t] = L_j^w`` for t in answer window w (0 outside) and ``cj_j`` the rate
regulariser's per-neuron factor (``rate_penalty_grad * 1000 / (dt T B)``; 0 without it):
``sum_t L[t] ebar[t] = sum_t m[t] e[t]`` moves the readout filter from the traces onto the
learning signal. Its adjoint with respect to the two traces (``p = dO/d eps_v``,
``q = dO/d eps_a``) runs backward over the neuron's own dynamics::

    pk   = c_j[t] psi_j[t]
    p[t] = pk + alpha_{t+1} p[t+1] + psi_j[t] q[t+1]      alpha_{t+1} = alpha_j (1 - z_j[t]) (zero reset)
    q[t] = (rho_j - beta_j psi_j[t]) q[t+1] - beta_j pk     (LIF: q = 0)
    dW_ji = sum_{b,t} p_j[t] pre_i[t]                        pre = x[t] (input), z[t-1] (recurrent)

This is, in exact arithmetic, the same sum as the chunked per-synapse recursion of
``eprop_run`` (the reference engine, kept unchanged as the oracle); float64 results agree to
~1e-15 relative (tests/test_eprop_engine.py). The last sum is event-driven: for every
nonzero ``pre[b, i]`` one row ``p[t][b, :]`` is added to ``dW^T[i, :]`` (2-5 % of the
presynaptic entries are nonzero at the tasks' rates), or one matmul where a step is dense.
No ``[B, n, n_in + n]`` tensor exists any more; the cost per step is a few passes over
``[B, n]`` plus ``n`` additions per presynaptic event.

The price: the learning signals of all windows and the rate factor must be known before the
adjoint runs, so the update is computed after the forward pass (two passes over time, as
BPTT), not online. The weights, hence the update, are the same. Memory: the forward keeps
spikes and surrogate derivatives ``[T, B, n]`` (two tensors) while that is at most what the
reference's per-synapse state takes (``(1 + ALIF + filtered) B n (n_in + n)``); beyond that it
keeps only the state at each chunk start and recomputes each chunk's forward (bit-identical)
during the backward pass, so memory stays ~ ``chunk_steps B n`` plus ``T / chunk_steps`` states.

Forward: the fused kernel (:mod:`cognet.core.fused`) per chunk, with the event-driven input
projection; the readout filter, window means, logits and ``dlogits`` calls are the reference
code's own (same order, same window order).
"""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch

from cognet.core.fused import (
    DENSE_THRESHOLD, SHAPE_IDS, _ADAPTIVE, _DETACH_REC, _DETACH_RESET, _REFRACTORY, _RESET_ZERO,
    load_backend, project_inputs,
)
from cognet.core.network import RSNN

from .base import rate_penalty_grad
from .eprop_common import EpropOutput, _check_windows

_FILTERED, _REG = 256, 512  # fused_kernel.cpp EpropFlags


@torch.no_grad()
def eprop_run_fused(
    net: RSNN,
    x: torch.Tensor,
    windows: Sequence[Tuple[int, int]],
    dlogits: Callable[[int, torch.Tensor], torch.Tensor],
    feedback: torch.Tensor,
    *,
    filtered: bool = True,
    rate_target_hz: float = 10.0,
    rate_reg: float = 0.0,
    rate_reg_form: str = "neuron",
    chunk_steps: int = 64,
    keep_history: Optional[bool] = None,
):
    """:func:`rules.eprop.eprop_run` on the fused engine (same arguments, same result).

    ``keep_history``: keep every chunk's spikes and surrogate derivatives (``True``), recompute
    them in the backward pass (``False``), or decide by memory (``None``, see module docstring).
    """
    mod = load_backend()
    T, B, n_in = x.shape
    N, P, n_out = net.n, n_in + net.n, net.n_out
    dev, dt = net.w_rec.device, net.w_rec.dtype
    x = x.to(device=dev, dtype=dt).contiguous()
    c = net.consts
    sur = net.surrogate
    w_rec = net.effective_w_rec().detach().contiguous()
    w_in, w_out, b_out = net.w_in.detach(), net.w_out.detach(), net.b_out.detach()
    feedback = feedback.detach().to(device=dev, dtype=dt)
    kappa = net.kappa
    use_reg = rate_reg > 0
    dt_ms = net.neurons.dt_ms

    order = _check_windows(windows, T)
    in_win = np.zeros(T, dtype=bool)
    end_of = {}
    win_of = np.full(T, -1, dtype=np.int64)  # step -> window index (for the learning signal)
    for w in order:
        s, e = windows[w]
        in_win[s:e] = True
        win_of[s:e] = w
        end_of[e - 1] = w
    chunks = [(c0, min(c0 + chunk_steps, T)) for c0 in range(0, T, chunk_steps)]
    if keep_history is None:
        n_state = 1 + int(c.adaptive) + int(filtered)
        keep_history = 2 * T <= n_state * P

    fwd_flags = ((_RESET_ZERO if c.reset_zero else 0) | (_ADAPTIVE if c.adaptive else 0)
                 | (_REFRACTORY if c.refractory else 0) | _DETACH_RESET | _DETACH_REC)
    shape_id, width, peak = SHAPE_IDS[sur.name], float(sur.width), float(sur.peak)

    def forward_chunk(c0: int, c1: int, st):
        cur = project_inputs(x[c0:c1], w_in).contiguous()
        z, sd, _, _, vT, aT, rT = mod.forward(cur, w_rec, *st, c.alpha, c.rho, c.v_th, c.beta, c.n_ref,
                                              fwd_flags, shape_id, width, peak, DENSE_THRESHOLD)
        return z, sd, (vT, aT, z[-1].clone(), rT)  # a copy: a view would keep the chunk's z alive

    # ---- forward: spikes, readout, logits and learning signals --------------------------
    zeros = torch.zeros(B, N, device=dev, dtype=dt)
    state = (zeros, zeros, zeros, zeros)
    starts: List[tuple] = []  # state at each chunk start
    history: List[tuple] = []
    zf = torch.zeros(B, N, device=dev, dtype=dt)
    zwin = torch.zeros(B, N, device=dev, dtype=dt)
    zcount = torch.zeros(B, N, device=dev, dtype=dt)
    g_wout = torch.zeros_like(w_out)
    g_bout = torch.zeros_like(b_out)
    logits = torch.zeros(len(windows), B, n_out, device=dev, dtype=dt)
    L = torch.zeros(len(windows), B, N, device=dev, dtype=dt)
    for c0, c1 in chunks:
        starts.append(state)
        z, sd, state = forward_chunk(c0, c1, state)
        if keep_history:
            history.append((z, sd))
        for k in range(c1 - c0):
            t = c0 + k
            zf.mul_(kappa).add_(z[k])
            zcount.add_(z[k])
            if in_win[t]:
                zwin.add_(zf)
            w = end_of.get(t)
            if w is not None:
                s, e = windows[w]
                zmean = zwin / (e - s)
                logit = torch.nn.functional.linear(zmean, w_out, b_out)
                logits[w] = logit
                g = dlogits(w, logit).to(dt)
                g_wout.add_(g.t() @ zmean)
                g_bout.add_(g.sum(0))
                L[w] = (g @ feedback.t()) / (e - s)
                zwin.zero_()

    spike_mean = zcount / T
    rates = spike_mean.mean(0) * (1000.0 / dt_ms)
    flags = fwd_flags | (_FILTERED if filtered else 0)
    cj = torch.zeros(0, device=dev, dtype=dt)
    if use_reg:
        cj = (rate_penalty_grad(rates, rate_target_hz, rate_reg, rate_reg_form) * (1000.0 / dt_ms) / (T * B)).to(dt).contiguous()
        flags |= _REG

    # ---- backward: the adjoint of the traces, chunk by chunk from the end ----------------
    p, q, m = (torch.zeros(B, N, device=dev, dtype=dt) for _ in range(3))
    gt = torch.zeros(P, N, device=dev, dtype=dt)  # dW^T: row i = presynaptic input / neuron i
    for ci in range(len(chunks) - 1, -1, -1):
        c0, c1 = chunks[ci]
        z, sd = history[ci] if keep_history else forward_chunk(c0, c1, starts[ci])[:2]
        zb = starts[ci][2].contiguous()
        win = torch.as_tensor(win_of[c0:c1])
        mod.eprop_adjoint(x[c0:c1], z, zb, sd, win, L, cj, c.alpha, c.rho, c.v_th, c.beta, flags, float(kappa),
                          p, q, m, gt, DENSE_THRESHOLD)
        if keep_history:
            history[ci] = None  # free as we go

    G = gt.t()
    grads = {
        "w_in": G[:, :n_in].contiguous(),
        "w_rec": G[:, n_in:] * net.rec_mask,
        "w_out": g_wout,
        "b_out": g_bout,
    }
    return EpropOutput(grads=grads, logits=logits, spike_mean=spike_mean, rates_hz=rates)
