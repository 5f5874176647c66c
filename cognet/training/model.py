"""Build networks from a :class:`RunConfig`, and save/load trained models (safetensors).

``model.safetensors`` in a run directory holds the weights (``w_in``, ``w_rec``, ``w_out``,
``b_out``), the per-neuron parameters (``neurons.<field>``, float64) and, as metadata,
the network settings and the task description. :func:`load_model` rebuilds the exact
:class:`~cognet.core.network.RSNN` from it: the Brian2 bridge and the analysis use this, so the
neuron parameters are never copied by hand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

from cognet.training.config import NetworkConfig, RunConfig, SurrogateConfig, conv_geometry
from cognet.training.plugins import load_run_plugins
from cognet.training.io import CorruptFileError, PathLike, check_finite, load_tensors, save_tensors
from cognet.core.network import RSNN
from cognet.core.params import PER_NEURON_FIELDS, NeuronParams
from cognet.core.surrogate import Surrogate

MODEL_FORMAT = "cognet-model-1"
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def neuron_params(net_cfg: NetworkConfig, seed_rng: np.random.Generator) -> NeuronParams:
    tau_a: Any = net_cfg.tau_adapt_ms
    if net_cfg.tau_adapt_max_ms > net_cfg.tau_adapt_ms:
        tau_a = (net_cfg.tau_adapt_ms, net_cfg.tau_adapt_max_ms)
    p = NeuronParams.mixed(
        n=net_cfg.n_rec, alif_fraction=net_cfg.alif_fraction, beta=net_cfg.beta, tau_adapt_ms=tau_a,
        rng=seed_rng, dt_ms=net_cfg.dt_ms, tau_mem_ms=net_cfg.tau_mem_ms, v_th=net_cfg.v_th,
        reset=net_cfg.reset, refractory_ms=net_cfg.refractory_ms,
    )
    if net_cfg.tau_mem_max_ms > net_cfg.tau_mem_ms:
        # heterogeneous membranes, drawn after the adaptation constants (which stay as without it)
        p = p.replace(tau_mem_ms=seed_rng.uniform(net_cfg.tau_mem_ms, net_cfg.tau_mem_max_ms, size=net_cfg.n_rec))
    return p


def make_surrogate(s: SurrogateConfig) -> Surrogate:
    return Surrogate.make(s.name, s.width or None, s.peak)


def build_network(
    n_in: int, n_out: int, neurons: NeuronParams, net_cfg: NetworkConfig, sur_cfg: SurrogateConfig,
    generator: Optional[torch.Generator] = None, dtype: torch.dtype = torch.float32, engine: str = "auto", bntt_steps: int = 0,
    conv=None,
) -> RSNN:
    """The network of a run config; ``bntt_steps`` (the task's trial length T) is required
    when ``network.bntt`` is on, ``conv`` (the :class:`~cognet.core.conv.ConvGeometry` of the
    task's images, :func:`cognet.training.config.conv_geometry`) when ``network.conv_channels > 0``."""
    if net_cfg.bntt and bntt_steps < 1:
        raise ValueError("network.bntt needs the trial length: pass bntt_steps = task.T")
    if bool(net_cfg.conv_channels) != (conv is not None):
        raise ValueError("network.conv_channels needs the image geometry: pass conv = conv_geometry(net_cfg, task)")
    return RSNN(
        n_in=n_in, neurons=neurons, n_out=n_out, tau_out_ms=net_cfg.tau_out_ms, surrogate=make_surrogate(sur_cfg),
        detach_reset=net_cfg.detach_reset, leak_aware=sur_cfg.leak_aware,
        self_connections=net_cfg.self_connections, input_scale=net_cfg.input_scale, rec_scale=net_cfg.rec_scale,
        generator=generator, dtype=dtype, engine=engine, dropout=net_cfg.dropout,
        input_dropout=net_cfg.input_dropout, bntt_steps=bntt_steps if net_cfg.bntt else 0, bntt_gamma=net_cfg.bntt_gamma,
        conv=conv, conv_scale=net_cfg.conv_scale, dale=net_cfg.dale, exc_fraction=net_cfg.exc_fraction,
    )


def check_task_matches(net: RSNN, task, where: PathLike) -> None:
    """Refuse to run a model on a task of other input/output sizes (a crafted or mixed-up file)."""
    if (net.n_in, net.n_out) != (task.n_in, task.n_out):
        raise CorruptFileError(f"{where}: the model has n_in={net.n_in}, n_out={net.n_out} but task {task.name!r} "
                               f"needs n_in={task.n_in}, n_out={task.n_out}")


def stat_buffers(net: RSNN) -> Dict[str, torch.Tensor]:
    """Learnt state that is not a parameter (BNTT running statistics), by name."""
    return {name: b for name, b in net.named_buffers() if name.startswith("bntt.")}


def save_model(path: PathLike, net: RSNN, cfg: RunConfig, extra: Optional[Dict[str, Any]] = None) -> None:
    tensors = {name: p.detach() for name, p in net.named_parameters()}
    tensors.update({name: b.detach() for name, b in stat_buffers(net).items()})
    for f in PER_NEURON_FIELDS:
        tensors[f"neurons.{f}"] = torch.as_tensor(net.neurons.array(f), dtype=torch.float64)
    meta = {
        "format": MODEL_FORMAT,
        "n": str(net.neurons.n), "dt_ms": repr(net.neurons.dt_ms), "reset": net.neurons.reset,
        "n_in": str(net.n_in), "n_out": str(net.n_out),
        "config": json.dumps(cfg.resolved_dict()),
        "extra": json.dumps(extra or {}),
    }
    save_tensors(path, tensors, meta)


def load_model(path: PathLike, dtype: Optional[torch.dtype] = None) -> Tuple[RSNN, RunConfig]:
    """Rebuild the trained network and its run config from ``model.safetensors``, in eval mode
    (no dropout; ``net.train()`` turns training behaviour back on).

    Checked on the way (:class:`CorruptFileError` naming the file otherwise): the checksums
    (:func:`~cognet.training.io.load_tensors`), the stored config through the same validators
    as the command line, the metadata sizes against that config and the task it describes
    (``n`` = ``network.n_rec``, ``dt_ms``, ``reset``, ``n_in``/``n_out`` = the task's), every
    weight's shape, and that every weight and neuron parameter is finite.
    """
    load_run_plugins(Path(path).parent)
    tensors, meta = load_tensors(path)
    if meta.get("format") != MODEL_FORMAT:
        raise CorruptFileError(f"{path} is not a cognet model file (format {meta.get('format')!r})")
    check_finite(path, tensors)
    try:
        cfg = RunConfig.from_dict(json.loads(meta["config"]))
        cfg.validate()
        n = int(meta["n"])
        dt_ms = float(meta["dt_ms"])
        n_in, n_out = int(meta["n_in"]), int(meta["n_out"])
        if n != cfg.network.n_rec or dt_ms != cfg.network.dt_ms or meta["reset"] != cfg.network.reset:
            raise ValueError(f"metadata n={n}, dt_ms={dt_ms}, reset={meta['reset']!r} disagree with its config "
                             f"(n_rec={cfg.network.n_rec}, dt_ms={cfg.network.dt_ms}, reset={cfg.network.reset!r})")
        import tasks

        task = tasks.get_task(cfg.task, cfg.task_params, cfg.network.dt_ms)
        if (n_in, n_out) != (task.n_in, task.n_out):
            raise ValueError(f"metadata n_in={n_in}, n_out={n_out} disagree with task {cfg.task!r} of its config "
                             f"(n_in={task.n_in}, n_out={task.n_out})")
        fields = {f: tensors[f"neurons.{f}"].numpy() for f in PER_NEURON_FIELDS}
        for f, arr in fields.items():
            if arr.shape != (n,):
                raise ValueError(f"neurons.{f} has shape {arr.shape}, expected ({n},)")
        neurons = NeuronParams(n=n, dt_ms=dt_ms, reset=meta["reset"], **fields)
    except (KeyError, ValueError, TypeError, OverflowError, RecursionError, json.JSONDecodeError) as exc:
        raise CorruptFileError(f"{path} has missing or invalid model metadata ({exc}); "
                               "retrain the run (--restart) or restore the file") from None
    dtype = dtype or tensors["w_rec"].dtype
    bntt_steps = int(tensors["bntt.gamma"].shape[0]) if cfg.network.bntt and "bntt.gamma" in tensors else 0
    if cfg.network.bntt and not bntt_steps:
        raise CorruptFileError(f"{path}: network.bntt is on but the BNTT parameters are missing")
    net = build_network(n_in, n_out, neurons, cfg.network, cfg.surrogate, dtype=dtype, bntt_steps=bntt_steps,
                        engine=cfg.train.engine, conv=conv_geometry(cfg.network, task))
    state = {k: v.to(dtype) for k, v in tensors.items() if not k.startswith("neurons.")}
    missing = {name for name, _ in net.named_parameters()} - set(state)
    if missing:
        raise CorruptFileError(f"{path} lacks weights {sorted(missing)}")
    for name, p in net.named_parameters():
        if tuple(state[name].shape) != tuple(p.shape):
            raise CorruptFileError(f"{path}: weight {name} has shape {tuple(state[name].shape)}, expected {tuple(p.shape)}")
        with torch.no_grad():
            p.copy_(state[name])
    for name, b in stat_buffers(net).items():
        if name not in state or tuple(state[name].shape) != tuple(b.shape):
            raise CorruptFileError(f"{path} lacks or mis-shapes the statistics {name}")
        b.copy_(state[name])
    bad = net.dale_violations()
    if bad:
        raise CorruptFileError(f"{path}: network.dale is on but {bad} recurrent weights have the wrong sign "
                               "(a crafted or mixed-up file)")
    return net.eval(), cfg
