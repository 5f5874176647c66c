"""Bit-string memory tasks: ``copy`` and ``reverse``.

Encoding (symbol steps of ``step_ms``)::

    steps 0 .. n-1     : one bit per step on channel ``bit=0`` or ``bit=1``    (store)
    steps n .. 2n-1    : channel ``recall`` on; the network answers one bit per step

``copy`` answers bit i at step n+i; ``reverse`` answers bit n-1-i. One sigmoid output.
Chance: bit accuracy 0.5, sequence accuracy 2^-n.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Tuple

import torch

from .base import EncodingParams, Task, bit_channels, random_bits


@dataclass
class BitStringParams(EncodingParams):
    n_bits: int = 4


class _BitStringTask(Task):
    Params = BitStringParams
    output = "bits"
    stop_metric = "bit_accuracy"
    reverse = False

    def validate(self) -> None:
        if not 1 <= self.params.n_bits <= 64:
            raise ValueError(f"task.n_bits must be between 1 and 64, got {self.params.n_bits}")

    def channels(self) -> List[str]:
        return bit_channels("bit") + ["recall"]

    @property
    def n_out(self) -> int:
        return 1

    def n_symbol_steps(self) -> int:
        return 2 * self.params.n_bits

    def phase_steps(self) -> Dict[str, List[Tuple[int, int]]]:
        n = self.params.n_bits
        return {"store": [(0, n)], "recall": [(n, 2 * n)]}

    def _symbols(self, batch: int, g: torch.Generator):
        n = self.params.n_bits
        bits = random_bits(batch, n, g)  # [B, n]
        active = torch.zeros(2 * n, batch, 3)
        active[torch.arange(n)[:, None], torch.arange(batch)[None, :], bits.T] = 1.0
        active[n:, :, 2] = 1.0
        answer = bits.flip(1) if self.reverse else bits
        target = answer.T[:, :, None].float()  # [W=n, B, 1]
        mask = torch.ones(n, batch, dtype=torch.bool)
        return active, target, mask, list(range(n, 2 * n)), {"bits": bits}

    def chance(self) -> Dict[str, float]:
        return {"bit_accuracy": 0.5, "sequence_accuracy": 0.5 ** self.params.n_bits}


class CopyTask(_BitStringTask):
    name = "copy"
    summary = "store an n-bit string, reproduce it bit by bit after the recall cue"


class ReverseTask(_BitStringTask):
    name = "reverse"
    summary = "store an n-bit string, reproduce it in reverse order after the recall cue"
    reverse = True
