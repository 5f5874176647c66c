"""The fused engine of this checkout against the one of an earlier commit, side by side.

Usage::

    PYTHONPATH=$PWD python benchmarks/engine_ab.py [--base HEAD] [--task dup-rev]
        [--rule eprop-random] [--set train.batch_size=128 ...] [--repeats 5] [--threads 1]
        [--malloc]

Builds the kernel source (``cognet/core/fused_kernel.cpp``) of ``--base`` (``git show``) as a
second extension module next to this checkout's (and loads the base's ``rules/eprop_fused.py``,
the e-prop engine's Python half, for the base rows), then times one training iteration (the
rule's ``step``: forward and gradients, no optimiser step) of the task's recommended network,
the two kernels in rotation in one process on the same pre-drawn batches and the same weights
(each timed iteration follows an untimed one of the same variant).
Prints the median seconds per iteration of each, their ratio, and whether the two kernels'
gradients and logits are identical bit for bit (the largest difference if not).

``--malloc`` adds two rows: both kernels with glibc's default ``malloc`` thresholds (blocks of
32 MiB and more are mmapped and returned when freed; ``mallopt`` set back to that before each
of their iterations), against the kept-blocks setting the engine uses since 2026-12-07
(:func:`cognet.core.fused.keep_freed_memory`). The base kernel with glibc's defaults is the
engine as it was before that date.

The base kernel compiles once per machine (about a minute) into torch's extension cache.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from pathlib import Path

import torch

import rules.eprop
from cognet.core import fused
from cognet.training.config import build_config
from cognet.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]


def base_module(rev: str):
    src = subprocess.run(["git", "show", f"{rev}:cognet/core/fused_kernel.cpp"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    return fused.build_kernel(src, "cognet_fused_ab")


def base_eprop_fused(rev: str):
    """``rules/eprop_fused.py`` as it was at ``rev`` (the Python half of the e-prop engine), as a
    module of the ``rules`` package, so that the base rows run the base's Python code too."""
    import importlib.util
    import sys

    src = subprocess.run(["git", "show", f"{rev}:rules/eprop_fused.py"], cwd=ROOT, check=True, capture_output=True,
                         text=True).stdout
    spec = importlib.util.spec_from_loader("rules._eprop_fused_base", loader=None)
    mod = importlib.util.module_from_spec(spec)
    mod.__package__ = "rules"
    sys.modules[spec.name] = mod
    exec(compile(src, f"{rev}:rules/eprop_fused.py", "exec"), mod.__dict__)
    return mod


def glibc_defaults(libc) -> None:
    """mallopt as glibc's steady state: blocks of 32 MiB and more mmapped, 128 KiB trim."""
    libc.mallopt(fused._M_MMAP_THRESHOLD, 32 << 20)
    libc.mallopt(fused._M_TRIM_THRESHOLD, 128 << 10)
    libc.malloc_trim(0)


def kept(libc) -> None:
    libc.mallopt(fused._M_MMAP_THRESHOLD, fused.KEEP_FREED_BYTES)
    libc.mallopt(fused._M_TRIM_THRESHOLD, fused.KEEP_FREED_BYTES)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="HEAD")
    ap.add_argument("--task", default="dup-rev")
    ap.add_argument("--rule", default="eprop-random")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--malloc", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    cfg = build_config(task=args.task, rule=args.rule, seed=0, sets=args.sets)
    t = Trainer(cfg, None, progress=False)
    t.net.train()
    new = fused.load_backend()
    old = base_module(args.base)
    python_of = {id(new): rules.eprop.eprop_run_fused, id(old): base_eprop_fused(args.base).eprop_run_fused}
    libc = fused.glibc()
    if libc is None:
        raise SystemExit("Error: engine_ab.py sets malloc's thresholds with glibc's mallopt; this C library is not glibc")
    batches = [t.task.sample(cfg.train.batch_size, t.g_train) for _ in range(args.repeats + 1)]
    variants = [(f"base kernel ({args.base})", old, None), ("this kernel", new, None)]
    if args.malloc:
        variants += [(f"base kernel ({args.base}), glibc malloc defaults", old, glibc_defaults),
                     ("this kernel, glibc malloc defaults", new, glibc_defaults)]
    times = {name: [] for name, _, _ in variants}
    worst = 0.0
    for i, batch in enumerate(batches):
        order = variants if i % 2 == 0 else variants[::-1]
        results = {}
        for name, mod, setup in order:
            (setup or kept)(libc)
            fused._backend["module"] = mod
            rules.eprop.eprop_run_fused = python_of[id(mod)]
            t.rule.step(batch)  # untimed: settles the heap after a malloc switch
            t0 = time.perf_counter()
            res = t.rule.step(batch)
            dt = time.perf_counter() - t0
            if i:  # the first round warms up allocators and caches
                times[name].append(dt)
            results[name] = [p.grad.clone() for p in t.net.parameters() if p.grad is not None] + [res.logits]
        kept(libc)
        fused._backend["module"] = new
        rules.eprop.eprop_run_fused = python_of[id(new)]
        ref = results[variants[0][0]]
        for name, _, _ in variants[1:]:
            for a, b in zip(ref, results[name]):
                worst = max(worst, float((a - b).abs().max()))
    base_t = statistics.median(times[variants[0][0]])
    print(f"{args.task} / {args.rule}, {t.net.n} neurons, batch {cfg.train.batch_size}, {args.threads} thread(s), "
          f"median of {args.repeats} iterations (rule.step), torch {torch.__version__}")
    for name, _, _ in variants:
        m = statistics.median(times[name])
        print(f"  {name:<40} {m:8.3f} s/it   {m / base_t:5.2f}x the base")
    print("gradients and logits identical bit for bit" if worst == 0.0 else
          f"gradients and logits differ: largest |difference| {worst:.3g}")


if __name__ == "__main__":
    main()
