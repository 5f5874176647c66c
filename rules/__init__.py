"""Learning rules: surrogate-gradient BPTT, e-prop variants, the hop-truncated rules and MDGL.

``get_rule_class(name)`` looks a rule up; ``RULES`` maps names to classes.
"""

from __future__ import annotations

from typing import Dict, Type

from .base import LearningRule, StepResult, rate_penalty
from .bptt import BPTT
from .eprop import EpropAdaptive, EpropRandom, EpropSymmetric
from .hops import HopRandom, HopSymmetric
from .mdgl import MdglRandom, MdglSymmetric

RULES: Dict[str, Type[LearningRule]] = {}


def register(cls: Type[LearningRule]) -> Type[LearningRule]:
    if not cls.name or cls.name in RULES:
        raise ValueError(f"rule name {cls.name!r} is empty or already registered")
    RULES[cls.name] = cls
    return cls


def get_rule_class(name: str) -> Type[LearningRule]:
    if name not in RULES:
        raise ValueError(f"unknown rule {name!r}; available: {', '.join(sorted(RULES))}")
    return RULES[name]


register(BPTT)
for _cls in (EpropSymmetric, EpropRandom, EpropAdaptive, HopSymmetric, HopRandom, MdglSymmetric, MdglRandom):
    register(_cls)

__all__ = ["LearningRule", "StepResult", "RULES", "get_rule_class", "register", "rate_penalty"]
