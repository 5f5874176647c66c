"""The ``cognet`` command line: the only layer that parses arguments or prints.

* :mod:`cognet.cli.main`: the group and ``tasks``, ``rules``, ``train``, ``eval``, ``demo``;
* :mod:`cognet.cli.verify`, :mod:`cognet.cli.analysis`, :mod:`cognet.cli.experiment`: the other commands;
* :mod:`cognet.cli.task_script`: ``python -m tasks.<name>``;
* :mod:`cognet.cli.common`: user errors (exit code 2) and output helpers.
"""

from .main import main

__all__ = ["main"]


def __getattr__(name: str):
    """cognet 0.1's ``cognet.cli`` module names (``train_cmd``, ...) live in :mod:`cognet.cli.main`."""
    import importlib

    if name.startswith("__"):
        raise AttributeError(name)
    try:
        return getattr(importlib.import_module("cognet.cli.main"), name)
    except AttributeError:
        raise AttributeError(f"module 'cognet.cli' has no attribute {name!r}") from None
