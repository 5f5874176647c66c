"""Temporal early exit (Kim & Panda 2021): the accuracy if each answer is read k steps earlier.

The network runs once per trial (eval mode: no dropout, BNTT with its fixed per-step map);
the readout is linear in the spikes, so for each k the logits of window ``[s, e)`` are
recomputed on the shifted window ``[s - k, e - k)`` (same length, same leaky filter). A k
larger than the earliest window start does not fit and is refused. Scores are the task's
own (``task.score``), pooled over trials as in :func:`cognet.training.trainer.evaluate`::

    bit_accuracy(k)       = sum right answer bits / sum answer bits
    sequence_accuracy(k)  = trials with every answer right / trials
    saved_ms(k)           = k * dt                        (how much earlier the answer is read)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Sequence

import torch


@torch.no_grad()
def early_exit(net, task, ks: Sequence[int], trials: int = 256, seed: int = 0, batch_size: int = 256) -> Dict[str, Any]:
    """Scores of the network when every answer window is read ``k`` steps earlier, per k."""
    ks = [int(k) for k in ks]
    if not ks or any(k < 0 for k in ks):
        raise ValueError(f"early-exit steps must be integers >= 0, got {ks}")
    if trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    was_training = net.training
    net.eval()
    g = torch.Generator().manual_seed(int(seed))
    device = net.w_rec.device
    right_bits = {k: 0.0 for k in ks}
    right_seq = {k: 0.0 for k in ks}
    total_bits = 0.0
    done = 0
    try:
        while done < trials:
            b = min(batch_size, trials - done)
            batch = task.sample(b, g, split="test")
            first = min(s for s, _ in batch.windows)
            if max(ks) > first:
                raise ValueError(f"early exit by {max(ks)} steps does not fit: the first answer window starts at "
                                 f"step {first} (use k <= {first})")
            batch = dataclasses.replace(batch, x=batch.x.to(device), target=batch.target.to(device),
                                        mask=batch.mask.to(device))
            z = net(batch.x, batch.windows).z
            n_answers = float(batch.mask.sum()) * (batch.target.shape[-1] if task.output == "bits" else 1)
            total_bits += n_answers
            for k in ks:
                shifted = [(s - k, e - k) for s, e in batch.windows]
                sc = task.score(net.readout(z, shifted), dataclasses.replace(batch, windows=shifted))
                right_bits[k] += sc["bit_accuracy"] * n_answers
                right_seq[k] += sc["sequence_accuracy"] * b
            done += b
    finally:
        net.train(was_training)
    dt = net.neurons.dt_ms
    rows = [{"k": k, "saved_ms": k * dt, "bit_accuracy": right_bits[k] / max(total_bits, 1.0),
             "sequence_accuracy": right_seq[k] / trials} for k in ks]
    return {"trials": trials, "seed": int(seed), "dt_ms": dt, "rows": rows}
