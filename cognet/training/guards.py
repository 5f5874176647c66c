"""Guards of a training run: sizes and memory checked before anything is allocated, advice
for a diverged run, and the validation of a checkpoint's scalars before it is trusted.

Memory estimate (rough, per run; ``item`` = 4 or 8 bytes by ``train.dtype``)::

    weights with gradient and Adam state   4 (n^2 + n n_in + n n_out) item
    BPTT stored states                     8 n T B item        (rule bptt)
    e-prop eligibility traces              3 n (n + n_in) B item (rules eprop-*; the larger for others)
    one evaluation batch                   4 n T min(eval_trials, 256) item
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Dict

from cognet.core.errors import ConfigError
from cognet.training.config import RunConfig
from cognet.training.io import CorruptFileError, physical_memory_bytes


def divergence_advice(cfg: RunConfig, T: int) -> str:
    """The likely cause of a non-finite loss/gradient/update, as advice naming config keys."""
    if cfg.train.dtype == "float32" and T >= 5000:
        return (f"likely cause: float32 rounding over {T} time steps per trial; use --set train.dtype=float64 "
                f"or a larger network.dt_ms (now {cfg.network.dt_ms:g})")
    if cfg.train.grad_clip == 0:
        return ("likely cause: unclipped gradients; set train.grad_clip (e.g. 1.0), or lower train.lr or "
                f"surrogate.peak (now {cfg.surrogate.peak:g})")
    return "lower train.lr or train.rate_reg, or lower surrogate.peak" + (
        "; train.dtype=float64 can also help" if cfg.train.dtype == "float32" else "")


#: hard bound on the network size (w_rec alone would hold n_rec^2 numbers)
MAX_N_REC = 100_000


def estimate_memory_bytes(cfg: RunConfig, task) -> float:
    """Rough peak memory of training ``cfg`` on ``task``: weights with gradients and Adam state
    (x4), plus BPTT's stored states (about 8 numbers per neuron, step and trial; the hop and MDGL rules too) or e-prop's
    eligibility traces (about 3 per synapse and trial; the larger of the two for other rules),
    plus one evaluation batch."""
    item = 8 if cfg.train.dtype == "float64" else 4
    n, n_in, n_out, T, B = float(cfg.network.n_rec), float(task.n_in), float(task.n_out), float(task.T), float(
        cfg.train.batch_size)
    weights = 4.0 * (n * n + n * n_in + n * n_out) * item
    bptt, traces = 8.0 * n * T * B, 3.0 * n * (n + n_in) * B
    if cfg.rule == "bptt" or cfg.rule.startswith(("hop-", "mdgl-")):
        states = bptt * item
    else:
        states = (traces if cfg.rule.startswith("eprop") else max(bptt, traces)) * item
    evaluation = 4.0 * n * T * min(float(cfg.train.eval_trials), 256.0) * item
    return weights + states + evaluation


def check_memory(cfg: RunConfig, task) -> None:
    """Refuse a configuration whose estimated memory exceeds this machine's (ConfigError)."""
    need = estimate_memory_bytes(cfg, task)
    have = physical_memory_bytes()
    if need > have:
        raise ConfigError(
            f"network.n_rec={cfg.network.n_rec}, train.batch_size={cfg.train.batch_size} with {task.T} steps per "
            f"trial would need about {need / 2**30:.3g} GiB, more than this machine's {have / 2**30:.3g} GiB; "
            "lower network.n_rec or train.batch_size")



def check_checkpoint_values(cfg: RunConfig, opt, path: Path, meta: Dict[str, str]) -> None:
    """Validate the scalars of a checkpoint (meta) against the config and the optimiser ``opt``
    of a fresh trainer: ``0 <= iteration <= train.iterations`` and the scheduler at that step,
    ``base_lrs`` and ``initial_lr`` equal to ``train.lr``, the current rate ``lr * lambda(it)``
    of the cosine schedule, the other Adam settings unchanged, finite ``wall_s``, ``best`` in
    [-1, 1]. Raises :class:`CorruptFileError` naming the file and the value."""
    tc = cfg.train
    bad = f"{path} holds values that do not fit the configuration"
    try:
        iteration = int(meta["iteration"])
        sched = json.loads(meta["sched"])
        groups = json.loads(meta["param_groups"])
        wall, best = float(meta["wall_s"]), float(meta["best"])
        base_lrs = [float(v) for v in sched["base_lrs"]]
        last_epoch = int(sched["last_epoch"])
        fresh = json.loads(json.dumps(opt.state_dict()["param_groups"]))
        if not isinstance(groups, list) or len(groups) != len(fresh):
            raise ValueError("param_groups do not match the optimiser")
        lrs = [float(g["lr"]) for g in groups]
        initial = [float(g.get("initial_lr", tc.lr)) for g in groups]
        others_ok = all(g[k] == f[k] for g, f in zip(groups, fresh) for k in set(g) & set(f)
                        if k not in ("lr", "initial_lr", "params"))
    except (KeyError, ValueError, TypeError, AttributeError, RecursionError) as exc:
        raise CorruptFileError(f"{path} has unreadable optimiser/scheduler state ({exc}); "
                               "delete it or pass --restart") from None
    if not 0 <= iteration <= tc.iterations or last_epoch != iteration:
        raise CorruptFileError(f"{bad}: iteration {iteration} (scheduler step {last_epoch}) outside "
                               f"[0, train.iterations={tc.iterations}]; delete it or pass --restart")
    if any(v != tc.lr for v in base_lrs + initial):
        raise CorruptFileError(f"{bad}: base learning rates {base_lrs} differ from train.lr={tc.lr}; "
                               "delete it or pass --restart")
    total, floor = tc.iterations, tc.lr_min_factor
    expected = tc.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(iteration, total) / total)))
    if any(not math.isclose(v, expected, rel_tol=1e-9, abs_tol=1e-15) for v in lrs):
        raise CorruptFileError(f"{bad}: learning rate {lrs} at iteration {iteration}, expected {expected:g}; "
                               "delete it or pass --restart")
    if not others_ok:
        raise CorruptFileError(f"{bad}: optimiser settings differ from Adam's defaults; delete it or pass --restart")
    if not (math.isfinite(wall) and wall >= 0 and -1.0 <= best <= 1.0):
        raise CorruptFileError(f"{bad}: wall_s={wall}, best={best}; delete it or pass --restart")
