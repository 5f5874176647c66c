"""Pieces shared by both e-prop engines (:mod:`rules.eprop`, :mod:`rules.eprop_fused`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import torch

from cognet.core.errors import ConfigError


@dataclass
class EpropOutput:
    grads: Dict[str, torch.Tensor]  # w_in, w_rec, w_out, b_out
    logits: torch.Tensor  # [W, B, n_out] (window order as given)
    spike_mean: torch.Tensor  # [B, n] mean spikes per step
    rates_hz: torch.Tensor  # [n]


def _check_windows(windows: Sequence[Tuple[int, int]], T: int) -> List[int]:
    """Window indices sorted by start; raises if windows overlap or do not fit."""
    order = sorted(range(len(windows)), key=lambda w: windows[w][0])
    last_end = 0
    for w in order:
        s, e = int(windows[w][0]), int(windows[w][1])
        if not 0 <= s < e <= T:
            raise ValueError(f"answer window {(s, e)} does not fit in a trial of {T} steps")
        if s < last_end:
            raise ValueError(f"e-prop needs non-overlapping answer windows; {(s, e)} overlaps an earlier one")
        last_end = e
    return order


def require_plain_network(rule: str, net) -> None:
    """Refuse what the rules built on e-prop's traces cannot differentiate: the leak-aware
    surrogate, BNTT and the conv front end (each with the reason and the way out)."""
    if net.leak_aware:
        raise ValueError(f"rule {rule!r} does not support surrogate.leak_aware=true "
                         "(the leak-aware factor needs the whole sequence); use rule bptt")
    if getattr(net, "bntt", None) is not None:
        raise ConfigError(f"rule {rule!r} does not support network.bntt=true (the batch statistics of "
                          "every step couple all trials, which the per-trial traces do not carry); use rule bptt")
    if getattr(net, "conv", None) is not None:
        raise ConfigError(f"rule {rule!r} does not support the conv front end (network.conv_channels > 0: "
                          "its eligibility traces cover W_in, W_rec and W_out only); use rule bptt")


def draw_feedback(net, std: float, generator=None) -> torch.Tensor:
    """A fixed feedback matrix ``B ~ N(0, std^2)`` ``[n, n_out]`` from ``generator`` (default: seed 0),
    drawn in float64, then cast to the network's dtype and device."""
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    b = torch.randn(net.n, net.n_out, generator=g, dtype=torch.float64)
    return (b * std).to(net.w_out.device, net.w_out.dtype)
