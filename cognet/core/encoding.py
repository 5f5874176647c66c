"""Spike encoding of symbol sequences and decoding of readouts.

A trial is a sequence of *symbol steps*. In each step every input channel is either on
(its neurons fire as independent Bernoulli processes at ``rate_on_hz``) or off
(``rate_off_hz``). Each channel is replicated over ``neurons_per_channel`` input neurons;
input neuron ``c * neurons_per_channel + k`` is replica ``k`` of channel ``c``.
"""

from __future__ import annotations

from typing import Optional

import torch


def rate_encode(
    active: torch.Tensor,
    steps_per_symbol: int,
    neurons_per_channel: int,
    rate_on_hz: float,
    rate_off_hz: float,
    dt_ms: float,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Bernoulli spike trains for channel activity.

    Args:
        active: ``[S, B, C]`` channel activity per symbol step (0/1 or a rate fraction in [0, 1]).
        steps_per_symbol: simulation steps per symbol step.
        neurons_per_channel: input neurons replicating each channel.
        rate_on_hz, rate_off_hz: firing rates of an active / inactive channel.
        dt_ms: simulation step.
    Returns:
        spikes ``[S * steps_per_symbol, B, C * neurons_per_channel]`` (float32 0/1).
    """
    if steps_per_symbol < 1 or neurons_per_channel < 1:
        raise ValueError("steps_per_symbol and neurons_per_channel must be >= 1")
    p_on, p_off = rate_on_hz * dt_ms / 1000.0, rate_off_hz * dt_ms / 1000.0
    if not (0 <= p_off <= 1 and 0 <= p_on <= 1):
        raise ValueError(f"rates {rate_off_hz}/{rate_on_hz} Hz give spike probabilities outside [0, 1] at dt={dt_ms} ms")
    S, B, C = active.shape
    n = C * neurons_per_channel
    prob = p_off + (p_on - p_off) * active.float()  # [S, B, C]
    prob = prob.repeat_interleave(neurons_per_channel, dim=2)  # [S, B, C*k]
    # the uniforms of step t = s * steps_per_symbol + j in the same order as a [T, B, C*k] draw,
    # compared in place with their symbol step's probabilities (no [T, B, C*k] probability tensor)
    u = torch.rand((S, steps_per_symbol, B, n), generator=generator)
    torch.lt(u, prob[:, None], out=u)
    return u.view(S * steps_per_symbol, B, n)


def bits_of(value: int, width: int) -> list:
    """Little-endian bits (least significant first) of a non-negative integer."""
    if value < 0:
        raise ValueError("bits_of needs a non-negative integer")
    return [(value >> i) & 1 for i in range(width)]


def int_of(bits) -> int:
    """Integer from little-endian bits."""
    return sum(int(b) << i for i, b in enumerate(bits))
