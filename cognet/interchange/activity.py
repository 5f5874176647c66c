"""A run's held-out activity as the interchange formats see it: the spike record, the model
it came from, and one row of task fields per trial.

:func:`run_activity` loads ``RUN/spikes-<source>.safetensors`` (:mod:`cognet.training.records`);
for ``source="torch"`` a missing record, or one with fewer than ``trials`` trials, is
recorded from ``model.safetensors`` on the run's held-out test stream and saved (as
``cognet analyze`` does); Brian2 records come only from ``cognet verify``.

Time line (shared by every format): trial ``i`` of ``T`` steps of ``dt`` occupies
``[i T dt, (i + 1) T dt)``; the spike of step ``t`` (0-based) of trial ``i`` is at
``(i T + t) dt``. Formats with per-trial time (neo) use ``t dt`` from the trial start.

:func:`trial_fields` gives per trial: the answer windows (``[W, 2]`` step ranges, as times),
``mask`` (which windows count), ``target`` and ``answer`` (bits ``[W, n_out]`` with
``answer = logit > 0``, or class indices ``[W]`` with ``answer = argmax``),
``window_correct`` and ``correct`` (every counted window right, the task's sequence
accuracy), and the task's own symbols (operands, strings: the ``info`` of
:meth:`tasks.base.Task.sample`). The symbols are not stored in the record; they are drawn
again from the record's seed in the same batches as :func:`~cognet.training.records.record_torch`
and used only if the input spikes drawn with them equal the recorded ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from cognet.training.records import SpikeRecord, load_record, record_torch, save_record

SOURCES = ("torch", "brian2")
DEFAULT_TRIALS = 256
RECORD_BATCH = 256  # record_torch's default batch size: the symbols are drawn again in these batches


@dataclass
class RunActivity:
    """A spike record (cut to the trials used) with the trained network and config behind it."""

    record: SpikeRecord
    net: Any = None  # cognet.core.network.RSNN or None (a record without its run)
    cfg: Any = None  # cognet.training.config.RunConfig or None
    record_path: Optional[Path] = None
    created: bool = False
    record_trials: int = 0  # trials in the record file (>= record.trials)


def record_path(run_dir: Path, source: str) -> Path:
    return Path(run_dir) / f"spikes-{source}.safetensors"


def cut(rec: SpikeRecord, n: int) -> SpikeRecord:
    """The first ``n`` trials of a record (``extra["record_trials"]`` keeps the record's size)."""
    if n >= rec.trials:
        return rec
    return SpikeRecord(
        z=rec.z[:n], x=rec.x[:n], logits=rec.logits[:, :n], target=rec.target[:, :n], mask=rec.mask[:, :n],
        source=rec.source, task=rec.task, dt_ms=rec.dt_ms, windows=list(rec.windows), phases=dict(rec.phases),
        channels=list(rec.channels), active=None if rec.active is None else rec.active[:n],
        steps_per_symbol=rec.steps_per_symbol,
        extra={**rec.extra, "record_trials": int(rec.extra.get("record_trials", rec.trials))},
    )


def run_activity(run_dir, source: str = "torch", trials: Optional[int] = None,
                 dt_ms: Optional[float] = None) -> RunActivity:
    """Load (for torch: create if needed) the held-out spike record of a run directory.

    ``dt_ms`` (brian2 only): the Brian2 step of a finer-step verification (``cognet verify
    --dt-ms 0.5`` writes ``spikes-brian2-dt0.5.safetensors``); default the training step."""
    from cognet.training.model import load_model

    run_dir = Path(run_dir)
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; use one of {', '.join(SOURCES)}")
    if trials is not None and (isinstance(trials, bool) or int(trials) < 1):
        raise ValueError(f"trials must be >= 1, got {trials}")
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} does not exist")
    model = run_dir / "model.safetensors"
    if not model.exists():
        raise FileNotFoundError(f"{run_dir} holds no trained model (model.safetensors missing); "
                                f"train it first with `cognet train --out {run_dir}`")
    net, cfg = load_model(model)
    net.eval()
    path = record_path(run_dir, source)
    if dt_ms is not None:
        if source != "brian2":
            raise ValueError("dt_ms selects a finer-step Brian2 record; it applies to source 'brian2' only")
        from cognet.brian.replay import output_names

        path = run_dir / output_names(float(dt_ms), cfg.network.dt_ms)["brian2"]
    created = False
    rec = load_record(path) if path.exists() else None
    if rec is None and source == "brian2":
        step = "" if dt_ms is None else f" --dt-ms {float(dt_ms):g}"
        finer = sorted(q.name for q in run_dir.glob("spikes-brian2-dt*.safetensors"))
        if dt_ms is None and finer:
            steps = ", ".join(q[len("spikes-brian2-dt"):-len(".safetensors")] for q in finer)
            raise FileNotFoundError(f"{path} does not exist (this run was verified at a finer step only: "
                                    f"{', '.join(finer)}); pass --dt-ms {steps.split(', ')[0]} to export that "
                                    f"record, or run `cognet verify {run_dir}` for the training step")
        raise FileNotFoundError(f"{path} does not exist: run `cognet verify {run_dir}{step}` first to simulate the "
                                "trained network in Brian2, then export with --source brian2")
    if rec is None or (trials is not None and rec.trials < trials and source == "torch"):
        import tasks
        from cognet.training.trainer import derive_seeds

        task = tasks.get_task(cfg.task, cfg.task_params, cfg.network.dt_ms)
        rec = record_torch(net, task, int(trials or DEFAULT_TRIALS), derive_seeds(cfg.seed)["test"])
        save_record(path, rec)
        created = True
    n = rec.trials if trials is None else min(int(trials), rec.trials)
    return RunActivity(cut(rec, n), net, cfg, path, created, rec.trials)


# -- per-trial task fields -------------------------------------------------------------------------
@dataclass
class TrialFields:
    """Columns of one row per trial: ``columns[name]`` is an array with the trial axis first."""

    start_s: np.ndarray
    stop_s: np.ndarray
    columns: Dict[str, np.ndarray] = field(default_factory=dict)
    descriptions: Dict[str, str] = field(default_factory=dict)
    symbols_note: str = ""

    def row(self, i: int) -> Dict[str, Any]:
        """Trial ``i`` as plain Python values (lists, ints, floats, bools, strings)."""
        return {k: v[i].tolist() if isinstance(v[i], np.ndarray) else v[i].item() if hasattr(v[i], "item") else v[i]
                for k, v in self.columns.items()}


def _per_trial(info: Dict[str, Any], b: int) -> Dict[str, list]:
    out = {}
    for k, v in info.items():
        if torch.is_tensor(v):
            v = v.tolist() if v.dim() > 0 else v.item()
        if isinstance(v, np.ndarray):
            v = v.tolist()
        if isinstance(v, (list, tuple)) and len(v) == b:
            out[k] = list(v)
    return out


def _column(values: list) -> np.ndarray:
    """A numeric array when the values are numbers or equal-length lists of numbers, else JSON strings."""
    try:
        arr = np.asarray(values)
        if arr.dtype.kind in "biuf" and arr.shape[0] == len(values):
            return arr
    except (ValueError, TypeError):
        pass
    return np.asarray([json.dumps(v) for v in values])


def task_symbols(rec: SpikeRecord, task) -> Tuple[Dict[str, np.ndarray], str]:
    """The task's per-trial symbols of the record's trials, drawn again from its seed.

    Returns ``(columns, note)``; the columns are empty (and the note says why) when the seed
    is unknown or the redrawn input spikes differ from the recorded ones."""
    seed = rec.extra.get("seed")
    if seed is None or task is None:
        return {}, "task symbols unavailable: the record does not name its seed"
    g = torch.Generator().manual_seed(int(seed))
    total = int(rec.extra.get("record_trials", rec.trials))
    k = int(round(float(rec.extra.get("train_dt_ms", rec.dt_ms)) / rec.dt_ms))  # Brian2 fine steps per step
    rows: Dict[str, list] = {}
    done = 0
    while done < min(total, rec.trials):
        b = min(RECORD_BATCH, total - done)
        batch = task.sample(b, g, split="test")
        n = min(b, rec.trials - done)
        x_rec = rec.x[done:done + n, ::k].to(torch.uint8)
        if x_rec.shape[1] != batch.T or not torch.equal(batch.x.transpose(0, 1)[:n].to(torch.uint8), x_rec):
            return {}, "task symbols unavailable: redrawing the record's seed does not give its input spikes"
        for key, vals in _per_trial(batch.info, b).items():
            rows.setdefault(key, []).extend(vals[:n])
        done += b
    return {key: _column(vals) for key, vals in rows.items()}, "task symbols redrawn from the record's seed (input spikes checked)"


def trial_fields(rec: SpikeRecord, task=None) -> TrialFields:
    """Per-trial start/stop times (s) and task fields (see the module docstring)."""
    n, T = rec.trials, rec.T
    dt_s = rec.dt_ms / 1000.0
    start = np.arange(n) * T * dt_s
    stop = (np.arange(n) + 1) * T * dt_s
    logits = rec.logits.double().numpy()
    target = rec.target.numpy()
    mask = rec.mask.numpy().astype(bool)  # [W, n]
    W = len(rec.windows)
    if target.ndim == 3:  # bits [W, n, n_out]
        answer = (logits > 0).astype(np.int64)
        target_i = (target > 0.5).astype(np.int64)
        win_ok = (answer == target_i).all(-1)
        answer, target_i = answer.transpose(1, 0, 2), target_i.transpose(1, 0, 2)
        kind = "bits (one row per answer window, least significant first where the task encodes numbers)"
    else:  # classes [W, n]
        answer = logits.argmax(-1).astype(np.int64) if W else np.zeros((0, n), np.int64)
        target_i = target.astype(np.int64)
        win_ok = answer == target_i
        answer, target_i = answer.T, target_i.T
        kind = "class index per answer window"
    correct = (win_ok | ~mask).all(0)
    win = np.asarray(rec.windows, dtype=np.int64).reshape(W, 2)
    cols: Dict[str, np.ndarray] = {
        "target": target_i, "answer": answer, "window_correct": win_ok.T, "correct": correct,
        "window_counts": mask.T,
        "window_start": start[:, None] + win[None, :, 0] * dt_s, "window_stop": start[:, None] + win[None, :, 1] * dt_s,
    }
    desc = {
        "target": f"the correct answer: {kind}",
        "answer": f"the network's answer: {kind} (bits: readout logit > 0; classes: argmax of the readout)",
        "window_correct": "whether the network's answer in each answer window equals the target",
        "correct": "every counted answer window right (the trial counts towards sequence accuracy)",
        "window_counts": "whether each answer window counts in this trial (task mask)",
        "window_start": "start of each answer window (s, on the file's time line)",
        "window_stop": "end of each answer window (s, exclusive)",
    }
    symbols, note = task_symbols(rec, task) if task is not None else ({}, "task symbols unavailable: no task given")
    for key, col in symbols.items():
        name = key if key not in cols else f"task_{key}"
        cols[name] = col
        desc[name] = f"task symbol {key!r} of task {rec.task} (tasks.{rec.task} trial info)"
    return TrialFields(start, stop, cols, desc, note)


def spike_times(z: np.ndarray, dt_ms: float) -> List[np.ndarray]:
    """Spike times (s) per neuron of ``z [trials, T, n]`` on the concatenated time line."""
    z = np.asarray(z)
    trials, T, n = z.shape
    dt_s = dt_ms / 1000.0
    flat = z.reshape(trials * T, n)  # row r = trial r // T, step r % T
    return [np.flatnonzero(flat[:, j]) * dt_s for j in range(n)]


def neuron_table(net) -> Dict[str, np.ndarray]:
    """Per-neuron parameters of the recurrent population (times in s)."""
    p = net.neurons
    beta = p.array("beta")
    return {
        "neuron_type": np.where(beta > 0, "ALIF", "LIF"),
        "tau_mem": p.array("tau_mem_ms") / 1000.0,
        "tau_adapt": p.array("tau_adapt_ms") / 1000.0,
        "beta": beta,
        "v_th": p.array("v_th"),
        "refractory": p.array("refractory_ms") / 1000.0,
    }


NEURON_DESCRIPTIONS = {
    "neuron_type": "LIF (beta = 0) or ALIF (adaptive threshold, beta > 0)",
    "tau_mem": "membrane time constant (s)",
    "tau_adapt": "threshold adaptation time constant (s; unused by LIF neurons)",
    "beta": "threshold adaptation strength, A = v_th + beta a (e-prop convention, cognet.core.params)",
    "v_th": "firing threshold (dimensionless membrane units)",
    "refractory": "refractory period (s)",
}


def input_channels(rec: SpikeRecord) -> np.ndarray:
    """The channel each input neuron encodes (input neuron ``c k + r`` is replica ``r`` of channel ``c``)."""
    n_in = rec.x.shape[2]
    ch = rec.channels or ["input"]
    per = max(1, n_in // len(ch))
    return np.asarray([ch[min(i // per, len(ch) - 1)] for i in range(n_in)])
