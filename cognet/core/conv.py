"""Spiking convolutional front end: pixel spike trains -> one convolutional LIF layer ->
sum-pooled spikes, which feed the recurrent population (``network.conv_channels > 0``).

Shapes: an image of ``C_in x H x W`` pixels (pixel ``(c, h, w)`` is input neuron
``c H W + h W + w``), ``C`` kernels ``K [C, C_in, k, k]`` (no bias), zero padding ``p``,
non-overlapping sum-pooling of ``q x q`` blocks; ``H' = H + 2p - k + 1`` (and ``W'``)
must be a multiple of ``q``. Per step ``t`` and trial::

    I_c[t]  = conv2d(x[t], K, padding=p)                 [C, H', W']   (cross-correlation)
            = sum_{ci, a, b} K[c, ci, a, b] x[t, ci, h + a - p, w + b - p]
    v_c[t]  = alpha v_c[t-1] + I_c[t] - v_th z_c[t-1]      (reset="subtract"; or "zero")
    z_c[t]  = H((v_c[t] - v_th) / v_th),  0 while refractory   (LIF: beta = 0, no recurrence)
    s[t]    = sum over each q x q block of z_c[t]            [C, H'/q, W'/q]  (spike counts)
    I[t]    = W_in s[t-1]                                    (input of the recurrent population)

The conv neurons are the same LIF neurons as the recurrent population (``tau_mem_ms``,
``v_th``, ``reset``, ``refractory_ms`` of the network config; one :class:`NeuronParams`
object, :func:`conv_neurons`) and step with :func:`cognet.core.functional.alif_step` (no
recurrent weights), so the surrogate derivative, ``detach_reset`` and the leak-aware
correction are those of the recurrent layer.

The one-step delay from the conv layer to the recurrent one is the synaptic delay of every
event-driven connection (the recurrent synapses have it too); it is what lets the Brian2
replay use plain synapses: one synapse per kernel tap from pixel to conv neuron (weight
``K[c, ci, a, b]``, :func:`conv_synapses`) and one from each conv neuron ``m`` to each
recurrent neuron ``j`` with weight ``W_in[j, pool(m)]`` (:func:`pool_matrix`); sum-pooling
is linear in the spikes, so it folds into those weights exactly.

Initialisation: ``K ~ N(0, (conv_scale v_th)^2 / (C_in k^2))``.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cognet.core.functional import constants, simulate
from cognet.core.params import NeuronParams
from cognet.core.surrogate import Surrogate


class ConvGeometry(NamedTuple):
    """The sizes of the front end (see the module docstring)."""

    image: Tuple[int, int, int]  # (C_in, H, W)
    channels: int
    kernel: int
    padding: int
    pool: int

    @property
    def conv_hw(self) -> Tuple[int, int]:
        _, H, W = self.image
        return H + 2 * self.padding - self.kernel + 1, W + 2 * self.padding - self.kernel + 1

    @property
    def pooled_hw(self) -> Tuple[int, int]:
        h, w = self.conv_hw
        return h // self.pool, w // self.pool

    @property
    def n_pixels(self) -> int:
        c, h, w = self.image
        return c * h * w

    @property
    def n_conv(self) -> int:
        h, w = self.conv_hw
        return self.channels * h * w

    @property
    def n_pooled(self) -> int:
        h, w = self.pooled_hw
        return self.channels * h * w

    def check(self) -> "ConvGeometry":
        """Raise ``ValueError`` (naming the ``network.conv_*`` key) for impossible sizes."""
        if self.channels < 1 or self.kernel < 1 or self.padding < 0 or self.pool < 1:
            raise ValueError(f"network.conv_channels, conv_kernel and conv_pool must be >= 1 and conv_padding >= 0, "
                             f"got {self.channels}, {self.kernel}, {self.pool}, {self.padding}")
        h, w = self.conv_hw
        if h < 1 or w < 1:
            raise ValueError(f"network.conv_kernel={self.kernel} with conv_padding={self.padding} does not fit "
                             f"the {self.image[1]}x{self.image[2]} image")
        if h % self.pool or w % self.pool:
            raise ValueError(f"network.conv_pool={self.pool} must divide the {h}x{w} conv map "
                             f"(image {self.image[1]}x{self.image[2]}, conv_kernel={self.kernel}, "
                             f"conv_padding={self.padding})")
        return self


def conv_neurons(n: int, like: NeuronParams) -> NeuronParams:
    """LIF neurons of the conv layer with the membrane constants of the scalar fields of
    ``like`` (the network config's; per-neuron values take the first neuron's)."""
    def first(name: str) -> float:
        return float(like.array(name)[0])

    return NeuronParams(n=n, dt_ms=like.dt_ms, tau_mem_ms=first("tau_mem_ms"), v_th=first("v_th"),
                        reset=like.reset, refractory_ms=first("refractory_ms"), beta=0.0)


def conv_synapses(geom: ConvGeometry) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Explicit synapses of the convolution: ``(pre_pixel, post_conv, tap)`` int arrays, one
    entry per kernel tap that lands inside the image, with weight ``K.reshape(-1)[tap]``.
    ``sum over synapses of w x[pre]`` into ``post`` is ``conv2d(x, K, padding=p)``."""
    C_in, H, W = geom.image
    k, p = geom.kernel, geom.padding
    Ho, Wo = geom.conv_hw
    c, ci, a, b, h, w = np.meshgrid(np.arange(geom.channels), np.arange(C_in), np.arange(k), np.arange(k),
                                    np.arange(Ho), np.arange(Wo), indexing="ij")
    y, x = h + a - p, w + b - p
    inside = (y >= 0) & (y < H) & (x >= 0) & (x < W)
    c, ci, a, b, h, w, y, x = (arr[inside].ravel() for arr in (c, ci, a, b, h, w, y, x))
    pre = ci * H * W + y * W + x
    post = c * Ho * Wo + h * Wo + w
    tap = ((c * C_in + ci) * k + a) * k + b
    return pre.astype(np.int64), post.astype(np.int64), tap.astype(np.int64)


def pool_matrix(geom: ConvGeometry) -> np.ndarray:
    """``P [n_pooled, n_conv]`` of 0/1: ``s = P z_c`` is the sum-pooling of the conv spikes."""
    Ho, Wo = geom.conv_hw
    q = geom.pool
    hp, wp = geom.pooled_hw
    c, h, w = np.meshgrid(np.arange(geom.channels), np.arange(Ho), np.arange(Wo), indexing="ij")
    m = (c * Ho * Wo + h * Wo + w).ravel()
    cell = (c * hp * wp + (h // q) * wp + (w // q)).ravel()
    P = np.zeros((geom.n_pooled, geom.n_conv))
    P[cell, m] = 1.0
    return P


class FrontOutput(NamedTuple):
    z: torch.Tensor  # conv spikes [T, B, n_conv]
    pooled: torch.Tensor  # sum-pooled spikes delayed by one step, s[t-1]: [T, B, n_pooled]


class ConvFrontEnd(nn.Module):
    """One convolutional LIF layer with sum-pooling (see the module docstring)."""

    def __init__(self, geom: ConvGeometry, like: NeuronParams, surrogate: Optional[Surrogate] = None,
                 detach_reset: bool = True, leak_aware: bool = False, scale: float = 1.0,
                 generator: Optional[torch.Generator] = None, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.geom = geom.check()
        self.neurons = conv_neurons(geom.n_conv, like)
        self.surrogate = surrogate or Surrogate()
        self.detach_reset, self.leak_aware = detach_reset, leak_aware
        C_in, k = geom.image[0], geom.kernel
        v_th = float(self.neurons.array("v_th")[0])
        self.weight = nn.Parameter(torch.randn(geom.channels, C_in, k, k, generator=generator, dtype=dtype)
                                   * (scale * v_th / math.sqrt(C_in * k * k)))
        self._refresh_constants(dtype)

    def _refresh_constants(self, dtype=None, device=None) -> None:
        self.consts = constants(self.neurons, device=device or self.weight.device, dtype=dtype or self.weight.dtype)

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)
        self._refresh_constants()
        return out

    def currents(self, x: torch.Tensor) -> torch.Tensor:
        """``I_c[t]`` for pixel spikes ``x [T, B, n_pixels]``: ``[T, B, n_conv]``."""
        T, B, _ = x.shape
        img = x.reshape(T * B, *self.geom.image)
        out = F.conv2d(img, self.weight, padding=self.geom.padding)
        return out.reshape(T, B, self.geom.n_conv)

    def pool(self, z: torch.Tensor) -> torch.Tensor:
        """Sum-pooling of conv spikes ``[T, B, n_conv]`` -> ``[T, B, n_pooled]`` (exact counts)."""
        T, B, _ = z.shape
        g = self.geom
        Ho, Wo = g.conv_hw
        q = g.pool
        blocks = z.reshape(T, B, g.channels, Ho // q, q, Wo // q, q).sum(dim=(4, 6))
        return blocks.reshape(T, B, g.n_pooled)

    def forward(self, x: torch.Tensor) -> FrontOutput:
        traj = simulate(self.currents(x.to(self.weight.dtype)), None, self.consts, self.surrogate,
                        detach_reset=self.detach_reset, leak_aware=self.leak_aware)
        s = self.pool(traj.z)
        delayed = torch.cat([torch.zeros_like(s[:1]), s[:-1]], dim=0)  # s[t-1]: one synaptic delay
        return FrontOutput(traj.z, delayed)
