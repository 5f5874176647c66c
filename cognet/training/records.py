"""Spike records of held-out trials: one file format shared by torch, Brian2 and analysis.

A record file (``spikes-torch.safetensors``, ``spikes-brian2.safetensors`` in a run
directory) holds, for ``trials`` held-out trials of ``T`` steps::

    z       uint8  [trials, T, n]       recurrent spikes
    x       uint8  [trials, T, n_in]    input spikes
    logits  float32 [W, trials, n_out]  readout per answer window
    target  float32 [W, trials, n_out] (bits) or int64 [W, trials] (classes)
    mask    uint8  [W, trials]          which answer windows count
    active  uint8  [trials, S, C]       channel activity per symbol step (what the input encodes)

with metadata ``source``, ``task``, ``dt_ms``, ``windows`` and ``phases`` (JSON; step
ranges), ``channels`` (the task's input channel names) and ``steps_per_symbol``. Written atomically with
safetensors; :func:`load_record` never unpickles anything, checks the checksums, and
validates what it reads (:func:`validate_record`): dtypes, the shapes above agreeing with one
another, spikes (``z``, ``x``, ``active``, ``mask``) only 0 or 1, finite logits, answer windows
and phases inside ``[0, T]``, ``dt_ms`` positive and ``steps_per_symbol`` >= 1.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch

from cognet.training.io import CorruptFileError, PathLike, check_finite, load_tensors, save_tensors

RECORD_FORMAT = "cognet-spikes-1"


@dataclass
class SpikeRecord:
    z: torch.Tensor
    x: torch.Tensor
    logits: torch.Tensor
    target: torch.Tensor
    mask: torch.Tensor
    source: str
    task: str
    dt_ms: float
    windows: List[Tuple[int, int]]
    phases: Dict[str, List[Tuple[int, int]]]
    channels: List[str] = field(default_factory=list)
    active: Optional[torch.Tensor] = None
    steps_per_symbol: int = 1
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def trials(self) -> int:
        return self.z.shape[0]

    @property
    def T(self) -> int:
        return self.z.shape[1]


def save_record(path: PathLike, rec: SpikeRecord) -> None:
    tensors = {
        "z": rec.z.to(torch.uint8), "x": rec.x.to(torch.uint8), "logits": rec.logits.float(),
        "target": rec.target, "mask": rec.mask.to(torch.uint8),
    }
    if rec.active is not None:
        tensors["active"] = (rec.active > 0).to(torch.uint8)
    meta = {
        "format": RECORD_FORMAT, "source": rec.source, "task": rec.task, "dt_ms": repr(rec.dt_ms),
        "windows": json.dumps([list(w) for w in rec.windows]),
        "phases": json.dumps({k: [list(r) for r in v] for k, v in rec.phases.items()}),
        "channels": json.dumps(rec.channels), "extra": json.dumps(rec.extra),
        "steps_per_symbol": str(rec.steps_per_symbol),
    }
    save_tensors(path, tensors, meta)


def load_record(path: PathLike) -> SpikeRecord:
    tensors, meta = load_tensors(path)
    if meta.get("format") != RECORD_FORMAT:
        raise CorruptFileError(f"{path} is not a cognet spike record")
    try:
        for name in ("z", "x", "mask"):
            if tensors[name].dtype != torch.uint8:
                raise ValueError(f"{name} must be uint8, is {tensors[name].dtype}")
        check_finite(path, {"logits": tensors["logits"]})
        mask = tensors["mask"]
        if mask.numel() and int(mask.max()) > 1:
            raise ValueError("mask holds values other than 0 and 1")
        rec = SpikeRecord(
            z=tensors["z"], x=tensors["x"], logits=tensors["logits"], target=tensors["target"],
            mask=mask.bool(), source=meta["source"], task=meta["task"], dt_ms=float(meta["dt_ms"]),
            windows=[tuple(int(a) for a in w) for w in json.loads(meta["windows"])],
            phases={str(k): [tuple(int(a) for a in r) for r in v] for k, v in json.loads(meta["phases"]).items()},
            channels=[str(c) for c in json.loads(meta.get("channels", "[]"))], extra=json.loads(meta.get("extra", "{}")),
            active=tensors.get("active"), steps_per_symbol=int(meta.get("steps_per_symbol", "1")),
        )
        if not isinstance(rec.extra, dict):
            raise ValueError("extra must be a JSON object")
        validate_record(rec)
    except (KeyError, ValueError, TypeError, AttributeError, OverflowError, RecursionError) as exc:
        raise CorruptFileError(f"{path} is an incomplete or invalid spike record ({exc}); delete it and "
                               "record it again (cognet verify / cognet analyze)") from None
    return rec


def validate_record(rec: SpikeRecord) -> None:
    """Raise ``ValueError`` if the parts of a record disagree (see the module docstring)."""
    def binary(name: str, t: Optional[torch.Tensor]) -> None:
        if t is not None and t.numel() and int(t.max()) > 1:
            raise ValueError(f"{name} holds values other than 0 and 1 (max {int(t.max())}); spikes are 0/1 per step")

    if rec.z.dim() != 3 or rec.x.dim() != 3:
        raise ValueError(f"z and x must be [trials, T, n], got shapes {tuple(rec.z.shape)} and {tuple(rec.x.shape)}")
    trials, T = rec.z.shape[0], rec.z.shape[1]
    if tuple(rec.x.shape[:2]) != (trials, T):
        raise ValueError(f"x has shape {tuple(rec.x.shape)}, z has {tuple(rec.z.shape)}: trials and T must agree")
    binary("z", rec.z)
    binary("x", rec.x)
    W = len(rec.windows)
    if rec.logits.dim() != 3 or tuple(rec.logits.shape[:2]) != (W, trials):
        raise ValueError(f"logits has shape {tuple(rec.logits.shape)}, expected [{W}, {trials}, n_out]")
    if tuple(rec.mask.shape) != (W, trials):
        raise ValueError(f"mask has shape {tuple(rec.mask.shape)}, expected [{W}, {trials}]")
    if tuple(rec.target.shape[:2]) != (W, trials) or rec.target.dim() not in (2, 3) or (
            rec.target.dim() == 3 and rec.target.shape[2] != rec.logits.shape[2]):
        raise ValueError(f"target has shape {tuple(rec.target.shape)}, does not fit logits {tuple(rec.logits.shape)}")
    for a, b in list(rec.windows) + [r for v in rec.phases.values() for r in v]:
        if not 0 <= a <= b <= T:
            raise ValueError(f"window/phase ({a}, {b}) lies outside the {T} recorded steps")
    if not (rec.dt_ms > 0 and math.isfinite(rec.dt_ms)):
        raise ValueError(f"dt_ms must be positive, got {rec.dt_ms}")
    if rec.steps_per_symbol < 1:
        raise ValueError(f"steps_per_symbol must be >= 1, got {rec.steps_per_symbol}")
    if rec.active is not None:
        if rec.active.dim() != 3 or rec.active.shape[0] != trials:
            raise ValueError(f"active has shape {tuple(rec.active.shape)}, expected [{trials}, S, C]")
        binary("active", rec.active)


@torch.no_grad()
def record_torch(net, task, trials: int, seed: int, batch_size: int = 256) -> SpikeRecord:
    """Simulate ``trials`` held-out trials (drawn from ``seed``) in torch and record them.

    Refuses (``ValueError`` naming ``--trials``) a record that would not fit in memory: about
    ``2 x 4 x trials x T x (n + n_in)`` bytes while it is assembled (Brian2's copy comes on top)."""
    from cognet.training.io import physical_memory_bytes

    need = 8.0 * trials * task.T * (net.n + net.n_in) * 2
    have = physical_memory_bytes()
    if need > have:
        raise ValueError(f"--trials {trials}: recording {trials} trials of {task.T} steps and {net.n} neurons would need "
                         f"about {need / 2**30:.3g} GiB, more than this machine's {have / 2**30:.3g} GiB; use fewer trials")
    batch_size = max(batch_size, int(getattr(task, "held_out_batch", 0)))  # each held-out image once (digits)
    g = torch.Generator().manual_seed(int(seed))
    zs, xs, logits, targets, masks, actives = [], [], [], [], [], []
    batch = None
    done = 0
    while done < trials:
        b = min(batch_size, trials - done)
        batch = task.sample(b, g, split="test")
        out = net(batch.x.to(net.w_rec.device), batch.windows)
        zs.append(out.z.transpose(0, 1).cpu())
        xs.append(batch.x.transpose(0, 1))
        logits.append(out.logits.cpu())
        targets.append(batch.target)
        masks.append(batch.mask)
        actives.append(batch.active.transpose(0, 1))
        done += b
    assert batch is not None
    return SpikeRecord(
        z=torch.cat(zs), x=torch.cat(xs), logits=torch.cat(logits, 1), target=torch.cat(targets, 1),
        mask=torch.cat(masks, 1), source="torch", task=task.name, dt_ms=task.dt_ms, windows=batch.windows,
        phases=batch.phases, channels=task.channels(), extra={"seed": int(seed)},
        active=torch.cat(actives), steps_per_symbol=task.steps_per_symbol,
    )
