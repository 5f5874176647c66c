"""Benchmark: verify 256 held-out trials of a 128-neuron network (500 ms each) in Brian2.

Prints the wall time of ``cognet.brian.replay.verify_run`` (torch record, Brian2 build and run,
readout, comparison, files) per code generation target, in separate processes so that
each one pays the Brian2 import and build as a user would. Run twice for warm caches::

    PYTHONPATH=$PWD python benchmarks/brian2_verify.py [--targets numpy,cython,cpp_standalone]
        [--run-dir DIR] [--trials 256] [--repeats 2]

Without ``--run-dir`` it trains a 128-neuron network on ``copy`` with 10 bits of 25 ms
(T = 500 steps of 1 ms) for a few iterations (so rates sit near the regulariser's target)
into /tmp/cognet-bench-brian2 and reuses it on later calls.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from cognet.brian.replay import verify_run
r = verify_run(sys.argv[1], trials=int(sys.argv[2]), target=None if sys.argv[3] == "auto" else sys.argv[3], write=True)
wall = time.perf_counter() - t0
print(json.dumps({"total_s": wall, "brian2_wall_s": r["brian2"]["wall_s"], "build_s": r["brian2"]["build_s"],
                  "run_s": r["brian2"]["run_s"], "target": r["target"],
                  "identical": r["identical_trial_fraction"], "rate_hz": r["torch"]["mean_rate_hz"],
                  "acc_torch": r["torch"]["accuracy"], "acc_brian2": r["brian2"]["accuracy"]}))
"""


def ensure_run(run_dir: Path) -> None:
    if (run_dir / "model.safetensors").exists():
        return
    sys.path.insert(0, str(ROOT))
    from cognet.training.config import build_config
    from cognet.training.trainer import train

    cfg = build_config(task="copy", sets=["network.n_rec=128", "task.n_bits=10", "task.step_ms=25",
                                          "train.iterations=40", "train.eval_every=40", "train.eval_trials=64"])
    s = train(cfg, run_dir, progress=False)
    print(f"trained {run_dir}: rate {s['mean_rate_hz']:.1f} Hz, bit accuracy {s['bit_accuracy']:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", default="/tmp/cognet-bench-brian2")
    ap.add_argument("--trials", type=int, default=256)
    ap.add_argument("--targets", default="auto,numpy,cython,cpp_standalone",
                    help="comma-separated; auto = the default choice of cognet.brian.bridge.resolve_target")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    run_dir = Path(args.run_dir)
    ensure_run(run_dir)
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    print(f"{args.trials} trials, run {run_dir}; process = wall time of a fresh process running verify_run "
          f"(imports included); CPU = its user+sys time (compilers included); load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for target in args.targets.split(","):
        for rep in range(args.repeats):
            t = time.perf_counter()
            ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            out = subprocess.run([sys.executable, "-c", CHILD, str(run_dir), str(args.trials), target],
                                 capture_output=True, text=True, env=env)
            proc = time.perf_counter() - t
            ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
            if out.returncode != 0:
                print(f"{target:15s} run {rep}: FAILED\n{out.stderr[-2000:]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{target:6s}->{r['target']:14s} run {rep}: process {proc:6.1f} s (CPU {cpu:5.1f} s), verify_run {r['total_s']:6.1f} s, "
                  f"Brian2 {r['brian2_wall_s']:6.1f} s (build {r['build_s']:.1f}, run+compile {r['run_s']:.1f}); "
                  f"identical {r['identical']:.3f}, rate {r['rate_hz']:.1f} Hz, acc torch {r['acc_torch']:.3f} "
                  f"brian2 {r['acc_brian2']:.3f}")


if __name__ == "__main__":
    main()
