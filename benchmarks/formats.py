"""Benchmark: the field's formats on a 100-neuron run with 256 held-out trials.

Prints wall time and size of the NWB export (``cognet.interchange.nwb``), NWB's validator,
reading every spike time back with pynwb, :func:`cognet.interchange.neo_io.to_neo`, and the
TensorBoard export of the run's curves (``cognet.interchange.tensorboard_events``)::

    PYTHONPATH=$PWD python benchmarks/formats.py [--run-dir DIR] [--trials 256]

Without ``--run-dir`` it trains the default ``add`` configuration (100 neurons) for 20
iterations into /tmp/cognet-bench-formats and reuses it later (the record is made once).
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run-dir", default=None)
    ap.add_argument("--trials", type=int, default=256)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    run = Path(args.run_dir or "/tmp/cognet-bench-formats")
    if args.run_dir is None and not (run / "summary.json").exists():
        from cognet.training.config import build_config
        from cognet.training.trainer import train

        train(build_config("add", sets=["train.iterations=20", "train.eval_every=10"]), run, progress=False)
    import numpy as np
    import pynwb

    from cognet.interchange import exporter
    from cognet.interchange.neo_io import to_neo

    out = run / "bench.nwb"
    t = time.perf_counter()
    res = exporter("nwb")(run, out, trials=args.trials)
    t_nwb = time.perf_counter() - t
    print(f"NWB export: {res['trials']} trials x {res['units']} units + {res['input_units']} input units, "
          f"{res['spikes']} + {res['input_spikes']} spikes: {t_nwb:.2f} s"
          f"{' (record created)' if res['record_created'] else ''}, {res['bytes'] / 1e6:.2f} MB")
    t = time.perf_counter()
    errors = pynwb.validate(path=str(out))
    print(f"pynwb.validate: {len(errors)} errors, {time.perf_counter() - t:.2f} s")
    t = time.perf_counter()
    with pynwb.NWBHDF5IO(str(out), "r") as io:
        f = io.read()
        n = sum(len(np.asarray(f.units.get_unit_spike_times(j))) for j in range(len(f.units)))
    print(f"read back {n} spike times: {time.perf_counter() - t:.2f} s")
    t = time.perf_counter()
    block = to_neo(run, trials=args.trials)
    n_trains = sum(len(s.spiketrains) for s in block.segments)
    print(f"to_neo: {len(block.segments)} segments, {n_trains} spike trains: {time.perf_counter() - t:.2f} s")
    tb = run / "bench-tb"
    shutil.rmtree(tb, ignore_errors=True)
    t = time.perf_counter()
    r = exporter("tensorboard")(run, tb)
    print(f"TensorBoard export: {r['iterations']} iterations, {r['evaluations']} evaluations: "
          f"{time.perf_counter() - t:.2f} s")


if __name__ == "__main__":
    main()
