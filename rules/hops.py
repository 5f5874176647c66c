"""Hop-truncated recurrent credit: e-prop plus ``K`` synaptic hops of the credit e-prop drops.

Not e-prop, and not online: a diagnostic rule (and a candidate improvement) that measures how
much of the recurrent credit a task needs. Its gradient is the exact gradient of the loss
restricted to the paths from a weight to the loss that cross at most ``K`` recurrent synapses.

Take the network e-prop differentiates (:mod:`rules.eprop`: the reset's gradient stopped,
``RSNN(detach_reset=True)``). Write ``adj(g)`` for the adjoint of the neurons' *own*
dynamics: given ``g[t] = dE/dz[t]`` from outside, ``delta = adj(g)`` is ``dE/dI[t]`` (``I``: a
neuron's total input current), propagated backward through each neuron's membrane, adaptation
and surrogate only (the spikes' recurrent input stopped, as e-prop does). Then::

    g0[t]      = dE/dz[t] through the readout and the rate regulariser only
                 (hop-symmetric: exact, readout weights W_out; hop-random: W_out^T -> B)
    delta^(0)  = adj(g0)                                            (= e-prop's update)
    delta^(k)  = adj(g0 + h^(k-1)),  h^(k-1)[t] = W_rec^T delta^(k-1)[t + 1]   (one more hop)
    dW_in      = sum_{b,t} delta^(K)[t] x[t]^T
    dW_rec     = sum_{b,t} delta^(K)[t] z[t-1]^T    (self-connections masked)
    dW_out, db_out: exact

``h[t]`` is what a spike of neuron p at step t does to the neurons it projects to one step
later, ``sum_j W_jp dE/dI_j[t+1]``: the term e-prop leaves out, taken over one synapse at a
time. By linearity ``delta^(K)`` sums the credit of every path with at most K recurrent
synapses exactly once (a truncated Neumann series of BPTT's recursion), so

- ``K = 0`` is e-prop (``hop-symmetric`` = ``eprop-symmetric``, ``hop-random`` =
  ``eprop-random`` with the same feedback matrix), and
- ``K >= T - 1`` is BPTT of the same network (``bptt`` with ``network.detach_reset=true``),

both tested to float64 round-off in ``tests/test_hops.py``, as is ``K = 1`` against an
autodiff oracle built from ``K + 1`` stacked copies of the network.

Relation to the literature: MDGL (Liu et al. 2021, PNAS) adds the same one-hop term with
neuron j's instantaneous learning signal ``psi_j[t+1] L_j[t+1]`` in place of ``delta_j[t+1]``
(and cell-type averages of ``W_jp``), which keeps it online; here ``delta_j`` is neuron j's
whole e-prop adjoint, so the rule needs the future (two passes over time) and the transpose of
``W_rec`` (weight transport). Cost per iteration: BPTT's forward plus ``K + 1`` backward
passes of the neurons' own dynamics.

Config section ``hop``: ``hops`` (K, default 1) and ``feedback_std`` (hop-random's B ~ N(0,
std^2), drawn exactly as ``eprop-random`` draws its matrix).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, NamedTuple, Optional

import torch

from cognet.core.errors import ConfigError
from cognet.core.functional import Trajectory, simulate
from cognet.core.fused import project_inputs, resolve_engine, simulate_fused
from cognet.core.network import RSNN

from .base import LearningRule, StepResult, rate_penalty
from .eprop_common import draw_feedback, require_plain_network


@dataclass
class HopConfig:
    """Options of the hop rules (config section ``hop``); ignored by the other rules."""

    hops: int = 1  # K: recurrent synapses a credit path may cross (0 = e-prop)
    feedback_std: float = 1.0  # hop-random: fixed B ~ N(0, feedback_std^2), as eprop-random

    def validate(self) -> None:
        if isinstance(self.hops, bool) or not isinstance(self.hops, int) or self.hops < 0:
            raise ConfigError(f"hop.hops must be a non-negative integer, got {self.hops!r}")
        if not (self.feedback_std > 0 and math.isfinite(self.feedback_std)):
            raise ConfigError(f"hop.feedback_std must be positive, got {self.feedback_std!r}")


class _FeedbackReadout(torch.autograd.Function):
    """``linear(f, W_out, b_out)`` whose gradient to ``f`` goes through ``B`` ``[n, n_out]``
    instead of ``W_out^T``; the weights' gradients are exact."""

    @staticmethod
    def forward(ctx, f, w_out, b_out, fb):  # type: ignore[override]
        ctx.save_for_backward(f, fb)
        return torch.nn.functional.linear(f, w_out, b_out)

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        f, fb = ctx.saved_tensors
        n_out = g.shape[-1]
        gw = g.reshape(-1, n_out).t() @ f.reshape(-1, f.shape[-1])
        return g @ fb.t(), gw, g.reshape(-1, n_out).sum(0), None


class CreditPass(NamedTuple):
    """What the hop and MDGL rules share from one batch (:func:`credit_forward`): the inputs and the
    weights as autograd leaves, the trajectory of the network with the reset and the recurrent
    input stopped (what e-prop differentiates), and ``g0 = dE/dz`` through the readout and the
    rate regulariser only."""

    cur: torch.Tensor
    w_in: torch.Tensor
    w_rec: torch.Tensor
    traj: Trajectory
    logits: torch.Tensor
    task_loss: torch.Tensor
    reg: torch.Tensor
    g0: torch.Tensor
    g_wout: torch.Tensor
    g_bout: torch.Tensor


def credit_forward(net: RSNN, task, batch, train_cfg, feedback: Optional[torch.Tensor] = None,
                   record_state: bool = False) -> CreditPass:
    """The forward pass and ``g0`` of :func:`hop_gradients` (``feedback``: ``B`` ``[n, n_out]``, or
    ``None`` for ``W_out^T``). The engine is the network's own (fused on CPU where it loads, else
    the reference step loop); both give the same numbers. Call it under ``torch.enable_grad()``."""
    x = batch.x.to(device=net.w_in.device, dtype=net.w_in.dtype)
    engine = resolve_engine(net.engine, x.device, x.dtype, net.surrogate)
    w_in = net.w_in.detach().requires_grad_(True)
    w_rec = net.effective_w_rec().detach().requires_grad_(True)
    w_out = net.w_out.detach().requires_grad_(True)
    b_out = net.b_out.detach().requires_grad_(True)
    if engine == "fused":
        cur = project_inputs(x, w_in)
        traj = simulate_fused(cur, w_rec, net.consts, net.surrogate, None, detach_reset=True,
                              detach_recurrent=True, record_state=record_state)
    else:
        cur = torch.nn.functional.linear(x, w_in)
        traj = simulate(cur, w_rec, net.consts, net.surrogate, None, detach_reset=True, detach_recurrent=True,
                        record_state=record_state)
    z = traj.z
    filtered = net.filtered_windows(z, batch.windows)
    if feedback is None:
        logits = torch.nn.functional.linear(filtered, w_out, b_out)
    else:
        logits = _FeedbackReadout.apply(filtered, w_out, b_out, feedback.detach().to(z.dtype))
    task_loss = task.loss(logits, batch)
    reg = rate_penalty(z, net.neurons.dt_ms, train_cfg.rate_target_hz, train_cfg.rate_reg, train_cfg.rate_reg_form)
    g0, g_wout, g_bout = torch.autograd.grad(task_loss + reg, (z, w_out, b_out), retain_graph=True)
    return CreditPass(cur, w_in, w_rec, traj, logits, task_loss, reg, g0, g_wout, g_bout)


def credit_gradients(net: RSNN, cp: CreditPass, g: torch.Tensor):
    """e-prop's update for the learning signal ``g`` ``[T, B, n]`` (``dE/dz`` as seen by each
    neuron), with the exact readout gradients of ``cp``: ``(grads, logits, z, task_loss, reg)``."""
    g_win, g_wrec = torch.autograd.grad(cp.traj.z, (cp.w_in, cp.w_rec), g)
    grads = {"w_in": g_win, "w_rec": g_wrec * net.rec_mask, "w_out": cp.g_wout, "b_out": cp.g_bout}
    return grads, cp.logits.detach(), cp.traj.z.detach(), cp.task_loss.detach(), cp.reg.detach()


def hop_gradients(net: RSNN, task, batch, train_cfg, hops: int, feedback: Optional[torch.Tensor] = None):
    """The hop rule's gradients for one batch: ``(grads, logits, z, task_loss, reg)``.

    ``grads`` maps ``w_in``, ``w_rec``, ``w_out``, ``b_out`` to tensors; ``feedback`` is ``B``
    ``[n, n_out]`` (``None``: ``W_out^T``, exact). The engine is the network's own (fused on CPU
    where it loads, else the reference step loop); both give the same numbers."""
    with torch.enable_grad():
        cp = credit_forward(net, task, batch, train_cfg, feedback)
        g0, g = cp.g0, cp.g0
        w_t = cp.w_rec.detach()
        for _ in range(hops):
            (delta,) = torch.autograd.grad(cp.traj.z, cp.cur, g, retain_graph=True)
            hop = torch.zeros_like(g0)
            hop[:-1] = delta[1:] @ w_t  # sum_j W_jp delta_j[t + 1]
            g = g0 + hop
        return credit_gradients(net, cp, g)


class CreditRule(LearningRule):
    """What the rules built on :func:`credit_forward` share: a config section of their own
    (``config_sections[0]``, with ``feedback_std``), the plain-network checks, the random
    feedback matrix (``feedback_kind = "random"``; it is the rule's saved state) and the step;
    a subclass supplies :meth:`gradients`."""

    feedback_kind = ""

    def __init__(self, net: RSNN, task, train_cfg, generator: Optional[torch.Generator], rule_cfg) -> None:
        super().__init__(net, task, train_cfg, generator)
        self.rcfg = rule_cfg
        self.rcfg.validate()
        require_plain_network(self.name, net)
        if net.uses_dropout:
            raise ConfigError(f"rule {self.name!r} does not support dropout (network.dropout / "
                              "network.input_dropout); use rule bptt or an e-prop rule")
        self.B: Optional[torch.Tensor] = None
        if self.feedback_kind == "random":
            self.B = draw_feedback(net, self.rcfg.feedback_std, generator)

    def gradients(self, batch):
        """``(grads, logits, z, task_loss, reg)`` for one batch (see :func:`hop_gradients`)."""
        raise NotImplementedError

    def step(self, batch) -> StepResult:
        net = self.net
        grads, logits, z, task_loss, reg = self.gradients(batch)
        net.zero_grad(set_to_none=True)
        for name, g in grads.items():
            getattr(net, name).grad = g
        return StepResult(float(task_loss + reg), float(task_loss), float(reg), logits, z.mean(0, keepdim=True))

    def state_tensors(self) -> Dict[str, torch.Tensor]:
        return {} if self.B is None else {"feedback": self.B}

    def load_state_tensors(self, tensors: Dict[str, torch.Tensor]) -> None:
        unknown = set(tensors) - ({"feedback"} if self.B is not None else set())
        if unknown:
            raise ValueError(f"rule {self.name!r} does not know state tensors {sorted(unknown)}")
        if "feedback" in tensors:
            self.B = tensors["feedback"].to(self.net.w_out.device, self.net.w_out.dtype).clone()


class _Hop(CreditRule):
    config_sections = ("hop",)

    def __init__(self, net: RSNN, task, train_cfg, generator: Optional[torch.Generator] = None, hop_cfg=None) -> None:
        super().__init__(net, task, train_cfg, generator, HopConfig() if hop_cfg is None else hop_cfg)
        self.hcfg = self.rcfg

    @classmethod
    def from_config(cls, net, task, run_cfg, generator=None):
        return cls(net, task, run_cfg.train, generator, hop_cfg=run_cfg.hop)

    def gradients(self, batch):
        return hop_gradients(self.net, self.task, batch, self.cfg, self.hcfg.hops, self.B)


class HopSymmetric(_Hop):
    name = "hop-symmetric"
    summary = "e-prop plus hop.hops synaptic hops of recurrent credit through W_rec^T (not online)"
    feedback_kind = "symmetric"


class HopRandom(_Hop):
    name = "hop-random"
    summary = "hop-symmetric with the readout's learning signals through a fixed random matrix"
    feedback_kind = "random"
