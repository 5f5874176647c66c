"""TensorBoard event files of a training run (``train.tensorboard = true``).

With the key set, :class:`~cognet.training.trainer.Trainer` hands every line it writes to
``metrics.jsonl`` to :meth:`TensorBoardLog.log` and, at the end, the resolved config and the
final held-out summary to :meth:`TensorBoardLog.finish`. The events land in
``RUN/tensorboard/`` (``torch.utils.tensorboard``; needs the optional package
``tensorboard``), so ``tensorboard --logdir runs/`` (or a sweep folder) shows every run:

* per training iteration (step = iteration): ``train/loss``, ``train/task_loss``,
  ``train/regulariser`` (the rate penalty), ``train/bit_accuracy``,
  ``train/sequence_accuracy``, ``train/mean_rate_hz``, ``train/grad_norm`` (before
  clipping; only with ``train.grad_clip > 0``), ``train/lr``;
* per evaluation on the validation stream: ``validation/bit_accuracy``,
  ``validation/sequence_accuracy``, ``validation/mean_rate_hz``, ``validation/silent_fraction``;
* at the end: the flattened config (``network.n_rec``, ``train.lr``, ``task.name``, ...) as
  HParams with the held-out test scores ``test/bit_accuracy``, ``test/sequence_accuracy``,
  ``test/mean_rate_hz``, ``test/silent_fraction`` as its metrics (also written as scalars at
  the last iteration), so the HParams tab compares every run of a sweep.

A resumed run purges the events after its checkpoint (``purge_step``), as it drops those
lines of ``metrics.jsonl``. The key is left out of the stored config when false, so it
never changes the config hash of a run that does not use it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

from cognet.core.errors import ConfigError

TRAIN_TAGS = {
    "loss": "train/loss", "task_loss": "train/task_loss", "reg_loss": "train/regulariser",
    "bit_accuracy": "train/bit_accuracy", "sequence_accuracy": "train/sequence_accuracy",
    "mean_rate_hz": "train/mean_rate_hz", "grad_norm": "train/grad_norm", "lr": "train/lr",
}
EVAL_TAGS = {
    "bit_accuracy": "validation/bit_accuracy", "sequence_accuracy": "validation/sequence_accuracy",
    "mean_rate_hz": "validation/mean_rate_hz", "silent_fraction": "validation/silent_fraction",
}
TEST_METRICS = {k: f"test/{k}" for k in ("bit_accuracy", "sequence_accuracy", "mean_rate_hz", "silent_fraction")}
#: config keys that are not hyperparameters (they say where and how output goes)
NOT_HPARAMS = ("train.tensorboard",)


def flatten_config(d: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    """``{"network": {"n_rec": 100}}`` -> ``{"network.n_rec": 100}``; values TensorBoard's
    HParams accept (bool, int, float, str; lists and None as JSON text)."""
    out: Dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten_config(v, key + "."))
        elif isinstance(v, (bool, int, float, str)):
            out[key] = v
        else:
            out[key] = json.dumps(v)
    return {k: v for k, v in out.items() if k not in NOT_HPARAMS}


class TensorBoardLog:
    """Event-file writer for one run (see the module docstring)."""

    def __init__(self, log_dir, purge_step: Optional[int] = None) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("train.tensorboard=true needs the optional package tensorboard: "
                              "pip install tensorboard (or pip install 'cognet[tensorboard]')") from None
        self.log_dir = Path(log_dir)
        self.writer = SummaryWriter(log_dir=str(self.log_dir), purge_step=purge_step)

    def log(self, row: Mapping[str, Any]) -> None:
        """One ``metrics.jsonl`` line: a training iteration, or an evaluation (``eval: true``)."""
        step = int(row["iteration"])
        tags = EVAL_TAGS if row.get("eval") else TRAIN_TAGS
        for key, tag in tags.items():
            v = row.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                self.writer.add_scalar(tag, float(v), step)
        if row.get("eval"):
            self.writer.flush()

    def finish(self, config: Mapping[str, Any], summary: Mapping[str, Any]) -> None:
        """The config as HParams with the final held-out (test) scores as metrics; closes the files."""
        from torch.utils.tensorboard.summary import hparams

        metrics = {tag: float(summary[k]) for k, tag in TEST_METRICS.items() if k in summary}
        exp, ssi, sei = hparams(flatten_config(config), metrics)
        fw = self.writer._get_file_writer()  # noqa: SLF001 - the run's own file, not add_hparams' sub-run
        for s in (exp, ssi, sei):
            fw.add_summary(s)
        step = int(summary.get("iterations", 0))
        for tag, v in metrics.items():
            self.writer.add_scalar(tag, v, step)
        self.close()

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
