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
safetensors; :func:`load_record` never unpickles anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch

from cognet.training.io import CorruptFileError, PathLike, load_tensors, save_tensors

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
        return SpikeRecord(
            z=tensors["z"], x=tensors["x"], logits=tensors["logits"], target=tensors["target"],
            mask=tensors["mask"].bool(), source=meta["source"], task=meta["task"], dt_ms=float(meta["dt_ms"]),
            windows=[tuple(w) for w in json.loads(meta["windows"])],
            phases={k: [tuple(r) for r in v] for k, v in json.loads(meta["phases"]).items()},
            channels=json.loads(meta.get("channels", "[]")), extra=json.loads(meta.get("extra", "{}")),
            active=tensors.get("active"), steps_per_symbol=int(meta.get("steps_per_symbol", "1")),
        )
    except (KeyError, ValueError) as exc:
        raise CorruptFileError(f"{path} is an incomplete spike record ({exc})") from None


@torch.no_grad()
def record_torch(net, task, trials: int, seed: int, batch_size: int = 256) -> SpikeRecord:
    """Simulate ``trials`` held-out trials (drawn from ``seed``) in torch and record them."""
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
