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
