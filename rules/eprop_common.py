"""Pieces shared by both e-prop engines (:mod:`rules.eprop`, :mod:`rules.eprop_fused`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import torch


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
