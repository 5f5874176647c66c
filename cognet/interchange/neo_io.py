"""Spike records as ``neo`` objects, for Elephant and the rest of the neo ecosystem.

(Named ``neo_io`` so that it does not shadow the ``neo`` package.)

:func:`to_neo` turns a run directory (its held-out record, see
:mod:`cognet.interchange.activity`) or a :class:`~cognet.training.records.SpikeRecord`
into a ``neo.Block``:

* one ``Segment`` per trial (``index`` = trial number), its time from the trial start:
  ``t_start = 0``, ``t_stop = T dt``, the spike of step ``t`` at ``t dt`` (ms);
* per segment, one ``SpikeTrain`` per recurrent neuron (annotations ``population="recurrent"``,
  ``neuron``, and with the model ``neuron_type`` LIF/ALIF, ``tau_mem_ms``, ``tau_adapt_ms``,
  ``beta``, ``v_th``, ``refractory_ms``) followed by one per input neuron (``population="input"``,
  ``neuron``, ``channel``) unless ``inputs=False``;
* segment annotations: the task fields of :func:`cognet.interchange.activity.trial_fields`
  (``target``, ``answer``, ``correct``, ``window_correct``, ``window_counts``, the task's
  symbols) and ``answer_windows_ms`` (pairs, from the trial start);
* ``block.groups``: one ``Group`` per neuron holding its trains of every trial (neo's way
  to name a unit across segments), recurrent first, then inputs;
* block annotations: ``task``, ``source``, ``dt_ms``, ``seed``, ``cognet_version`` and the
  run's ``config_hash``.

``recurrent_trains(segment)`` and ``input_trains(segment)`` pick one population's trains, so that e.g.
``elephant.statistics.mean_firing_rate(st)`` or
``elephant.conversion.BinnedSpikeTrain(recurrent_trains(seg), bin_size=20 * pq.ms)`` run directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Union

import numpy as np

from cognet.interchange.activity import input_channels, neuron_table, run_activity, trial_fields
from cognet.training.records import SpikeRecord


def _require_neo():
    try:
        import neo
        import quantities
    except ImportError:
        raise ValueError("neo export needs the optional packages neo and quantities: pip install neo "
                         "(or pip install 'cognet[analysis]')") from None
    return neo, quantities


def spike_trains(z: np.ndarray, dt_ms: float, **annotations) -> list:
    """``neo.SpikeTrain`` per neuron of one trial ``z [T, n]`` (0/1), times in ms from 0 to ``T dt``."""
    neo, pq = _require_neo()
    z = np.asarray(z)
    T = z.shape[0]
    t0, t1 = pq.Quantity(0.0, pq.ms), pq.Quantity(T * float(dt_ms), pq.ms)  # built once: quantities is slow
    steps, neurons = np.nonzero(z)
    times = steps * float(dt_ms)
    return [neo.SpikeTrain(times[neurons == j], units=pq.ms, t_start=t0, t_stop=t1, dtype=np.float64,
                           copy=None, **annotations)
            for j in range(z.shape[1])]


def to_neo(source: Union[str, Path, SpikeRecord], record_source: str = "torch", trials: Optional[int] = None,
           inputs: bool = True, net=None, task=None):
    """A ``neo.Block`` of a run directory's held-out record or of a spike record (see module docstring).

    For a run directory, ``record_source`` (torch | brian2) and ``trials`` choose the record
    as in NWB export, and the model and task come from the run; for a record, pass ``net``
    (per-neuron parameters) and ``task`` (trial symbols) if wanted.
    """
    neo, pq = _require_neo()
    import cognet

    chash = None
    if isinstance(source, SpikeRecord):
        rec = source if trials is None else _cut(source, trials)
    else:
        import tasks
        from cognet.training.trainer import config_hash

        act = run_activity(source, record_source, trials)
        rec, net = act.record, act.net
        task = tasks.get_task(act.cfg.task, act.cfg.task_params, act.cfg.network.dt_ms)
        chash = config_hash(act.cfg)
    fields = trial_fields(rec, task)
    params = _neuron_annotations(net) if net is not None else {}
    channels = input_channels(rec) if inputs else []
    block = neo.Block(name=f"cognet {rec.task} ({rec.source})", task=rec.task, source=rec.source,
                      dt_ms=float(rec.dt_ms), seed=rec.extra.get("seed"), cognet_version=cognet.__version__,
                      config_hash=chash, task_symbols=fields.symbols_note)
    n = rec.z.shape[2]
    n_in = rec.x.shape[2] if inputs else 0
    groups = ([neo.Group(name=f"recurrent {j}", population="recurrent", neuron=j) for j in range(n)]
              + [neo.Group(name=f"input {j}", population="input", neuron=j, channel=str(channels[j]))
                 for j in range(n_in)])
    windows_ms = [[a * rec.dt_ms, b * rec.dt_ms] for a, b in rec.windows]
    z, x = rec.z.numpy(), rec.x.numpy()
    for i in range(rec.trials):
        row = {k: v for k, v in fields.row(i).items() if k not in ("window_start", "window_stop")}  # file time line
        seg = neo.Segment(name=f"trial {i}", index=i, answer_windows_ms=windows_ms, **row)
        trains = spike_trains(z[i], rec.dt_ms, population="recurrent")
        for j, st in enumerate(trains):
            st.annotate(neuron=j, **{k: (str(v[j]) if v.dtype.kind in "US" else float(v[j]))
                                     for k, v in params.items()})
        if inputs:
            in_trains = spike_trains(x[i], rec.dt_ms, population="input")
            for j, st in enumerate(in_trains):
                st.annotate(neuron=j, channel=str(channels[j]))
            trains = trains + in_trains
        for st, g in zip(trains, groups):
            st.segment = seg
            seg.spiketrains.append(st)
            g.add(st)
        block.segments.append(seg)
    block.groups.extend(groups)
    return block


def _neuron_annotations(net) -> dict:
    """Per-neuron parameters with the time constants in ms (the unit of the spike trains)."""
    seconds = {"tau_mem": "tau_mem_ms", "tau_adapt": "tau_adapt_ms", "refractory": "refractory_ms"}
    return {seconds.get(k, k): (v * 1000.0 if k in seconds else v) for k, v in neuron_table(net).items()}


def _cut(rec: SpikeRecord, n: int) -> SpikeRecord:
    from cognet.interchange.activity import cut

    if isinstance(n, bool) or int(n) < 1:
        raise ValueError(f"trials must be >= 1, got {n}")
    return cut(rec, int(n))


def recurrent_trains(segment) -> List:
    """The recurrent neurons' spike trains of a segment, in neuron order."""
    return [st for st in segment.spiketrains if st.annotations.get("population") == "recurrent"]


def input_trains(segment) -> List:
    """The input neurons' spike trains of a segment, in neuron order."""
    return [st for st in segment.spiketrains if st.annotations.get("population") == "input"]
