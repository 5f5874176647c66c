"""MDGL: e-prop plus the one-hop recurrent credit that is available one step later.

Multidigraph learning (Liu et al. 2021, PNAS, "Cell-type-specific neuromodulation guides
synaptic credit assignment in a spiking neural network") keeps e-prop's eligibility traces and
adds to each neuron's learning signal what its spike does, through one recurrent synapse, to
the spikes of the neurons it projects to one step later. In the notation of :mod:`rules.hops`
(``g0[t] = dE/dz[t]`` through the readout and the rate regulariser only; ``psi`` the
pseudo-derivative, 0 while refractory)::

    L~_p[t]  = g0_p[t] + sum_j W~_jp psi_j[t+1] g0_j[t+1]          (0 for the last step)
    dW_in, dW_rec: e-prop's update with the learning signal L~ in place of g0
    dW_out, db_out: exact

``psi_j[t+1] W_jp`` is ``dz_j[t+1] / dz_p[t]`` through neuron j's voltage at that step alone:
the one-hop term of :mod:`rules.hops` (``hop.hops=1``) with neuron j's *instantaneous* credit
``psi_j[t+1] g0_j[t+1]`` in place of its whole e-prop adjoint ``delta_j[t+1]``. That is what
keeps the rule online: the extra signal for the eligibility trace of step t is known at step
t + 1, so an online implementation keeps one step of traces. (Here the update is computed after
the forward pass, as cognet's fused e-prop engine does; the sum is the same.)

``W~`` (``mdgl.weights``):

* ``exact`` (default): ``W_rec`` itself (weight transport within the recurrent layer).
* ``cell-type``: the paper's neuromodulatory approximation: ``W_jp`` replaced by the mean of
  the existing synapses from p's cell type to j's (:func:`cell_types`). The cell types are the
  two populations (ALIF and LIF) and, with Dale's law (``network.dale=true``), excitatory and
  inhibitory within each: four types, as in the paper, whose networks obey Dale's law so that
  the block means carry the sign and size of the E and I projections. Without Dale's law the
  weights have mixed signs and the means keep only the net sign of each block (in a trained
  ``dup-rev`` network all four are negative, about a third of the mean ``|W_jp|``; the matrix
  of means has a quarter of ``W_rec``'s norm).

``mdgl-symmetric`` uses ``W_out^T`` for the readout's learning signals, ``mdgl-random`` a
fixed random ``B ~ N(0, mdgl.feedback_std^2)`` (drawn as ``eprop-random`` draws it). Tested in
``tests/test_mdgl.py`` to float64 round-off against an autodiff oracle in which only the
voltage of the one step after a spike passes the recurrent credit on.

Not e-prop (the learning signal of a neuron needs its targets' signals and the weights to
them), hence the name. Cost per iteration: the hop rules' forward (recording the voltage and
adaptation), one backward pass of the neurons' own dynamics (as ``hop.hops=0``), the
pseudo-derivatives from the recorded state and one ``[T B, n] x [n, n]`` product: about what
``hop.hops=1`` costs (``benchmarks/eprop_vs_bptt.py --side-by-side --rules bptt,hop1,mdgl``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from cognet.core.errors import ConfigError
from cognet.core.network import RSNN

from .hops import CreditRule, credit_forward, credit_gradients

WEIGHTS = ("exact", "cell-type")


@dataclass
class MdglConfig:
    """Options of the MDGL rules (config section ``mdgl``); ignored by the other rules."""

    weights: str = "exact"  # exact | cell-type: the weights the one-hop term goes through
    feedback_std: float = 1.0  # mdgl-random: fixed B ~ N(0, feedback_std^2), as eprop-random

    def validate(self) -> None:
        if self.weights not in WEIGHTS:
            raise ConfigError(f"mdgl.weights must be one of {list(WEIGHTS)}, got {self.weights!r}")
        if not (isinstance(self.feedback_std, (int, float)) and not isinstance(self.feedback_std, bool)
                and self.feedback_std > 0 and math.isfinite(self.feedback_std)):
            raise ConfigError(f"mdgl.feedback_std must be positive, got {self.feedback_std!r}")


def pseudo_derivative(net: RSNN, traj) -> torch.Tensor:
    """``psi[t] = dz[t]/dv[t]`` ``[T, B, n]`` of a trajectory recorded with its state: the
    network's surrogate at the normalised voltage, divided by ``v_th``, 0 while refractory."""
    c = net.consts
    v, z = traj.v.detach(), traj.z.detach()
    x = torch.sub(v, c.v_th)  # (v - v_th - beta a) / v_th as alif_step evaluates it, in place after
    if c.adaptive:
        x.sub_(c.beta * traj.a.detach())
    x.div_(c.v_th)
    psi = net.surrogate.derivative(x).div_(c.v_th)
    if c.refractory:
        # refractory at t <=> a spike in the n_ref - 1 steps before; no second spike can fall in
        # that window, so multiplying by 1 - z[t - k] for each k is alif_step's r == 0 mask
        for k in range(1, int(c.n_ref.max())):
            psi[k:].mul_(1.0 - z[:-k] * (c.n_ref > k).to(psi.dtype))
    return psi


def cell_types(net: RSNN) -> torch.Tensor:
    """Cell-type index per neuron, ``[n]`` (int64): ALIF / LIF, and under Dale's law
    (``network.dale``) also excitatory / inhibitory, so up to four types."""
    kind = torch.as_tensor(np.asarray(net.neurons.adaptive, dtype=np.int64))
    if net.rec_sign is not None:
        kind = kind + 2 * (net.rec_sign.reshape(-1).cpu() < 0).to(torch.int64)
    return kind


def cell_type_weights(net: RSNN, w_rec: torch.Tensor) -> torch.Tensor:
    """``W_rec`` with every existing synapse replaced by the mean over its block (postsynaptic
    type x presynaptic type, :func:`cell_types`); masked synapses stay 0."""
    kind = cell_types(net).to(w_rec.device)
    mask = net.rec_mask.to(w_rec.dtype)
    out = torch.zeros_like(w_rec)
    types = [kind == k for k in torch.unique(kind).tolist()]
    for post in types:
        for pre in types:
            block = post[:, None] & pre[None, :]
            m = mask * block.to(w_rec.dtype)
            count = m.sum()
            if count > 0:
                out = out + m * ((w_rec * m).sum() / count)
    return out


def mdgl_gradients(net: RSNN, task, batch, train_cfg, weights: str = "exact",
                   feedback: Optional[torch.Tensor] = None):
    """The MDGL rule's gradients for one batch: ``(grads, logits, z, task_loss, reg)`` (the
    arguments as :func:`rules.hops.hop_gradients`; ``weights``: ``exact`` or ``cell-type``)."""
    with torch.enable_grad():
        cp = credit_forward(net, task, batch, train_cfg, feedback, record_state=True)
        w = cp.w_rec.detach()
        if weights == "cell-type":
            w = cell_type_weights(net, w)
        psi = pseudo_derivative(net, cp.traj)
        g = cp.g0.clone()
        g[:-1] += (psi[1:] * cp.g0[1:]) @ w  # sum_j W~_jp psi_j[t+1] g0_j[t+1]
        return credit_gradients(net, cp, g)


class _Mdgl(CreditRule):
    config_sections = ("mdgl",)

    def __init__(self, net: RSNN, task, train_cfg, generator: Optional[torch.Generator] = None,
                 mdgl_cfg=None) -> None:
        super().__init__(net, task, train_cfg, generator, MdglConfig() if mdgl_cfg is None else mdgl_cfg)

    @classmethod
    def from_config(cls, net, task, run_cfg, generator=None):
        return cls(net, task, run_cfg.train, generator, mdgl_cfg=run_cfg.mdgl)

    def gradients(self, batch):
        return mdgl_gradients(self.net, self.task, batch, self.cfg, self.rcfg.weights, self.B)


class MdglSymmetric(_Mdgl):
    name = "mdgl-symmetric"
    summary = "e-prop plus the one-hop credit known one step later (Liu et al. 2021), through W_out^T"
    feedback_kind = "symmetric"


class MdglRandom(_Mdgl):
    name = "mdgl-random"
    summary = "mdgl-symmetric with the readout's learning signals through a fixed random matrix"
    feedback_kind = "random"
