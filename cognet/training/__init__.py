"""The run machinery: configuration, the trainer, run files and spike records.

* :mod:`cognet.training.config`: :class:`RunConfig` and :func:`build_config` (every key validated);
* :mod:`cognet.training.trainer`: :class:`Trainer`, :func:`train`, :func:`eval_run`;
* :mod:`cognet.training.model`: build, save and load a network (``model.safetensors``);
* :mod:`cognet.training.io`: atomic writes, safetensors and JSON files;
* :mod:`cognet.training.records`: held-out spike records;
* :mod:`cognet.training.plugins`: third-party tasks and rules (entry points, ``--plugin``).
"""

from .config import ConfigError, RunConfig, build_config
from .model import load_model, save_model
from .trainer import Trainer, TrainingDiverged, eval_run, train

__all__ = ["ConfigError", "RunConfig", "Trainer", "TrainingDiverged", "build_config", "eval_run", "load_model",
           "save_model", "train"]
