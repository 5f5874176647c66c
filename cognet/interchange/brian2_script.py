"""A trained network as a self-contained plain-Brian2 script (no cognet needed to run it).

:func:`export_run` writes into ``out_dir``::

    network.py    the script: builds the network in Brian2, feeds it the input, writes the spikes
    weights.npz   w_in [n, n_in], w_rec [n, n], w_out [n_out, n], b_out [n_out], the per-neuron
                  constants (``param_<name>``), no pickled objects (np.load(allow_pickle=False))
    input.npz     x [T, trials, n_in] uint8 input spikes: the held-out trials of the run's verify
                  record (``spikes-torch.safetensors``) when there is one, else a Poisson input
                  drawn with ``seed`` (numpy's default_rng)

``python network.py`` writes ``spikes.npz`` (``z [T, trials, n]`` uint8, the spike indices
``i`` and times ``t_ms``, and ``readout [T, trials, n_out]``, the leaky readout
``W_out zf[t] + b_out``). ``--poisson RATE_HZ --steps T --trials B --seed S`` replaces the
saved input by a fresh Poisson input.

The equations, threshold, reset and refractoriness in the script are the text that
:func:`cognet.brian.bridge.neuron_model` generates from the run's
:class:`~cognet.core.params.NeuronParams`, and the simulation is laid out as in the bridge
(same schedule, integrator, one NeuronGroup holding every trial as a disconnected copy), so
the script's spikes are those of ``cognet verify`` (the tests check it spike for spike).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np

from cognet.brian.bridge import INTEGRATOR, SCHEDULE, neuron_model

SCRIPT = "network.py"
WEIGHTS = "weights.npz"
INPUT = "input.npz"

_TEMPLATE = '''#!/usr/bin/env python3
"""{title}

Plain Brian2 (no cognet import). Written by `cognet export --format brian2` from
{run_dir}
Usage:  python network.py [--input input.npz] [--out spikes.npz]
        python network.py --poisson RATE_HZ --steps T --trials B --seed S   (fresh Poisson input)

Model ({n} neurons, {n_in} inputs, {n_out} readouts, time step dt = {dt_ms!r} ms), per step t:

{v_doc}
{adapt_doc}    z[t] = 1 if {threshold_doc} (and not refractory), else 0

Brian2 equations (generated from the network's neuron parameters):

{equations_doc}
    threshold:  {threshold}
    reset:      {reset_doc}
    refractory: {refractory_doc}

The schedule trick. The network runs with the schedule
    {schedule}
so the synapses act BEFORE the threshold is checked (Brian2's default checks first).
Within one step: the state decays exactly (v <- alpha v: the {integrator} integrator writes the exact solution of these
linear equations), the input synapses add this step's input spikes W_in x[t], the recurrent
synapses add the spikes the population emitted in the PREVIOUS step (the threshold of step
t-1 ran after the synapses of step t-1, so its spikes are delivered in step t: a one-step
recurrent delay without any synaptic delay), then the threshold is checked, then the reset.
A subtractive reset and the adaptation jump (where the model has them) are applied after
this step's threshold and decay once in the next step before they count, which is why they
are divided by the decay factors (v_reset = v_th / alpha, a_jump = 1 / rho). The input SpikeGeneratorGroup emits in the
'start' slot so that x[t] arrives in step t.

Many trials in one run: trial b is a disconnected copy of the network on neurons
b*n ... b*n + n-1 (and input neurons b*n_in ...).
"""

import argparse

import numpy as np
import brian2 as b2
from brian2 import ms

N, N_IN, N_OUT = {n}, {n_in}, {n_out}
DT_MS = {dt_ms!r}
TAU_OUT_MS = {tau_out_ms!r}  # readout filter: zf[t] = kappa zf[t-1] + z[t], kappa = exp(-dt / tau_out)

EQUATIONS = """
{equations}
"""
THRESHOLD = {threshold!r}
RESET = """
{reset}
"""
REFRACTORY = {refractory!r}  # a per-neuron parameter name, or False (no refractory period > 1 step)
#: constants shared by all neurons (value, unit: "ms" or "1")
CONSTANTS = {constants!r}
#: per-neuron constants, stored in weights.npz as param_<name> (unit: "ms" or "1")
PER_NEURON = {per_neuron!r}
SCHEDULE = {schedule!r}
INTEGRATOR = {integrator!r}


def poisson_input(rate_hz, steps, trials, seed):
    """x[T, trials, N_IN]: each input neuron spikes in each step with probability rate * dt."""
    rng = np.random.default_rng(seed)
    return (rng.random((steps, trials, N_IN)) < rate_hz * DT_MS * 1e-3).astype(np.uint8)


def simulate(x, weights):
    """Spikes z[T, trials, N] (uint8) of the network driven by input spikes x[T, trials, N_IN]."""
    T, B, _ = x.shape
    dt = DT_MS * ms
    namespace = {{name: value * ms if unit == "ms" else value for name, (value, unit) in CONSTANTS.items()}}
    b2.prefs.codegen.target = "numpy"  # no compiler needed; "cython" is faster for long runs
    b2.prefs.core.default_float_dtype = np.float64
    G = b2.NeuronGroup(B * N, EQUATIONS, threshold=THRESHOLD, reset=RESET, refractory=REFRACTORY,
                       method=INTEGRATOR, dt=dt, namespace=namespace, name="rsnn")
    for name, unit in PER_NEURON.items():
        values = np.tile(weights["param_" + name], B)
        setattr(G, name, values * ms if unit == "ms" else values)
    # input spikes: trial b's input neuron i is generator neuron b*N_IN + i; x[k] arrives at k*dt
    k, b, i = np.nonzero(x)
    gen = b2.SpikeGeneratorGroup(B * N_IN, (b * N_IN + i).astype(np.int64), (k * DT_MS) * ms, dt=dt, when="start",
                                 name="inputs")
    objects = [G, gen]
    offsets = np.arange(B)
    for name, source, n_pre in (("w_in", gen, N_IN), ("w_rec", G, N)):
        w = weights[name]  # [N, n_pre], row = postsynaptic neuron; zeros are not connected
        post, pre = np.nonzero(w)
        if not len(post):
            continue  # Brian2 refuses Synapses without synapses
        S = b2.Synapses(source, G, "w : 1 (constant)", on_pre="v_post += w", dt=dt, name="syn_" + name[2:])
        S.connect(i=(offsets[:, None] * n_pre + pre[None, :]).ravel(), j=(offsets[:, None] * N + post[None, :]).ravel())
        S.w = np.tile(w[post, pre], B)
        objects.append(S)
    mon = b2.SpikeMonitor(G, name="spikes")
    net = b2.Network(*objects, mon)
    net.schedule = SCHEDULE  # synapses before thresholds: see the module docstring
    net.run(T * dt, namespace=namespace)
    idx = np.asarray(mon.i[:], dtype=np.int64)
    steps = np.rint(np.asarray(mon.t_[:]) / (DT_MS * 1e-3)).astype(np.int64)
    z = np.zeros((T, B, N), dtype=np.uint8)
    z[steps, idx // N, idx % N] = 1
    return z, idx, steps * DT_MS


def readout(z, weights):
    """y[t] = W_out zf[t] + b_out with zf[t] = kappa zf[t-1] + z[t]."""
    kappa = np.exp(-DT_MS / TAU_OUT_MS)
    zf = np.zeros(z.shape[1:])
    ys = np.zeros(z.shape[:2] + (N_OUT,))
    for t in range(z.shape[0]):
        zf = kappa * zf + z[t]
        ys[t] = zf @ weights["w_out"].T + weights["b_out"]
    return ys


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default="weights.npz")
    ap.add_argument("--input", default="input.npz", help="npz file with x [T, trials, N_IN] (0/1)")
    ap.add_argument("--poisson", type=float, default=None, metavar="RATE_HZ", help="fresh Poisson input instead")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--trials", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="spikes.npz")
    args = ap.parse_args()
    weights = dict(np.load(args.weights, allow_pickle=False))
    if args.poisson is not None:
        x = poisson_input(args.poisson, args.steps, args.trials, args.seed)
    else:
        x = np.load(args.input, allow_pickle=False)["x"]
    if x.ndim != 3 or x.shape[2] != N_IN or ((x != 0) & (x != 1)).any():
        raise SystemExit(f"Error: input x must be 0/1 spikes of shape [T, trials, {{N_IN}}], got {{x.shape}}")
    z, i, t_ms = simulate(x, weights)
    np.savez(args.out, z=z, i=i, t_ms=t_ms, x=x.astype(np.uint8), readout=readout(z, weights))
    print(f"{{int(z.sum())}} spikes of {{N}} neurons in {{x.shape[1]}} trial(s) of {{x.shape[0]}} steps -> {{args.out}}")


if __name__ == "__main__":
    main()
'''


def _doc_block(text: str, indent: str = "    ") -> str:
    return "\n".join(indent + line for line in text.splitlines())


def script_text(net, run_dir: str = "") -> str:
    """The text of ``network.py`` for an :class:`~cognet.core.network.RSNN`."""
    p = net.neurons
    m = neuron_model(p)
    adaptive = bool(p.adaptive.any())
    adapt_doc = ("    a[t] = rho a[t-1] + z[t-1]                                       rho = exp(-dt / tau_a)\n"
                 if adaptive else "")
    if p.reset == "subtract":
        reset_doc = "v -= v_reset (v_reset = v_th / alpha: subtract v_th, see the schedule below)"
    else:
        reset_doc = "v = 0"
    if adaptive:
        reset_doc += "; a += a_jump (a_jump = 1 / rho)"
    if p.reset == "subtract":
        v_doc = "    v[t] = alpha v[t-1] + W_in x[t] + W_rec z[t-1] - v_th z[t-1]     alpha = exp(-dt / tau_m)"
    else:
        v_doc = "    v[t] = alpha v[t-1] (1 - z[t-1]) + W_in x[t] + W_rec z[t-1]      alpha = exp(-dt / tau_m)"
    n_ref = p.refractory_steps
    refractory_doc = (f"t_ref = round(refractory_ms / dt) * dt (from {int(n_ref.min())} to {int(n_ref.max())} steps); "
                      "the membrane keeps integrating while refractory" if m.refractory else
                      "none (no neuron has a refractory period of more than one step)")
    title = (f"A trained cognet network ({p.n} {'LIF/ALIF' if adaptive else 'LIF'} neurons, reset={p.reset!r}) "
             "in plain Brian2.")
    return _TEMPLATE.format(
        title=title, run_dir=run_dir or "(a cognet run)", n=p.n, n_in=net.n_in, n_out=net.n_out, dt_ms=p.dt_ms,
        tau_out_ms=net.tau_out_ms, adapt_doc=adapt_doc,
        threshold_doc=m.threshold, v_doc=v_doc,
        equations_doc=_doc_block(m.equations), threshold=m.threshold, reset_doc=reset_doc,
        refractory_doc=refractory_doc, schedule=list(SCHEDULE), integrator=INTEGRATOR, equations=m.equations,
        reset=m.reset, refractory=m.refractory if m.refractory else False,
        constants={k: (float(v), u) for k, (v, u) in m.constants.items()},
        per_neuron={k: u for k, (_, u) in m.per_neuron.items()},
    )


def export_run(run_dir, out_dir, trials: int = 8, poisson_rate_hz: float = 20.0, steps: Optional[int] = None,
               seed: int = 0, source: str = "auto") -> Dict[str, Any]:
    """Write ``network.py``, ``weights.npz`` and ``input.npz`` for the run in ``run_dir``.

    ``source``: ``"record"`` (the first ``trials`` trials of the run's ``spikes-torch.safetensors``,
    written by ``cognet verify``), ``"poisson"`` (``steps`` steps, default the task's trial length,
    of Poisson spikes at ``poisson_rate_hz`` drawn with ``seed``), or ``"auto"`` (the record when
    there is one, else Poisson).
    """
    import torch

    from cognet.training.io import atomic_write
    from cognet.training.model import load_model
    from cognet.training.records import load_record

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    model = run_dir / "model.safetensors"
    if not model.exists():
        raise FileNotFoundError(f"{run_dir} holds no trained model (model.safetensors missing)")
    if source not in ("auto", "record", "poisson"):
        raise ValueError(f"input source must be auto, record or poisson, got {source!r}")
    if trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    net, cfg = load_model(model, dtype=torch.float64)
    if net.bntt is not None:
        raise ValueError(f"{run_dir} uses network.bntt; the standalone Brian2 script does not carry its "
                         "per-step input map yet (cognet verify does); nothing was written")
    if net.conv is not None:
        raise ValueError(f"{run_dir} has a conv front end (network.conv_channels > 0); the standalone Brian2 "
                         "script does not carry it yet (cognet verify does); nothing was written")
    record = run_dir / "spikes-torch.safetensors"
    if source == "record" and not record.exists():
        raise FileNotFoundError(f"{record} does not exist: run `cognet verify {run_dir}` first, or use a Poisson input")
    if source == "record" or (source == "auto" and record.exists()):
        rec = load_record(record)
        x = rec.x[:trials].numpy().transpose(1, 0, 2).astype(np.uint8)  # [T, trials, n_in]
        used = {"input": "record", "record": str(record), "trials": int(x.shape[1]), "seed": rec.extra.get("seed")}
    else:
        if not poisson_rate_hz >= 0:
            raise ValueError(f"poisson_rate_hz must be >= 0, got {poisson_rate_hz!r}")
        if steps is None:
            import tasks

            task = tasks.get_task(cfg.task, cfg.task_params, cfg.network.dt_ms)
            steps = int(task.sample(1, torch.Generator().manual_seed(0), split="test").x.shape[0])
        rng = np.random.default_rng(seed)
        x = (rng.random((steps, trials, net.n_in)) < poisson_rate_hz * net.neurons.dt_ms * 1e-3).astype(np.uint8)
        used = {"input": "poisson", "rate_hz": poisson_rate_hz, "steps": steps, "trials": trials, "seed": seed}
    m = neuron_model(net.neurons)
    with torch.no_grad():
        arrays = {"w_in": net.w_in.double().numpy(), "w_rec": net.effective_w_rec().double().numpy(),
                  "w_out": net.w_out.double().numpy(), "b_out": net.b_out.double().numpy()}
    arrays.update({f"param_{k}": np.asarray(v, dtype=np.float64) for k, (v, _) in m.per_neuron.items()})

    def npz(d) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, **d)
        return buf.getvalue()

    atomic_write(out_dir / WEIGHTS, npz(arrays))
    atomic_write(out_dir / INPUT, npz({"x": x}))
    atomic_write(out_dir / SCRIPT, script_text(net, str(run_dir)))
    return {"format": "brian2", "out_dir": str(out_dir), "files": [SCRIPT, WEIGHTS, INPUT], "neurons": net.n,
            "n_in": net.n_in, "dt_ms": net.neurons.dt_ms, "steps": int(x.shape[0]), **used,
            "run": f"cd {out_dir} && python {SCRIPT}"}
