"""Task generators for cognet: inputs, targets, answer windows, spike encodings, scoring.

``get_task(name, overrides, dt_ms)`` builds a task from its registered name; ``TASKS``
maps names to classes. Add a task by subclassing :class:`tasks.base.Task` and calling
:func:`register`.

Every task also runs as a script with the options of ``cognet train``::

    python -m tasks.<module> [cognet train options]  ==  cognet train --task <name> [options]

where ``<module>`` is the task name with dashes replaced by underscores (``copy``,
``reverse``, ``duplicate``, ``dup_rev`` for dup-rev, ``store_recall`` for store-recall,
``xor``, ``parity``, ``add``, ``subtract``, ``compare``, ``multiply``, ``count``, ``digits``). The
task classes live in bitstrings.py, multitask.py, memory.py, accumulation.py, arithmetic.py and
images.py; the script
modules only call :func:`cognet.cli.task_script.run`.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Type

from .base import Batch, EncodingParams, Task, params_from_dict

TASKS: Dict[str, Type[Task]] = {}


def register(cls: Type[Task]) -> Type[Task]:
    if not cls.name or cls.name in TASKS:
        raise ValueError(f"task name {cls.name!r} is empty or already registered")
    TASKS[cls.name] = cls
    return cls


def get_task_class(name: str) -> Type[Task]:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; available: {', '.join(sorted(TASKS))}")
    return TASKS[name]


def get_task(name: str, overrides: Optional[Mapping[str, Any]] = None, dt_ms: float = 1.0) -> Task:
    cls = get_task_class(name)
    params = params_from_dict(cls.Params, dict(overrides or {}), where="task")
    return cls(params, dt_ms=dt_ms)


from .arithmetic import AddTask, CompareTask, CountTask, MultiplyTask, SubtractTask  # noqa: E402
from .bitstrings import CopyTask, DuplicateTask, ReverseTask  # noqa: E402
from .accumulation import EvidenceTask  # noqa: E402
from .memory import ParityTask, StoreRecallTask, XorTask  # noqa: E402
from .images import DigitsTask  # noqa: E402
from .multitask import DupRevTask  # noqa: E402

for _cls in (CopyTask, ReverseTask, DuplicateTask, DupRevTask, StoreRecallTask, XorTask, ParityTask,
             AddTask, SubtractTask, CompareTask, MultiplyTask, CountTask, EvidenceTask, DigitsTask):
    register(_cls)


def suite_tasks() -> list:
    """Sorted names of the registered tasks of the symbolic suite (``Task.in_suite``): what
    experiments and ``cognet reproduce`` mean by all tasks (digits is left out)."""
    return sorted(name for name, cls in TASKS.items() if getattr(cls, "in_suite", True))


def script_module(name: str) -> str:
    """The module that runs task ``name`` as a script: ``python -m tasks.<module>``
    (a dash in the task name becomes an underscore, e.g. store-recall -> tasks.store_recall)."""
    return "tasks." + name.replace("-", "_")

__all__ = ["Batch", "EncodingParams", "Task", "TASKS", "get_task", "get_task_class", "register", "script_module",
           "suite_tasks"]
