"""Surrogate derivatives for the spike non-linearity.

Forward is always the exact Heaviside step ``z = H(x)`` (``x > 0`` strictly). The
backward pass replaces ``dH/dx`` by ``peak * shape(x / width)``.

Voltage convention (the libraries disagree here, so it is fixed once for cognet):
the argument is the *threshold-normalised* distance to the (adaptive) threshold::

    x = (v - A) / v_th,          A = v_th + beta * a,

so ``dz/dv = peak * shape(x / width) / v_th``, exactly the e-prop pseudo-derivative
``psi = (gamma / v_th) max(0, 1 - |x|)`` for the triangle with ``peak = gamma = 0.3`` and
``width = 1``. Every shape is normalised so that ``shape(0) = 1``: ``peak`` is the value
of the surrogate at threshold (amplitude, "dampening factor") and ``width`` the scale of
``x`` over which it falls off (steepness = 1 / width). Zenke & Vogels (2021) vary these two
separately: the shape barely matters, the scale does. The shapes::

    | name           | shape(u)                 | origin                                   |
    |----------------|--------------------------|------------------------------------------|
    | triangle       | max(0, 1 - abs(u))       | Bellec et al. 2018/2020 (peak 0.3)       |
    | fast-sigmoid   | 1 / (1 + abs(u))**2      | SuperSpike, Zenke & Ganguli 2018         |
    | sigmoid        | 4 s(u) (1 - s(u)), s = logistic | derivative of a logistic          |
    | exponential    | exp(-abs(u))             | SLAYER-style exponential                 |
    | gaussian       | exp(-u**2 / 2)           | Gaussian                                 |
    | arctan         | 1 / (1 + u**2)           | derivative of arctan                     |
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict

import torch

Shape = Callable[[torch.Tensor], torch.Tensor]


def _triangle(u: torch.Tensor) -> torch.Tensor:
    return torch.clamp(1.0 - u.abs(), min=0.0)


def _fast_sigmoid(u: torch.Tensor) -> torch.Tensor:
    return 1.0 / (1.0 + u.abs()) ** 2


def _sigmoid(u: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(u)  # stable for any u: no overflow, no NaN
    return 4.0 * s * (1.0 - s)


def _exponential(u: torch.Tensor) -> torch.Tensor:
    return torch.exp(-u.abs())


def _gaussian(u: torch.Tensor) -> torch.Tensor:
    return torch.exp(-0.5 * u * u)


def _arctan(u: torch.Tensor) -> torch.Tensor:
    return 1.0 / (1.0 + u * u)


SHAPES: Dict[str, Shape] = {
    "triangle": _triangle,
    "fast-sigmoid": _fast_sigmoid,
    "sigmoid": _sigmoid,
    "exponential": _exponential,
    "gaussian": _gaussian,
    "arctan": _arctan,
}

#: Default width per shape (peak defaults to 0.3 for all, the e-prop dampening factor).
DEFAULT_WIDTH = {
    "triangle": 1.0,
    "fast-sigmoid": 0.25,
    "sigmoid": 0.25,
    "exponential": 0.5,
    "gaussian": 0.5,
    "arctan": 0.5,
}


class _SpikeFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, shape: Shape, width: float, peak: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.shape, ctx.width, ctx.peak = shape, width, peak
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad * (ctx.peak * ctx.shape(x / ctx.width)), None, None, None


@dataclass(frozen=True)
class Surrogate:
    """A named surrogate derivative with separate ``width`` and ``peak``.

    Calling it on the normalised voltage ``x`` returns spikes ``H(x)`` whose backward is
    ``peak * shape(x / width)``. :meth:`derivative` evaluates that backward directly (it is
    what the e-prop rules use as the pseudo-derivative ``psi * v_th``).
    """

    name: str = "triangle"
    width: float = 1.0
    peak: float = 0.3

    def __post_init__(self) -> None:
        if self.name not in SHAPES:
            raise ValueError(f"unknown surrogate {self.name!r}; available: {sorted(SHAPES)}")
        for key in ("width", "peak"):
            val = getattr(self, key)
            if not (isinstance(val, (int, float)) and math.isfinite(val) and val > 0):
                raise ValueError(f"surrogate {key!r} must be a positive number, got {val!r}")

    @classmethod
    def make(cls, name: str = "triangle", width: float | None = None, peak: float | None = None) -> "Surrogate":
        if name not in SHAPES:
            raise ValueError(f"unknown surrogate {name!r}; available: {sorted(SHAPES)}")
        return cls(name, DEFAULT_WIDTH[name] if width is None else float(width), 0.3 if peak is None else float(peak))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return _SpikeFunction.apply(x, SHAPES[self.name], self.width, self.peak)

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        """``dz/dx`` used in the backward pass, evaluated at ``x``."""
        return self.peak * SHAPES[self.name](x / self.width)


class LeakAwareScale(torch.autograd.Function):
    """Identity forward; backward multiplies by a per-neuron factor known only after the run.

    Used for the leak-aware approximate derivative of Lee et al. (2020): the factor
    ``1 + ln(alpha) * LF / Tot`` (LF: leak-integrated spike count, Tot: spike count) is
    computed once the whole sequence has been simulated and stored in ``holder["factor"]``.
    """

    @staticmethod
    def forward(ctx, z: torch.Tensor, holder: dict) -> torch.Tensor:  # type: ignore[override]
        ctx.holder = holder
        return z.view_as(z)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return grad * ctx.holder["factor"], None


def leak_aware_factor(z: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Lee et al. (2020) leak correction ``1 + ln(alpha) LF / Tot`` per sample and neuron.

    ``z``: spikes ``[T, B, N]``; ``alpha``: membrane decay per neuron ``[N]``. Where a
    neuron never fired the factor is 1 (the plain surrogate), so silent neurons can still
    learn to fire (Lee et al. set it to 0 there; with a surrogate that would freeze them).
    """
    T = z.shape[0]
    steps_back = torch.arange(T - 1, -1, -1, device=z.device, dtype=z.dtype)
    weights = alpha.to(z.dtype)[None, :] ** steps_back[:, None]  # [T, N]
    lf = torch.einsum("tbn,tn->bn", z, weights)
    tot = z.sum(0)
    ratio = torch.where(tot > 0, lf / tot.clamp(min=1.0), torch.zeros_like(lf))
    return 1.0 + torch.log(alpha.to(z.dtype))[None, :] * ratio
