"""Paired comparisons over seeds: the statistics every claim experiment reports.

Two settings A and B trained with the same seeds (same initial weights, same batches) give
paired accuracies; the unit of replication is the seed (one difference per seed and task,
averaged over any further factor within it, e.g. the learning rates). For the differences
``d_1 .. d_n`` (A - B):

* mean ``d`` and sample standard deviation ``s`` (ddof 1), standard error ``s / sqrt(n)``;
* 95 % confidence interval ``d +- t_{0.975, n-1} s / sqrt(n)`` (Student t);
* the paired t-test of ``mean = 0`` (two-sided), ``t = d / (s / sqrt(n))`` with ``n - 1``
  degrees of freedom, and its p-value (``scipy.stats.ttest_1samp``);
* Cohen's ``d_z = d / s`` (the paired effect size).

With one seed there is no interval and no test (``nan``); when every difference is equal
(``s = 0``), the interval is that value and ``p`` is 0 (or 1 when the value is 0).

:func:`decide` turns these into a sign with a practical tolerance ``tol``: an effect counts
when the interval excludes 0 (``p < 0.05``) *and* ``|d| >= tol``; an interval inside
``(-tol, tol)`` shows the two settings equivalent at that tolerance; anything else is
inconclusive at this number of seeds.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Sequence

CONFIDENCE = 0.95
TEST_NAME = "paired t-test (two-sided)"


def _clean(values: Sequence[float]) -> list:
    return [float(v) for v in values if v is not None and not math.isnan(float(v))]


def t_ci_halfwidth(values: Sequence[float], confidence: float = CONFIDENCE) -> float:
    """Half-width of the t confidence interval of the mean of ``values`` (nan below 2 values)."""
    from scipy import stats

    vals = _clean(values)
    n = len(vals)
    if n < 2:
        return math.nan
    m = sum(vals) / n
    s = math.sqrt(sum((v - m) ** 2 for v in vals) / (n - 1))
    return float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * s / math.sqrt(n)


def paired_stats(diffs: Sequence[float], confidence: float = CONFIDENCE) -> Dict[str, Any]:
    """The statistics of the paired differences ``diffs`` (see the module docstring)."""
    from scipy import stats

    vals = _clean(diffs)
    n = len(vals)
    out: Dict[str, Any] = {"n": n, "test": TEST_NAME, "confidence": confidence, "mean": math.nan, "sd": math.nan,
                           "se": math.nan, "ci_low": math.nan, "ci_high": math.nan, "t": math.nan, "df": n - 1,
                           "p": math.nan, "d_z": math.nan}
    if n == 0:
        return out
    m = sum(vals) / n
    out["mean"] = m
    if n < 2:
        return out
    s = math.sqrt(sum((v - m) ** 2 for v in vals) / (n - 1))
    if s <= 1e-12 * max(1.0, abs(m)):  # equal differences up to rounding
        s = 0.0
    se = s / math.sqrt(n)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * se
    out.update(sd=s, se=se, ci_low=m - half, ci_high=m + half)
    if s == 0.0:
        out.update(t=math.copysign(math.inf, m) if m else 0.0, p=0.0 if m else 1.0,
                   d_z=math.copysign(math.inf, m) if m else 0.0)
    else:
        res = stats.ttest_1samp(vals, 0.0)
        out.update(t=float(res.statistic), p=float(res.pvalue), d_z=m / s)
    return out


def decide(st: Dict[str, Any], tol: float, alpha: float = 1 - CONFIDENCE) -> Dict[str, Any]:
    """``sign`` (+1, -1, 0) and ``kind`` of a paired comparison:

    ``effect`` (p < alpha and |d| >= tol), ``small`` (p < alpha, |d| < tol), ``equivalent``
    (the CI lies inside (-tol, tol)), ``inconclusive`` (otherwise), ``one-seed`` (no CI)."""
    if st["n"] < 2:
        return {"sign": 0, "kind": "one-seed"}
    if st["p"] < alpha:
        if abs(st["mean"]) >= tol:
            return {"sign": 1 if st["mean"] > 0 else -1, "kind": "effect"}
        return {"sign": 0, "kind": "small"}
    if -tol < st["ci_low"] and st["ci_high"] < tol:
        return {"sign": 0, "kind": "equivalent"}
    return {"sign": 0, "kind": "inconclusive"}


def _num(x: float, signed: bool = True) -> str:
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:+.3f}" if signed else f"{x:.3f}"


def _p(p: float) -> str:
    if math.isnan(p):
        return "nan"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def describe(st: Dict[str, Any], what: str = "paired difference") -> str:
    """``paired difference +0.012 (95 % CI -0.004 to +0.028; paired t-test over 5 seeds: t(4) =
    1.90, p = 0.132; Cohen's d_z = 0.85)``; with one seed only the value and that note."""
    if st["n"] == 0:
        return f"{what}: no paired runs"
    if st["n"] < 2:
        return f"{what} {_num(st['mean'])} (one seed: no confidence interval, no test)"
    pct = f"{100 * st['confidence']:g} %"
    return (f"{what} {_num(st['mean'])} ({pct} CI {_num(st['ci_low'])} to {_num(st['ci_high'])}; {st['test']} over "
            f"{st['n']} seeds: t({st['df']}) = {_num(st['t'], False) if math.isfinite(st['t']) else _num(st['t'])}, "
            f"{_p(st['p'])}; Cohen's d_z = {_num(st['d_z'], False) if math.isfinite(st['d_z']) else _num(st['d_z'])})")


def why_not(st: Dict[str, Any], kind: str, tol: float) -> str:
    """The reason a comparison shows no effect, in words (for the verdict sentence)."""
    if kind == "one-seed":
        return "With one seed there is no confidence interval, so nothing is decided (use --seeds 5 or more)"
    if kind == "small":
        return (f"The difference is statistically clear ({_p(st['p'])}) but smaller than the {tol} accuracy cognet "
                "counts as a real effect")
    if kind == "equivalent":
        return (f"The {100 * st['confidence']:g} % CI ({_num(st['ci_low'])} to {_num(st['ci_high'])}) lies within "
                f"+-{tol}: no practical difference")
    return (f"The {100 * st['confidence']:g} % CI ({_num(st['ci_low'])} to {_num(st['ci_high'])}) includes 0 and "
            f"reaches beyond +-{tol}, so {st['n']} seeds cannot decide (more seeds would)")
