"""The Task interface: seeded batches of input spikes, targets and answer windows; scoring.

Every task is a sequence of *symbol steps* of ``step_ms`` each. Inputs are rate-coded
channels (:func:`cognet.core.encoding.rate_encode`). The network answers in *answer windows*:
the last ``answer_fraction`` of an answer step, where the readout is averaged. Outputs are
either ``bits`` (one sigmoid unit per output bit, binary cross-entropy) or ``classes``
(softmax over symbols, cross-entropy).

Scores: ``bit_accuracy`` is the fraction of answered bits (or symbols) that are right;
``sequence_accuracy`` the fraction of trials whose answers are all right.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple, Type

import torch

from cognet.core.encoding import rate_encode


@dataclass
class EncodingParams:
    """Timing and rate code shared by the symbolic tasks."""

    step_ms: float = 20.0  # duration of one symbol step
    neurons_per_channel: int = 5  # input neurons replicating each channel
    rate_on_hz: float = 200.0  # rate of an active channel
    rate_off_hz: float = 0.0  # rate of an inactive channel
    answer_fraction: float = 0.5  # the readout is averaged over this last part of an answer step

    def validate(self, dt_ms: float) -> None:
        steps = self.step_ms / dt_ms
        if self.step_ms <= 0 or abs(steps - round(steps)) > 1e-9 or round(steps) < 1:
            raise ValueError(f"task.step_ms={self.step_ms} must be a positive multiple of dt_ms={dt_ms}")
        if not 0 < self.answer_fraction <= 1:
            raise ValueError(f"task.answer_fraction must be in (0, 1], got {self.answer_fraction}")
        if self.neurons_per_channel < 1:
            raise ValueError(f"task.neurons_per_channel must be >= 1, got {self.neurons_per_channel}")
        if self.rate_on_hz < 0 or self.rate_off_hz < 0:
            raise ValueError("task rates must be non-negative")


@dataclass
class Batch:
    """One batch of trials (time-major).

    x: input spikes ``[T, B, n_in]``; target: ``[W, B, n_out]`` float bits or ``[W, B]``
    class indices; mask: ``[W, B]`` bool, which answer windows count; windows: ``W``
    half-open step ranges; phases: named step ranges (e.g. ``store``, ``recall``) for
    analysis; info: the symbols behind the trial (ints), for inspection and tests.
    """

    x: torch.Tensor
    target: torch.Tensor
    mask: torch.Tensor
    windows: List[Tuple[int, int]]
    phases: Dict[str, List[Tuple[int, int]]]
    info: Dict[str, Any] = field(default_factory=dict)
    active: Optional[torch.Tensor] = None  # channel activity per symbol step [S, B, C]
    steps_per_symbol: int = 1

    @property
    def T(self) -> int:
        return self.x.shape[0]

    @property
    def size(self) -> int:
        return self.x.shape[1]


#: the e-prop rules whose per-task recommendations ``eprop_recommended`` fills in
EPROP_RULES = ("eprop-symmetric", "eprop-random")
#: e-prop's recommendation on the symbolic tasks (issue 20; README "e-prop against BPTT"). e-prop's
#: learning signal reaches each hidden neuron without the recurrent credit (and, with random
#: feedback, through a fixed B instead of W_out^T), so fewer of its neurons get a useful
#: direction; a wider network and a longer budget close most of the gap. Measured on seed 0,
#: eprop-random, 3000 iterations (count / copy sequence accuracy): 100 neurons 0.848 / 0.945,
#: 200 neurons 0.914 / 0.992 (early stop at 1200), 300 neurons 0.934 on count and 0.984 on
#: reverse (early stop at 2000); learning rate 0.005 / 0.02, batch 128, feedback std 0.3,
#: all-ALIF, tau_a 500 ms and beta 0.5 each moved count by -0.10 to +0.02; a weaker rate
#: regulariser (train.rate_reg 0.1) by +0.05, not tried together with the wider network.
EPROP_SETTINGS = {"network.n_rec": 300, "train.iterations": 4000, "train.keep_best": True}


def eprop_recommended(overrides: Optional[Mapping[str, Any]] = None,
                      per_rule: Optional[Mapping[str, Mapping[str, Any]]] = None) -> Dict[str, Dict[str, Any]]:
    """``recommended_for_rule`` entries for the e-prop rules: ``EPROP_SETTINGS``, then ``overrides``,
    then ``per_rule[rule]`` where one rule is measured to need more (its keys must be e-prop rules)."""
    overrides, per_rule = overrides or {}, per_rule or {}
    unknown = sorted(set(per_rule) - set(EPROP_RULES))
    if unknown:
        raise ValueError(f"per_rule names {unknown}, not e-prop rules {list(EPROP_RULES)}")
    return {r: {**EPROP_SETTINGS, **overrides, **per_rule.get(r, {})} for r in EPROP_RULES}


class Task:
    """Base class. Subclasses set ``name``, ``summary``, ``Params``, ``output`` and implement
    :meth:`channels`, :meth:`n_symbol_steps`, :meth:`n_out` and :meth:`_symbols`."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    Params: ClassVar[Type] = EncodingParams
    output: ClassVar[str] = "bits"  # or "classes"
    stop_metric: ClassVar[str] = "sequence_accuracy"
    #: config defaults this task recommends (dotted keys, e.g. {"network.n_rec": 200});
    #: applied before the YAML file and --set, so users can still override them
    recommended: ClassVar[Dict[str, Any]] = {}
    #: extra recommendations for one rule, e.g. {"bptt": {"surrogate.peak": 0.1}}
    recommended_for_rule: ClassVar[Dict[str, Dict[str, Any]]] = {}
    #: ``(C, H, W)`` when the input neurons are the pixels of an image (row-major), which the
    #: spiking conv front end (``network.conv_channels``) needs; None for symbolic tasks
    image_shape: ClassVar[Optional[Tuple[int, int, int]]] = None
    #: tasks with a finite held-out set score it in batches of at least this many trials, so
    #: that a pass draws each held-out item once (0: no such set)
    held_out_batch: ClassVar[int] = 0
    #: part of the symbolic suite that experiments and ``cognet reproduce`` run over "all tasks"
    #: (False for digits: an image task that needs the optional scikit-learn and BPTT)
    in_suite: ClassVar[bool] = True

    def __init__(self, params: Optional[Any] = None, dt_ms: float = 1.0) -> None:
        self.params = params if params is not None else self.Params()
        self.dt_ms = float(dt_ms)
        self.params.validate(self.dt_ms)
        self.validate()

    # -- to implement -----------------------------------------------------------------------
    def validate(self) -> None:
        """Check task-specific parameters (raise ValueError naming the key)."""

    def require(self) -> None:
        """Check that what the task needs beyond cognet's dependencies is there (the digits
        task: scikit-learn); raise :class:`cognet.core.errors.ConfigError` naming the extra."""

    def channels(self) -> List[str]:
        raise NotImplementedError

    @property
    def n_out(self) -> int:
        raise NotImplementedError

    def n_symbol_steps(self) -> int:
        raise NotImplementedError

    def _symbols(self, batch: int, g: torch.Generator) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, List[int], Dict[str, Any]]:
        """Return channel activity ``[S, B, C]``, target, mask, the answer step indices
        (length W), and info."""
        raise NotImplementedError

    def phase_steps(self) -> Dict[str, List[Tuple[int, int]]]:
        """Named ranges of symbol steps (half-open); default: none."""
        return {}

    # -- shared machinery ----------------------------------------------------------------
    @property
    def steps_per_symbol(self) -> int:
        return int(round(self.params.step_ms / self.dt_ms))

    @property
    def n_in(self) -> int:
        return len(self.channels()) * self.params.neurons_per_channel

    @property
    def T(self) -> int:
        return self.n_symbol_steps() * self.steps_per_symbol

    def window_of(self, symbol_step: int) -> Tuple[int, int]:
        k = self.steps_per_symbol
        width = max(1, int(round(self.params.answer_fraction * k)))
        end = (symbol_step + 1) * k
        return (end - width, end)

    #: names accepted by :meth:`sample`'s ``split``: training trials, held-out trials scored
    #: during training, and the final held-out test
    SPLITS: ClassVar[Tuple[str, ...]] = ("train", "eval", "test")

    def _symbols_split(self, batch: int, g: torch.Generator, split: str):
        """Like :meth:`_symbols` for one split; tasks whose held-out trials differ from the
        training trials (e.g. unseen strings) override this; by default all splits are alike."""
        return self._symbols(batch, g)

    def sample(self, batch: int, generator: torch.Generator, split: str = "train") -> Batch:
        """A batch of ``batch`` trials drawn with ``generator`` (symbols first, then spikes).

        ``split`` is ``train`` for training trials, ``eval``/``test`` for held-out trials."""
        if batch < 1:
            raise ValueError("batch size must be >= 1")
        if split not in self.SPLITS:
            raise ValueError(f"split must be one of {list(self.SPLITS)}, got {split!r}")
        active, target, mask, answer_steps, info = self._symbols_split(batch, generator, split)
        p = self.params
        x = rate_encode(active, self.steps_per_symbol, p.neurons_per_channel, p.rate_on_hz, p.rate_off_hz,
                        self.dt_ms, generator)
        k = self.steps_per_symbol
        phases = {name: [(a * k, b * k) for a, b in ranges] for name, ranges in self.phase_steps().items()}
        return Batch(x=x, target=target, mask=mask, windows=[self.window_of(s) for s in answer_steps],
                     phases=phases, info=info, active=active, steps_per_symbol=k)

    # -- loss and scores -----------------------------------------------------------------
    def loss(self, logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        mask = batch.mask.to(logits.dtype)
        if self.output == "bits":
            per = torch.nn.functional.binary_cross_entropy_with_logits(
                logits, batch.target.to(logits.dtype), reduction="none").mean(-1)
        else:
            W, B, K = logits.shape
            per = torch.nn.functional.cross_entropy(
                logits.reshape(W * B, K), batch.target.reshape(W * B), reduction="none").reshape(W, B)
        return (per * mask).sum() / mask.sum().clamp(min=1.0)

    def loss_grad_logits(self, logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        """d loss / d logits in closed form (used by the online rules)."""
        mask = batch.mask.to(logits.dtype)
        norm = mask.sum().clamp(min=1.0)
        if self.output == "bits":
            g = (torch.sigmoid(logits) - batch.target.to(logits.dtype)) / logits.shape[-1]
        else:
            g = torch.softmax(logits, -1) - torch.nn.functional.one_hot(batch.target, logits.shape[-1]).to(logits.dtype)
        return g * (mask / norm)[..., None]

    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        return (logits > 0).long() if self.output == "bits" else logits.argmax(-1)

    def score(self, logits: torch.Tensor, batch: Batch) -> Dict[str, float]:
        pred = self.predict(logits)
        target = batch.target.long()
        correct = (pred == target)
        if self.output == "bits":
            correct_win = correct.all(-1)  # [W, B]
            bits_right = (correct.float() * batch.mask[..., None]).sum()
            bits_total = batch.mask.sum() * correct.shape[-1]
        else:
            correct_win = correct
            bits_right = (correct.float() * batch.mask).sum()
            bits_total = batch.mask.sum()
        seq_ok = (correct_win | ~batch.mask).all(0)
        return {
            "bit_accuracy": float(bits_right / bits_total.clamp(min=1)),
            "sequence_accuracy": float(seq_ok.float().mean()),
        }

    def held_out_trials(self) -> int:
        """How many held-out trials ``cognet eval`` and ``cognet verify`` score by default (256;
        a task with a finite test set, e.g. digits, returns its size: each test item once)."""
        return 256

    def chance(self) -> Dict[str, float]:
        """Accuracy of the best input-independent answer (always the most frequent answer;
        see :mod:`tasks.common`); for uniformly random bits 0.5 per bit and 2^-n per string."""
        raise NotImplementedError

    def describe(self) -> Dict[str, Any]:
        return {"name": self.name, "summary": self.summary, "n_in": self.n_in, "n_out": self.n_out,
                "T_steps": self.T, "output": self.output, "channels": self.channels(),
                "chance": self.chance(), "params": dataclasses.asdict(self.params)}


class StringThenAnswerTask(Task):
    """Shared layout of ``parity`` and ``count``: an n-bit string on ``bit=0|bit=1`` (one bit
    per step, steps 0..n-1), then the ``end`` cue at step n, where the single answer is read.
    Subclasses set ``n_out``, ``chance`` and :meth:`_answer` (targets from the bit rows)."""

    def channels(self) -> List[str]:
        return bit_channels("bit") + ["end"]

    def n_symbol_steps(self) -> int:
        return self.params.n_bits + 1

    def phase_steps(self) -> Dict[str, List[Tuple[int, int]]]:
        n = self.params.n_bits
        return {"string": [(0, n)], "answer": [(n, n + 1)]}

    def _answer(self, rows: List[List[int]]) -> Tuple[torch.Tensor, Dict[str, Any]]:
        """Target ``[1, B, ...]`` and info entries for the bit strings ``rows``."""
        raise NotImplementedError

    def _symbols(self, batch: int, g: torch.Generator):
        n = self.params.n_bits
        bits = random_bits(batch, n, g)
        active = torch.zeros(n + 1, batch, 3)
        active[torch.arange(n)[:, None], torch.arange(batch)[None, :], bits.T] = 1.0
        active[n, :, 2] = 1.0
        rows = bits.tolist()
        target, info = self._answer(rows)
        mask = torch.ones(1, batch, dtype=torch.bool)
        return active, target, mask, [n], {"bits": rows, **info}


def bit_channels(prefix: str) -> List[str]:
    return [f"{prefix}=0", f"{prefix}=1"]


def random_bits(batch: int, n: int, g: torch.Generator) -> torch.Tensor:
    return torch.randint(0, 2, (batch, n), generator=g)


def params_from_dict(cls: Type, values: Mapping[str, Any], where: str = "task") -> Any:
    """Build a params dataclass, rejecting unknown keys and wrongly typed values by name."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"unknown {where} key(s) {unknown}; allowed: {sorted(fields)}")
    kwargs = {}
    defaults = cls()
    for key, val in values.items():
        kwargs[key] = coerce(val, type(getattr(defaults, key)), f"{where}.{key}")
    return cls(**kwargs)


def coerce(value: Any, typ: type, key: str) -> Any:
    """Convert ``value`` to ``typ`` (bool/int/float/str), with an error naming ``key``."""
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        raise ValueError(f"{key} must be true or false, got {value!r}")
    if typ is int:
        if isinstance(value, bool):
            raise ValueError(f"{key} must be an integer, got {value!r}")
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{key} must be an integer, got {value!r}") from None
        if not math.isfinite(f) or f != int(f):
            raise ValueError(f"{key} must be an integer, got {value!r}")
        return int(f)
    if typ is float:
        if isinstance(value, bool):
            raise ValueError(f"{key} must be a number, got {value!r}")
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{key} must be a number, got {value!r}") from None
        if f != f or f in (float("inf"), float("-inf")):
            raise ValueError(f"{key} must be a finite number, got {value!r}")
        return f
    if typ is str:
        return str(value)
    if typ in (list, tuple):
        if isinstance(value, str):
            import json

            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise ValueError(f"{key} must be a list, got {value!r}") from None
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{key} must be a list, got {value!r}")
        return typ(value)
    return value
