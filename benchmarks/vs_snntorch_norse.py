"""Training speed side by side: a plain torch loop, cognet (reference and fused engines),
snnTorch and Norse (recurrent LIF / ALIF networks).

One BPTT training iteration (forward over T steps, loss, backward, Adam step) of the same
network size in each, timed in one process with the same torch, thread count, input spikes
and loss, in rotation (plain, cognet reference, cognet fused, snnTorch, Norse, plain, ...) so
that machine load hits all of them alike. Prints the median ms per iteration and each one's
time as a ratio to the plain torch loop (< 1: faster than the plain loop), and each network's
mean firing rate during the timed iterations (a silent or saturated network would make the
comparison meaningless; the fused engine's cost does depend on it). snnTorch and Norse rows
appear only where they are installed (``--no-others`` leaves them out). ``--memory`` instead
measures the peak memory of one iteration of the plain loop and both cognet engines, each in
a fresh process (peak RSS during the iteration minus RSS before it). Usage::

    pip install --no-deps snntorch norse nir nirtorch && pip install h5py   # keeps the CPU torch
    PYTHONPATH=$PWD python benchmarks/vs_snntorch_norse.py [--sizes 128,512] [--T 500]
        [--batch 32] [--repeats 5] [--threads 1,2] [--no-others] [--memory]

The plain torch loop is what a user would write by hand: the input projection for all steps
in one matmul, ``torch.addmm`` for the recurrent input, ``unbind`` over time and a custom
autograd spike function (triangle surrogate, as cognet's default), the reset detached as in
cognet's default.

The networks, as each library's users would write them:

* LIF. cognet: ``RSNN`` with beta = 0 (no adaptation) and no refractory period (the
  others have none); all inputs projected in one matmul, the step loop in
  :func:`cognet.core.functional.simulate`. snnTorch: ``nn.Linear`` over the whole input
  sequence, then ``snn.RLeaky`` (all-to-all recurrent ``nn.Linear``, subtractive reset,
  fast-sigmoid surrogate) in a Python loop over steps. Norse: ``LIFRecurrent`` (its own
  loop; input and recurrent weights applied per step). Norse's LIF is current-based (a
  synaptic current with tau_syn = 5 ms before the membrane), one more state variable than
  the other two; the dynamics are close, not identical. Its default input weights leave
  the network almost silent here, so they are scaled (x1-12) to fire near cognet's rate.
* ALIF (threshold adaptation). cognet: ``RSNN`` with beta = 0.1 on every neuron, tau_a =
  200 ms. Norse: ``LSNNRecurrent`` (Bellec et al.'s LSNN). snnTorch has no recurrent
  adaptive-threshold neuron and is left out of this row.

Loss for all: a linear readout of the spike counts over the last 10 steps, squared, plus
the mean spike count (so the gradient reaches every step). Different libraries' networks
are not trained to the same accuracy here; this measures the cost of one iteration only.

Measured 2026-12-01 with the fused engine's input projection and readout gradient inside
its kernels (``cognet.core.fused.simulate_fused_readout``), defaults (T = 500, median of 7, ms
per iteration, ratio to the plain torch loop), ``--no-others --repeats 7``, on the 2-core dev
machine with other jobs running (load average 2.9-4.9: absolute times are noisy and drifted by
up to 3x between runs; the ratios, measured in rotation, are what to compare). Over three such
runs the fused LIF N = 128 ratio was 0.20-0.22x; without the fusion, in six runs (alternating
with those), 0.26-0.32x. The table is one run at load ~2.9::

    1 thread
    neuron     N     T |    plain |         reference |             fused
       LIF   128   500 |    117.5 |    136.5 ( 1.16x) |     26.0 ( 0.22x) | Hz: plain 23, reference 25, fused 25
       LIF   512   500 |    605.0 |    665.3 ( 1.10x) |    166.1 ( 0.27x) | Hz: plain 21, reference 22, fused 23
      ALIF   128   500 |    155.0 |    166.5 ( 1.07x) |     24.1 ( 0.16x) | Hz: plain 11, reference 14, fused 14
      ALIF   512   500 |    694.5 |    773.3 ( 1.11x) |    170.0 ( 0.24x) | Hz: plain 9, reference 14, fused 14
    1 thread, the run just before it, without the fusion (currents and their gradient as [T, B, N] tensors)
       LIF   128   500 |    128.6 |    190.1 ( 1.48x) |     40.6 ( 0.32x) | Hz: plain 23, reference 25, fused 25
       LIF   512   500 |    588.1 |    654.5 ( 1.11x) |    192.9 ( 0.33x) | Hz: plain 21, reference 22, fused 23
      ALIF   128   500 |    168.6 |    186.5 ( 1.11x) |     35.1 ( 0.21x) | Hz: plain 11, reference 14, fused 14
      ALIF   512   500 |    719.8 |    786.4 ( 1.09x) |    212.3 ( 0.29x) | Hz: plain 9, reference 14, fused 14
    2 threads (without the fusion, under load average 5-6; slower than 1 for everything here: two
    threads on an oversubscribed machine, too erratic at load ~4 to measure again)
       LIF   128   500 |   1098.7 |   1173.1 ( 1.07x) |    223.5 ( 0.20x) | Hz: plain 23, reference 25, fused 25
       LIF   512   500 |   2541.7 |   2847.9 ( 1.12x) |    553.7 ( 0.22x) | Hz: plain 21, reference 23, fused 23
      ALIF   128   500 |   1128.2 |   1299.8 ( 1.15x) |    126.1 ( 0.11x) | Hz: plain 12, reference 14, fused 14
      ALIF   512   500 |   2989.1 |   3045.0 ( 1.02x) |    625.9 ( 0.21x) | Hz: plain 10, reference 14, fused 14

    --memory (MiB above the RSS before one iteration, fresh process each; fused: with the fusion,
    before it in brackets)
    neuron     N     T |    plain  reference    fused
       LIF   128   500 |     79.1       85.3     29.8  (45.1)
       LIF   512   500 |    319.1      369.1    104.0 (135.1)
      ALIF   128   500 |    112.0      132.5     29.9  (45.0)
      ALIF   512   500 |    428.3      503.6    104.1 (134.9)

The fused engine's cost grows with the firing rate (event-driven), the others' does not:
compare the LIF rows (25 Hz) with the ALIF rows (14 Hz).

Before the fused engine (2026-11-23, one training job on the other core; ratio to cognet's
reference engine, then the only one; mean rate of each network)::

    neuron     N     T |   cognet |          snnTorch |             Norse
       LIF   128   100 |     30.5 |     84.6 ( 2.77x) |     44.1 ( 1.44x) | Hz: cognet 19, snntorch 10, norse 17
       LIF   128   500 |    154.2 |   1490.8 ( 9.67x) |    242.1 ( 1.57x) | Hz: cognet 24, snntorch 11, norse 27
       LIF   512   100 |    122.1 |    259.6 ( 2.13x) |    131.3 ( 1.08x) | Hz: cognet 19, snntorch 5, norse 15
       LIF   512   500 |    630.4 |   8605.3 (13.65x) |    786.1 ( 1.25x) | Hz: cognet 20, snntorch 5, norse 16
      ALIF   128   100 |     28.7 |               n/a |     40.1 ( 1.40x) | Hz: cognet 15, norse 13
      ALIF   128   500 |    141.0 |               n/a |    201.8 ( 1.43x) | Hz: cognet 15, norse 16
      ALIF   512   100 |    117.8 |               n/a |    129.5 ( 1.10x) | Hz: cognet 16, norse 12
      ALIF   512   500 |    630.5 |               n/a |    743.2 ( 1.18x) | Hz: cognet 15, norse 10

snnTorch's backward pass grows faster than linearly in T (N = 128: 0.09 s at T = 100,
0.15 s at 200, 0.60 s at 400), which dominates its T = 500 rows.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List

import torch

from cognet.core.network import RSNN
from cognet.core.params import NeuronParams

TAU_MEM_MS = 20.0
WINDOW = 10


def _readout_loss(z: torch.Tensor, readout: torch.nn.Linear) -> torch.Tensor:
    """The loss cognet's own readout computes: squared readout of the last WINDOW steps' mean
    spikes, plus the mean spike count."""
    return readout(z[-WINDOW:].mean(0)).pow(2).mean() + z.mean()


def _update(opt: torch.optim.Optimizer, loss: torch.Tensor, z: torch.Tensor) -> float:
    """Backward and Adam step; returns the spike probability per neuron and step."""
    opt.zero_grad()
    loss.backward()
    opt.step()
    return float(z.detach().mean())


def cognet_step(n: int, n_in: int, T: int, adaptive: bool, g: torch.Generator,
                engine: str = "reference") -> Callable[[torch.Tensor], float]:
    p = NeuronParams(n=n, tau_mem_ms=TAU_MEM_MS, refractory_ms=0.0, beta=0.1 if adaptive else 0.0,
                     tau_adapt_ms=200.0)
    net = RSNN(n_in, p, 1, generator=g, engine=engine)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    windows = [(T - WINDOW, T)]

    def step(x: torch.Tensor) -> float:
        out = net(x, windows)
        return _update(opt, out.logits.pow(2).mean() + out.z.mean(), out.z)
    return step


class _Spike(torch.autograd.Function):
    """Heaviside forward, triangle surrogate 0.3 max(0, 1 - |x|) backward."""

    @staticmethod
    def forward(ctx, x):  # type: ignore[override]
        ctx.save_for_backward(x)
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad * 0.3 * torch.clamp(1.0 - x.abs(), min=0.0)


def plain_step(n: int, n_in: int, T: int, adaptive: bool, g: torch.Generator) -> Callable[[torch.Tensor], float]:
    """The hand-written torch loop (same neurons, sizes, init and loss as cognet's row)."""
    w_in = torch.nn.Parameter(torch.randn(n, n_in, generator=g) / math.sqrt(n_in))
    w_rec0 = torch.randn(n, n, generator=g) / math.sqrt(n)
    w_rec0.fill_diagonal_(0.0)
    w_rec = torch.nn.Parameter(w_rec0)
    readout = torch.nn.Linear(n, 1)
    opt = torch.optim.Adam([w_in, w_rec, *readout.parameters()], lr=1e-3)
    alpha, rho, beta = math.exp(-1.0 / TAU_MEM_MS), math.exp(-1.0 / 200.0), 0.1

    def step(x: torch.Tensor) -> float:
        cur = x @ w_in.t()  # all steps in one matmul
        B = x.shape[1]
        v = torch.zeros(B, n)
        a = torch.zeros(B, n)
        z = torch.zeros(B, n)
        w_t = w_rec.t()
        zs: List[torch.Tensor] = []
        for i_t in cur.unbind(0):
            v = alpha * v + torch.addmm(i_t, z, w_t) - z.detach()
            if adaptive:
                a = rho * a + z
                z = _Spike.apply(v - 1.0 - beta * a)
            else:
                z = _Spike.apply(v - 1.0)
            zs.append(z)
        z_all = torch.stack(zs)
        return _update(opt, _readout_loss(z_all, readout), z_all)
    return step


def snntorch_step(n: int, n_in: int, T: int) -> Callable[[torch.Tensor], float]:
    import snntorch as snn
    from snntorch import surrogate

    fc = torch.nn.Linear(n_in, n, bias=False)
    lif = snn.RLeaky(beta=math.exp(-1.0 / TAU_MEM_MS), linear_features=n, all_to_all=True,
                     reset_mechanism="subtract", spike_grad=surrogate.fast_sigmoid())
    readout = torch.nn.Linear(n, 1)
    params = list(fc.parameters()) + list(lif.parameters()) + list(readout.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)

    def step(x: torch.Tensor) -> float:
        cur = fc(x)  # all steps in one matmul, as cognet does
        spk, mem = lif.init_rleaky()
        zs: List[torch.Tensor] = []
        for t in range(x.shape[0]):
            spk, mem = lif(cur[t], spk, mem)
            zs.append(spk)
        z = torch.stack(zs)
        return _update(opt, _readout_loss(z, readout), z)
    return step


def norse_step(n: int, n_in: int, T: int, adaptive: bool, x: torch.Tensor,
               target_hz: float) -> Callable[[torch.Tensor], float]:
    import norse.torch as nt

    if adaptive:
        p = nt.LSNNParameters(tau_mem_inv=torch.as_tensor(1000.0 / TAU_MEM_MS),
                              tau_adapt_inv=torch.as_tensor(1000.0 / 200.0), beta=torch.as_tensor(0.1))
        rnn = nt.LSNNRecurrent(n_in, n, p=p, dt=1e-3)
    else:
        p = nt.LIFParameters(tau_mem_inv=torch.as_tensor(1000.0 / TAU_MEM_MS))
        rnn = nt.LIFRecurrent(n_in, n, p=p, dt=1e-3)
    # Norse's default input weights leave this network nearly silent (its synaptic current
    # filters the input): scale them so the rate lands near cognet's, as a user would
    with torch.no_grad():
        w0 = rnn.input_weights.clone()
        best = None
        for scale in (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0):
            rnn.input_weights.copy_(w0 * scale)
            gap = abs(1000.0 * float(rnn(x)[0].mean()) - target_hz)
            if best is None or gap < best[0]:
                best = (gap, scale)
        rnn.input_weights.copy_(w0 * best[1])
    readout = torch.nn.Linear(n, 1)
    opt = torch.optim.Adam(list(rnn.parameters()) + list(readout.parameters()), lr=1e-3)

    def step(x: torch.Tensor) -> float:
        z, _ = rnn(x)
        return _update(opt, _readout_loss(z, readout), z)
    return step


def measure(steps: Dict[str, Callable[[torch.Tensor], float]], x: torch.Tensor, repeats: int):
    """Median seconds per iteration and mean firing rate (Hz at 1 ms steps) per library."""
    for fn in steps.values():  # warm-up: allocators, lazy imports
        fn(x)
    times: Dict[str, List[float]] = {k: [] for k in steps}
    rates: Dict[str, List[float]] = {k: [] for k in steps}
    for _ in range(repeats):
        for name, fn in steps.items():  # rotation: load drifts hit every library alike
            t0 = time.perf_counter()
            rate = fn(x)
            times[name].append(time.perf_counter() - t0)
            rates[name].append(1000.0 * rate)
    return ({k: statistics.median(v) for k, v in times.items()},
            {k: statistics.mean(v) for k, v in rates.items()})


def _installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def memory_child(kind: str, n: int, n_in: int, T: int, batch: int, adaptive: bool) -> None:
    """One iteration of ``kind`` in this (fresh) process; prints its peak memory in MiB."""
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(T, batch, n_in, generator=g) < 0.05).float()
    step = plain_step(n, n_in, T, adaptive, g) if kind == "plain" else cognet_step(n, n_in, T, adaptive, g, kind)
    if kind == "fused":
        from cognet.core.fused import load_backend
        load_backend()
    before = _rss_mb()
    step(x)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_mb": peak - before}))


def run_memory(args) -> None:
    print(f"peak memory of one BPTT iteration (MiB above the RSS before it), batch {args.batch}, fresh process each")
    print(f"{'neuron':>6} {'N':>5} {'T':>5} | {'plain':>8} {'reference':>10} {'fused':>8}")
    for adaptive in (False, True):
        for n in map(int, args.sizes.split(",")):
            for T in map(int, args.T.split(",")):
                row = {}
                for kind in ("plain", "reference", "fused"):
                    out = subprocess.run(
                        [sys.executable, __file__, "--memory-child", kind, "--sizes", str(n), "--T", str(T),
                         "--batch", str(args.batch), "--n-in", str(args.n_in)] + (["--adaptive"] if adaptive else []),
                        capture_output=True, text=True, check=True, env=os.environ.copy())
                    row[kind] = json.loads(out.stdout.strip().splitlines()[-1])["peak_mb"]
                kind_name = "ALIF" if adaptive else "LIF"
                print(f"{kind_name:>6} {n:>5} {T:>5} | {row['plain']:8.1f} {row['reference']:10.1f} {row['fused']:8.1f}",
                      flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="128,512")
    ap.add_argument("--T", default="500")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--n-in", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", default="1", help="comma-separated thread counts, e.g. 1,2")
    ap.add_argument("--no-others", action="store_true", help="leave snnTorch and Norse out")
    ap.add_argument("--memory", action="store_true", help="peak memory per iteration instead of time")
    ap.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--adaptive", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        torch.set_num_threads(1)
        memory_child(args.memory_child, int(args.sizes), args.n_in, int(args.T), args.batch, args.adaptive)
        return
    if args.memory:
        run_memory(args)
        return
    others = [] if args.no_others else [m for m in ("snntorch", "norse") if _installed(m)]
    versions = [f"torch {torch.__version__}"]
    for m in others:
        versions.append(f"{m} {__import__(m).__version__}")
    cols = ["plain", "reference", "fused"] + others
    for threads in map(int, args.threads.split(",")):
        torch.set_num_threads(threads)
        print(f"BPTT iteration (forward + loss + backward + Adam), batch {args.batch}, {args.n_in} inputs, "
              f"{threads} thread(s); {', '.join(versions)}; median of {args.repeats}, ms per iteration "
              f"(ratio to the plain torch loop)")
        print(f"{'neuron':>6} {'N':>5} {'T':>5} | {'plain':>8} | " + " | ".join(f"{c:>17}" for c in cols[1:]))
        for adaptive in (False, True):
            for n in map(int, args.sizes.split(",")):
                for T in map(int, args.T.split(",")):
                    g = torch.Generator().manual_seed(0)
                    torch.manual_seed(0)
                    x = (torch.rand(T, args.batch, args.n_in, generator=g) < 0.05).float()
                    steps = {"plain": plain_step(n, args.n_in, T, adaptive, torch.Generator().manual_seed(1)),
                             "reference": cognet_step(n, args.n_in, T, adaptive, torch.Generator().manual_seed(1)),
                             "fused": cognet_step(n, args.n_in, T, adaptive, torch.Generator().manual_seed(1),
                                                  engine="fused")}
                    cognet_hz = 1000.0 * steps["reference"](x)  # also the warm-up
                    if "snntorch" in others and not adaptive:
                        steps["snntorch"] = snntorch_step(n, args.n_in, T)
                    if "norse" in others:
                        steps["norse"] = norse_step(n, args.n_in, T, adaptive, x, cognet_hz)
                    t, hz = measure(steps, x, args.repeats)
                    base = t["plain"]

                    def cell(k: str) -> str:
                        return f"{1000 * t[k]:8.1f} ({t[k] / base:5.2f}x)" if k in t else f"{'n/a':>17}"
                    kind = "ALIF" if adaptive else "LIF"
                    rates = ", ".join(f"{k} {v:.0f}" for k, v in hz.items())
                    print(f"{kind:>6} {n:>5} {T:>5} | {1000 * base:8.1f} | "
                          + " | ".join(f"{cell(c):>17}" for c in cols[1:]) + f" | Hz: {rates}", flush=True)


if __name__ == "__main__":
    main()
