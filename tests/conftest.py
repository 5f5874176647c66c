import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

torch.set_num_threads(1)


@pytest.fixture
def tiny_sets():
    """--set items for a tiny, fast training configuration."""
    return ["network.n_rec=20", "train.iterations=6", "train.batch_size=8", "train.eval_every=3",
            "train.eval_trials=16", "train.checkpoint_every=2"]


@pytest.fixture
def kill_at():
    """``kill_at(cfg, out, iteration)``: run a trainer in ``out`` that is killed (a
    KeyboardInterrupt) once ``iteration`` steps are done, as a kill -9 between checkpoints."""
    from cognet.training.trainer import Trainer

    def run(cfg, out, iteration):
        t = Trainer(cfg, out, progress=False)
        step = t.rule.step

        def killed(batch):
            if t.iteration == iteration:
                raise KeyboardInterrupt
            return step(batch)

        t.rule.step = killed
        with pytest.raises(KeyboardInterrupt):
            t.run()
        return t

    return run
