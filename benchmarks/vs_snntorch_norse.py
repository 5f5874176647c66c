"""Training speed side by side: cognet vs snnTorch vs Norse (recurrent LIF / ALIF networks).

One BPTT training iteration (forward over T steps, loss, backward, Adam step) of the same
network size in each library, timed in one process with the same torch, thread count,
input spikes and loss, in rotation (cognet, snnTorch, Norse, cognet, ...) so that machine
load hits all of them alike. Prints the median ms per iteration and each library's time
as a ratio to cognet's (> 1: cognet is faster), and each network's mean firing rate during
the timed iterations (the cost of the step loop does not depend on it, but a silent or
saturated network would make the comparison meaningless). Usage::

    pip install --no-deps snntorch norse nir nirtorch && pip install h5py   # keeps the CPU torch
    PYTHONPATH=$PWD python benchmarks/vs_snntorch_norse.py [--sizes 128,512] [--T 100,500]
        [--batch 32] [--repeats 5] [--threads 1]

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

Measured 2026-11-23 on the 2-core dev machine (one training job on the other core), defaults
(median of 5, ms per iteration, ratio to cognet, mean rate of each network)::

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
import math
import statistics
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


def cognet_step(n: int, n_in: int, T: int, adaptive: bool, g: torch.Generator) -> Callable[[torch.Tensor], float]:
    p = NeuronParams(n=n, tau_mem_ms=TAU_MEM_MS, refractory_ms=0.0, beta=0.1 if adaptive else 0.0,
                     tau_adapt_ms=200.0)
    net = RSNN(n_in, p, 1, generator=g)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    windows = [(T - WINDOW, T)]

    def step(x: torch.Tensor) -> float:
        out = net(x, windows)
        return _update(opt, out.logits.pow(2).mean() + out.z.mean(), out.z)
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="128,512")
    ap.add_argument("--T", default="100,500")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--n-in", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import norse
    import snntorch
    print(f"BPTT iteration (forward + backward + Adam), batch {args.batch}, {args.n_in} inputs, "
          f"{args.threads} thread(s); torch {torch.__version__}, snnTorch {snntorch.__version__}, "
          f"Norse {norse.__version__}; median of {args.repeats}, ms per iteration (ratio to cognet)")
    print(f"{'neuron':>6} {'N':>5} {'T':>5} | {'cognet':>8} | {'snnTorch':>17} | {'Norse':>17}")
    for adaptive in (False, True):
        for n in map(int, args.sizes.split(",")):
            for T in map(int, args.T.split(",")):
                g = torch.Generator().manual_seed(0)
                torch.manual_seed(0)
                x = (torch.rand(T, args.batch, args.n_in, generator=g) < 0.05).float()
                steps = {"cognet": cognet_step(n, args.n_in, T, adaptive, g)}
                cognet_hz = 1000.0 * steps["cognet"](x)  # also the warm-up
                if not adaptive:
                    steps["snntorch"] = snntorch_step(n, args.n_in, T)
                steps["norse"] = norse_step(n, args.n_in, T, adaptive, x, cognet_hz)
                t, hz = measure(steps, x, args.repeats)
                base = t["cognet"]

                def cell(k: str) -> str:
                    return f"{1000 * t[k]:8.1f} ({t[k] / base:5.2f}x)" if k in t else f"{'n/a':>17}"
                kind = "ALIF" if adaptive else "LIF"
                rates = ", ".join(f"{k} {v:.0f}" for k, v in hz.items())
                print(f"{kind:>6} {n:>5} {T:>5} | {1000 * base:8.1f} | {cell('snntorch'):>17} | {cell('norse'):>17}"
                      f" | Hz: {rates}", flush=True)


if __name__ == "__main__":
    main()
