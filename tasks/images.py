"""Image tasks. ``digits``: classify scikit-learn's 8x8 handwritten digits
(``sklearn.datasets.load_digits``, 1797 images of 16 grey levels, shipped with scikit-learn: no
download; ``pip install cognet[vision]``) shown as spike trains. ``python -m tasks.digits
[options]`` == ``cognet train --task digits [options]``.

Trial: one image shown for ``step_ms`` (one symbol step of ``step_ms / dt`` steps); input
neuron ``8 h + w`` is pixel ``(h, w)``, intensity ``a = pixel / 16`` in [0, 1]. Coding
(``task.coding``)::

    rate     (default)  x[t, i] ~ Bernoulli(a_i * rate_on_hz * dt)        every step, fresh per trial
    latency             x[t, i] = 1 at t = round((1 - a_i) (latency_steps - 1)) if a_i > 0, else never

Rate coding is the default: it is the coding the other tasks use (the same
:func:`cognet.core.encoding.rate_encode`, seeded from the batch generator), every bright pixel
keeps driving the conv layer through the whole presentation, and BPTT trains it quickly;
latency coding sends one spike per pixel (fewer input spikes) but leaves the answer to a
few early spikes. The presentation (40 ms at 500 Hz for a full pixel) and the rate target of
the recurrent neurons (20 Hz) were chosen against spike noise: at 30 ms, 300 Hz and 10 Hz the
test accuracy of one trained network varied from 0.936 to 0.972 between passes over the
same test images with fresh spikes (most errors were not the same images each time), and
runs with such settings scored 0.936-0.953 on the test images. The run ends with its last weights
(``train.keep_best`` off): one validation pass of 179 images is within its noise (about
+-0.01) from iteration 400 on, and with ``keep_best`` seed 1 selected iteration 150 (a tie
with iteration 650, which the earlier evaluation wins). The answer is read in the last ``answer_fraction`` of the presentation:
10 classes, softmax cross-entropy (as ``compare``); ``sequence_accuracy`` = ``bit_accuracy``
= the fraction of images classified right.

Split (fixed, independent of the run seed): per class, the images are shuffled with
``numpy.random.default_rng(split_seed)``; the first ``round(test_fraction * count)`` of each
class are the held-out **test** images (359 of 1797 at the defaults), the next
``round(val_fraction * count)`` the **validation** images (``eval``, 179: the validation curve,
early stopping and ``train.keep_best`` if asked for), the rest (1259) the **training** images. Training batches draw training images
uniformly with replacement; a held-out batch of ``b`` trials draws ``b`` distinct images of
its split (a fresh permutation from the generator; more trials than images take several
permutations), so the test pass of ``train.eval_trials = 359`` (recommended) scores each
test image exactly once (``held_out_batch`` makes the evaluation one batch).
``train_images > 0`` keeps only the first that many training images (tiny test settings).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from cognet.core.errors import MissingExtra

from .base import EncodingParams, Task
from .common import check_choice

CODINGS = ("rate", "latency")
INSTALL_HINT = "task digits needs scikit-learn, which ships the 8x8 digit images: pip install cognet[vision]"

_DATA: Optional[Tuple[np.ndarray, np.ndarray]] = None


def load_images() -> Tuple[np.ndarray, np.ndarray]:
    """``(images [1797, 64] float64 in [0, 1], labels [1797] int64)``, cached;
    :class:`MissingExtra` naming ``pip install cognet[vision]`` without scikit-learn."""
    global _DATA
    if _DATA is None:
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            raise MissingExtra(INSTALL_HINT) from None
        d = load_digits()
        _DATA = (np.asarray(d.data, dtype=np.float64) / 16.0, np.asarray(d.target, dtype=np.int64))
    return _DATA


def split_indices(labels: np.ndarray, test_fraction: float, val_fraction: float, seed: int) -> Dict[str, np.ndarray]:
    """Stratified, deterministic split of image indices into ``train``/``eval``/``test``
    (see the module docstring); each array is sorted."""
    rng = np.random.default_rng(seed)
    parts: Dict[str, List[np.ndarray]] = {"train": [], "eval": [], "test": []}
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(test_fraction * len(idx)))
        n_val = int(round(val_fraction * len(idx)))
        parts["test"].append(idx[:n_test])
        parts["eval"].append(idx[n_test:n_test + n_val])
        parts["train"].append(idx[n_test + n_val:])
    return {k: np.sort(np.concatenate(v)) for k, v in parts.items()}


@dataclass
class DigitsParams(EncodingParams):
    step_ms: float = 40.0  # presentation time of one image
    neurons_per_channel: int = 1  # one input neuron per pixel (fixed)
    rate_on_hz: float = 500.0  # rate of a full-intensity pixel (rate coding)
    answer_fraction: float = 0.5  # the readout is averaged over this last part of the presentation
    coding: str = "rate"  # rate | latency
    latency_steps: int = 10  # latency coding: spike times in the first latency_steps steps
    test_fraction: float = 0.2  # held-out test images per class
    val_fraction: float = 0.1  # validation images per class (early stopping)
    split_seed: int = 0  # the fixed split (not the run seed)
    train_images: int = 0  # > 0: keep only this many training images (tests)


class DigitsTask(Task):
    name = "digits"
    summary = ("classify scikit-learn's 8x8 handwritten digits (10 classes) from rate- or latency-coded pixel "
               "spikes; spiking conv front end (needs cognet[vision])")
    Params = DigitsParams
    output = "classes"
    image_shape = (1, 8, 8)
    held_out_batch = 4096
    in_suite = False  # not one of the symbolic tasks that "all tasks" sweeps run
    recommended = {
        "network.conv_channels": 8, "network.conv_kernel": 3, "network.conv_padding": 1, "network.conv_pool": 2,
        "network.n_rec": 100, "network.alif_fraction": 0.0,
        "train.iterations": 800, "train.batch_size": 64, "train.lr": 0.005, "train.eval_every": 50,
        "train.eval_trials": 359, "train.target_accuracy": 1.0, "train.keep_best": False,
        "train.rate_target_hz": 20.0, "train.rate_reg": 0.1,
    }

    def validate(self) -> None:
        p = self.params
        check_choice(p.coding, "coding", CODINGS)
        if p.neurons_per_channel != 1:
            raise ValueError(f"task.neurons_per_channel must be 1 for digits (one input neuron per pixel), "
                             f"got {p.neurons_per_channel}")
        if p.rate_on_hz * self.dt_ms / 1000.0 > 1.0:
            raise ValueError(f"task.rate_on_hz={p.rate_on_hz} gives a spike probability above 1 at dt={self.dt_ms} ms")
        if not (0 < p.test_fraction < 1 and 0 <= p.val_fraction < 1 and p.test_fraction + p.val_fraction < 1):
            raise ValueError("task.test_fraction must be in (0, 1), task.val_fraction in [0, 1), their sum below 1")
        if not 1 <= p.latency_steps <= self.steps_per_symbol:
            raise ValueError(f"task.latency_steps must be between 1 and the {self.steps_per_symbol} steps of an image")
        if p.train_images < 0 or p.split_seed < 0:
            raise ValueError("task.train_images and task.split_seed must be >= 0")

    def require(self) -> None:
        load_images()

    # -- the data ----------------------------------------------------------------------------
    def splits(self) -> Dict[str, np.ndarray]:
        """Image indices of the ``train`` / ``eval`` (validation) / ``test`` splits."""
        cached = getattr(self, "_splits", None)
        if cached is None:
            p = self.params
            _, labels = load_images()
            cached = split_indices(labels, p.test_fraction, p.val_fraction, p.split_seed)
            if p.train_images:
                cached["train"] = cached["train"][: p.train_images]
            if not len(cached["eval"]):  # val_fraction = 0: validate on training images
                cached["eval"] = cached["train"]
            self._splits = cached
        return cached

    def held_out_trials(self) -> int:
        """Every test image once (359 at the defaults)."""
        return int(len(self.splits()["test"]))

    def channels(self) -> List[str]:
        return [f"px{h}{w}" for h in range(8) for w in range(8)]

    @property
    def n_out(self) -> int:
        return 10

    def n_symbol_steps(self) -> int:
        return 1

    def phase_steps(self) -> Dict[str, List[Tuple[int, int]]]:
        return {"image": [(0, 1)]}

    def _draw(self, batch: int, g: torch.Generator, split: str) -> torch.Tensor:
        idx = torch.as_tensor(self.splits()[split])
        if split == "train":
            return idx[torch.randint(0, len(idx), (batch,), generator=g)]
        reps = -(-batch // len(idx))
        order = torch.cat([torch.randperm(len(idx), generator=g) for _ in range(reps)])[:batch]
        return idx[order]

    def _symbols_split(self, batch: int, g: torch.Generator, split: str):
        images, labels = load_images()
        which = self._draw(batch, g, split).numpy()
        active = torch.as_tensor(images[which], dtype=torch.float32)[None]  # [1, B, 64] intensities
        target = torch.as_tensor(labels[which])[None]  # [1, B]
        mask = torch.ones(1, batch, dtype=torch.bool)
        return active, target, mask, [0], {"image": which.tolist(), "label": labels[which].tolist()}

    def _symbols(self, batch: int, g: torch.Generator):
        return self._symbols_split(batch, g, "train")

    def sample(self, batch: int, generator: torch.Generator, split: str = "train"):
        out = super().sample(batch, generator, split)
        if self.params.coding == "latency":  # replace the rate code by one spike per lit pixel
            a = out.active[0]  # [B, 64]
            t = torch.round((1.0 - a) * (self.params.latency_steps - 1)).long()
            x = torch.zeros_like(out.x)
            b, i = torch.nonzero(a > 0, as_tuple=True)
            x[t[b, i], b, i] = 1.0
            out.x = x
        return out

    def chance(self) -> Dict[str, float]:
        """Always answering the most frequent class of the test split (0.1 before the data is
        available, e.g. in ``cognet tasks`` without scikit-learn)."""
        try:
            _, labels = load_images()
        except MissingExtra:
            return {"bit_accuracy": 0.1, "sequence_accuracy": 0.1}
        test = labels[self.splits()["test"]]
        top = float(np.bincount(test, minlength=10).max()) / len(test)
        return {"bit_accuracy": top, "sequence_accuracy": top}
