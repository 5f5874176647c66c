"""Online e-prop (Bellec et al. 2020) for LIF/ALIF populations, exact and memory-bounded.

The network runs forward in time under ``torch.no_grad()``; no autograd graph over time is
built and no per-step history is kept beyond one chunk, so memory does not grow with the
sequence length T.

Dynamics (see :mod:`cognet.core.functional`; the forward is ``alif_step`` itself)::

    v_j[t] = alpha_t v_j[t-1] + sum_i W_in_ji x_i[t] + sum_i W_rec_ji z_i[t-1] - (reset)
             alpha_t = alpha_j               reset = "subtract"
             alpha_t = alpha_j (1 - z_j[t-1]) reset = "zero"
    a_j[t] = rho_j a_j[t-1] + z_j[t-1]
    z_j[t] = H((v_j[t] - v_th - beta_j a_j[t]) / v_th)   (0 while refractory)

Pseudo-derivative (the network's own surrogate; 0 while refractory)::

    psi_j[t] = surrogate.derivative((v_j[t] - v_th - beta_j a_j[t]) / v_th) / v_th

Eligibility traces of synapse i -> j, with pre_i[t] = x_i[t] (input synapses) or z_i[t-1]
(recurrent synapses)::

    eps_v_ji[t] = alpha_t eps_v_ji[t-1] + pre_i[t]
    eps_a_ji[t] = psi_j[t-1] eps_v_ji[t-1] + (rho_j - beta_j psi_j[t-1]) eps_a_ji[t-1]
    e_ji[t]     = psi_j[t] (eps_v_ji[t] - beta_j eps_a_ji[t])          (LIF: beta_j = 0)
    ebar_ji[t]  = kappa ebar_ji[t-1] + e_ji[t]          readout-filtered trace (kappa of the readout)

Self-connections get zero gradient (``rec_mask``).

Dropout (``network.dropout`` / ``network.input_dropout``, masks m [B, n] and u [B, n_in]
drawn once per trial, see :mod:`cognet.core.network`): the presynaptic activities become
pre_i[t] = u_i x_i[t] and m_i z_i[t-1], the readout filters m_j z_j[t], so the learning
signal of neuron j is m_j L_j^w. The neuron's own reset, adaptation, pseudo-derivative and
rate regulariser use its own spikes z_j. With these the exactness below holds with dropout on.

Loss on readout window means: logit_w = mean_{t in w} y[t], y[t] = W_out zf[t] + b_out,
zf[t] = kappa zf[t-1] + z[t]. With g_w = dE/dlogit_w (``task.loss_grad_logits``, known at
the end of window w) and feedback matrix B ([n, n_out])::

    L_j^w  = sum_k B_jk g_w,k / |w|                              learning signal of window w
    dW_ji  = sum_w L_j^w sum_{t in w} ebar_ji[t]                 (filtered = True; exact)
    dW_ji  = sum_w L_j^w sum_{t in w} e_ji[t]                    (filtered = False; cheaper approximation)
    dW_out = sum_w g_w (mean_{t in w} zf[t])^T,  db_out = sum_w g_w     (exact readout gradient)

Firing-rate regulariser (same E_reg as BPTT, :func:`rules.base.rate_penalty`), local form:
``dE_reg/dz_j[t] = rate_penalty_grad(r)_j * 1000 / (dt T B)`` is the same for every step and
trial, so ``dW_ji += that * sum_{b,t} e_ji[t]`` -- the neuron's own rate times its summed
traces.

With B = W_out^T (``eprop-symmetric``) and ``filtered = True`` these are exactly the autodiff
gradients of the network whose spikes' gradients are stopped in the recurrent input and in
the reset (``RSNN(detach_recurrent=True, detach_reset=True)``), for LIF and ALIF neurons and
both resets (tested to 1e-9 in float64).

How it is computed fast (``chunk_steps``): every trace above is linear in the presynaptic
inputs with coefficients that depend only on the postsynaptic neuron. Over a chunk of K
steps the per-synapse state (eps_v, eps_a, ebar) and the window/regulariser sums are
therefore ``coef_j * state_ji[t0] + sum_s phi_j(s) pre_i(s)``. The coefficients phi (per
trial and neuron, not per synapse) come from a K-step adjoint recursion of the neuron's own
2x2 dynamics; the sums over s are batched matrix products. The per-synapse tensors
[B, n, n_in + n] are touched a few times per chunk instead of several times per step, which
is what makes the readout-filtered (paper-exact) variant about as fast as BPTT. Chunks end
at every answer-window start and end; the window's learning signal is applied at its end
(a window longer than a chunk keeps one extra per-synapse sum until then).

Trade-off of ``filtered = False``: one per-synapse state tensor less (memory and a few
passes per chunk), but the update is then no longer the gradient of any loss: it ignores
that a spike keeps driving the leaky readout after it happened.

Engines (``net.engine`` / ``train.engine``, as for BPTT, :func:`cognet.core.fused.resolve_engine`):
``reference`` is the chunked torch code of :func:`eprop_run` below, kept unchanged as the
oracle; ``fused`` (picked by ``auto`` on CPU) computes the same update without any
per-synapse state, from the adjoint of the traces over postsynaptic ``[T, B, n]`` quantities
and event-driven presynaptic sums in C++ (:mod:`rules.eprop_fused`; equal to the reference to
~1e-15 relative in float64, same spikes). If the compiled backend cannot load, ``auto`` warns
once and runs the reference code.

Feedback: ``eprop-symmetric`` B = W_out^T; ``eprop-random`` fixed B ~ N(0, s^2)
(s = ``eprop.feedback_std``, default 1 as in the e-prop evidence tutorial; trained readouts
grow to entries of that size, and a much smaller B lets the rate regulariser drown the
task signal); ``eprop-adaptive`` B starts like W_out (N(0, 1/n)), then receives every
update the optimiser gave W_out (the previous iteration's change of W_out), and both W_out
and B shrink by the factor (1 - ``eprop.adaptive_decay``) each iteration (Kolen-Pollack), so
B converges to W_out^T.

``StepResult.z`` holds the time-averaged spikes ``[1, B, n]`` (its mean is the mean spike
probability per step, all the trainer uses), not the raster: keeping the raster would make
memory grow with T.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import math

import numpy as np
import torch
import torch.nn.functional as F

from cognet.core.errors import ConfigError
from cognet.core.functional import alif_step, initial_state
from cognet.core.fused import resolve_engine
from cognet.core.network import RSNN

from .base import LearningRule, StepResult, rate_penalty, rate_penalty_grad
from .eprop_common import EpropOutput, _check_windows, draw_feedback, require_plain_network
from .eprop_fused import eprop_run_fused


# ---------------------------------------------------------------------------------------
# the exact online engine
# ---------------------------------------------------------------------------------------
def _chunks(T: int, window_bounds: Sequence[int], size: int) -> List[Tuple[int, int]]:
    """Half-open chunks of at most ``size`` steps with a boundary at every window start and
    end (so a window of at most ``size`` steps never needs a per-synapse window sum)."""
    bounds = sorted(set(int(e) for e in window_bounds if e > 0) | {T})
    out, start = [], 0
    for b in bounds:
        while b - start > size:
            out.append((start, start + size))
            start += size
        if b > start:
            out.append((start, b))
            start = b
    return out


def _bsum(coef: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """sum_b coef[b, j] X[b, j, i] -> [n, P], without a [B, n, P] temporary."""
    out = X[0] * coef[0][:, None]
    for b in range(1, X.shape[0]):
        out.addcmul_(X[b], coef[b][:, None])
    return out


@torch.no_grad()
def eprop_run(
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
    masks=None,
    engine: Optional[str] = None,
) -> EpropOutput:
    """One forward pass with online e-prop; returns the weight gradients.

    Args:
        net: the network (its ``alif_step`` dynamics and surrogate are used as they are).
        x: input spikes ``[T, B, n_in]``.
        windows: answer windows (half-open step ranges, non-overlapping).
        dlogits: ``dlogits(w, logit_w)`` -> dE/dlogit_w ``[B, n_out]``, called at the end of
            window ``w`` with that window's logits ``[B, n_out]``.
        feedback: B ``[n, n_out]`` (``W_out^T`` for symmetric e-prop).
        filtered: readout-filtered traces (exact) or plain traces (approximation).
        rate_target_hz, rate_reg, rate_reg_form: the firing-rate regulariser (see :mod:`rules.base`).
        chunk_steps: steps per chunk (memory ~ chunk_steps * B * (n + n_in)).
        masks: the trials' :class:`~cognet.core.network.DropoutMasks` (default: drawn by
            ``net.dropout_masks``, i.e. none in eval mode or with dropout off).
        engine: ``auto`` | ``fused`` | ``reference`` (default: ``net.engine``). ``fused`` computes
            the same update from postsynaptic quantities (:mod:`rules.eprop_fused`);
            ``reference`` is the code below, kept as the oracle.
    """
    if net.leak_aware:
        raise ValueError("e-prop does not support surrogate.leak_aware=true (its factor needs the whole sequence)")
    if getattr(net, "bntt", None) is not None:
        raise ConfigError("e-prop does not support network.bntt=true; use rule bptt")
    if getattr(net, "conv", None) is not None:
        raise ConfigError("e-prop does not support the conv front end (network.conv_channels > 0); use rule bptt")
    if chunk_steps < 1:
        raise ValueError(f"chunk_steps must be >= 1, got {chunk_steps}")
    if x.dim() != 3 or x.shape[-1] != net.n_in:
        raise ValueError(f"input must be [T, B, {net.n_in}], got {tuple(x.shape)}")
    # dropout masks exist in the reference engine only (net.needs_reference_path; BNTT is refused above)
    chosen = ("reference" if masks is not None or net.needs_reference_path else
              resolve_engine(net.engine if engine is None else engine, net.w_rec.device, net.w_rec.dtype,
                             net.surrogate))
    if chosen == "fused":
        return eprop_run_fused(net, x, windows, dlogits, feedback, filtered=filtered, rate_target_hz=rate_target_hz,
                               rate_reg=rate_reg, rate_reg_form=rate_reg_form, chunk_steps=chunk_steps)
    T, B, n_in = x.shape
    N, P, n_out = net.n, n_in + net.n, net.n_out
    dev, dt = net.w_rec.device, net.w_rec.dtype
    x = x.to(device=dev, dtype=dt)
    if masks is None:
        masks = net.dropout_masks(B)
    m_rec = None
    if masks is not None:
        if masks.inp is not None:
            x = x * masks.inp.to(device=dev, dtype=dt)
        if masks.rec is not None:
            m_rec = masks.rec.to(device=dev, dtype=dt)
    c = net.consts
    sur = net.surrogate
    w_rec = net.effective_w_rec().detach()
    w_in, w_out, b_out = net.w_in.detach(), net.w_out.detach(), net.b_out.detach()
    feedback = feedback.detach().to(device=dev, dtype=dt)
    kappa = net.kappa
    adaptive = c.adaptive
    zero_reset = c.reset_zero
    dt_ms = net.neurons.dt_ms
    use_reg = rate_reg > 0

    order = _check_windows(windows, T)
    in_win = np.zeros(T, dtype=bool)
    end_of = {}  # last step of a window -> window index
    for w in order:
        s, e = windows[w]
        in_win[s:e] = True
        end_of[e - 1] = w
    chunks = _chunks(T, [b for w in order for b in windows[w]], chunk_steps)

    # per-synapse state [B, n, P]: eps_v, eps_a (ALIF), ebar (filtered), window sum S (lazily)
    V = torch.zeros(B, N, P, device=dev, dtype=dt)
    A = torch.zeros(B, N, P, device=dev, dtype=dt) if adaptive else None
    E = torch.zeros(B, N, P, device=dev, dtype=dt) if filtered else None
    S: Optional[torch.Tensor] = None
    G = torch.zeros(N, P, device=dev, dtype=dt)  # task gradient
    R = torch.zeros(N, P, device=dev, dtype=dt) if use_reg else None  # sum_{b,t} e

    state = initial_state(B, N, dev, dt)
    psi_prev = torch.zeros(B, N, device=dev, dtype=dt)
    zf = torch.zeros(B, N, device=dev, dtype=dt)
    zwin = torch.zeros(B, N, device=dev, dtype=dt)
    zcount = torch.zeros(B, N, device=dev, dtype=dt)
    g_wout = torch.zeros_like(w_out)
    g_bout = torch.zeros_like(b_out)
    logits = torch.zeros(len(windows), B, n_out, device=dev, dtype=dt)
    beta, rho, alpha = c.beta, c.rho, c.alpha

    # chunk buffers, allocated once and reused (fresh large allocations per chunk fragment the heap)
    k_max = max(c1 - c0 for c0, c1 in chunks)
    n_o_max = 1 + int(adaptive) + int(filtered) + 1 + int(use_reg)
    pre_buf = torch.empty(B, k_max, P, device=dev, dtype=dt)
    psi_buf = torch.empty(k_max + 1, B, N, device=dev, dtype=dt)
    alph_buf = torch.empty(k_max, B, N, device=dev, dtype=dt) if zero_reset else None
    phi_buf = torch.empty(B * n_o_max * N * k_max, device=dev, dtype=dt)

    for c0, c1 in chunks:
        K = c1 - c0
        xc = x[c0:c1]
        cur = F.linear(xc, w_in)  # [K, B, n]
        pre = pre_buf if K == k_max else pre_buf.view(-1)[: B * K * P].view(B, K, P)
        pre[:, :, :n_in] = xc.transpose(0, 1)
        psi = psi_buf[: K + 1]
        psi[0] = psi_prev
        alph = alph_buf[:K] if zero_reset else None
        L = None
        # ---- forward through the chunk (the network's own step function) -------------
        for k in range(K):
            t = c0 + k
            pre[:, k, n_in:] = state.z if m_rec is None else state.z * m_rec
            if zero_reset:
                torch.mul(alpha, 1.0 - state.z, out=alph[k])
            r_prev = state.r
            z, state = alif_step(state, cur[k], w_rec, c, sur, True, True, m_rec)
            if adaptive:
                xs = (state.v - c.v_th - c.beta * state.a) / c.v_th
            else:
                xs = (state.v - c.v_th) / c.v_th
            d = sur.derivative(xs)
            if c.refractory:
                d = d * (r_prev == 0).to(dt)
            torch.div(d, c.v_th, out=psi[k + 1])
            zf.mul_(kappa).add_(z if m_rec is None else z * m_rec)
            zcount.add_(z)
            if in_win[t]:
                zwin.add_(zf)
            w = end_of.get(t)
            if w is not None:  # end of an answer window (always the last step of a chunk)
                s, e = windows[w]
                zmean = zwin / (e - s)
                logit = F.linear(zmean, w_out, b_out)
                logits[w] = logit
                g = dlogits(w, logit).to(dt)
                g_wout.add_(g.t() @ zmean)
                g_bout.add_(g.sum(0))
                L = (g @ feedback.t()) / (e - s)  # [B, n]
                if m_rec is not None:
                    L = L * m_rec
                zwin.zero_()
        psi_prev = psi[K].clone()

        # ---- which outputs this chunk needs -----------------------------------------
        win_steps = in_win[c0:c1]
        has_win = bool(win_steps.any())
        outs = ["v"] + (["a"] if adaptive else []) + (["e"] if filtered else [])
        n_state = len(outs)
        if has_win:
            outs.append("S")
        if use_reg:
            outs.append("R")
        n_o = len(outs)
        idx = {o: i for i, o in enumerate(outs)}
        # eps[k, o] = dO/de[t] at local step k (closed form: only kappa and window steps)
        eps = np.zeros((K, n_o))
        ebar0 = np.zeros(n_o)  # coefficient of ebar[t0 - 1] in each output
        kpow = kappa ** np.arange(K)
        if filtered:
            eps[:, idx["e"]] = kpow[::-1]
            ebar0[idx["e"]] = kappa ** K
        if has_win:
            if filtered:
                acc = 0.0
                col = np.zeros(K)
                for k in range(K - 1, -1, -1):
                    acc = acc * kappa + (1.0 if win_steps[k] else 0.0)
                    col[k] = acc
                eps[:, idx["S"]] = col
                ebar0[idx["S"]] = kappa * col[0]
            else:
                eps[:, idx["S"]] = win_steps.astype(float)
        if use_reg:
            eps[:, idx["R"]] = 1.0
        eps_t = torch.as_tensor(eps, device=dev, dtype=dt)[:, :, None, None]

        # ---- adjoint of the neuron's own dynamics over the chunk ----------------------
        lam_v = torch.zeros(n_o, B, N, device=dev, dtype=dt)
        lam_v[idx["v"]] = 1.0
        lam_a = None
        if adaptive:
            lam_a = torch.zeros(n_o, B, N, device=dev, dtype=dt)
            lam_a[idx["a"]] = 1.0
        Phi = phi_buf[: B * n_o * N * K].view(B, n_o, N, K)
        for k in range(K - 1, -1, -1):
            pk = eps_t[k] * psi[k + 1]  # dO/de * psi
            p = lam_v + pk  # dO/d eps_v[t]  (= coefficient of pre[t])
            Phi[:, :, :, k] = p.transpose(0, 1)
            a_k = alph[k] if zero_reset else alpha
            if adaptive:
                q = torch.addcmul(lam_a, pk, beta, value=-1.0)  # dO/d eps_a[t]
                psm = psi[k]
                lam_v = torch.addcmul(a_k * p, psm, q)
                lam_a = q * torch.addcmul(rho, beta, psm, value=-1.0)
            else:
                lam_v = a_k * p

        # ---- fold the chunk into the per-synapse state and the gradient sums ---------
        def coef_h0(o: str):
            i = idx[o]
            return lam_v[i], (lam_a[i] if adaptive else None), float(ebar0[i])

        def batch_summed(o: str, weight: Optional[torch.Tensor]) -> torch.Tensor:
            """sum_b weight[b, j] * output_o[b, j, i] for this chunk's contribution."""
            i = idx[o]
            phi = Phi[:, i]  # [B, n, K]
            if weight is not None:
                phi = phi * weight[:, :, None]
            out = phi.permute(1, 0, 2).reshape(N, B * K) @ pre.reshape(B * K, P)
            cv, ca, ce = coef_h0(o)
            wv = cv if weight is None else cv * weight
            out += _bsum(wv, V)
            if adaptive:
                out += _bsum(ca if weight is None else ca * weight, A)
            if filtered and ce != 0.0:
                out += _bsum(ce * (torch.ones_like(cv) if weight is None else weight), E)
            return out

        if use_reg:
            R += batch_summed("R", None)
        if has_win:
            if L is not None:  # the window ends here: apply its learning signal now
                G += batch_summed("S", L)
                if S is not None:
                    G += _bsum(L, S)
                    S = None
            else:  # the window continues into the next chunk: keep its per-trial sum
                if S is None:
                    S = torch.zeros(B, N, P, device=dev, dtype=dt)
                cv, ca, ce = coef_h0("S")
                S.addcmul_(cv[:, :, None], V)
                if adaptive:
                    S.addcmul_(ca[:, :, None], A)
                if filtered and ce != 0.0:
                    S.add_(E, alpha=ce)
                S.baddbmm_(Phi[:, idx["S"]], pre)
        elif L is not None:
            raise AssertionError("a window ended in a chunk without window steps")  # pragma: no cover
        if filtered:  # ebar: uses the old eps_v, eps_a
            cv, ca, ce = coef_h0("e")
            E.mul_(ce).addcmul_(cv[:, :, None], V)
            if adaptive:
                E.addcmul_(ca[:, :, None], A)
            E.baddbmm_(Phi[:, idx["e"]], pre)
        if adaptive:
            cv, ca, _ = coef_h0("a")
            A.mul_(ca[:, :, None]).addcmul_(cv[:, :, None], V)
            A.baddbmm_(Phi[:, idx["a"]], pre)
        cv, _, _ = coef_h0("v")
        V.mul_(cv[:, :, None])
        V.baddbmm_(Phi[:, idx["v"]], pre)

    spike_mean = zcount / T
    rates = spike_mean.mean(0) * (1000.0 / dt_ms)
    if use_reg:
        cj = rate_penalty_grad(rates, rate_target_hz, rate_reg, rate_reg_form) * (1000.0 / dt_ms) / (T * B)
        G += cj[:, None] * R
    grads = {
        "w_in": G[:, :n_in].clone(),
        "w_rec": G[:, n_in:] * net.rec_mask,
        "w_out": g_wout,
        "b_out": g_bout,
    }
    return EpropOutput(grads=grads, logits=logits, spike_mean=spike_mean, rates_hz=rates)


# ---------------------------------------------------------------------------------------
# a plain per-step reference (small networks only: it stores every trace over time)
# ---------------------------------------------------------------------------------------
@torch.no_grad()
def trace_history(net: RSNN, x: torch.Tensor, filtered_kappa: Optional[float] = None) -> Dict[str, torch.Tensor]:
    """Eligibility traces of every synapse at every step, straight from the equations above.

    Returns ``eps_v, eps_a, e, ebar`` of shape ``[T, B, n, n_in + n]`` (input synapses
    first, then recurrent ones; self-connections zeroed), plus ``psi`` ``[T, B, n]`` and
    ``z``. Memory grows with T: for tests and inspection of small examples.
    """
    T, B, n_in = x.shape
    N, P = net.n, n_in + net.n
    dt = net.w_rec.dtype
    x = x.to(dt)
    c = net.consts
    kappa = net.kappa if filtered_kappa is None else filtered_kappa
    mask = torch.cat([torch.ones(N, n_in, dtype=dt), net.rec_mask.to(dt)], 1)
    state = initial_state(B, N, dtype=dt)
    ev = torch.zeros(B, N, P, dtype=dt)
    ea = torch.zeros(B, N, P, dtype=dt)
    eb = torch.zeros(B, N, P, dtype=dt)
    psi_prev = torch.zeros(B, N, dtype=dt)
    cur = F.linear(x, net.w_in)
    hist: Dict[str, List[torch.Tensor]] = {k: [] for k in ("eps_v", "eps_a", "e", "ebar", "psi", "z")}
    for t in range(T):
        pre = torch.cat([x[t], state.z], 1)  # [B, P]
        a_t = c.alpha * (1.0 - state.z) if c.reset_zero else c.alpha.expand(B, N)
        r_prev = state.r
        z, state = alif_step(state, cur[t], net.effective_w_rec(), c, net.surrogate, True, True)
        xs = (state.v - c.v_th - c.beta * state.a) / c.v_th if c.adaptive else (state.v - c.v_th) / c.v_th
        psi = net.surrogate.derivative(xs) / c.v_th
        if c.refractory:
            psi = psi * (r_prev == 0).to(dt)
        ea = psi_prev[:, :, None] * ev + (c.rho - c.beta * psi_prev)[:, :, None] * ea
        ev = a_t[:, :, None] * ev + pre[:, None, :]
        e = psi[:, :, None] * (ev - c.beta[None, :, None] * ea)
        eb = kappa * eb + e
        for k, v in (("eps_v", ev), ("eps_a", ea), ("e", e), ("ebar", eb)):
            hist[k].append(v * mask)
        hist["psi"].append(psi)
        hist["z"].append(z)
        psi_prev = psi
    return {k: torch.stack(v) for k, v in hist.items()}


@dataclass
class EpropConfig:
    """Options of the e-prop rules (config section ``eprop``); ignored by the other rules."""

    filtered: bool = True  # readout-filtered eligibility traces (exact e-prop); False = cheaper approximation
    feedback_std: float = 1.0  # eprop-random: fixed B ~ N(0, feedback_std^2) (e-prop tutorial: std 1)
    adaptive_decay: float = 0.01  # eprop-adaptive: W_out and B shrink by this fraction each iteration
    chunk_steps: int = 64  # time steps per chunk of the online computation (memory ~ chunk_steps, not T)

    def validate(self) -> None:
        for k in ("feedback_std", "chunk_steps"):
            v = getattr(self, k)
            if not (v > 0 and math.isfinite(v)):
                raise ConfigError(f"eprop.{k} must be positive, got {v!r}")
        if not 0 <= self.adaptive_decay < 1:
            raise ConfigError(f"eprop.adaptive_decay must be in [0, 1), got {self.adaptive_decay}")


# ---------------------------------------------------------------------------------------
# the learning rules
# ---------------------------------------------------------------------------------------
class _Eprop(LearningRule):
    config_sections = ("eprop",)
    feedback_kind = ""

    def __init__(self, net: RSNN, task, train_cfg, generator: Optional[torch.Generator] = None, eprop_cfg=None) -> None:
        super().__init__(net, task, train_cfg, generator)
        if eprop_cfg is None:
            eprop_cfg = EpropConfig()
        eprop_cfg.validate()
        self.ecfg = eprop_cfg
        require_plain_network(self.name, net)
        self.B: Optional[torch.Tensor] = None
        self.prev_w_out: Optional[torch.Tensor] = None
        if self.feedback_kind in ("random", "adaptive"):
            std = eprop_cfg.feedback_std if self.feedback_kind == "random" else 1.0 / math.sqrt(net.n)
            self.B = draw_feedback(net, std, generator)

    @classmethod
    def from_config(cls, net, task, run_cfg, generator=None):
        return cls(net, task, run_cfg.train, generator, eprop_cfg=run_cfg.eprop)

    def feedback(self) -> torch.Tensor:
        return self.net.w_out.detach().t() if self.B is None else self.B

    def _adapt_feedback(self) -> None:
        """eprop-adaptive: B gets the optimiser's last update of W_out, then both decay."""
        w_out = self.net.w_out
        with torch.no_grad():
            if self.prev_w_out is not None:
                self.B.add_((w_out - self.prev_w_out).t())
            decay = 1.0 - self.ecfg.adaptive_decay
            w_out.mul_(decay)
            self.B.mul_(decay)
            self.prev_w_out = w_out.detach().clone()

    def step(self, batch) -> StepResult:
        net, task = self.net, self.task
        if self.feedback_kind == "adaptive":
            self._adapt_feedback()
        W = len(batch.windows)
        full = torch.zeros(W, batch.x.shape[1], net.n_out, dtype=net.w_out.dtype, device=net.w_out.device)

        def dlogits(w: int, logit: torch.Tensor) -> torch.Tensor:
            full.zero_()
            full[w] = logit
            return task.loss_grad_logits(full, batch)[w]

        out = eprop_run(net, batch.x, batch.windows, dlogits, self.feedback(), filtered=self.ecfg.filtered,
                        rate_target_hz=self.cfg.rate_target_hz, rate_reg=self.cfg.rate_reg,
                        rate_reg_form=self.cfg.rate_reg_form, chunk_steps=self.ecfg.chunk_steps)
        net.zero_grad(set_to_none=True)
        for name, g in out.grads.items():
            getattr(net, name).grad = g
        with torch.no_grad():
            task_loss = task.loss(out.logits, batch)
            reg = rate_penalty(out.spike_mean[None], net.neurons.dt_ms, self.cfg.rate_target_hz, self.cfg.rate_reg,
                               self.cfg.rate_reg_form)
        return StepResult(float(task_loss + reg), float(task_loss), float(reg), out.logits, out.spike_mean[None])

    def state_tensors(self) -> Dict[str, torch.Tensor]:
        out = {}
        if self.B is not None:
            out["feedback"] = self.B
        if self.prev_w_out is not None:
            out["prev_w_out"] = self.prev_w_out
        return out

    def load_state_tensors(self, tensors: Dict[str, torch.Tensor]) -> None:
        allowed = set(self.state_tensors()) | ({"feedback"} if self.B is not None else set())
        if self.feedback_kind == "adaptive":
            allowed.add("prev_w_out")
        unknown = set(tensors) - allowed
        if unknown:
            raise ValueError(f"rule {self.name!r} does not know state tensors {sorted(unknown)}")
        if "feedback" in tensors:
            self.B = tensors["feedback"].to(self.net.w_out.device, self.net.w_out.dtype).clone()
        if "prev_w_out" in tensors:
            self.prev_w_out = tensors["prev_w_out"].to(self.net.w_out.device, self.net.w_out.dtype).clone()


class EpropSymmetric(_Eprop):
    name = "eprop-symmetric"
    summary = "online e-prop, learning signals through W_out^T (exact stop-gradient gradient)"
    feedback_kind = "symmetric"


class EpropRandom(_Eprop):
    name = "eprop-random"
    summary = "online e-prop, learning signals through a fixed random feedback matrix"
    feedback_kind = "random"


class EpropAdaptive(_Eprop):
    name = "eprop-adaptive"
    summary = "online e-prop, feedback matrix gets W_out's updates, both decay (Kolen-Pollack)"
    feedback_kind = "adaptive"
