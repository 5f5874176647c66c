"""The learning-rule interface and the shared firing-rate regulariser.

A rule computes parameter gradients for one batch: it fills ``p.grad`` of the network's
parameters and returns a :class:`StepResult`; the training loop owns the optimiser, the
clipping and the schedule. Rules with state of their own (e.g. feedback matrices) expose
it through :meth:`LearningRule.state_tensors` so that checkpoints can restore it.

Firing-rate regulariser (the same for every rule)::

    r_j    = 1000 / dt * mean_{batch, time} z_j          (Hz)
    E_reg  = c * mean_j ((r_j - f0) / f0)^2              c = train.rate_reg, f0 = train.rate_target_hz

(with f0 = 0 the penalty becomes ``c * mean_j (r_j / 1 Hz)^2 * 1e-4``, a plain sparsity cost).
"""

from __future__ import annotations

from typing import Any, ClassVar, Dict, NamedTuple, Optional

import torch

from cognet.core.network import RSNN


class StepResult(NamedTuple):
    loss: float  # total loss (task + regulariser)
    task_loss: float
    reg_loss: float
    logits: torch.Tensor  # detached [W, B, n_out]
    z: torch.Tensor  # detached spikes [T, B, n]


def rate_scale(target_hz: float) -> float:
    """The rate unit of the regulariser: f0, or 100 Hz when the target is 0."""
    return target_hz if target_hz > 0 else 100.0


def rate_penalty(z: torch.Tensor, dt_ms: float, target_hz: float, coef: float) -> torch.Tensor:
    """``E_reg`` above for spikes ``z`` ``[T, B, n]`` (differentiable)."""
    rates = z.mean(dim=(0, 1)) * (1000.0 / dt_ms)
    return coef * (((rates - target_hz) / rate_scale(target_hz)) ** 2).mean()


def rate_penalty_grad(rates_hz: torch.Tensor, target_hz: float, coef: float) -> torch.Tensor:
    """d E_reg / d r_j per neuron (Hz^-1), for the online rules."""
    s = rate_scale(target_hz)
    return 2.0 * coef * (rates_hz - target_hz) / (s * s) / rates_hz.numel()


class LearningRule:
    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    #: rule-specific config sections this rule reads (they only enter its runs' config)
    config_sections: ClassVar[tuple] = ()

    def __init__(self, net: RSNN, task: Any, train_cfg: Any, generator: Optional[torch.Generator] = None) -> None:
        self.net, self.task, self.cfg = net, task, train_cfg
        self.generator = generator

    @classmethod
    def from_config(cls, net: RSNN, task: Any, run_cfg: Any, generator: Optional[torch.Generator] = None) -> "LearningRule":
        """Build the rule from a whole :class:`cognet.training.config.RunConfig` (rules with a config
        section of their own override this; the default passes ``run_cfg.train``)."""
        return cls(net, task, run_cfg.train, generator)

    def step(self, batch) -> StepResult:
        raise NotImplementedError

    def state_tensors(self) -> Dict[str, torch.Tensor]:
        return {}

    def load_state_tensors(self, tensors: Dict[str, torch.Tensor]) -> None:
        if tensors:
            raise ValueError(f"rule {self.name!r} has no state, got {sorted(tensors)}")
