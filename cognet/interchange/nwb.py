"""Held-out activity of a trained run as an NWB file (Neurodata Without Borders, ``pynwb``).

``cognet export RUN --format nwb --out FILE.nwb [--source torch|brian2] [--trials N]``
(or :func:`export_run`) writes the spike record of ``RUN`` (see
:mod:`cognet.interchange.activity`; ``--source brian2`` needs ``cognet verify`` first):

* ``units``: the recurrent neurons, one unit each, spike times in seconds on one time line
  (trial ``i`` spans ``[i T dt, (i+1) T dt)``), with columns ``neuron_type`` (LIF/ALIF),
  ``tau_mem``, ``tau_adapt``, ``refractory`` (s), ``beta``, ``v_th`` and ``obs_intervals``
  (the whole recording);
* ``processing["input"]["input_units"]``: the input neurons as a second ``Units`` table
  with the ``channel`` each encodes. Units rather than a ``TimeSeries``: the inputs are
  spike trains too (Bernoulli/Poisson sources), so sparse spike times keep them exact,
  small (a dense 0/1 series stores every step of every neuron) and readable with the same
  code as the recurrent units (``spike_times``, ``to_dataframe()``, Elephant after a
  conversion);
* ``trials``: ``start_time``/``stop_time`` per trial and the task fields of
  :func:`cognet.interchange.activity.trial_fields`: ``target``, ``answer``, ``window_correct``,
  ``correct``, ``window_counts``, ``window_start``/``window_stop`` (s), and the task's symbols
  (e.g. ``a``, ``b``, ``result`` of ``add``; ``bits`` of ``copy``);
* metadata: ``notes`` holds JSON with the cognet version, the resolved run config and its
  hash, the record (source, seed, dt, trials) and the phases; ``source_script`` names the
  cognet version; ``session_start_time`` is the time ``model.safetensors`` was written.

Read it back with ``pynwb.NWBHDF5IO(path, "r").read()``; the file validates with
``pynwb.validate``. Needs the optional dependency ``pynwb`` (``pip install 'cognet[nwb]'``).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np

from cognet.interchange.activity import (NEURON_DESCRIPTIONS, input_channels, neuron_table, run_activity,
                                         spike_times, trial_fields)


def _require_pynwb():
    try:
        import pynwb
    except ImportError:
        raise ValueError("NWB export needs the optional package pynwb: pip install pynwb "
                         "(or pip install 'cognet[nwb]')") from None
    return pynwb


def export_run(run_dir, out, source: str = "torch", trials: Optional[int] = None, dt_ms: Optional[float] = None,
               **_ignored: Any) -> Dict[str, Any]:
    """Write the held-out activity of ``run_dir`` to the NWB file ``out``; return what was written."""
    pynwb = _require_pynwb()
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.misc import Units

    import cognet
    import tasks
    from cognet.training.io import atomic_path
    from cognet.training.trainer import config_hash

    if _ignored:
        raise ValueError(f"unknown NWB export option(s) {sorted(_ignored)}; allowed: source, trials")
    run_dir, out = Path(run_dir), Path(out)
    act = run_activity(run_dir, source, trials, dt_ms=dt_ms)
    rec, net, cfg = act.record, act.net, act.cfg
    task = tasks.get_task(cfg.task, cfg.task_params, cfg.network.dt_ms)
    fields = trial_fields(rec, task)
    chash = config_hash(cfg)
    total_s = rec.trials * rec.T * rec.dt_ms / 1000.0
    meta = {
        "cognet_version": cognet.__version__, "run_dir": str(run_dir), "config_hash": chash,
        "config": cfg.resolved_dict(),
        "record": {"source": rec.source, "seed": rec.extra.get("seed"), "dt_ms": rec.dt_ms, "trials": rec.trials,
                   "steps_per_trial": rec.T, "steps_per_symbol": rec.steps_per_symbol,
                   "windows_steps": [list(w) for w in rec.windows], "phases_steps": rec.phases,
                   "channels": rec.channels, **{k: v for k, v in rec.extra.items() if k not in ("seed",)}},
        "task_symbols": fields.symbols_note,
        "time_line": "trial i spans [i T dt, (i+1) T dt); the spike of step t of trial i is at (i T + t) dt",
    }
    model_time = datetime.fromtimestamp((run_dir / "model.safetensors").stat().st_mtime, tz=timezone.utc)
    ident = str(uuid.uuid5(uuid.NAMESPACE_URL, f"cognet:{chash}:{cfg.seed}:{rec.source}:{rec.trials}"))
    nwb = NWBFile(
        session_description=(f"cognet {cfg.task} / {cfg.rule} seed {cfg.seed}: {rec.trials} held-out trials "
                             f"simulated in {rec.source}"),
        identifier=ident, session_start_time=model_time,
        experiment_description=(f"Recurrent spiking network ({net.n} LIF/ALIF neurons, {rec.x.shape[2]} input "
                                f"neurons, dt {rec.dt_ms:g} ms) trained with {cfg.rule} on the task {cfg.task}; "
                                "activity on held-out trials never used in training."),
        source_script=f"cognet {cognet.__version__} (cognet.interchange.nwb)", source_script_file_name="cognet",
        notes=json.dumps(meta, sort_keys=True), keywords=["spiking neural network", "LIF", "ALIF", cfg.task, cfg.rule],
    )
    params = neuron_table(net)
    for name, values in params.items():
        nwb.add_unit_column(name, NEURON_DESCRIPTIONS[name])
    z_times = spike_times(rec.z.numpy(), rec.dt_ms)
    for j, t in enumerate(z_times):
        nwb.add_unit(spike_times=t, obs_intervals=[[0.0, total_s]],
                     **{k: (str(v[j]) if v.dtype.kind in "US" else float(v[j])) for k, v in params.items()})
    inp = Units(name="input_units", description=(f"input neurons ({len(rec.channels)} channels x "
                                                 "replicas), Bernoulli spike sources encoding the task symbols"))
    inp.add_column("channel", "the input channel (task symbol) this neuron encodes")
    channels = input_channels(rec)
    x_times = spike_times(rec.x.numpy(), rec.dt_ms)
    for j, t in enumerate(x_times):
        inp.add_unit(spike_times=t, channel=str(channels[j]))
    nwb.create_processing_module("input", "spike trains presented to the network's input neurons").add(inp)
    for a, b in zip(fields.start_s, fields.stop_s):
        nwb.add_trial(start_time=float(a), stop_time=float(b))
    written = []
    for name, col in fields.columns.items():
        if col.size == 0:
            continue  # a task without answer windows: no empty multi-dimensional columns
        nwb.trials.add_column(name, fields.descriptions[name], data=col)
        written.append(name)
    with atomic_path(out) as tmp:
        with NWBHDF5IO(str(tmp), "w") as io:
            io.write(nwb)
    return {
        "format": "nwb", "path": str(out), "source": rec.source, "trials": rec.trials, "neurons": net.n,
        "dt_ms": rec.dt_ms,
        "record": str(act.record_path), "record_created": act.created, "units": net.n, "input_units": len(x_times),
        "spikes": int(sum(len(t) for t in z_times)), "input_spikes": int(sum(len(t) for t in x_times)),
        "trial_columns": written, "task_symbols": fields.symbols_note, "pynwb": pynwb.__version__,
        "bytes": out.stat().st_size,
    }
