"""Memory and logic tasks: ``store-recall``, delayed ``xor`` and ``parity``.

``store-recall`` (gated working memory with distractors), ``n_steps`` = S symbol steps::

    steps 0 .. S-2 : channels ``v<k>=0|v<k>=1`` show a fresh random word of n_bits bits every
                     step (distractors); at one random step s in [0, S-2] channel ``store``
                     is on as well
    step  S-1      : channel ``recall`` on (no word shown); answer the word shown at step s

  n_bits sigmoid outputs, one answer window. Chance: bit accuracy 0.5, sequence 2^-n_bits.

``xor`` (delayed exclusive or), d = ``delay_steps``::

    step 0         : first bit on ``x=0|x=1``
    steps 1 .. d   : nothing (delay)
    step d+1       : second bit on ``x=0|x=1``
    steps d+2..2d+1: nothing (delay)
    step 2d+2      : channel ``go`` on; answer first XOR second

  One sigmoid output. Chance 0.5 / 0.5.

``parity`` of an n-bit string::

    steps 0 .. n-1 : one bit per step on ``bit=0|bit=1``
    step  n        : channel ``end`` on; answer (number of ones) mod 2

  One sigmoid output. Chance 0.5 / 0.5.

All targets are computed with Python integers from the drawn bits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

import torch

from .base import EncodingParams, StringThenAnswerTask, Task, bit_channels, eprop_recommended, random_bits
from .common import check_int


@dataclass
class StoreRecallParams(EncodingParams):
    n_steps: int = 8  # symbol steps per trial (the last one is the recall step)
    n_bits: int = 1  # width of the stored word


class StoreRecallTask(Task):
    name = "store-recall"
    recommended_for_rule = eprop_recommended()
    summary = "remember the word shown with the store cue among distractor words; report it at the recall cue"
    Params = StoreRecallParams
    output = "bits"

    def validate(self) -> None:
        check_int(self.params.n_steps, "n_steps", 2, 256)
        check_int(self.params.n_bits, "n_bits", 1, 16)

    def channels(self) -> List[str]:
        chans: List[str] = []
        for k in range(self.params.n_bits):
            chans += bit_channels(f"v{k}")
        return chans + ["store", "recall"]

    @property
    def n_out(self) -> int:
        return self.params.n_bits

    def n_symbol_steps(self) -> int:
        return self.params.n_steps

    def phase_steps(self) -> Dict[str, List[Tuple[int, int]]]:
        S = self.params.n_steps
        return {"stream": [(0, S - 1)], "recall": [(S - 1, S)]}

    def _symbols(self, batch: int, g: torch.Generator):
        S, n = self.params.n_steps, self.params.n_bits
        words = torch.randint(0, 2, (S - 1, batch, n), generator=g)  # distractor stream
        store_at = torch.randint(0, S - 1, (batch,), generator=g)
        C = 2 * n + 2
        active = torch.zeros(S, batch, C)
        for k in range(n):
            active[: S - 1, :, 2 * k] = (words[..., k] == 0).float()
            active[: S - 1, :, 2 * k + 1] = (words[..., k] == 1).float()
        active[store_at, torch.arange(batch), C - 2] = 1.0
        active[S - 1, :, C - 1] = 1.0
        wl = words.tolist()
        stored = [[wl[int(s)][b][k] for k in range(n)] for b, s in enumerate(store_at.tolist())]
        target = torch.tensor(stored, dtype=torch.float32)[None]  # [1, B, n]
        mask = torch.ones(1, batch, dtype=torch.bool)
        return active, target, mask, [S - 1], {"store_at": store_at.tolist(), "stored": stored}

    def chance(self) -> Dict[str, float]:
        return {"bit_accuracy": 0.5, "sequence_accuracy": 0.5 ** self.params.n_bits}


@dataclass
class XorParams(EncodingParams):
    delay_steps: int = 2  # empty symbol steps after each of the two bits


class XorTask(Task):
    name = "xor"
    recommended_for_rule = eprop_recommended()
    summary = "delayed XOR: two bits separated by delays; answer their exclusive or at the go cue"
    Params = XorParams
    output = "bits"

    def validate(self) -> None:
        check_int(self.params.delay_steps, "delay_steps", 0, 256)

    def channels(self) -> List[str]:
        return bit_channels("x") + ["go"]

    @property
    def n_out(self) -> int:
        return 1

    def n_symbol_steps(self) -> int:
        return 2 * self.params.delay_steps + 3

    def phase_steps(self) -> Dict[str, List[Tuple[int, int]]]:
        d = self.params.delay_steps
        return {"first": [(0, 1)], "second": [(d + 1, d + 2)], "delay": [(1, d + 1), (d + 2, 2 * d + 2)],
                "go": [(2 * d + 2, 2 * d + 3)]}

    def _symbols(self, batch: int, g: torch.Generator):
        d = self.params.delay_steps
        bits = random_bits(batch, 2, g)  # [B, 2]
        active = torch.zeros(2 * d + 3, batch, 3)
        trials = torch.arange(batch)
        active[0, trials, bits[:, 0]] = 1.0
        active[d + 1, trials, bits[:, 1]] = 1.0
        active[2 * d + 2, :, 2] = 1.0
        pairs = bits.tolist()
        xor = [a ^ b for a, b in pairs]  # Python integer XOR
        target = torch.tensor(xor, dtype=torch.float32)[None, :, None]  # [1, B, 1]
        mask = torch.ones(1, batch, dtype=torch.bool)
        return active, target, mask, [2 * d + 2], {"a": [p[0] for p in pairs], "b": [p[1] for p in pairs], "xor": xor}

    def chance(self) -> Dict[str, float]:
        return {"bit_accuracy": 0.5, "sequence_accuracy": 0.5}


@dataclass
class ParityParams(EncodingParams):
    n_bits: int = 4


class ParityTask(StringThenAnswerTask):
    name = "parity"
    recommended_for_rule = eprop_recommended()
    summary = "parity of an n-bit string streamed bit by bit; answer at the end cue"
    Params = ParityParams
    output = "bits"

    def validate(self) -> None:
        check_int(self.params.n_bits, "n_bits", 1, 64)

    @property
    def n_out(self) -> int:
        return 1

    def _answer(self, rows):
        parity = [sum(r) % 2 for r in rows]
        return torch.tensor(parity, dtype=torch.float32)[None, :, None], {"parity": parity}

    def chance(self) -> Dict[str, float]:
        return {"bit_accuracy": 0.5, "sequence_accuracy": 0.5}
