"""``cognet generalize``: evaluate a trained run at other values of a task parameter
(:mod:`analysis.generalize`) and, optionally, replay the longest setting in Brian2
(:func:`cognet.brian.replay.verify_run` with the parameter overridden).

This module only composes the two layers below it (analysis does not import Brian2). The
Brian2 entry of ``generalize.json`` holds, for the value with the most time steps, the
fraction of trials whose spike trains are identical in torch and Brian2, the fraction of
spikes matched, the first divergence and both readouts' accuracy on the replayed trials
(the run's test stream, drawn ``brian2_trials`` at a time, so not the same trials as the
torch rows when the trial counts differ).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from analysis.generalize import generalize_run, parse_param, write_generalization

BRIAN2_KEYS = ("identical_trial_fraction", "spike_match_fraction", "first_divergence_ms", "diverging_trials",
               "trials", "eval_seed", "target", "task_overrides")


def generalize(run_dir, param: str, values: Sequence[Any], trials: int = 256, seed: Optional[int] = None,
               brian2: bool = False, brian2_trials: Optional[int] = None, write: bool = True,
               figure: bool = True, brian2_target: Optional[str] = None) -> Dict[str, Any]:
    """:func:`analysis.generalize.generalize_run`, plus (``brian2``) the Brian2 replay of the
    longest setting; writes ``generalize.json`` and ``generalize.png`` into the run."""
    res = generalize_run(run_dir, param, values, trials, seed)
    if brian2:
        from cognet.brian.replay import verify_run

        name = parse_param(param)
        v = verify_run(Path(run_dir), trials=brian2_trials or trials, seed=seed, write=False, target=brian2_target,
                       task_overrides={name: res["longest_value"]})
        res["brian2"] = {"value": res["longest_value"], **{k: v.get(k) for k in BRIAN2_KEYS},
                         "metric": v["torch"]["metric"], "torch_accuracy": v["torch"]["accuracy"],
                         "brian2_accuracy": v["brian2"]["accuracy"],
                         "torch_mean_rate_hz": v["torch"]["mean_rate_hz"],
                         "brian2_mean_rate_hz": v["brian2"]["mean_rate_hz"], "brian2_wall_s": v["brian2"]["wall_s"]}
    if write:
        res["paths"] = write_generalization(res, figure=figure)
    return res


# -- length generalisation of many runs (cognet experiment length-generalization) -------------------
#: tasks whose string length is the parameter ``n_bits``
LENGTH_TASKS = ("add", "subtract", "compare", "count", "parity", "copy", "reverse")
LENGTH_FILE = "length-generalization.json"


def length_values(run_dir, factors: Sequence[float]) -> Dict[str, Any]:
    """Test lengths for a trained run: ``round(f n0)`` for each factor ``f`` (``n0`` the trained
    ``task.n_bits``), keeping only lengths at which the network's input/output sizes stay; if a
    length is refused, the largest allowed length below it is tested instead (e.g. ``count``
    with bit-coded answers: 7 bits is the most a 3-output network can count)."""
    from analysis.generalize import task_at
    from cognet.core.errors import ConfigError
    from cognet.training.model import load_model

    net, cfg = load_model(Path(run_dir) / "model.safetensors")
    import tasks

    n0 = int(tasks.get_task(cfg.task, cfg.task_params, cfg.network.dt_ms).params.n_bits)

    def ok(n: int) -> bool:
        try:
            task_at(cfg, "n_bits", n, net.n_in, net.n_out)
            return True
        except ConfigError:
            return False

    values, dropped = [], []
    for f in factors:
        n = max(1, int(round(f * n0)))
        if not ok(n):
            dropped.append(n)
            while n > n0 and not ok(n):
                n -= 1
        if n not in values:
            values.append(n)
    return {"trained": n0, "values": sorted(values), "dropped": sorted(set(dropped))}


def evaluate_lengths(run_dir, factors: Sequence[float], trials: int) -> Dict[str, Any]:
    """:func:`analysis.generalize.generalize_run` over :func:`length_values`, cached in
    ``<run_dir>/length-generalization.json`` (reused while lengths and trials are the same)."""
    from cognet.training.io import read_json, write_json

    run_dir = Path(run_dir)
    lv = length_values(run_dir, factors)
    path = run_dir / LENGTH_FILE
    if path.exists():
        old = read_json(path)
        if old.get("values") == lv["values"] and old.get("trials") == trials:
            return old
    res = generalize_run(run_dir, "task.n_bits", lv["values"], trials)
    res["dropped"] = lv["dropped"]
    write_json(path, res)
    return res


def mean_ci95(values: Sequence[float], bounds: Optional[tuple] = None) -> Dict[str, Any]:
    """Mean over seeds with the 95 % t-interval of the mean (``mean +- t_{0.975, n-1} sd / sqrt(n)``,
    clipped to ``bounds``, e.g. (0, 1) for an accuracy; no interval for one seed)."""
    import math

    from scipy.stats import t as student_t

    v = [float(x) for x in values if x is not None and not math.isnan(float(x))]
    n = len(v)
    if n == 0:
        return {"mean": math.nan, "lo": math.nan, "hi": math.nan, "n": 0}
    m = sum(v) / n
    if n == 1:
        return {"mean": m, "lo": math.nan, "hi": math.nan, "n": 1}
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / (n - 1))
    h = float(student_t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    lo, hi = m - h, m + h
    if bounds is not None:
        lo, hi = max(bounds[0], lo), min(bounds[1], hi)
    return {"mean": m, "lo": lo, "hi": hi, "n": n}


#: a run counts as having learnt its task if its bit accuracy at the training length beats chance by this
LEARNT_MARGIN = 0.1


def retention(acc0: float, chance0: float, acc: float, chance: float) -> float:
    """Share of the above-chance accuracy at the training length that is kept at a longer one:
    ``(acc - chance) / (acc0 - chance0)`` (1: holds; 0: at chance; below 0: worse than chance).
    NaN if the task was not learnt at the training length (``acc0 - chance0 < LEARNT_MARGIN``)."""
    import math

    return (acc - chance) / (acc0 - chance0) if acc0 - chance0 >= LEARNT_MARGIN else math.nan
