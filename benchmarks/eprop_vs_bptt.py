"""Time per iteration and peak memory: online e-prop vs BPTT.

Usage::

    PYTHONPATH=$PWD python benchmarks/eprop_vs_bptt.py [--sizes 128,512] [--steps 500,5000]
        [--batch 32] [--iters 2] [--threads 1] [--engine auto|fused|reference]
    PYTHONPATH=$PWD python benchmarks/eprop_vs_bptt.py --rotation [--sizes 128,512] [--steps 500]
        [--repeats 5] [--rules eprop,eprop-unf]     # e-prop reference vs fused engine, one process
    PYTHONPATH=$PWD python benchmarks/eprop_vs_bptt.py --side-by-side --rules bptt,hop1,mdgl
        [--sizes 128,512] [--steps 500] [--repeats 5]   # rules in rotation, one process

Every (rule, N, T) configuration runs in a fresh subprocess, so its peak resident memory
(``ru_maxrss``) is its own. Each subprocess builds a 50 % ALIF network (``N`` neurons,
40 Poisson inputs at 20 Hz, two readout units, one answer window over the last 50 steps),
runs one warm-up iteration, then ``--iters`` timed iterations (the minimum is printed).
"Iteration" = forward + gradients, i.e. ``rule.step`` without the optimiser. Rules:

* ``bptt``      surrogate-gradient BPTT (autograd through the unrolled network)
* ``eprop``     e-prop with readout-filtered traces (exact; ``eprop.filtered=true``)
* ``eprop-unf`` e-prop with plain traces (``eprop.filtered=false``; cheaper approximation)
* ``hop1``, ``hop2`` the hop-truncated rule (``hop-symmetric``, ``hop.hops`` = 1 or 2; not online,
  :mod:`rules.hops`): BPTT's forward and K + 1 backward passes of the neurons' own dynamics
  (``--rules bptt,eprop,hop1,hop2``)
* ``mdgl``      e-prop plus the one-hop credit known one step later (``mdgl-symmetric``,
  :mod:`rules.mdgl`): the hop rules' forward, one backward pass and one ``[T B, n] x [n, n]`` product

Peak memory is the whole process (torch itself takes a few hundred MB); the "growth"
column is peak minus the RSS after building the network and the batch, i.e. what the
iteration itself needed.

Measured on the shared 2-core dev machine (load ~3, so +-30 % timing noise), batch 32::

        N     T |  bptt s/it  peak MB | eprop s/it  peak MB | eprop-unf s/it  peak MB
      128   500 |      0.210      338 |      0.238      260 |          0.276      257
      128  5000 |      2.085     1268 |      2.397      282 |          2.053      278
      512   500 |      0.758      635 |      1.365      395 |          1.130      357
      512  5000 |      6.621     3953 |     11.583      431 |          8.352      384

e-prop engines, ``--rotation --sizes 128,512 --steps 500 --repeats 5`` (batch 32, 1 thread,
median of 5, reference and fused in rotation in one process), 2026-12-01::

    load ~5 (other jobs)                     machine nearly idle (load ~0.1-1)
    rule       N  reference  fused  ratio    reference  fused  ratio
    eprop     128    1.044   0.125  0.12       0.415    0.048  0.12
    eprop-unf 128    0.789   0.125  0.16       0.260    0.031  0.12
    eprop     512    4.802   0.272  0.06       1.986    0.116  0.06
    eprop-unf 512    1.915   0.167  0.09       1.470    0.112  0.08

``--sizes 512 --steps 500,5000 --rules eprop --iters 1 --engine fused`` vs ``--engine
reference`` (subprocess rows, load ~3-5): T = 500: 0.182 vs 7.52 s/it, peak 319 vs 393 MB;
T = 5000: 2.28 vs 29.9 s/it, peak 497 vs 430 MB (fused at T = 5000 recomputes its chunks;
its extra ~70 MB is the per-chunk kernel outputs and heap fragmentation, not a growing buffer).

The hop rules, ``--sizes 128,512 --steps 500 --rules bptt,eprop,hop1,hop2 --iters 2`` (batch 32,
fused engine, 2026-12-02, a Sphinx build beside it, so +-30 %)::

        N     T |  bptt s/it  peak MB | eprop s/it  peak MB | hop1 s/it  peak MB | hop2 s/it  peak MB
      128   500 |      0.053      269 |      0.059      262 |     0.109      350 |     0.147      366
      512   500 |      0.380      349 |      0.258      339 |     0.462      599 |     0.925      630

hop1/bptt time 2.05x (N=128) and 1.22x (N=512); hop2 2.8x and 2.4x. Their extra memory is the
dense ``[T, B, n]`` input currents and per-pass output gradients that the autograd passes keep
(BPTT's fused path projects the inputs inside the kernel instead).

MDGL beside them, ``--side-by-side --rules bptt,eprop,hop1,mdgl --sizes 128,512 --steps 500``
(batch 32, one process, rules in rotation, median of 5; two training runs beside it on the 2
cores, 2026-12-02), time relative to BPTT, two invocations::

        N | eprop/bptt  hop1/bptt  mdgl/bptt
      128 |       0.97       1.30       2.18      (second invocation: hop1 1.35, mdgl 1.63)
      512 |       0.57       1.73       1.56      (second invocation: hop1 1.72, mdgl 1.61)

MDGL costs what one hop costs: the same forward (with the voltage and adaptation recorded),
one backward pass instead of two, and the pseudo-derivatives ``psi`` computed from the recorded
state (``[T, B, n]`` elementwise work, which at N = 128 is as much as the backward pass).

Before the fused e-prop engine (all on the reference engine):

e-prop/BPTT time 1.13x (N=128, T=500; 1.49x in an earlier, noisier run), 1.75-1.80x at
N=512; e-prop peak memory at T=5000 is 1.09x its own at T=500 (the difference is the
input batch itself), BPTT's grows 3.7x (N=128) and 6.2x (N=512).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def _setup(rule: str, n: int, T: int, batch: int, engine: str = "auto"):
    """The rule object and the batch of one configuration (see the module docstring)."""
    import numpy as np
    import torch

    from rules.eprop import EpropConfig
    from cognet.core.network import RSNN
    from cognet.core.params import NeuronParams
    from rules.bptt import BPTT
    from rules.eprop import EpropSymmetric
    from tasks.base import Batch, Task

    class Bench(Task):
        output = "classes"
        n_out_ = 2

        def __init__(self):  # no symbol steps: a fixed random batch is enough to time the rule
            pass

        @property
        def n_out(self):
            return 2

    class TC:
        rate_target_hz, rate_reg, rate_reg_form = 10.0, 1.0, "neuron"

    g = torch.Generator().manual_seed(0)
    n_in = 40
    p = NeuronParams.mixed(n, 0.5, 0.1, 200.0, np.random.default_rng(0), refractory_ms=2.0)
    net = RSNN(n_in, p, 2, input_scale=3.0, rec_scale=0.5, generator=g, engine=engine)
    x = (torch.rand(T, batch, n_in, generator=g) < 0.02).float()
    b = Batch(x=x, target=torch.randint(0, 2, (1, batch), generator=g), mask=torch.ones(1, batch, dtype=torch.bool),
              windows=[(T - 50, T)], phases={})
    task = Bench()
    if rule == "bptt":
        r = BPTT(net, task, TC())
    elif rule == "mdgl":
        from rules.mdgl import MdglSymmetric

        r = MdglSymmetric(net, task, TC())
    elif rule.startswith("hop"):
        from rules.hops import HopConfig, HopSymmetric

        r = HopSymmetric(net, task, TC(), hop_cfg=HopConfig(hops=int(rule[3:])))
    else:
        r = EpropSymmetric(net, task, TC(), eprop_cfg=EpropConfig(filtered=(rule == "eprop")))
    return r, b


def _worker(rule: str, n: int, T: int, batch: int, iters: int, threads: int, engine: str = "auto") -> dict:
    import resource

    import torch

    torch.set_num_threads(threads)
    r, b = _setup(rule, n, T, batch, engine)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    r.step(b)  # warm-up
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        res = r.step(b)
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {"rule": rule, "N": n, "T": T, "batch": batch, "s_per_iter": min(times), "peak_mb": peak,
            "growth_mb": peak - rss0, "rate_hz": float(res.z.mean()) * 1000.0, "engine": engine}


def _medians_in_rotation(setups, repeats: int) -> dict:
    """``{label: median seconds}`` of ``rule.step(batch)`` for ``setups = {label: (rule, batch)}``:
    one warm-up each (and the build of the kernel, once), then ``repeats`` rounds in which every
    setup steps once, so all of them see the same machine load."""
    import statistics

    times = {k: [] for k in setups}
    for r, b in setups.values():
        r.step(b)
    for _ in range(repeats):
        for k, (r, b) in setups.items():
            t0 = time.perf_counter()
            r.step(b)
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def rotation(sizes, T: int, batch: int, repeats: int, threads: int, rule_names) -> None:
    """e-prop on the reference vs the fused engine, in rotation in this one process (median of
    ``repeats`` iterations each, after one warm-up), so both see the same machine load."""
    import torch

    torch.set_num_threads(threads)
    print(f"e-prop engines in rotation: batch {batch}, T {T}, threads {threads}, 50% ALIF, median of {repeats}")
    print(f"{'rule':>10} {'N':>5} | reference s/it | fused s/it | fused/reference")
    for n in sizes:
        for rule in rule_names:
            med = _medians_in_rotation({e: _setup(rule, n, T, batch, e) for e in ("reference", "fused")}, repeats)
            print(f"{rule:>10} {n:>5} | {med['reference']:>14.3f} | {med['fused']:>10.3f} | "
                  f"{med['fused'] / med['reference']:>15.2f}", flush=True)


def side_by_side(sizes, T: int, batch: int, repeats: int, threads: int, rule_names) -> None:
    """The given rules in rotation in this one process (median of ``repeats`` iterations each,
    after one warm-up), time relative to the first rule: the ratio both saw under the same load."""
    import torch

    torch.set_num_threads(threads)
    first = rule_names[0]
    print(f"rules in rotation: batch {batch}, T {T}, threads {threads}, 50% ALIF, median of {repeats}")
    print(f"{'N':>5} | " + " | ".join(f"{r:>9} s/it" for r in rule_names) + " | "
          + "  ".join(f"{r}/{first}" for r in rule_names[1:]))
    for n in sizes:
        med = _medians_in_rotation({r: _setup(r, n, T, batch, "auto") for r in rule_names}, repeats)
        print(f"{n:>5} | " + " | ".join(f"{med[r]:>14.3f}" for r in rule_names) + " | "
              + "  ".join(f"{med[r] / med[first]:>{len(r) + len(first) + 1}.2f}" for r in rule_names[1:]), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="128,512")
    ap.add_argument("--steps", default="500,5000")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--iters", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rules", default="bptt,eprop,eprop-unf")
    ap.add_argument("--engine", default="auto", choices=["auto", "fused", "reference"],
                    help="simulation engine of every subprocess (train.engine)")
    ap.add_argument("--rotation", action="store_true",
                    help="e-prop reference vs fused engine in rotation in one process (first T of --steps)")
    ap.add_argument("--side-by-side", action="store_true",
                    help="the --rules in rotation in one process, time relative to the first (first T of --steps)")
    ap.add_argument("--repeats", type=int, default=5, help="iterations per engine or rule in --rotation / --side-by-side")
    ap.add_argument("--worker", nargs=3, metavar=("RULE", "N", "T"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        rule, n, T = a.worker
        print(json.dumps(_worker(rule, int(n), int(T), a.batch, a.iters, a.threads, a.engine)))
        return
    if a.rotation:
        rotation([int(s) for s in a.sizes.split(",")], int(a.steps.split(",")[0]), a.batch, a.repeats, a.threads,
                 [r for r in a.rules.split(",") if r != "bptt"])
        return
    if a.side_by_side:
        side_by_side([int(s) for s in a.sizes.split(",")], int(a.steps.split(",")[0]), a.batch, a.repeats, a.threads,
                     a.rules.split(","))
        return
    rule_names = a.rules.split(",")
    rows = []
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.getcwd(), env.get("PYTHONPATH", "")])
    header = f"{'N':>5} {'T':>5} | " + " | ".join(f"{r:>9} s/it  peak MB  growth" for r in rule_names)
    if "bptt" in rule_names:
        header += " | " + "  ".join(f"{r}/bptt time" for r in rule_names if r != "bptt")
    print(f"batch {a.batch}, threads {a.threads}, engine {a.engine}, 50% ALIF, min of {a.iters} iterations after a warm-up")
    print(header)
    for n in (int(s) for s in a.sizes.split(",")):
        for T in (int(s) for s in a.steps.split(",")):
            res = {}
            for rule in rule_names:
                cmd = [sys.executable, __file__, "--worker", rule, str(n), str(T), "--batch", str(a.batch),
                       "--iters", str(a.iters), "--threads", str(a.threads), "--engine", a.engine]
                out = subprocess.run(cmd, capture_output=True, text=True, env=env)
                if out.returncode != 0:
                    raise SystemExit(f"{rule} N={n} T={T} failed:\n{out.stderr}")
                res[rule] = json.loads(out.stdout.strip().splitlines()[-1])
                rows.append(res[rule])
            cells = " | ".join(f"{res[r]['s_per_iter']:>14.3f} {res[r]['peak_mb']:>8.0f} {res[r]['growth_mb']:>7.0f}"
                               for r in rule_names)
            ratio = ""
            if "bptt" in res:
                ratio = " | " + "  ".join(f"{res[r]['s_per_iter'] / res['bptt']['s_per_iter']:>14.2f}"
                                          for r in rule_names if r != "bptt")
            print(f"{n:>5} {T:>5} | {cells}{ratio}", flush=True)
    by = {(r["rule"], r["N"], r["T"]): r for r in rows}
    steps = sorted({r["T"] for r in rows})
    if len(steps) >= 2:
        lo, hi = steps[0], steps[-1]
        for rule in rule_names:
            if rule == "bptt":
                continue
            for n in sorted({r["N"] for r in rows}):
                if (rule, n, lo) in by and (rule, n, hi) in by:
                    q = by[(rule, n, hi)]["peak_mb"] / by[(rule, n, lo)]["peak_mb"]
                    print(f"{rule} N={n}: peak memory at T={hi} is {q:.2f}x its peak at T={lo}")


if __name__ == "__main__":
    main()
