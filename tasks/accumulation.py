"""Evidence accumulation (the e-prop paper's Fig. 3 benchmark): ``evidence``.

Timing (ms; all multiples of ``dt_ms``), after the e-prop tutorial settings::

    cue k (k = 0 .. n_cues-1) : [gap + k * t_interval, gap + k * t_interval + t_cue)
                                with gap = t_interval - t_cue; left OR right group at rate_on_hz
    delay                     : silence until the recall window
    recall                    : the last recall_ms of the trial; recall group at rate_on_hz
    noise group               : noise_hz during the whole trial
    T = t_interval * n_cues + t_delay_ms   (150 * 7 + 1200 = 2250 ms by default)

Inputs: 4 groups of ``neurons_per_channel`` neurons (left, right, recall, noise; 4 x 10 = 40).
Each trial first picks which side is likelier (p = 1 - p_group or p_group for "left",
each with probability 1/2), then draws every cue's side independently. Target: the side
that got more cues (class 0 left, 1 right; n_cues is odd, so there is no tie). One answer
window: the recall period; the readout's mean over it is classified with softmax /
cross-entropy. ``sequence_accuracy`` = ``bit_accuracy`` = fraction of trials answered right
(error = 1 - accuracy). Chance: 0.5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Tuple

import torch

from cognet.core.encoding import rate_encode

from .base import Batch, Task, eprop_recommended


@dataclass
class EvidenceParams:
    n_cues: int = 7
    t_cue_ms: float = 100.0
    t_interval_ms: float = 150.0
    t_delay_ms: float = 1200.0  # from the last cue slot to the end of the trial (recall included)
    recall_ms: float = 150.0
    p_group: float = 0.3
    neurons_per_channel: int = 10
    rate_on_hz: float = 40.0
    noise_hz: float = 10.0

    def validate(self, dt_ms: float) -> None:
        for key in ("t_cue_ms", "t_interval_ms", "t_delay_ms", "recall_ms"):
            val = getattr(self, key)
            steps = val / dt_ms
            if not (val > 0 and abs(steps - round(steps)) < 1e-9):
                raise ValueError(f"task.{key}={val} must be a positive multiple of dt_ms={dt_ms}")
        if self.n_cues < 1 or self.n_cues % 2 == 0:
            raise ValueError(f"task.n_cues must be a positive odd number, got {self.n_cues}")
        if self.t_cue_ms > self.t_interval_ms:
            raise ValueError(f"task.t_cue_ms={self.t_cue_ms} must not exceed task.t_interval_ms={self.t_interval_ms}")
        if self.recall_ms > self.t_delay_ms:
            raise ValueError(f"task.recall_ms={self.recall_ms} must not exceed task.t_delay_ms={self.t_delay_ms}")
        if not 0 <= self.p_group <= 1:
            raise ValueError(f"task.p_group must be in [0, 1], got {self.p_group}")
        if self.neurons_per_channel < 1:
            raise ValueError(f"task.neurons_per_channel must be >= 1, got {self.neurons_per_channel}")
        if self.rate_on_hz <= 0 or not 0 <= self.noise_hz <= self.rate_on_hz:
            raise ValueError(f"task.rate_on_hz must be > 0 and >= task.noise_hz, got {self.rate_on_hz} / {self.noise_hz}")
        if self.rate_on_hz * dt_ms / 1000.0 > 1:
            raise ValueError(f"task.rate_on_hz={self.rate_on_hz} is above one spike per step at dt_ms={dt_ms}")


class EvidenceTask(Task):
    name = "evidence"
    summary = "evidence accumulation (e-prop Fig. 3): 7 left/right cues, after a delay answer the majority side"
    Params = EvidenceParams
    output = "classes"
    stop_metric = "sequence_accuracy"
    #: the e-prop tutorial's network: 50 LIF + 50 ALIF, v_th 0.6, tau_m 20 ms, tau_a 2 s,
    #: n_ref 5 ms, beta = 1.7 (1 - rho) / (1 - alpha) (LSNN beta 1.7 converted), tau_out 20 ms,
    #: rate target 10 Hz with the tutorial's regulariser strength (c_reg = 1 on sum_j (r_j/kHz - 0.01)^2
    #: equals train.rate_reg = 0.01 in cognet's normalised form c mean_j ((r_j - f0) / f0)^2, n = 100);
    #: batch 32; early stop at error < 7 %
    recommended: Dict[str, Any] = {
        "network.n_rec": 100,
        "network.alif_fraction": 0.5,
        "network.v_th": 0.6,
        "network.tau_mem_ms": 20.0,
        "network.tau_adapt_ms": 2000.0,
        "network.beta": 1.7 * (1 - math.exp(-1 / 2000.0)) / (1 - math.exp(-1 / 20.0)),
        "network.refractory_ms": 5.0,
        "network.tau_out_ms": 20.0,
        "network.input_scale": 1.0 / 0.6,  # W_in ~ N(0, 1 / n_in) as in the tutorial
        "network.rec_scale": 1.0 / 0.6,  # W_rec ~ N(0, 1 / n_rec)
        "train.rate_target_hz": 10.0,
        "train.rate_reg": 0.01,
        "train.batch_size": 32,
        "train.lr": 0.005,
        "train.iterations": 500,
        "train.eval_every": 25,
        "train.target_accuracy": 0.93,
    }
    #: BPTT through the 2250 steps explodes with the e-prop pseudo-derivative's peak 0.3
    #: (gradient norm inf at iteration 31); with peak 0.1 it trains (0.945 after 80 iterations)
    #: e-prop: the wider network of the other tasks, up to 1000 iterations, and a stopping bar above
    #: the tutorial's 93 % so that it is not what sets the gap to BPTT (which overshoots it)
    recommended_for_rule: Dict[str, Dict[str, Any]] = {
        "bptt": {"surrogate.peak": 0.1},
        **eprop_recommended({"train.iterations": 1000, "train.target_accuracy": 0.97}),
    }

    # -- timing -----------------------------------------------------------------------------
    def _steps(self, ms: float) -> int:
        return int(round(ms / self.dt_ms))

    @property
    def steps_per_symbol(self) -> int:
        """The activity grid: the largest step that divides every phase boundary."""
        p = self.params
        parts = [self._steps(p.t_cue_ms), self._steps(p.t_interval_ms - p.t_cue_ms), self._steps(p.t_delay_ms),
                 self._steps(p.recall_ms), self._steps(p.t_interval_ms)]
        g = 0
        for v in parts:
            g = math.gcd(g, v)
        return max(g, 1)

    @property
    def T(self) -> int:
        p = self.params
        return self._steps(p.t_interval_ms) * p.n_cues + self._steps(p.t_delay_ms)

    def n_symbol_steps(self) -> int:
        return self.T // self.steps_per_symbol

    def channels(self) -> List[str]:
        return ["left", "right", "recall", "noise"]

    @property
    def n_out(self) -> int:
        return 2

    def recall_window(self) -> Tuple[int, int]:
        return (self.T - self._steps(self.params.recall_ms), self.T)

    def phase_ranges(self) -> Dict[str, List[Tuple[int, int]]]:
        p = self.params
        cues_end = self._steps(p.t_interval_ms) * p.n_cues
        rs, re = self.recall_window()
        return {"cues": [(0, cues_end)], "delay": [(cues_end, rs)], "recall": [(rs, re)]}

    # -- trials ---------------------------------------------------------------------------------
    def sample(self, batch: int, generator: torch.Generator, split: str = "train") -> Batch:
        if batch < 1:
            raise ValueError("batch size must be >= 1")
        if split not in self.SPLITS:
            raise ValueError(f"split must be one of {list(self.SPLITS)}, got {split!r}")
        p = self.params
        k = self.steps_per_symbol
        S = self.n_symbol_steps()
        left_likely = torch.rand(batch, generator=generator) < 0.5
        p_left = torch.where(left_likely, torch.tensor(1.0 - p.p_group), torch.tensor(p.p_group))
        cue_right = (torch.rand(batch, p.n_cues, generator=generator) >= p_left[:, None]).long()  # [B, n_cues]
        active = torch.zeros(S, batch, 4)
        interval, cue = self._steps(p.t_interval_ms) // k, self._steps(p.t_cue_ms) // k
        gap = interval - cue
        trials = torch.arange(batch)
        for c in range(p.n_cues):
            start = c * interval + gap
            active[start:start + cue, trials, cue_right[:, c]] = 1.0
        rs, _ = self.recall_window()
        active[rs // k:, :, 2] = 1.0
        active[:, :, 3] = p.noise_hz / p.rate_on_hz
        x = rate_encode(active, k, p.neurons_per_channel, p.rate_on_hz, 0.0, self.dt_ms, generator)
        n_right = cue_right.sum(1)
        target = (n_right > p.n_cues // 2).long()[None, :]  # [1, B]
        mask = torch.ones(1, batch, dtype=torch.bool)
        info = {"cue_right": cue_right, "n_right": n_right.tolist()}
        return Batch(x=x, target=target, mask=mask, windows=[self.recall_window()], phases=self.phase_ranges(),
                     info=info, active=active, steps_per_symbol=k)

    def chance(self) -> Dict[str, float]:
        return {"bit_accuracy": 0.5, "sequence_accuracy": 0.5}

