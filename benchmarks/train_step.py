"""Time per BPTT training iteration (forward + backward + Adam) for a few network sizes.

Prints milliseconds per iteration and per simulated step, median over repeats, measured
side by side in one process with one torch thread. Usage:

    python benchmarks/train_step.py [--repeats 5] [--sizes 128,512] [--T 100,500] [--batch 32]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from cognet.core.network import RSNN
from cognet.core.params import NeuronParams


def time_iteration(n: int, T: int, batch: int, n_in: int, repeats: int) -> float:
    g = torch.Generator().manual_seed(0)
    p = NeuronParams(n=n, beta=[0.0] * (n // 2) + [0.1] * (n - n // 2), refractory_ms=2.0)
    net = RSNN(n_in, p, 1, generator=g)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = (torch.rand(T, batch, n_in, generator=g) < 0.05).float()
    windows = [(T - 10, T)]
    times = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        out = net(x, windows)
        loss = out.logits.pow(2).mean() + out.z.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:  # the first iteration warms up allocators
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sizes", default="128,512")
    ap.add_argument("--T", default="100,500")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--n-in", type=int, default=40)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"BPTT iteration, batch {args.batch}, {args.n_in} inputs, {args.threads} thread(s), torch {torch.__version__}")
    print(f"{'N':>6} {'T':>6} {'ms/iter':>10} {'ms/step':>10}")
    for n in map(int, args.sizes.split(",")):
        for T in map(int, args.T.split(",")):
            t = time_iteration(n, T, args.batch, args.n_in, args.repeats)
            print(f"{n:>6} {T:>6} {1000 * t:>10.1f} {1000 * t / T:>10.3f}")


if __name__ == "__main__":
    main()
