"""Helpers shared by the task modules: chance levels by enumeration, channel names, checks.

Chance level (used by every task of the suite)::

    chance = expected accuracy of the best answer that ignores the input

i.e. always giving the most frequent answer. With ``answers`` the list of all equally likely
answers (one per equally likely trial), ``bit_accuracy`` chance is the mean over answer
positions (and output bits) of the frequency of the most common value there, and
``sequence_accuracy`` chance is the frequency of the most common complete answer. For
uniformly random bits this gives the familiar 0.5 and 2^-n.
"""

from __future__ import annotations

from collections import Counter
from typing import Dict, Iterable, List, Sequence, Tuple

#: enumerate all inputs to compute chance exactly up to this many equally likely trials
MAX_ENUMERATION = 1 << 16


def chance_of_answers(answers: Iterable[Sequence]) -> Dict[str, float]:
    """Best input-independent accuracy over equally likely ``answers``.

    Each answer is a sequence of answer windows; each window is an int (a class) or a tuple
    of output bits. Returns ``{"bit_accuracy", "sequence_accuracy"}``.
    """
    rows: List[Tuple] = [tuple(tuple(w) if isinstance(w, (list, tuple)) else (w,) for w in a) for a in answers]
    if not rows:
        raise ValueError("chance_of_answers needs at least one answer")
    n = len(rows)
    W = len(rows[0])
    per_unit = []
    for w in range(W):
        width = len(rows[0][w])
        for k in range(width):
            per_unit.append(Counter(r[w][k] for r in rows).most_common(1)[0][1] / n)
    seq = Counter(rows).most_common(1)[0][1] / n
    return {"bit_accuracy": sum(per_unit) / len(per_unit), "sequence_accuracy": seq}


def check_int(value: int, key: str, lo: int, hi: int) -> None:
    if not lo <= value <= hi:
        raise ValueError(f"task.{key} must be between {lo} and {hi}, got {value}")


def check_choice(value: str, key: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"task.{key} must be one of {list(allowed)}, got {value!r}")


def number_channels(prefix: str, n_values: int) -> List[str]:
    """Population code channels ``prefix=0 .. prefix=n_values-1`` (one group of input neurons
    per value; a number is shown by which group fires)."""
    return [f"{prefix}={v}" for v in range(n_values)]
