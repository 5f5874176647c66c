"""The learning-rule interface and the shared firing-rate regulariser.

A rule computes parameter gradients for one batch: it fills ``p.grad`` of the network's
parameters and returns a :class:`StepResult`; the training loop owns the optimiser, the
clipping and the schedule. Rules with state of their own (e.g. feedback matrices) expose
it through :meth:`LearningRule.state_tensors` so that checkpoints can restore it.

Firing-rate regulariser (the same for every rule), in three forms (``train.rate_reg_form``)::

    r_j    = 1000 / dt * mean_{batch, time} z_j          (Hz)
    neuron:      E_reg = c * mean_j ((r_j - f0) / s)^2          every neuron pulled to f0 (default)
    population:  E_reg = c * ((mean_j r_j - f0) / s)^2          only the population mean pulled to f0
    above:       E_reg = c * mean_j (max(r_j - f0, 0) / s)^2    rates above f0 penalised, below free

with c = train.rate_reg, f0 = train.rate_target_hz and the rate unit s = f0 (100 Hz when
f0 = 0, where every form becomes a plain sparsity cost). ``neuron`` keeps every neuron near the
target (Bellec et al. 2020); ``population`` lets a few neurons carry the computation while the
mean rate stays at f0, the freedom the lowest rates need (issue: add at <= 1 Hz); ``above`` is
a per-neuron ceiling.
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


RATE_REG_FORMS = ("neuron", "population", "above")


def _deviation(rates_hz: torch.Tensor, target_hz: float, form: str) -> torch.Tensor:
    """Per neuron, the deviation from the target each form penalises: ``r_j - f0`` (neuron),
    ``max(r_j - f0, 0)`` (above), or the mean's ``mean_k r_k - f0`` for every neuron
    (population), so that ``E_reg = c mean_j (dev_j / s)^2`` in every form."""
    if form not in RATE_REG_FORMS:
        raise ValueError(f"rate regulariser form must be one of {', '.join(RATE_REG_FORMS)}, got {form!r}")
    if form == "population":
        return (rates_hz.mean() - target_hz).expand_as(rates_hz)
    dev = rates_hz - target_hz
    return dev.clamp(min=0.0) if form == "above" else dev


class _StepTrialMean(torch.autograd.Function):
    """``z.mean(dim=(0, 1))`` whose gradient stays a broadcast view ``[T, B, n]`` of ``[n]``
    values (the same numbers as torch's, which divides the expanded gradient into a new
    ``[T, B, n]`` tensor); the fused engine then adds it per neuron (cognet.core.fused)."""

    @staticmethod
    def forward(ctx, z):  # type: ignore[override]
        ctx.shape = z.shape
        return z.mean(dim=(0, 1))

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        T, B = ctx.shape[0], ctx.shape[1]
        return (g / (T * B)).expand(ctx.shape)


def rate_penalty(z: torch.Tensor, dt_ms: float, target_hz: float, coef: float, form: str = "neuron") -> torch.Tensor:
    """``E_reg`` above for spikes ``z`` ``[T, B, n]`` (differentiable)."""
    rates = _StepTrialMean.apply(z) * (1000.0 / dt_ms)
    return coef * ((_deviation(rates, target_hz, form) / rate_scale(target_hz)) ** 2).mean()


def rate_penalty_grad(rates_hz: torch.Tensor, target_hz: float, coef: float, form: str = "neuron") -> torch.Tensor:
    """d E_reg / d r_j per neuron (Hz^-1), for the online rules (the same for every neuron in
    the ``population`` form)."""
    s = rate_scale(target_hz)
    return 2.0 * coef * _deviation(rates_hz, target_hz, form) / (s * s) / rates_hz.numel()


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
