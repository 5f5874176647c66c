"""A third-party plug-in as a user would write it: one task and one rule, registered on import.

* task ``toy-and``: two bits shown one after the other, then a go cue; answer their AND;
* rule ``bptt-l2``: surrogate-gradient BPTT plus an L2 penalty on the recurrent weights.

Used by tests/test_plugins.py (put on the path by the test, loaded with ``--plugin``) and
by the plug-in tutorial.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

import torch

import rules
import tasks
from rules.base import LearningRule, StepResult, rate_penalty
from tasks.base import EncodingParams, Task, bit_channels, random_bits


@dataclass
class AndParams(EncodingParams):
    gap_steps: int = 1  # empty symbol steps between the second bit and the go cue


class AndTask(Task):
    name = "toy-and"
    summary = "plug-in example: two bits in sequence, then a go cue; answer their AND"
    Params = AndParams
    output = "bits"

    def validate(self) -> None:
        if not (isinstance(self.params.gap_steps, int) and 0 <= self.params.gap_steps <= 16):
            raise ValueError(f"task.gap_steps must be an integer in [0, 16], got {self.params.gap_steps!r}")

    def channels(self) -> List[str]:
        return bit_channels("x") + ["go"]

    @property
    def n_out(self) -> int:
        return 1

    def n_symbol_steps(self) -> int:
        return 3 + self.params.gap_steps

    def phase_steps(self) -> Dict[str, List[Tuple[int, int]]]:
        S = self.n_symbol_steps()
        return {"bits": [(0, 2)], "go": [(S - 1, S)]}

    def _symbols(self, batch: int, g: torch.Generator):
        S = self.n_symbol_steps()
        bits = random_bits(batch, 2, g)
        active = torch.zeros(S, batch, 3)
        trials = torch.arange(batch)
        active[0, trials, bits[:, 0]] = 1.0
        active[1, trials, bits[:, 1]] = 1.0
        active[S - 1, :, 2] = 1.0
        answer = (bits[:, 0] & bits[:, 1]).tolist()
        target = torch.tensor(answer, dtype=torch.float32)[None, :, None]
        mask = torch.ones(1, batch, dtype=torch.bool)
        return active, target, mask, [S - 1], {"a": bits[:, 0].tolist(), "b": bits[:, 1].tolist(), "and": answer}

    def chance(self) -> Dict[str, float]:
        return {"bit_accuracy": 0.75, "sequence_accuracy": 0.75}  # always answering 0


class BpttL2(LearningRule):
    name = "bptt-l2"
    summary = "plug-in example: BPTT plus 1e-4 * ||W_rec||^2"
    l2 = 1e-4

    def step(self, batch) -> StepResult:
        net = self.net
        out = net(batch.x, batch.windows)
        task_loss = self.task.loss(out.logits, batch)
        reg = rate_penalty(out.z, net.neurons.dt_ms, self.cfg.rate_target_hz, self.cfg.rate_reg)
        loss = task_loss + reg + self.l2 * (net.w_rec ** 2).sum()
        net.zero_grad(set_to_none=True)
        loss.backward()
        return StepResult(loss.item(), task_loss.item(), reg.item(), out.logits.detach(), out.z.detach())


tasks.register(AndTask)
rules.register(BpttL2)
