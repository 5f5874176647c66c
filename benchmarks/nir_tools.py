"""Measure how snnTorch and Norse run a cognet network read from NIR (docs/interchange.md).

A 64-neuron LIF network (zero reset, no refractoriness, tau 20 ms, v_th 1) is written with
:func:`cognet.interchange.nir.graph_from_network` and read by ``snntorch.import_nir.import_from_nir``
(which fixes dt = 0.1 ms) and ``norse.torch.from_nir`` (dt = 1 ms here). Both integrate with
forward Euler (decay 1 - dt/tau) where cognet and NIR's definition decay by exp(-dt/tau).
Prints, for ``--trials`` Poisson trials of ``--steps`` steps, the spike comparison
(cognet.brian.replay.compare_spikes) against cognet with the exact decay and against cognet
with tau chosen so that exp(-dt/tau) = 1 - dt/20 ms (Euler's decay)::

    PYTHONPATH=$PWD python benchmarks/nir_tools.py [--trials 64] [--steps 1000]
"""

from __future__ import annotations

import argparse
import math
import warnings

import numpy as np
import torch

from cognet.brian.replay import compare_spikes
from cognet.core.network import RSNN
from cognet.core.params import NeuronParams
from cognet.interchange.nir import graph_from_network


def network(dt_ms: float, euler: bool, recurrent: bool, n: int = 64, n_in: int = 16) -> RSNN:
    tau = -dt_ms / math.log(1 - dt_ms / 20.0) if euler else 20.0
    p = NeuronParams(n=n, dt_ms=dt_ms, tau_mem_ms=tau, v_th=1.0, reset="zero", refractory_ms=0.0, beta=0.0)
    net = RSNN(n_in, p, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64, input_scale=3.0,
               rec_scale=1.0)
    if not recurrent:
        with torch.no_grad():
            net.w_rec.zero_()
    return net.eval()


def drive(module, x) -> torch.Tensor:
    state, zs = None, []
    with torch.no_grad():
        for t in range(x.shape[0]):
            out, state = module(x[t], state)
            zs.append(out)
    return torch.stack(zs)


def report(name: str, z_tool, net_exact, net_euler, x) -> None:
    with torch.no_grad():
        ref = {"exact decay": net_exact(x, [(0, x.shape[0])]).z, "Euler decay": net_euler(x, [(0, x.shape[0])]).z}
    for label, z in ref.items():
        c = compare_spikes(z.transpose(0, 1).numpy(), z_tool.transpose(0, 1).numpy(), net_exact.neurons.dt_ms)
        print(f"{name:<34} vs cognet ({label}): identical trials {c['identical_trial_fraction']:.3f}, spikes matched "
              f"{c['spike_match_fraction']:.4f}, first divergence {c['first_divergence_ms']} ms, median "
              f"{c['median_first_divergence_ms']} ms, spikes {c['spikes']['reference']} / {c['spikes']['test']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=64)
    ap.add_argument("--steps", type=int, default=1000)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    try:
        import snntorch.import_nir as sin
    except ImportError as exc:
        print(f"snnTorch not available ({exc})")
        sin = None
    if sin is not None:
        x = torch.as_tensor((rng.random((args.steps, args.trials, 16)) < 0.01).astype(np.float64))  # 100 Hz at 0.1 ms
        for recurrent in (False, True):
            net = network(0.1, False, recurrent)
            euler = network(0.1, True, recurrent)
            euler.load_state_dict(net.state_dict())
            z = drive(sin.import_from_nir(graph_from_network(net, readout=False)).double(), x)
            report(f"snnTorch, dt 0.1 ms, {'recurrent' if recurrent else 'feed-forward'}", z, net, euler, x)
    try:
        import norse.torch as nt
    except ImportError as exc:
        print(f"Norse not available ({exc})")
        return
    x = torch.as_tensor((rng.random((args.steps, args.trials, 16)) < 0.03).astype(np.float64))  # 30 Hz at 1 ms
    net = network(1.0, False, True)
    euler = network(1.0, True, True)
    euler.load_state_dict(net.state_dict())
    z = drive(nt.from_nir(graph_from_network(net, readout=False, resistance="one"), dt=1e-3).double(), x)
    report("Norse, dt 1 ms, recurrent", z, net, euler, x)


if __name__ == "__main__":
    main()
