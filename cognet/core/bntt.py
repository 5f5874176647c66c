"""Batch normalisation through time (BNTT, Kim & Panda 2021) of the input currents.

BNTT normalises a layer's input separately at every time step, with statistics and affine
parameters of its own per step. Here it acts on the recurrent population's input currents
``I[t] = W_in x[t]`` (``[T, B, n]``), per step t and neuron j::

    training:  mu[t, j], s2[t, j] = mean and (biased) variance of I[t, :, j] over the batch
               I'[t, b, j] = gamma[t, j] (I[t, b, j] - mu[t, j]) / sqrt(s2[t, j] + eps) + beta[t, j]
               running statistics, as torch.nn.BatchNorm1d (momentum m, unbiased variance):
               rm <- (1 - m) rm + m mu,   rv <- (1 - m) rv + m s2 B / (B - 1)
    eval:      I'[t, b, j] = gain[t, j] I[t, b, j] + offset[t, j]
               gain = gamma / sqrt(rv + eps),   offset = beta - gain rm

At evaluation each step's map is a fixed per-neuron gain and offset (:meth:`BNTT.affine`),
which is how the Brian2 replay carries it (a ``TimedArray`` gain on the input synapses and
a ``TimedArray`` offset added to v each step, :mod:`cognet.brian.bridge`). Kim & Panda
initialise gamma at 1 and drop beta; both are learnt here, beta from 0 and gamma from
``gamma_init`` (per neuron; the network passes ``network.bntt_gamma * v_th``, default 0.3:
on the parity task gamma = 0.15 or 0.3 v_th trained to 0.996 in 200 iterations, 0.6 or 1 v_th
stayed at chance, because unit-variance input currents at every step drown the recurrent
memory). A trial longer
than the ``steps`` the layer was built for has no statistics for its later steps and is
refused. Trained with BPTT (autograd); the e-prop rules refuse it.
"""

from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn


class BNTT(nn.Module):
    """Per-step batch normalisation of ``[T, B, n]`` currents (see the module docstring)."""

    def __init__(self, steps: int, n: int, eps: float = 1e-5, momentum: float = 0.1,
                 dtype: torch.dtype = torch.float32, gamma_init=1.0) -> None:
        super().__init__()
        if steps < 1 or n < 1:
            raise ValueError(f"BNTT needs steps >= 1 and n >= 1, got steps={steps}, n={n}")
        self.steps, self.n, self.eps, self.momentum = int(steps), int(n), float(eps), float(momentum)
        gamma = torch.ones(steps, n, dtype=dtype) * torch.as_tensor(gamma_init, dtype=dtype)
        self.gamma = nn.Parameter(gamma)
        self.beta = nn.Parameter(torch.zeros(steps, n, dtype=dtype))
        self.register_buffer("running_mean", torch.zeros(steps, n, dtype=dtype))
        self.register_buffer("running_var", torch.ones(steps, n, dtype=dtype))

    def affine(self, T: int | None = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """The evaluation map of the first ``T`` steps: ``(gain, offset)``, each ``[T, n]``."""
        T = self.steps if T is None else self._check(T)
        gain = self.gamma[:T] / torch.sqrt(self.running_var[:T] + self.eps)
        return gain, self.beta[:T] - gain * self.running_mean[:T]

    def _check(self, T: int) -> int:
        if T > self.steps:
            raise ValueError(f"network.bntt holds statistics for {self.steps} steps; a trial of {T} steps "
                             "is longer (BNTT cannot run beyond the trial length it was trained on)")
        return T

    def forward(self, currents: torch.Tensor) -> torch.Tensor:
        T, B, n = currents.shape
        self._check(T)
        if not self.training:
            gain, offset = self.affine(T)
            return currents * gain[:, None, :] + offset[:, None, :]
        if B < 2:
            raise ValueError("network.bntt needs a training batch of at least 2 trials (batch statistics)")
        # one BatchNorm over B samples with T*n channels = per-step, per-neuron statistics
        flat = currents.permute(1, 0, 2).reshape(B, T * n)
        out = F.batch_norm(flat, self.running_mean[:T].view(-1), self.running_var[:T].view(-1),
                           self.gamma[:T].reshape(-1), self.beta[:T].reshape(-1), True, self.momentum, self.eps)
        return out.view(B, T, n).permute(1, 0, 2)
