"""Arithmetic on binary numbers: ``add``, ``subtract``, ``compare``, ``multiply``, ``count``.

Two encodings of the operands (task parameter ``encoding``):

``encoding: bits`` (bit-serial, the default): a and b (n = ``n_bits`` bits each) are streamed
together, least significant bit first::

    steps 0 .. n-1 : channels ``a=0|a=1`` and ``b=0|b=1`` show bit k of a and of b
    step  n        : channel ``end`` on (no more bits)

  * ``add``: sum bit k is answered in step k (read at the end of the step, after both bits
    were seen) and the final carry in step n: n+1 answer windows of one sigmoid output,
    the bits of a + b.
  * ``subtract``: like ``add`` with the n+1 bits of (a - b) mod 2^(n+1), i.e. the two's
    complement difference; the last bit (step n) is the sign, 1 iff a < b.
  * ``compare``: one answer at step n, softmax over 3 classes 0: a<b, 1: a=b, 2: a>b.
  * ``multiply``: one answer at step n with 2n sigmoid outputs, the bits of a * b.

``encoding: population`` (a number is shown by which group of input neurons fires): channel
groups ``a=0 .. a=N-1`` and ``b=0 .. b=N-1`` (N = 2^n), one channel per value::

    step 0 : channel ``a=<a>`` on
    step 1 : channel ``b=<b>`` on
    step 2 : channel ``end`` on; answer the result as a class (softmax, one unit per value)

  with results coded as classes: ``add`` a+b (2N-1 classes), ``subtract`` a-b+N-1 (2N-1
  classes), ``compare`` 0/1/2 as above, ``multiply`` a*b ((N-1)^2+1 classes).

``count`` (number of ones): an n-bit string is streamed on ``bit=0|bit=1`` (steps 0..n-1),
channel ``end`` is on at step n and the count is answered there; ``encoding`` selects the
*answer* code: ``bits`` gives ceil(log2(n+1)) sigmoid outputs (the count in binary),
``population`` a softmax over the n+1 possible counts.

``compare`` draws its trials balanced over the three relations by default
(``balanced: true``: the relation is drawn uniformly, then (a, b) uniformly among the pairs
with that relation), so that answering "a<b" or "a>b" always scores only 1/3.

Targets are computed with Python integers. Chance: the best input-independent answer
(:mod:`tasks.common`), computed exactly by enumerating all equally likely operand pairs
(n <= 8); for larger n the uniform-guess values 0.5 per bit and 2^-(answer bits) are given.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from typing import Dict, List, Tuple

import torch

from cognet.core.encoding import bits_of, int_of

from .base import EncodingParams, StringThenAnswerTask, Task, bit_channels, eprop_recommended, random_bits
from .common import chance_of_answers, check_choice, check_int, number_channels

ENCODINGS = ("bits", "population")


@dataclass
class NumberParams(EncodingParams):
    n_bits: int = 4
    encoding: str = "bits"  # bits | population


class _TwoNumberTask(Task):
    """Two operands a, b in [0, 2^n); subclasses define :meth:`result` and the answer code."""

    recommended_for_rule = eprop_recommended()
    Params = NumberParams
    max_bits_bits = 30  # limit of n_bits for the bit-serial encoding
    max_bits_population = 8  # limit for the population code (2^n channels per operand)

    # -- to define ---------------------------------------------------------------------------
    def result(self, a: int, b: int) -> int:
        raise NotImplementedError

    def result_bits(self) -> int:
        """Answer bits (bit-serial encoding)."""
        raise NotImplementedError

    def n_classes(self) -> int:
        """Answer classes (population encoding)."""
        raise NotImplementedError

    def result_class(self, r: int) -> int:
        return r

    serial_answer = True  # bits encoding: answer bit k in step k (else all bits at step n)

    # -- shared --------------------------------------------------------------------------------
    @property
    def population(self) -> bool:
        return self.params.encoding == "population"

    @property
    def output(self) -> str:  # type: ignore[override]
        return "classes" if self.population else "bits"

    def validate(self) -> None:
        check_choice(self.params.encoding, "encoding", ENCODINGS)
        hi = self.max_bits_population if self.population else self.max_bits_bits
        check_int(self.params.n_bits, "n_bits", 1, hi)

    def channels(self) -> List[str]:
        if self.population:
            N = 1 << self.params.n_bits
            return number_channels("a", N) + number_channels("b", N) + ["end"]
        return bit_channels("a") + bit_channels("b") + ["end"]

    @property
    def n_out(self) -> int:
        if self.population:
            return self.n_classes()
        return 1 if self.serial_answer else self.result_bits()

    def n_symbol_steps(self) -> int:
        return 3 if self.population else self.params.n_bits + 1

    def answer_steps(self) -> List[int]:
        n = self.params.n_bits
        if self.population:
            return [2]
        return list(range(self.result_bits())) if self.serial_answer else [n]

    def phase_steps(self) -> Dict[str, List[Tuple[int, int]]]:
        n = self.params.n_bits
        if self.population:
            return {"a": [(0, 1)], "b": [(1, 2)], "answer": [(2, 3)]}
        return {"operands": [(0, n)], "end": [(n, n + 1)]}

    def draw_operands(self, batch: int, g: torch.Generator) -> Tuple[List[int], List[int]]:
        n = self.params.n_bits
        a_bits, b_bits = random_bits(batch, n, g), random_bits(batch, n, g)
        return [int_of(r) for r in a_bits.tolist()], [int_of(r) for r in b_bits.tolist()]

    def encode_answer(self, r: int) -> list:
        """One trial's answer windows: classes (population) or lists of output bits."""
        if self.population:
            return [self.result_class(r)]
        bits = bits_of(r, self.result_bits())
        return [[x] for x in bits] if self.serial_answer else [bits]

    def _symbols(self, batch: int, g: torch.Generator):
        n = self.params.n_bits
        a, b = self.draw_operands(batch, g)
        trials = torch.arange(batch)
        S = self.n_symbol_steps()
        active = torch.zeros(S, batch, len(self.channels()))
        if self.population:
            N = 1 << n
            active[0, trials, torch.tensor(a)] = 1.0
            active[1, trials, N + torch.tensor(b)] = 1.0
            active[2, :, 2 * N] = 1.0
        else:
            a_bits = torch.tensor([bits_of(x, n) for x in a])  # [B, n]
            b_bits = torch.tensor([bits_of(x, n) for x in b])
            steps = torch.arange(n)[:, None]
            active[steps, trials[None, :], a_bits.T] = 1.0
            active[steps, trials[None, :], 2 + b_bits.T] = 1.0
            active[n, :, 4] = 1.0
        results = [self.result(x, y) for x, y in zip(a, b)]  # Python integer arithmetic
        answers = [self.encode_answer(r) for r in results]
        W = len(self.answer_steps())
        if self.output == "classes":
            target = torch.tensor(answers, dtype=torch.long).T  # [W, B]
        else:
            target = torch.tensor(answers, dtype=torch.float32).permute(1, 0, 2)  # [W, B, n_out]
        mask = torch.ones(W, batch, dtype=torch.bool)
        return active, target, mask, self.answer_steps(), {"a": a, "b": b, "result": results}

    def all_trials(self):
        """Every equally likely (a, b) pair (uniform operands)."""
        N = 1 << self.params.n_bits
        return product(range(N), range(N))

    def chance(self) -> Dict[str, float]:
        n = self.params.n_bits
        if 4 ** n <= 1 << 16:
            return chance_of_answers(self.encode_answer(self.result(a, b)) for a, b in self.all_trials())
        if self.output == "classes":
            return {"bit_accuracy": 1.0 / self.n_classes(), "sequence_accuracy": 1.0 / self.n_classes()}
        return {"bit_accuracy": 0.5, "sequence_accuracy": 0.5 ** self.result_bits()}


class AddTask(_TwoNumberTask):
    name = "add"
    summary = "add two n-bit numbers (bit-serial LSB first: answer the n+1 sum bits; or population coded)"

    def result(self, a: int, b: int) -> int:
        return a + b

    def result_bits(self) -> int:
        return self.params.n_bits + 1

    def n_classes(self) -> int:
        return 2 * (1 << self.params.n_bits) - 1


class SubtractTask(_TwoNumberTask):
    name = "subtract"
    summary = "subtract two n-bit numbers (bit-serial: the n+1 bits of the two's complement a-b)"

    def result(self, a: int, b: int) -> int:
        return a - b

    def result_bits(self) -> int:
        return self.params.n_bits + 1

    def n_classes(self) -> int:
        return 2 * (1 << self.params.n_bits) - 1

    def result_class(self, r: int) -> int:
        return r + (1 << self.params.n_bits) - 1

    def encode_answer(self, r: int) -> list:
        if self.population:
            return [self.result_class(r)]
        return [[x] for x in bits_of(r % (1 << (self.params.n_bits + 1)), self.result_bits())]


@dataclass
class CompareParams(NumberParams):
    balanced: bool = True  # draw a<b, a=b, a>b equally often


class CompareTask(_TwoNumberTask):
    name = "compare"
    summary = "compare two n-bit numbers: answer a<b, a=b or a>b (3 classes)"
    Params = CompareParams
    CLASSES = ("a<b", "a=b", "a>b")

    @property
    def output(self) -> str:  # type: ignore[override]
        return "classes"

    def result(self, a: int, b: int) -> int:
        return (a > b) - (a < b) + 1  # 0: a<b, 1: a=b, 2: a>b

    def n_classes(self) -> int:
        return 3

    @property
    def n_out(self) -> int:
        return 3

    def answer_steps(self) -> List[int]:
        return [2] if self.population else [self.params.n_bits]

    def encode_answer(self, r: int) -> list:
        return [r]

    def draw_operands(self, batch: int, g: torch.Generator) -> Tuple[List[int], List[int]]:
        if not self.params.balanced:
            return super().draw_operands(batch, g)
        N = 1 << self.params.n_bits
        if N == 1:
            raise ValueError("compare needs n_bits >= 1")
        rel = torch.randint(0, 3, (batch,), generator=g).tolist()
        a = torch.randint(0, N, (batch,), generator=g).tolist()
        other = torch.randint(0, N - 1, (batch,), generator=g).tolist()  # b != a: a+1+other mod N
        out_a, out_b = [], []
        for r, x, o in zip(rel, a, other):
            y = (x + 1 + o) % N
            lo, hi = min(x, y), max(x, y)
            if r == 1:
                out_a.append(x), out_b.append(x)
            elif r == 0:
                out_a.append(lo), out_b.append(hi)
            else:
                out_a.append(hi), out_b.append(lo)
        return out_a, out_b

    def chance(self) -> Dict[str, float]:
        if self.params.balanced:
            return {"bit_accuracy": 1 / 3, "sequence_accuracy": 1 / 3}
        return super().chance()


@dataclass
class MultiplyParams(NumberParams):
    n_bits: int = 3


class MultiplyTask(_TwoNumberTask):
    name = "multiply"
    summary = "multiply two n-bit numbers (bit-serial in; the 2n product bits answered at the end cue)"
    Params = MultiplyParams
    serial_answer = False
    max_bits_bits = 15

    def result(self, a: int, b: int) -> int:
        return a * b

    def result_bits(self) -> int:
        return 2 * self.params.n_bits

    def n_classes(self) -> int:
        return ((1 << self.params.n_bits) - 1) ** 2 + 1


@dataclass
class CountParams(EncodingParams):
    n_bits: int = 7
    encoding: str = "bits"  # answer code: bits (binary count) | population (one class per count)


class CountTask(StringThenAnswerTask):
    name = "count"
    recommended_for_rule = eprop_recommended()
    summary = "count the ones in an n-bit string streamed bit by bit; answer the count at the end cue"
    Params = CountParams

    @property
    def output(self) -> str:  # type: ignore[override]
        return "classes" if self.params.encoding == "population" else "bits"

    def validate(self) -> None:
        check_choice(self.params.encoding, "encoding", ENCODINGS)
        check_int(self.params.n_bits, "n_bits", 1, 64)

    @property
    def count_bits(self) -> int:
        return self.params.n_bits.bit_length()  # ceil(log2(n+1))

    @property
    def n_out(self) -> int:
        return self.params.n_bits + 1 if self.output == "classes" else self.count_bits

    def _answer(self, rows):
        counts = [sum(r) for r in rows]
        if self.output == "classes":
            target = torch.tensor(counts, dtype=torch.long)[None]  # [1, B]
        else:
            target = torch.tensor([bits_of(c, self.count_bits) for c in counts], dtype=torch.float32)[None]
        return target, {"count": counts}

    def chance(self) -> Dict[str, float]:
        from math import comb

        n = self.params.n_bits
        probs = [comb(n, c) / 2 ** n for c in range(n + 1)]
        seq = max(probs)
        if self.output == "classes":
            return {"bit_accuracy": seq, "sequence_accuracy": seq}
        per_bit = []
        for k in range(self.count_bits):
            p1 = sum(p for c, p in enumerate(probs) if (c >> k) & 1)
            per_bit.append(max(p1, 1 - p1))
        return {"bit_accuracy": sum(per_bit) / len(per_bit), "sequence_accuracy": seq}
