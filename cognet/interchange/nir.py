"""NIR (Neuromorphic Intermediate Representation, ``pip install nir``, v1.0.x) export and import.

Graph written by :func:`export_run` (node names fixed)::

    input --> w_in (Linear) --> lif (LIF) --> w_out (Linear) --> readout (LI) --> bias (Affine) --> output
                                 ^    |
                                 +----+  w_rec (Linear): the recurrent edge, a cycle lif -> w_rec -> lif

(``readout=False``: ``lif --> output``, the graph's output is the recurrent spike train. A
network whose recurrent weights are all zero is written without ``w_rec``: a feed-forward layer.)

NIR's definitions (continuous time, seconds)::

    LIF:  tau dv/dt = (v_leak - v) + R I,   z = H(v - v_threshold),  v <- v_reset when z = 1
    LI:   tau dv/dt = (v_leak - v) + R I
    Linear / Affine:  I = W s (+ b)

Mapping from cognet's discrete-time model (:mod:`cognet.core.params`, step ``dt``, reset "zero")::

    tau         = tau_mem_ms / 1000 s             (per neuron; the exact ms values also ride along
                                                   as node metadata cognet.tau_ms, because
                                                   ms -> s -> ms is not exact in floating point)
    v_threshold = v_th,  v_leak = 0,  v_reset = 0
    R           = tau / dt   and  W_nir = W        (resistance="tau_over_dt", the default), or
    R           = 1          and  W_nir = (tau/dt) W, row by row   (resistance="one")
    readout LI: tau = tau_out_ms / 1000 s, same R convention, W_out; bias b_out in a final
                Affine with identity weight (after the filter, as in cognet)

Conditions under which the NIR graph is exactly cognet's network (and which :func:`export_run`
checks, refusing otherwise with a ValueError that names the neurons):

* **Spike convention and dt.** A spike of the discrete-time input (the value 1 in a step of
  length dt) is a current impulse of area ``dt``: ``s(t) = dt * sum_k delta(t - t_k)``. Then one
  spike through weight ``W`` moves ``v`` by ``R W dt / tau``, which is ``W`` under both
  conventions above, and between spikes ``v`` decays by exactly ``alpha = exp(-dt / tau)`` per
  step. Sampled at the step times, after the step's input, NIR's LIF is then
  ``v[t] = alpha v[t-1] + W_in x[t] + W_rec z[t-1]``, cognet's update. ``dt`` itself is not a
  NIR quantity: it is stored in the graph metadata (``cognet.dt_ms``) and implied by ``tau/R``.
  snnTorch requires ``R = tau / dt`` (and fixes dt = 0.1 ms); Norse ignores ``R`` (assumes 1).
* **The one-step recurrent delay.** cognet's recurrent spikes of step ``t-1`` act at step
  ``t``. NIR graphs carry no delay on an edge; the cycle ``lif -> w_rec -> lif`` is evaluated
  by discrete-time simulators with the previous step's spikes, which is this delay. The
  feed-forward edges (input, readout) act within the step.
* **Reset.** NIR's LIF sets ``v`` to ``v_reset``: cognet's ``reset="zero"`` (``v_reset = 0``).
  cognet's default ``reset="subtract"`` (``v -= v_th``) has no NIR form and is refused.
* **Refractoriness.** NIR cannot state a refractory period. Only neurons whose refractory
  period is at most one step (``round(refractory_ms / dt) <= 1``, i.e. none) are exported.
* **ALIF.** NIR has no adaptive-threshold node; neurons with ``beta > 0`` are refused (no
  extension node is written, so no tool can run a silently different network).
* **Threshold.** cognet fires when ``v > v_th`` strictly, as NIR's ``H``; the surrogate
  gradient is a training device and is not part of the network.

:func:`import_file` reads any NIR graph of the form input -> Linear/Affine (zero bias) -> LIF
(optional recurrent Linear/Affine cycle, optional nested subgraphs as snnTorch writes them) ->
optional Linear -> LI -> optional identity Affine (bias) -> output, with ``v_leak = 0``,
``v_reset = 0`` and ``v_threshold > 0``, and writes a cognet run directory. Weights are
scaled by ``R dt / tau`` per postsynaptic neuron (exactly 1 for files this module writes with
the default; a gain within 1e-12 of 1 counts as 1). ``dt`` comes from the ``dt_ms`` argument,
else the file's ``cognet.dt_ms`` metadata, else ``tau / R`` when that is one number (R = tau/dt).
Anything else (CubaLIF, Conv, Delay, several populations) is refused by name.

What other tools do with these files (measured in tests/test_interchange.py and
benchmarks/nir_tools.py; docs/interchange.md): snnTorch 1.0 (dt fixed at 0.1 ms, forward
Euler) reproduces a feed-forward layer exactly when cognet uses Euler's decay ``1 - dt/tau``,
but its recurrent import multiplies the external input by W_rec as well; Norse 1.1 (forward
Euler at the dt passed to ``from_nir``, reads ``resistance="one"`` files, has no LI node)
reproduces the recurrent population exactly with Euler's decay.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from cognet.core.params import NeuronParams

RESISTANCES = ("tau_over_dt", "one")
#: cognet milliseconds per NIR second (NIR time constants are in seconds)
MS_PER_S = 1000.0
#: a weight gain R dt / tau this close to 1 is taken as exactly 1 (float rounding of tau / dt)
GAIN_RTOL = 1e-12


def _seconds(ms) -> np.ndarray:
    return np.asarray(ms, dtype=np.float64) / MS_PER_S


def _ms(node, tau_s: np.ndarray) -> np.ndarray:
    """tau in ms: cognet's exact values from the node's ``cognet.tau_ms`` metadata when they
    agree with ``tau`` (ms -> s -> ms is not exact in floating point), else tau * 1000."""
    meta = getattr(node, "metadata", None) or {}
    exact = meta.get("cognet.tau_ms")
    if exact is not None:
        exact = np.asarray(exact, dtype=np.float64).reshape(-1)
        if exact.shape == tau_s.shape and np.array_equal(_seconds(exact), tau_s):
            return exact
    return tau_s * MS_PER_S


def _nir():
    try:
        import nir
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ValueError(f"the NIR format needs the 'nir' package ({exc}); pip install nir") from None
    return nir


def _names(idx: np.ndarray, limit: int = 12) -> str:
    idx = [int(i) for i in np.flatnonzero(idx)]
    shown = ", ".join(map(str, idx[:limit]))
    return f"{len(idx)} neuron(s) [{shown}{', ...' if len(idx) > limit else ''}]"


def check_exportable(p: NeuronParams) -> None:
    """Raise ValueError when the population cannot be stated exactly in NIR (see module doc)."""
    problems = []
    if p.adaptive.any():
        problems.append(f"{_names(p.adaptive)} are ALIF (beta > 0) and NIR has no adaptive-threshold node; "
                        "train with network.alif_fraction=0")
    ref = p.refractory_steps > 1
    if ref.any():
        problems.append(f"{_names(ref)} have a refractory period of more than one step "
                        f"(refractory_ms up to {p.array('refractory_ms').max():g} at dt {p.dt_ms:g} ms), which NIR "
                        f"cannot state; train with network.refractory_ms=0")
    if p.reset != "zero":
        problems.append(f"reset={p.reset!r} (v -= v_th) has no NIR form (NIR's LIF resets to v_reset); "
                        "train with network.reset=zero")
    if problems:
        raise ValueError("cannot export to NIR without changing the network: " + "; ".join(problems))


def graph_from_network(net, readout: bool = True, resistance: str = "tau_over_dt"):
    """The :class:`nir.NIRGraph` of an :class:`~cognet.core.network.RSNN` (see module doc)."""
    nir = _nir()
    if resistance not in RESISTANCES:
        raise ValueError(f"resistance must be one of {list(RESISTANCES)}, got {resistance!r}")
    p = net.neurons
    check_exportable(p)
    dt = _seconds(p.dt_ms)
    w_in = net.w_in.detach().double().cpu().numpy()
    w_rec = net.effective_w_rec().detach().double().cpu().numpy()
    tau = _seconds(p.array("tau_mem_ms"))
    scale = np.ones(p.n) if resistance == "tau_over_dt" else tau / dt  # W_nir = scale * W
    r = tau / dt if resistance == "tau_over_dt" else np.ones(p.n)
    nodes: Dict[str, Any] = {
        "input": nir.Input(input_type={"input": np.array([net.n_in])}),
        "w_in": nir.Linear(weight=scale[:, None] * w_in),
        "lif": nir.LIF(tau=tau, r=r, v_leak=np.zeros(p.n), v_threshold=p.array("v_th"), v_reset=np.zeros(p.n),
                       metadata={"cognet.tau_ms": p.array("tau_mem_ms")}),
    }
    edges: List[Tuple[str, str]] = [("input", "w_in"), ("w_in", "lif")]
    if np.any(w_rec != 0):  # a network without recurrent weights is a feed-forward LIF layer: no cycle
        nodes["w_rec"] = nir.Linear(weight=scale[:, None] * w_rec)
        edges += [("lif", "w_rec"), ("w_rec", "lif")]
    if readout:
        n_out = net.n_out
        tau_out = np.full(n_out, _seconds(net.tau_out_ms))
        s_out = 1.0 if resistance == "tau_over_dt" else _seconds(net.tau_out_ms) / dt
        nodes["w_out"] = nir.Linear(weight=s_out * net.w_out.detach().double().cpu().numpy())
        nodes["readout"] = nir.LI(tau=tau_out, r=tau_out / dt if resistance == "tau_over_dt" else np.ones(n_out),
                                  v_leak=np.zeros(n_out), metadata={"cognet.tau_ms": np.full(n_out, net.tau_out_ms)})
        nodes["bias"] = nir.Affine(weight=np.eye(n_out), bias=net.b_out.detach().double().cpu().numpy())
        nodes["output"] = nir.Output(output_type={"output": np.array([n_out])})
        edges += [("lif", "w_out"), ("w_out", "readout"), ("readout", "bias"), ("bias", "output")]
    else:
        nodes["output"] = nir.Output(output_type={"output": np.array([p.n])})
        edges.append(("lif", "output"))
    meta = {"cognet.dt_ms": float(p.dt_ms), "cognet.resistance": resistance,
            "cognet.convention": "spike = impulse of area dt; recurrent edge acts one step later"}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)


def export_run(run_dir, out, readout: bool = True, resistance: str = "tau_over_dt") -> Dict[str, Any]:
    """Write the trained network of ``run_dir`` as a NIR file ``out`` (HDF5, ``nir.write``)."""
    import torch

    from cognet.training.io import atomic_write
    from cognet.training.model import load_model

    run_dir, out = Path(run_dir), Path(out)
    model = run_dir / "model.safetensors"
    if not model.exists():
        raise FileNotFoundError(f"{run_dir} holds no trained model (model.safetensors missing)")
    net, cfg = load_model(model, dtype=torch.float64)
    if net.bntt is not None:
        raise ValueError(f"{run_dir} uses network.bntt (a per-time-step gain and offset of the input current), "
                         "which NIR cannot state; nothing was written")
    if net.conv is not None:
        raise ValueError(f"{run_dir} has a conv front end (network.conv_channels > 0), which this NIR export "
                         "does not carry yet; nothing was written")
    graph = graph_from_network(net, readout=readout, resistance=resistance)
    nir = _nir()
    import io

    buf = io.BytesIO()
    nir.write(buf, graph)
    atomic_write(out, buf.getvalue())
    return {"format": "nir", "path": str(out), "run_dir": str(run_dir), "task": cfg.task, "neurons": net.n,
            "n_in": net.n_in, "n_out": net.n_out if readout else None, "dt_ms": net.neurons.dt_ms,
            "resistance": resistance, "nodes": sorted(graph.nodes), "edges": [list(e) for e in graph.edges]}


# ---------------------------------------------------------------------------------------
# import
# ---------------------------------------------------------------------------------------
def _flatten(graph, prefix: str = "") -> Tuple[Dict[str, Any], List[Tuple[str, str]]]:
    """Nodes and edges of ``graph`` with nested NIRGraph nodes inlined (keys ``outer.inner``)."""
    nir = _nir()
    nodes: Dict[str, Any] = {}
    edges: List[Tuple[str, str]] = []
    inner_io: Dict[str, Tuple[List[str], List[str]]] = {}  # subgraph key -> (entry nodes, exit nodes)
    for key, node in graph.nodes.items():
        full = prefix + key
        if isinstance(node, nir.NIRGraph):
            sub_nodes, sub_edges = _flatten(node, full + ".")
            ins = [k for k, v in sub_nodes.items() if isinstance(v, nir.Input)]
            outs = [k for k, v in sub_nodes.items() if isinstance(v, nir.Output)]
            entry = [d for s, d in sub_edges if s in ins]
            exit_ = [s for s, d in sub_edges if d in outs]
            inner_io[full] = (entry, exit_)
            nodes.update({k: v for k, v in sub_nodes.items() if k not in ins and k not in outs})
            edges += [(s, d) for s, d in sub_edges if s not in ins and d not in outs]
        else:
            nodes[full] = node
    for s, d in graph.edges:
        s, d = prefix + s, prefix + d  # a subgraph key, a node key, or "subgraph.node" (already inlined)
        srcs = inner_io[s][1] if s in inner_io else [s]
        dsts = inner_io[d][0] if d in inner_io else [d]
        edges += [(a, b) for a in srcs for b in dsts]
    unknown = sorted({k for e in edges for k in e if k not in nodes})
    if unknown:
        raise ValueError(f"NIR graph has edges to or from unknown node(s) {unknown}")
    return nodes, list(dict.fromkeys(edges))


def _arr(x, n: Optional[int] = None) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    if n is not None and a.size == 1:
        a = np.full(n, float(a[0]))
    return a


def _gain(r: np.ndarray, tau_s: np.ndarray, dt_s: float) -> np.ndarray:
    g = r * dt_s / tau_s
    return np.where(np.abs(g - 1.0) <= GAIN_RTOL, 1.0, g)


def network_from_graph(graph, dt_ms: Optional[float] = None) -> Dict[str, Any]:
    """Parse a NIR LIF network (see module doc) into cognet weights and neuron parameters.

    Returns a dict with ``w_in [n, n_in]``, ``w_rec [n, n]``, ``neurons`` (NeuronParams),
    ``w_out``, ``b_out``, ``tau_out_ms`` (None without a readout) and ``dt_ms``.
    """
    nir = _nir()
    nodes, edges = _flatten(graph)

    def succ(k):
        return [d for s, d in edges if s == k]

    def pred(k):
        return [s for s, d in edges if d == k]

    def kind(k):
        return type(nodes[k]).__name__

    dense = (nir.Linear, nir.Affine)

    def no_bias(k, what):
        b = getattr(nodes[k], "bias", None)
        if b is not None and np.any(np.asarray(b) != 0):
            raise ValueError(f"NIR node {k!r} ({what}) has a nonzero bias, a constant current cognet's neurons "
                             "do not have")

    allowed = (nir.Input, nir.Output, nir.Linear, nir.Affine, nir.LIF, nir.LI)
    bad = [f"{k} ({kind(k)})" for k in nodes if not isinstance(nodes[k], allowed)]
    if bad:
        raise ValueError(f"NIR graph has node(s) cognet cannot represent: {', '.join(bad)}; cognet reads "
                         "Input -> Linear/Affine -> LIF (+ recurrent Linear) -> [Linear -> LI -> Affine] -> Output")
    inputs = [k for k in nodes if isinstance(nodes[k], nir.Input)]
    lifs = [k for k in nodes if isinstance(nodes[k], nir.LIF)]
    if len(inputs) != 1 or len(lifs) != 1:
        raise ValueError(f"NIR graph must have exactly one Input and one LIF population, found inputs {inputs} and "
                         f"LIF nodes {lifs}")
    inp, lif = inputs[0], lifs[0]
    first = succ(inp)
    if len(first) != 1 or not isinstance(nodes[first[0]], dense) or succ(first[0]) != [lif]:
        raise ValueError(f"NIR graph: the input {inp!r} must feed one Linear/Affine node that feeds the LIF {lif!r}; "
                         f"it feeds {first}")
    k_in = first[0]
    no_bias(k_in, "input weights")
    rec = [k for k in pred(lif) if k != k_in]
    k_rec = None
    if rec:
        if len(rec) != 1 or not isinstance(nodes[rec[0]], dense) or pred(rec[0]) != [lif] or succ(rec[0]) != [lif]:
            raise ValueError(f"NIR graph: the LIF {lif!r} may have one recurrent Linear/Affine edge from itself; "
                             f"found inputs {rec}")
        k_rec = rec[0]
        no_bias(k_rec, "recurrent weights")
    L = nodes[lif]
    n = _arr(L.v_threshold).size
    tau = _arr(L.tau, n)
    r = _arr(L.r, n)
    for name in ("v_leak", "v_reset"):
        v = getattr(L, name, None)
        if v is not None and np.any(_arr(v, n) != 0):
            raise ValueError(f"NIR LIF {lif!r}: {name} must be 0 for cognet (it has {np.unique(_arr(v, n))[:5]})")
    v_th = _arr(L.v_threshold, n)
    if np.any(v_th <= 0) or np.any(tau <= 0):
        raise ValueError(f"NIR LIF {lif!r}: v_threshold and tau must be positive")
    meta = getattr(graph, "metadata", None) or {}
    if dt_ms is None and "cognet.dt_ms" in meta:
        dt_ms = float(np.asarray(meta["cognet.dt_ms"]))
    if dt_ms is None:
        implied = tau / r
        if not np.allclose(implied, implied[0], rtol=1e-9, atol=0):
            raise ValueError("NIR graph states no time step (tau / r differs between neurons): pass dt_ms "
                             "(cognet import --dt-ms)")
        dt_ms = float(implied[0] * MS_PER_S)
    dt_ms = float(dt_ms)
    if not (dt_ms > 0 and math.isfinite(dt_ms)):
        raise ValueError(f"dt_ms must be a positive number, got {dt_ms!r}")
    dt = _seconds(dt_ms)
    gain = _gain(r, tau, dt)  # one spike through W moves v by gain * W

    w_in = np.asarray(nodes[k_in].weight, dtype=np.float64)
    if w_in.ndim != 2 or w_in.shape[0] != n:
        raise ValueError(f"NIR node {k_in!r}: weight shape {w_in.shape} does not feed {n} LIF neurons")
    w_rec = np.zeros((n, n))
    if k_rec is not None:
        w_rec = np.asarray(nodes[k_rec].weight, dtype=np.float64)
        if w_rec.shape != (n, n):
            raise ValueError(f"NIR node {k_rec!r}: recurrent weight shape {w_rec.shape}, expected {(n, n)}")
    neurons = NeuronParams(n=n, dt_ms=dt_ms, tau_mem_ms=_ms(L, tau), v_th=v_th, reset="zero", refractory_ms=0.0,
                           beta=0.0)
    out: Dict[str, Any] = {"w_in": gain[:, None] * w_in, "w_rec": gain[:, None] * w_rec, "neurons": neurons,
                           "dt_ms": dt_ms, "w_out": None, "b_out": None, "tau_out_ms": None,
                           "nodes": {"input": inp, "w_in": k_in, "lif": lif, "w_rec": k_rec}}
    after = [k for k in succ(lif) if k != k_rec]
    readouts = [k for k in after if not isinstance(nodes[k], nir.Output)]
    if len(readouts) > 1:
        raise ValueError(f"NIR graph: the LIF {lif!r} feeds several nodes {readouts}; cognet has one readout")
    if readouts:
        k_w = readouts[0]
        chain = succ(k_w)
        if not isinstance(nodes[k_w], dense) or len(chain) != 1 or not isinstance(nodes[chain[0]], nir.LI):
            raise ValueError(f"NIR graph: the readout must be Linear/Affine -> LI, found {k_w!r} ({kind(k_w)}) -> "
                             f"{[f'{c} ({kind(c)})' for c in chain]}")
        no_bias(k_w, "readout weights (a bias before the leaky filter is integrated)")
        k_li = chain[0]
        Li = nodes[k_li]
        w_out = np.asarray(nodes[k_w].weight, dtype=np.float64)
        m = w_out.shape[0]
        tau_o, r_o = _arr(Li.tau, m), _arr(Li.r, m)
        if np.any(_arr(Li.v_leak, m) != 0):
            raise ValueError(f"NIR LI {k_li!r}: v_leak must be 0 for cognet")
        if not np.allclose(tau_o, tau_o[0], rtol=1e-12, atol=0):
            raise ValueError(f"NIR LI {k_li!r}: cognet's readout has one time constant, the graph has several")
        b_out = np.zeros(m)
        nxt = succ(k_li)
        if len(nxt) == 1 and isinstance(nodes[nxt[0]], nir.Affine):
            aff = nodes[nxt[0]]
            if not np.allclose(np.asarray(aff.weight), np.eye(m), rtol=0, atol=0):
                raise ValueError(f"NIR node {nxt[0]!r} after the readout filter must have an identity weight "
                                 "(it carries the readout bias)")
            b_out = np.asarray(aff.bias, dtype=np.float64).reshape(-1)
            nxt = succ(nxt[0])
        if len(nxt) != 1 or not isinstance(nodes[nxt[0]], nir.Output):
            raise ValueError(f"NIR graph: the readout filter {k_li!r} must lead to the Output")
        out.update(w_out=_gain(r_o, tau_o, dt)[:, None] * w_out, b_out=b_out, tau_out_ms=float(_ms(Li, tau_o)[0]))
    return out


def import_file(path, out, task: str, task_params: Optional[Dict[str, Any]] = None, dt_ms: Optional[float] = None,
                seed: int = 0, trials: int = 256) -> Dict[str, Any]:
    """Turn the NIR graph in ``path`` into a cognet run directory ``out`` for ``task``.

    Writes ``config.yaml`` (network section from the graph: ``reset=zero``, no refractoriness,
    no ALIF, ``self_connections`` if the recurrent weights have a diagonal), ``model.safetensors``
    (:func:`cognet.training.model.save_model`; the per-neuron constants of the graph) and
    ``summary.json`` (held-out scores of :func:`cognet.training.trainer.eval_run`, 0 iterations).
    Without a readout in the graph (or with one of another size than the task's outputs) the
    readout weights are zero and the scores are at chance; the spikes are the graph's own.
    """
    import torch
    import yaml

    from cognet.training.config import RunConfig, apply_mapping
    from cognet.training.io import CorruptFileError, atomic_write, write_json
    from cognet.training.model import build_network, save_model
    from cognet.training.trainer import eval_run

    import tasks

    nir = _nir()
    path, out = Path(path), Path(out)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        graph = nir.read(str(path))
    except Exception as exc:  # h5py / nir raise many kinds for a file that is not NIR
        raise CorruptFileError(f"{path} is not a readable NIR file ({type(exc).__name__}: {exc})") from None
    parsed = network_from_graph(graph, dt_ms=dt_ms)
    p: NeuronParams = parsed["neurons"]
    if (out / "model.safetensors").exists():
        raise ValueError(f"{out} already holds a model; choose another --out (nothing was overwritten)")
    t = tasks.get_task(task, task_params or {}, p.dt_ms)
    n_in = parsed["w_in"].shape[1]
    if n_in != t.n_in:
        raise ValueError(f"NIR graph has {n_in} inputs but task {task!r} has {t.n_in} input neurons "
                         "(set the task's parameters, e.g. input neurons per channel, to match)")
    w_rec = parsed["w_rec"]
    has_readout = parsed["w_out"] is not None and parsed["w_out"].shape == (t.n_out, p.n)
    cfg = RunConfig()
    apply_mapping(cfg, {
        "task": {"name": task, **(task_params or {})}, "rule": "bptt", "seed": int(seed),
        "network": {"n_rec": p.n, "alif_fraction": 0.0, "beta": 0.0, "dt_ms": p.dt_ms, "reset": "zero",
                    "refractory_ms": 0.0, "tau_mem_ms": float(np.mean(p.array("tau_mem_ms"))),
                    "v_th": float(np.mean(p.array("v_th"))),
                    "tau_out_ms": parsed["tau_out_ms"] if has_readout else 20.0,
                    "self_connections": bool(np.any(np.diag(w_rec) != 0))},
        "train": {"iterations": 1},
    })
    cfg.validate()
    net = build_network(n_in, t.n_out, p, cfg.network, cfg.surrogate, dtype=torch.float64)
    with torch.no_grad():
        net.w_in.copy_(torch.as_tensor(parsed["w_in"]))
        net.w_rec.copy_(torch.as_tensor(w_rec))
        if has_readout:
            net.w_out.copy_(torch.as_tensor(parsed["w_out"]))
            net.b_out.copy_(torch.as_tensor(parsed["b_out"]))
        else:
            net.w_out.zero_()
            net.b_out.zero_()
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "config.yaml", yaml.safe_dump(cfg.resolved_dict(), sort_keys=False))
    source = {"format": "nir", "path": str(path), "dt_ms": p.dt_ms, "readout": bool(has_readout),
              "nodes": parsed["nodes"]}
    save_model(out / "model.safetensors", net, cfg, extra={"imported": source})
    res = eval_run(out, trials)
    summary = {"task": task, "rule": cfg.rule, "seed": cfg.seed, "imported": source,
               "bit_accuracy": res["bit_accuracy"], "sequence_accuracy": res["sequence_accuracy"],
               "sequence_accuracy_ci95": res["sequence_accuracy_ci95"], "mean_rate_hz": res["mean_rate_hz"],
               "silent_fraction": res["silent_fraction"], "iterations": 0, "wall_s": 0.0, "eval_trials": trials,
               "stopped_early": False, "chance": t.chance(), "n_rec": p.n, "n_in": n_in,
               "rates_hz": res["rates_hz"]}
    write_json(out / "summary.json", summary)
    return {**{k: v for k, v in summary.items() if k != "rates_hz"}, "run_dir": str(out)}
