"""The module paths of cognet 0.1 before the re-layout, kept importable.

``import cognet.config`` (and the other old flat modules) still works: a meta-path finder
maps each old name to its new module and returns *that module object* (so monkeypatching
either name patches the same thing), with a :class:`DeprecationWarning` naming the new path.
Nothing is imported until an old name is asked for.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

OLD_TO_NEW = {
    "cognet.params": "cognet.core.params",
    "cognet.functional": "cognet.core.functional",
    "cognet.surrogate": "cognet.core.surrogate",
    "cognet.network": "cognet.core.network",
    "cognet.encoding": "cognet.core.encoding",
    "cognet.config": "cognet.training.config",
    "cognet.train": "cognet.training.trainer",
    "cognet.model": "cognet.training.model",
    "cognet.io": "cognet.training.io",
    "cognet.records": "cognet.training.records",
    "cognet.brian2_bridge": "cognet.brian.bridge",
    "cognet.verify": "cognet.brian.replay",
    "cognet.sweep": "cognet.experiments.sweep",
    "cognet.reproduce": "cognet.experiments.reproduce",
}


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, new: str) -> None:
        self.new = new

    def create_module(self, spec):
        warnings.warn(f"{spec.name} moved to {self.new}; import it from there", DeprecationWarning, stacklevel=3)
        return importlib.import_module(self.new)

    def exec_module(self, module) -> None:  # the real module is already executed
        pass


class _AliasFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        new = OLD_TO_NEW.get(fullname)
        if new is None:
            return None
        return importlib.util.spec_from_loader(fullname, _AliasLoader(new))


def install() -> None:
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.append(_AliasFinder())
