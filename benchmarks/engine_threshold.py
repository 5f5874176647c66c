"""Where the fused engine should switch from spike lists to a matmul (``DENSE_THRESHOLD``), and
where the backward should compute ``dv[t] W`` whole (``BACKWARD_DENSE_THRESHOLD``).

Times forward + backward of :func:`cognet.core.fused.simulate_fused` with the recurrent
input and weight gradient always from the spike lists (``dense_threshold=1``) and always
as a matmul (``dense_threshold=0``), at several firing densities (fraction of the B x N
entries of z that spiked per step), one process, alternating, median of ``--repeats``.
Prints ms per call and the ratio sparse / dense (< 1: the spike lists win). The second table
(``--backward``) times the same call with the backward's product ``dv[t] W`` computed only where
the surrogate derivative ``sd[t-1]`` is nonzero (``BACKWARD_DENSE_THRESHOLD = 1``) against the
whole product (``0``), at several surrogate supports (the triangle's width sets the fraction of
nonzero ``sd`` entries). Usage::

    PYTHONPATH=$PWD python benchmarks/engine_threshold.py [--sizes 128,512] [--threads 1] [--backward]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from cognet.core.functional import constants
import cognet.core.fused as fused
from cognet.core.fused import simulate_fused
from cognet.core.params import NeuronParams
from cognet.core.surrogate import Surrogate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="128,512")
    ap.add_argument("--T", type=int, default=200)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--backward", action="store_true", help="time the backward's masked product instead")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.backward:
        return backward_table(args)
    sur = Surrogate()
    print(f"fused forward+backward, T {args.T}, batch {args.batch}, {args.threads} thread(s), median of {args.repeats}")
    print(f"{'N':>5} {'drive':>6} {'density':>8} | {'sparse ms':>9} {'dense ms':>9} {'ratio':>6}")
    for n in map(int, args.sizes.split(",")):
        p = NeuronParams(n=n, refractory_ms=0.0)
        c = constants(p)
        g = torch.Generator().manual_seed(0)
        w = (torch.randn(n, n, generator=g) * 0.3 / n ** 0.5).requires_grad_()
        for drive in (0.06, 0.1, 0.2, 0.35, 0.6, 1.0):
            cur = (torch.rand(args.T, args.batch, n, generator=g) * 2 * drive).requires_grad_()
            times = {1.0: [], 0.0: []}
            density = 0.0
            for _ in range(args.repeats + 1):
                for thr in times:
                    t0 = time.perf_counter()
                    traj = simulate_fused(cur, w, c, sur, detach_reset=True, dense_threshold=thr)
                    traj.z.sum().backward()
                    times[thr].append(time.perf_counter() - t0)
                    density = float(traj.z.detach().mean())
            sp, de = (1000 * statistics.median(times[k][1:]) for k in (1.0, 0.0))
            print(f"{n:>5} {drive:>6.2f} {density:>8.3f} | {sp:>9.2f} {de:>9.2f} {sp / de:>6.2f}", flush=True)


def backward_table(args) -> None:
    print(f"fused forward+backward, T {args.T}, batch {args.batch}, {args.threads} thread(s), median of "
          f"{args.repeats}: dv W where sd[t-1] != 0 (masked) vs whole (dense)")
    print(f"{'N':>5} {'width':>6} {'sd != 0':>8} | {'masked ms':>9} {'dense ms':>9} {'ratio':>6}")
    keep = fused.BACKWARD_DENSE_THRESHOLD
    try:
        for n in map(int, args.sizes.split(",")):
            c = constants(NeuronParams(n=n, refractory_ms=0.0))
            g = torch.Generator().manual_seed(0)
            w = (torch.randn(n, n, generator=g) * 0.3 / n ** 0.5).requires_grad_()
            cur = (torch.rand(args.T, args.batch, n, generator=g) * 0.2).requires_grad_()
            for width in (0.02, 0.05, 0.1, 0.2, 0.4, 1.0):
                sur = Surrogate("triangle", width=width)
                times = {1.0: [], 0.0: []}
                density = 0.0
                for _ in range(args.repeats + 1):
                    for thr in times:
                        fused.BACKWARD_DENSE_THRESHOLD = thr
                        t0 = time.perf_counter()
                        traj = simulate_fused(cur, w, c, sur, detach_reset=True, record_state=True)
                        traj.z.sum().backward()
                        times[thr].append(time.perf_counter() - t0)
                        x = (traj.v.detach() - c.v_th) / c.v_th
                        density = float((x.abs() < width).double().mean())
                ma, de = (1000 * statistics.median(times[k][1:]) for k in (1.0, 0.0))
                print(f"{n:>5} {width:>6.2f} {density:>8.3f} | {ma:>9.2f} {de:>9.2f} {ma / de:>6.2f}", flush=True)
    finally:
        fused.BACKWARD_DENSE_THRESHOLD = keep


if __name__ == "__main__":
    main()
