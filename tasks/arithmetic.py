"""Binary arithmetic on bit-serial numbers: ``add``.

``add``: two n-bit numbers a and b are streamed together, least significant bit first::

    steps 0 .. n-1 : channels ``a=0|a=1`` and ``b=0|b=1`` show bit k of a and of b
    step  n        : channel ``end`` on (no more bits)

The network answers sum bit k in step k (the readout is read at the end of the step, after
the two bits have been seen) and the final carry in step n: n+1 answer bits of
``a + b``, computed with Python integers. One sigmoid output. Chance: bit accuracy 0.5,
sequence accuracy 2^-(n+1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

import torch

from cognet.encoding import bits_of, int_of

from .base import EncodingParams, Task, bit_channels, random_bits


@dataclass
class AddParams(EncodingParams):
    n_bits: int = 4


class AddTask(Task):
    name = "add"
    summary = "add two n-bit numbers streamed bit by bit (LSB first); answer the n+1 sum bits"
    Params = AddParams
    output = "bits"

    def validate(self) -> None:
        if not 1 <= self.params.n_bits <= 62:
            raise ValueError(f"task.n_bits must be between 1 and 62, got {self.params.n_bits}")

    def channels(self) -> List[str]:
        return bit_channels("a") + bit_channels("b") + ["end"]

    @property
    def n_out(self) -> int:
        return 1

    def n_symbol_steps(self) -> int:
        return self.params.n_bits + 1

    def phase_steps(self) -> Dict[str, List[Tuple[int, int]]]:
        n = self.params.n_bits
        return {"operands": [(0, n)], "carry": [(n, n + 1)]}

    def _symbols(self, batch: int, g: torch.Generator):
        n = self.params.n_bits
        a_bits, b_bits = random_bits(batch, n, g), random_bits(batch, n, g)
        active = torch.zeros(n + 1, batch, 5)
        steps, trials = torch.arange(n)[:, None], torch.arange(batch)[None, :]
        active[steps, trials, a_bits.T] = 1.0
        active[steps, trials, 2 + b_bits.T] = 1.0
        active[n, :, 4] = 1.0
        a = [int_of(r) for r in a_bits.tolist()]
        b = [int_of(r) for r in b_bits.tolist()]
        s = [bits_of(x + y, n + 1) for x, y in zip(a, b)]  # Python integer arithmetic
        target = torch.tensor(s, dtype=torch.float32).T[:, :, None]  # [n+1, B, 1]
        mask = torch.ones(n + 1, batch, dtype=torch.bool)
        return active, target, mask, list(range(n + 1)), {"a": a, "b": b, "sum": [x + y for x, y in zip(a, b)]}

    def chance(self) -> Dict[str, float]:
        return {"bit_accuracy": 0.5, "sequence_accuracy": 0.5 ** (self.params.n_bits + 1)}
