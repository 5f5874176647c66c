"""Generalisation of a trained run to other values of a task parameter (``cognet generalize``).

A network trained on ``task.n_bits = 4`` is evaluated, unchanged, on tasks whose parameter
takes other values (e.g. 4, 6, 8, 12, 16 bits). Only values that keep the network's input and
output sizes (``n_in``, ``n_out``) can be evaluated; any other value is refused by name before
anything is simulated. An algorithm-like solution (a carry that is propagated, a bit that is
held) keeps its accuracy *per bit* as the strings grow; a lookup-like one collapses to chance.

Per value ``v`` (``N`` held-out trials from the run's test stream, or ``seed``; ``m`` answered
bits per trial; ``k_i`` right bits and ``s_i`` = 1 if every answer of trial ``i`` is right)::

    bit_accuracy       p = sum_i k_i / (N m)
    sequence_accuracy  q = sum_i s_i / N, 95 % CI: Wilson interval over the N trials
    bit_accuracy_ci95  Wilson interval with the effective number of independent answers
                       n_eff = N m / deff, deff = m * var_i(k_i / m) / (p (1 - p)) clipped to
                       [1, m] (Kish's design effect for N clusters of m answers; deff = m, i.e.
                       n_eff = N, when p is 0 or 1). The bits of one trial are not independent
                       (one missed carry breaks several), so a plain Wilson interval over the
                       N m bits would be too narrow.
    mean_rate_hz       spikes / (N T dt) averaged over neurons; spikes_per_neuron_per_symbol =
                       mean_rate_hz * step_ms / 1000
    chance             the task's input-independent best answer at value v (Task.chance)

``generalize.json`` (written atomically into the run directory by :func:`write_generalization`)
holds these rows; ``generalize.png`` plots accuracy against the value with the training value
marked and the chance levels. The Brian2 replay of the longest setting is added by
:mod:`cognet.experiments.generalize` (this layer does not import Brian2).
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from cognet.core.errors import ConfigError
from cognet.training.io import write_json

RESULT_FILE = "generalize.json"
FIGURE_FILE = "generalize.png"
Z95 = 1.959963984540054


def wilson_ci95(p: float, n: float) -> Tuple[float, float]:
    """Wilson score 95 % interval of a proportion ``p`` observed on ``n`` (possibly fractional,
    effective) independent trials; equal to :func:`cognet.training.trainer.proportion_ci95`
    for whole numbers."""
    if n <= 0:
        return (math.nan, math.nan)
    z2 = Z95 * Z95
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = Z95 * math.sqrt(max(p * (1 - p), 0.0) / n + z2 / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def clustered_bit_ci95(right: np.ndarray, total: np.ndarray) -> Tuple[Tuple[float, float], float]:
    """95 % interval of the bit accuracy from per-trial counts (see the module docstring);
    returns ``(interval, deff)``."""
    right = np.asarray(right, dtype=np.float64)
    total = np.asarray(total, dtype=np.float64)
    n_bits = float(total.sum())
    if n_bits == 0:
        return (math.nan, math.nan), math.nan
    p = float(right.sum() / n_bits)
    m = n_bits / len(total)  # answers per trial (equal in every trial of these tasks)
    if p <= 0.0 or p >= 1.0 or m <= 1 or len(total) < 2:
        deff = max(1.0, m)
    else:
        frac = right / np.where(total > 0, total, 1.0)
        deff = float(np.clip(m * frac.var(ddof=1) / (p * (1 - p)), 1.0, m))
    return wilson_ci95(p, n_bits / deff), deff


def parse_param(param: str) -> str:
    """``task.n_bits`` or ``n_bits`` -> ``n_bits`` (only task parameters can be varied)."""
    name = param[5:] if param.startswith("task.") else param
    if not name or "." in name or name == "name":
        raise ConfigError(f"--param must name a task parameter such as task.n_bits, got {param!r}")
    return name


def task_at(cfg, name: str, value: Any, n_in: int, n_out: int):
    """The run's task with parameter ``name`` set to ``value``; ConfigError if the value is
    invalid or changes the network's input/output sizes."""
    import tasks

    cls = tasks.get_task_class(cfg.task)
    fields = {f.name for f in dataclasses.fields(cls.Params)}
    if name not in fields:
        raise ConfigError(f"task.{name} is not a parameter of task {cfg.task!r}; its parameters: {sorted(fields)}")
    try:
        task = tasks.get_task(cfg.task, {**cfg.task_params, name: value}, cfg.network.dt_ms)
    except ValueError as exc:
        raise ConfigError(f"task.{name}={value!r}: {exc}") from None
    if task.n_in != n_in or task.n_out != n_out:
        raise ConfigError(
            f"task.{name}={value!r} changes the network's sizes: the {cfg.task} task would need n_in={task.n_in}, "
            f"n_out={task.n_out}, but the trained network has n_in={n_in}, n_out={n_out}; choose values that keep them")
    return task


@torch.no_grad()
def evaluate_trials(net, task, trials: int, seed: int, batch_size: int = 256) -> Dict[str, Any]:
    """Per-trial scores on ``trials`` held-out (``test`` split) trials drawn from ``seed``;
    the trials are those :func:`cognet.training.trainer.evaluate` draws with the same seed."""
    g = torch.Generator().manual_seed(int(seed))
    device = net.w_rec.device
    right, total, seq = [], [], []
    spikes = None
    steps = 0
    done = 0
    while done < trials:
        b = min(batch_size, trials - done)
        batch = task.sample(b, g, split="test")
        out = net(batch.x.to(device), batch.windows)
        pred = task.predict(out.logits).cpu()
        target = batch.target.long()
        mask = batch.mask
        correct = pred == target
        if task.output == "bits":
            per_win = correct.all(-1)
            right.append((correct & mask[..., None]).sum(dim=(0, 2)))
            total.append(mask.sum(0) * correct.shape[-1])
        else:
            per_win = correct
            right.append((correct & mask).sum(0))
            total.append(mask.sum(0))
        seq.append((per_win | ~mask).all(0))
        counts = out.z.sum(dim=(0, 1)).double().cpu()
        spikes = counts if spikes is None else spikes + counts
        steps += out.z.shape[0] * b
        done += b
    rates = spikes / steps * (1000.0 / net.neurons.dt_ms)
    return {"right": torch.cat(right).numpy(), "total": torch.cat(total).numpy(),
            "sequence_ok": torch.cat(seq).numpy(), "rates_hz": rates.numpy()}


_CHANCE: Dict[Tuple[str, str, float], Dict[str, float]] = {}


def task_chance(task) -> Dict[str, float]:
    """``task.chance()``, memoised per task and parameters (exact chance enumerates every
    operand pair, 65536 of them for 8-bit ``add``)."""
    import json

    key = (task.name, json.dumps(dataclasses.asdict(task.params), sort_keys=True, default=str), task.dt_ms)
    if key not in _CHANCE:
        _CHANCE[key] = dict(task.chance())
    return dict(_CHANCE[key])


def _score_row(task, value: Any, ev: Dict[str, Any], trained_value: Any) -> Dict[str, Any]:
    right, total, ok = ev["right"], ev["total"], ev["sequence_ok"]
    bit = float(right.sum() / max(total.sum(), 1))
    bit_ci, deff = clustered_bit_ci95(right, total)
    n = len(ok)
    seq = float(ok.mean())
    rates = ev["rates_hz"]
    return {
        "value": value, "trained": value == trained_value, "T_steps": task.T, "answers_per_trial": float(total.mean()),
        "bit_accuracy": bit, "bit_accuracy_ci95": list(bit_ci), "bit_design_effect": deff,
        "sequence_accuracy": seq, "sequence_accuracy_ci95": list(wilson_ci95(seq, n)),
        "mean_rate_hz": float(rates.mean()), "silent_fraction": float((rates == 0).mean()),
        "spikes_per_neuron_per_symbol": float(rates.mean()) * task.params.step_ms / 1000.0
        if hasattr(task.params, "step_ms") else None,
        "chance": task_chance(task),
    }


def generalize_run(run_dir, param: str, values: Sequence[Any], trials: int = 256,
                   seed: Optional[int] = None) -> Dict[str, Any]:
    """Evaluate the trained network of ``run_dir`` at each of ``values`` of task parameter
    ``param`` (see the module docstring). Every value is checked before any is simulated."""
    import tasks
    from cognet.training.model import load_model
    from cognet.training.trainer import derive_seeds

    t0 = time.perf_counter()
    run_dir = Path(run_dir)
    if trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    if not values:
        raise ConfigError("--values needs at least one value")
    model_path = run_dir / "model.safetensors"
    if not model_path.exists():
        raise FileNotFoundError(f"{run_dir} holds no trained model (model.safetensors missing)")
    net, cfg = load_model(model_path)
    net.eval()
    name = parse_param(param)
    trained_task = tasks.get_task(cfg.task, cfg.task_params, cfg.network.dt_ms)
    trained_value = getattr(trained_task.params, name, None)
    task_list = [task_at(cfg, name, v, net.n_in, net.n_out) for v in values]
    coerced = [getattr(t.params, name) for t in task_list]
    if len(set(map(repr, coerced))) != len(coerced):
        raise ConfigError(f"--values repeats a value: {coerced}")
    eval_seed = derive_seeds(cfg.seed)["test"] if seed is None else int(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.train.threads)
    try:
        rows = [_score_row(t, v, evaluate_trials(net, t, trials, eval_seed), trained_value)
                for t, v in zip(task_list, coerced)]
    finally:
        torch.set_num_threads(threads)
    longest = max(range(len(rows)), key=lambda i: rows[i]["T_steps"])
    return {
        "run_dir": str(run_dir), "task": cfg.task, "rule": cfg.rule, "seed": cfg.seed, "param": f"task.{name}",
        "trained_value": trained_value, "values": coerced, "trials": int(trials), "eval_seed": eval_seed,
        "stop_metric": trained_task.stop_metric, "n_in": net.n_in, "n_out": net.n_out, "n_rec": net.n,
        "longest_value": coerced[longest], "rows": rows, "wall_s": time.perf_counter() - t0,
    }


def write_generalization(res: Dict[str, Any], out_dir=None, figure: bool = True) -> Dict[str, str]:
    """Write ``generalize.json`` (and ``generalize.png``) into ``out_dir`` (default: the run)."""
    out = Path(out_dir) if out_dir is not None else Path(res["run_dir"])
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": str(out / RESULT_FILE)}
    if figure:
        from .plots import generalization_figure

        paths["figure"] = str(generalization_figure(out / FIGURE_FILE, res))
    write_json(out / RESULT_FILE, {**res, "paths": paths})
    return paths


def row_summary(res: Dict[str, Any]) -> List[str]:
    """One line per value, for the command's text output."""
    lines = [f"{res['task']} / {res['rule']} seed {res['seed']}: trained at {res['param']}={res['trained_value']}, "
             f"{res['trials']} held-out trials per value (seed {res['eval_seed']})"]
    for r in res["rows"]:
        bl, bh = r["bit_accuracy_ci95"]
        sl, sh = r["sequence_accuracy_ci95"]
        ch = r["chance"]
        lines.append(
            f"  {res['param']}={r['value']!s:<4}{'*' if r['trained'] else ' '} bit {r['bit_accuracy']:.3f} "
            f"[{bl:.3f}, {bh:.3f}]  sequence {r['sequence_accuracy']:.3f} [{sl:.3f}, {sh:.3f}]  "
            f"rate {r['mean_rate_hz']:.2f} Hz  (chance {ch['bit_accuracy']:.3f} / {ch['sequence_accuracy']:.3g})")
    return lines
