"""Verify a trained run in Brian2: replay held-out trials and compare with torch.

:func:`verify_run` loads ``model.safetensors`` from a run directory (float64), records
``trials`` held-out trials in torch (:func:`cognet.training.records.record_torch`, the run's own test
stream unless ``seed`` is given), feeds the very same input spike trains to the Brian2
rebuild (:mod:`cognet.brian.bridge`), computes the Brian2 readout from the recorded spikes
with the same filter and answer windows, and writes into the run directory:

* ``verify.json``: the comparison (below);
* ``spikes-torch.safetensors`` and ``spikes-brian2.safetensors``: both spike records.

At a Brian2 step finer than the training step the files are ``verify-dt<dt>.json`` and
``spikes-brian2-dt<dt>.safetensors`` (e.g. ``verify-dt0.1.json``) and the training-step set
is left alone. A finer step is a different discretisation of the same equations, so spike
trains are not expected to be identical step for step (0 % identical trials is the normal
result); compare the rates and the accuracy instead. ``verify.json`` then says so in ``note``.

The files of one verification are written as a set (:class:`cognet.training.io.OutputSet`)
while holding the run directory's lock: a kill leaves the previous set or the new one.

Definitions (``f = dt_train / dt``; at a finer Brian2 step the Brian2 spikes are counted per
training step before comparing)::

    identical_trial_fraction  fraction of trials whose spike counts c[t, j] agree at every
                              training step t and neuron j
    spike_match_fraction      2 * sum min(c_torch, c_brian2) / (N_torch + N_brian2)
                              (spikes matched at the same step; 1 when identical)
    first_divergence_ms       earliest time (ms, over all trials) of a differing step, or null
    accuracy                  the task's stop metric (bit or sequence accuracy) of each readout
    mean_rate_hz / rates_hz   spikes per second, mean over neurons / per neuron (all trials)

With a conv front end (``network.conv_channels > 0``, the digits task) both layers are replayed
and compared: the keys above are those of the recurrent population, and ``conv`` holds the
same comparison (``identical_trial_fraction``, ``spike_match_fraction``, rates) of the conv
layer's spikes; ``identical_trial_fraction_all_layers`` counts the trials identical in both.
The torch conv spikes are those of the same float64 forward pass on the recorded input. The
conv front end replays at the training step only.

At a finer step the readout filter uses ``kappa = exp(-dt / tau_out)`` and the answer windows
``[s f, e f)``; the recurrent delay stays one training step (in ms).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import numpy as np
import torch

from cognet.brian import bridge as brian2_bridge
from cognet.training.io import OutputSet, run_lock, write_json
from cognet.training.model import check_task_matches, load_model
from cognet.core.network import readout_matrix
from cognet.training.records import SpikeRecord, record_torch, save_record

VERIFY_FILE = "verify.json"
TORCH_RECORD = "spikes-torch.safetensors"
BRIAN2_RECORD = "spikes-brian2.safetensors"
FINE_STEP_NOTE = ("Brian2 ran at a finer time step than training: a different discretisation of the same "
                  "equations, so spike trains are not expected to be identical step for step (0 % identical "
                  "trials is normal here); compare the rates and the accuracy.")


def output_names(dt_ms: float, train_dt_ms: float) -> Dict[str, Optional[str]]:
    """File names of a verification at Brian2 step ``dt_ms`` (torch record only at the training step)."""
    if dt_ms == train_dt_ms:
        return {"verify": VERIFY_FILE, "torch": TORCH_RECORD, "brian2": BRIAN2_RECORD}
    tag = f"dt{dt_ms:g}"
    return {"verify": f"verify-{tag}.json", "torch": None, "brian2": f"spikes-brian2-{tag}.safetensors"}


def compare_spikes(z_ref: np.ndarray, z_test: np.ndarray, dt_ms: float) -> Dict[str, Any]:
    """Compare spike counts ``[trials, T, n]`` (same grid, step ``dt_ms``); see module doc."""
    if z_ref.shape != z_test.shape:
        raise ValueError(f"spike arrays differ in shape: {z_ref.shape} vs {z_test.shape}")
    a = np.ascontiguousarray(z_ref, dtype=np.uint8)
    b = np.ascontiguousarray(z_test, dtype=np.uint8)
    diff = (a != b).any(axis=2)  # [trials, T]
    identical = ~diff.any(axis=1)
    total = int(a.sum(dtype=np.int64) + b.sum(dtype=np.int64))
    matched = int(np.minimum(a, b).sum(dtype=np.int64))
    first_steps = np.argmax(diff[~identical], axis=1) if (~identical).any() else np.zeros(0, dtype=np.int64)
    return {
        "identical_trial_fraction": float(identical.mean()) if len(identical) else 1.0,
        "spike_match_fraction": 2.0 * matched / total if total else 1.0,
        "first_divergence_ms": float(first_steps.min()) * dt_ms if first_steps.size else None,
        "median_first_divergence_ms": float(np.median(first_steps)) * dt_ms if first_steps.size else None,
        "diverging_trials": int(first_steps.size),
        "spikes": {"reference": int(a.sum(dtype=np.int64)), "test": int(b.sum(dtype=np.int64))},
    }


def _scores(task, logits: torch.Tensor, rec: SpikeRecord) -> Dict[str, float]:
    from tasks.base import Batch

    batch = Batch(x=torch.empty(0), target=rec.target, mask=rec.mask.bool(), windows=rec.windows,
                  phases=rec.phases)
    s = task.score(logits, batch)
    return {"accuracy": s[task.stop_metric], "metric": task.stop_metric, **s}


def _rates(z: np.ndarray, dt_ms: float) -> np.ndarray:
    """Per-neuron rates (Hz) of spikes ``[trials, T, n]``."""
    trials, T, _ = z.shape
    return z.sum(axis=(0, 1), dtype=np.float64) / (trials * T * dt_ms * 1e-3)


def verify_run(run_dir, trials: Optional[int] = None, dt_ms: Optional[float] = None, target: Optional[str] = None,
               seed: Optional[int] = None, write: bool = True,
               task_overrides: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Replay ``trials`` held-out trials of a trained run in Brian2 and compare with torch
    (default: the task's :meth:`~tasks.base.Task.held_out_trials`, 256 for the symbolic tasks).

    ``dt_ms`` is the Brian2 step (default: the training step; a finer one must divide it).
    ``task_overrides`` replays the task with some parameters changed (e.g. ``{"n_bits": 16}``
    for ``cognet generalize --brian2``); it must keep the network's input/output sizes.
    Returns the dict written to ``verify.json`` (see the module docstring).
    """
    run_dir = Path(run_dir)
    if trials is not None and trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    model_path = run_dir / "model.safetensors"
    if not model_path.exists():
        raise FileNotFoundError(f"{run_dir} holds no trained model (model.safetensors missing)")
    if task_overrides and write:
        raise ValueError("a replay with task_overrides is not the run's verification: pass write=False")
    if not write:
        return _verify(run_dir, model_path, trials, dt_ms, target, seed, write, task_overrides)
    with run_lock(run_dir):
        return _verify(run_dir, model_path, trials, dt_ms, target, seed, write, task_overrides)


def _verify(run_dir: Path, model_path: Path, trials: Optional[int], dt_ms: Optional[float], target: Optional[str],
            seed: Optional[int], write: bool, task_overrides: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    import tasks
    from cognet.training.trainer import derive_seeds

    net, cfg = load_model(model_path, dtype=torch.float64)
    net.eval()
    dt_train = net.neurons.dt_ms
    dt = dt_train if dt_ms is None else float(dt_ms)
    if not (dt > 0 and math.isfinite(dt)):
        raise ValueError(f"dt_ms must be a positive number, got {dt_ms!r}")
    factor = dt_train / dt
    if abs(factor - round(factor)) > 1e-6 or round(factor) < 1:
        raise ValueError(f"dt_ms={dt} must divide the training step {dt_train} ms a whole number of times")
    factor = int(round(factor))
    task = tasks.get_task(cfg.task, {**cfg.task_params, **dict(task_overrides or {})}, dt_train)
    trials = task.held_out_trials() if trials is None else int(trials)
    if task_overrides and (task.n_in != net.n_in or task.n_out != net.n_out):
        raise ValueError(f"task overrides {dict(task_overrides)} change the network's sizes "
                         f"(n_in {net.n_in} -> {task.n_in}, n_out {net.n_out} -> {task.n_out})")
    check_task_matches(net, task, model_path)
    eval_seed = derive_seeds(cfg.seed)["test"] if seed is None else int(seed)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in training: one thread is fastest and stable on a busy machine
    try:
        rec_t = record_torch(net, task, trials, eval_seed)
    finally:
        torch.set_num_threads(threads)
    x = rec_t.x.transpose(0, 1).numpy()  # [T, trials, n_in]
    params = net.neurons if factor == 1 else net.neurons.with_dt(dt)
    run = brian2_bridge.simulate_network(net, x, params=params, input_dt_ms=dt_train, rec_delay_ms=dt_train,
                                         target=target)
    z_b = torch.as_tensor(run.z, dtype=torch.float64)  # [T f, trials, n]
    windows_b = [(s * factor, e * factor) for s, e in rec_t.windows]
    with torch.no_grad():
        if factor == 1:
            logits_b = net.readout(z_b, rec_t.windows)
        else:
            M = readout_matrix(windows_b, z_b.shape[0], math.exp(-dt / net.tau_out_ms))
            logits_b = torch.nn.functional.linear(torch.einsum("wt,tbn->wbn", M, z_b), net.w_out, net.b_out)

    z_t = rec_t.z.numpy().astype(np.uint8)  # [trials, T, n]
    conv_cmp = None
    if getattr(net, "conv", None) is not None:
        with torch.no_grad():
            zc_t = net.conv(rec_t.x.transpose(0, 1).to(torch.float64)).z.transpose(0, 1).numpy().astype(np.uint8)
        zc_b = run.z_front.transpose(1, 0, 2)
        conv_cmp = compare_spikes(zc_t, zc_b, dt_train)
        conv_cmp["torch_mean_rate_hz"] = float(_rates(zc_t, dt_train).mean())
        conv_cmp["brian2_mean_rate_hz"] = float(_rates(zc_b, dt).mean())
        conv_cmp["n_conv"] = int(zc_t.shape[2])
        both = ~(((zc_t != zc_b).any(axis=(1, 2))) | ((z_t != run.z.transpose(1, 0, 2)).any(axis=(1, 2))))
        conv_cmp["identical_trial_fraction_all_layers"] = float(both.mean())
    z_b_np = run.z.transpose(1, 0, 2)  # [trials, T f, n]
    counts_b = z_b_np.reshape(trials, -1, factor, net.n).sum(axis=2)
    cmp = compare_spikes(z_t, counts_b, dt_train)
    rates_t = _rates(z_t, dt_train)
    rates_b = _rates(z_b_np, dt)
    s_t = _scores(task, rec_t.logits.double(), rec_t)
    s_b = _scores(task, logits_b, rec_t)
    result: Dict[str, Any] = {
        "run_dir": str(run_dir),
        "task": cfg.task,
        "rule": cfg.rule,
        "trials": trials,
        "eval_seed": eval_seed,
        "dt_ms": dt,
        "train_dt_ms": dt_train,
        "target": run.target,
        **{k: cmp[k] for k in ("identical_trial_fraction", "spike_match_fraction", "first_divergence_ms",
                                "median_first_divergence_ms", "diverging_trials")},
        "torch": {**s_t, "mean_rate_hz": float(rates_t.mean()), "rates_hz": rates_t.tolist(),
                  "spikes": cmp["spikes"]["reference"], "dtype": "float64"},
        "brian2": {**s_b, "mean_rate_hz": float(rates_b.mean()), "rates_hz": rates_b.tolist(),
                   "spikes": cmp["spikes"]["test"], "wall_s": run.wall_s, "build_s": run.build_s,
                   "run_s": run.run_s, "target": run.target, "synapses": run.n_synapses,
                   "runs": run.info["runs"]},
        "accuracy_difference": s_b["accuracy"] - s_t["accuracy"],
    }
    if conv_cmp is not None:
        result["identical_trial_fraction_all_layers"] = conv_cmp.pop("identical_trial_fraction_all_layers")
        result["conv"] = conv_cmp
    if task_overrides:
        result["task_overrides"] = dict(task_overrides)
    names = output_names(dt, dt_train)
    result["files"] = {k: v for k, v in names.items() if v is not None}
    if factor > 1:
        result["note"] = FINE_STEP_NOTE
    if write:
        k = factor
        x_fine = np.zeros((trials, rec_t.T * k, rec_t.x.shape[2]), dtype=np.uint8)
        x_fine[:, ::k] = rec_t.x.numpy()
        rec_b = SpikeRecord(
            z=torch.as_tensor(z_b_np), x=torch.as_tensor(x_fine), logits=logits_b.float(), target=rec_t.target,
            mask=rec_t.mask, source="brian2", task=rec_t.task, dt_ms=dt, windows=windows_b,
            phases={name: [(a * k, b * k) for a, b in r] for name, r in rec_t.phases.items()},
            channels=rec_t.channels, active=rec_t.active, steps_per_symbol=rec_t.steps_per_symbol * k,
            extra={"seed": eval_seed, "target": run.target, "train_dt_ms": dt_train},
        )
        with OutputSet(run_dir, "verify") as out:
            if names["torch"] is not None:
                save_record(out.path(run_dir / names["torch"]), rec_t)
            save_record(out.path(run_dir / names["brian2"]), rec_b)
            write_json(out.path(run_dir / names["verify"]), result)
            out.commit()
    return result
