"""Neuron parameters: the single source of truth for torch dynamics and Brian2 equations.

A :class:`NeuronParams` object describes one recurrent population. Every field may be a
scalar (shared by all neurons) or a per-neuron sequence of length ``n``, so a population
can mix LIF (``beta == 0``) and ALIF (``beta > 0``) neurons and carry heterogeneous
adaptation time constants. The torch step function (:mod:`cognet.core.functional`) reads the
decay factors from here, and the Brian2 bridge generates its equations from the same
object; nothing else stores neuron constants.

Convention (e-prop, Bellec et al. 2020), discrete time step ``dt``::

    alpha = exp(-dt / tau_mem),  rho = exp(-dt / tau_adapt)
    v[t+1] = alpha v[t] + W_rec z[t] + W_in x[t+1] - v_th z[t]      (reset="subtract")
    v[t+1] = alpha v[t] (1 - z[t]) + W_rec z[t] + W_in x[t+1]       (reset="zero")
    a[t+1] = rho a[t] + z[t]
    A[t]   = v_th + beta a[t]
    z[t]   = H(v[t] - A[t]),  held at 0 for refractory steps after a spike

Converting from the LSNN convention (Bellec et al. 2018; Salaj et al. 2021), where the
input is scaled by ``(1 - alpha)`` and the adaptation increment by ``(1 - rho)``::

    v_th   = v_th_lsnn / (1 - alpha)
    beta   = beta_lsnn * (1 - rho) / (1 - alpha)
    W      = W_lsnn                       (the (1-alpha) factor moved into v_th)

:meth:`NeuronParams.from_lsnn` does this conversion.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence, Union

import numpy as np

Scalar = Union[int, float]
PerNeuron = Union[Scalar, Sequence[float], np.ndarray]

RESETS = ("subtract", "zero")
PER_NEURON_FIELDS = ("tau_mem_ms", "v_th", "refractory_ms", "tau_adapt_ms", "beta")


def _freeze(name: str, value: Any, n: int) -> Union[float, tuple]:
    """Normalise a scalar or per-neuron value to a float or a tuple of ``n`` floats."""
    if isinstance(value, (int, float, np.floating, np.integer)):
        return float(value)
    try:
        arr = np.asarray(value, dtype=float).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"neuron parameter {name!r} must be a number or a list of numbers, got {value!r}") from exc
    if arr.size == 1:
        return float(arr[0])
    if arr.size != n:
        raise ValueError(f"neuron parameter {name!r} has {arr.size} values but the population has n={n} neurons")
    return tuple(float(x) for x in arr)


@dataclass(frozen=True)
class NeuronParams:
    """Parameters of one recurrent LIF/ALIF population (units in the field names).

    Attributes:
        n: number of neurons.
        dt_ms: simulation time step in ms.
        tau_mem_ms: membrane time constant (ms), scalar or per neuron.
        v_th: firing threshold (dimensionless voltage), scalar or per neuron.
        reset: ``"subtract"`` (v -= v_th after a spike) or ``"zero"`` (v set to 0).
        refractory_ms: after a spike at step t the next spike can come at step
            t + round(refractory_ms / dt_ms) at the earliest; the membrane keeps integrating.
        tau_adapt_ms: adaptation time constant (ms), scalar or per neuron.
        beta: threshold adaptation strength; 0 gives a plain LIF neuron.
    """

    n: int
    dt_ms: float = 1.0
    tau_mem_ms: PerNeuron = 20.0
    v_th: PerNeuron = 1.0
    reset: str = "subtract"
    refractory_ms: PerNeuron = 2.0
    tau_adapt_ms: PerNeuron = 200.0
    beta: PerNeuron = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.n, (int, np.integer)) or isinstance(self.n, bool) or self.n < 1:
            raise ValueError(f"neuron parameter 'n' must be a positive integer, got {self.n!r}")
        object.__setattr__(self, "n", int(self.n))
        if not (isinstance(self.dt_ms, (int, float)) and self.dt_ms > 0 and math.isfinite(self.dt_ms)):
            raise ValueError(f"neuron parameter 'dt_ms' must be a positive number, got {self.dt_ms!r}")
        object.__setattr__(self, "dt_ms", float(self.dt_ms))
        if self.reset not in RESETS:
            raise ValueError(f"neuron parameter 'reset' must be one of {list(RESETS)}, got {self.reset!r}")
        for name in PER_NEURON_FIELDS:
            object.__setattr__(self, name, _freeze(name, getattr(self, name), self.n))
        checks = {
            "tau_mem_ms": lambda a: np.all(a > 0),
            "v_th": lambda a: np.all(a > 0),
            "refractory_ms": lambda a: np.all(a >= 0),
            "tau_adapt_ms": lambda a: np.all(a > 0),
            "beta": lambda a: np.all(a >= 0),
        }
        for name, ok in checks.items():
            arr = self.array(name)
            if not np.all(np.isfinite(arr)) or not ok(arr):
                raise ValueError(f"neuron parameter {name!r} has an invalid value: {getattr(self, name)!r}")

    # --- derived quantities -------------------------------------------------------------
    def array(self, name: str) -> np.ndarray:
        """A per-neuron float64 array of length ``n`` for field ``name``."""
        value = getattr(self, name)
        if isinstance(value, tuple):
            return np.asarray(value, dtype=float)
        return np.full(self.n, float(value))

    @property
    def alpha(self) -> np.ndarray:
        """Membrane decay per step, exp(-dt / tau_mem)."""
        return np.exp(-self.dt_ms / self.array("tau_mem_ms"))

    @property
    def rho(self) -> np.ndarray:
        """Adaptation decay per step, exp(-dt / tau_adapt)."""
        return np.exp(-self.dt_ms / self.array("tau_adapt_ms"))

    @property
    def refractory_steps(self) -> np.ndarray:
        """Refractory period in whole steps (int array)."""
        return np.rint(self.array("refractory_ms") / self.dt_ms).astype(np.int64)

    @property
    def adaptive(self) -> np.ndarray:
        """Boolean mask of ALIF neurons (beta > 0)."""
        return self.array("beta") > 0

    # --- construction helpers -----------------------------------------------------------
    def replace(self, **changes: Any) -> "NeuronParams":
        return dataclasses.replace(self, **changes)

    def with_dt(self, dt_ms: float) -> "NeuronParams":
        """Same neurons in continuous time, sampled with another step (time constants in ms kept)."""
        return self.replace(dt_ms=dt_ms)

    @classmethod
    def mixed(
        cls,
        n: int,
        alif_fraction: float,
        beta: float,
        tau_adapt_ms: Union[float, Sequence[float]],
        rng: np.random.Generator,
        **kwargs: Any,
    ) -> "NeuronParams":
        """A population whose last ``round(alif_fraction * n)`` neurons are ALIF.

        ``tau_adapt_ms`` is a number, or a pair ``(low, high)`` from which each ALIF neuron
        draws its own time constant uniformly with ``rng``.
        """
        if not 0.0 <= alif_fraction <= 1.0:
            raise ValueError(f"alif_fraction must be in [0, 1], got {alif_fraction!r}")
        n_alif = int(round(alif_fraction * n))
        betas = np.zeros(n)
        betas[n - n_alif:] = beta
        if isinstance(tau_adapt_ms, (int, float)):
            taus: PerNeuron = float(tau_adapt_ms)
        else:
            lo, hi = (float(x) for x in tau_adapt_ms)
            if not 0 < lo <= hi:
                raise ValueError(f"tau_adapt_ms range must satisfy 0 < low <= high, got {tau_adapt_ms!r}")
            taus = np.full(n, hi)
            taus[n - n_alif:] = rng.uniform(lo, hi, size=n_alif)
        return cls(n=n, beta=betas if n_alif else 0.0, tau_adapt_ms=taus, **kwargs)

    @classmethod
    def from_lsnn(
        cls, n: int, v_th_lsnn: PerNeuron, beta_lsnn: PerNeuron, tau_mem_ms: PerNeuron = 20.0,
        tau_adapt_ms: PerNeuron = 200.0, dt_ms: float = 1.0, **kwargs: Any,
    ) -> "NeuronParams":
        """Convert LSNN-convention parameters ((1-alpha) input scaling, (1-rho) increments)."""
        alpha = np.exp(-dt_ms / np.asarray(tau_mem_ms, dtype=float))
        rho = np.exp(-dt_ms / np.asarray(tau_adapt_ms, dtype=float))
        v_th = np.asarray(v_th_lsnn, dtype=float) / (1 - alpha)
        beta = np.asarray(beta_lsnn, dtype=float) * (1 - rho) / (1 - alpha)
        return cls(n=n, dt_ms=dt_ms, tau_mem_ms=tau_mem_ms, tau_adapt_ms=tau_adapt_ms, v_th=v_th, beta=beta, **kwargs)

    # --- serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict:
        out: dict = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "NeuronParams":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown neuron parameter(s) {sorted(unknown)}; allowed: {sorted(known)}")
        return cls(**dict(d))
