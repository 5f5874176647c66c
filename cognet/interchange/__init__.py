"""Moving trained networks and their activity to other tools.

Each export format is a module of this package with a function
``export_run(run_dir: Path, out: Path, **options) -> dict`` (the dict describes what was
written; the CLI prints it). :data:`EXPORTERS` maps a format name to ``"module:function"``
so that ``cognet export RUN --format NAME --out PATH`` can list and load them lazily.
Importers work the same way through :data:`IMPORTERS` (``import_file(path, out, **options)``).

This package sits one layer above :mod:`cognet.brian` and ``analysis``: it reads run
directories (:mod:`cognet.training`) and may use the Brian2 bridge (the ``brian2`` format
generates its script from the bridge's NeuronModel), never the CLI or the experiments.
"""

from __future__ import annotations

import importlib
from typing import Callable, Dict

#: format name -> "module:function"; each module adds its own line here
EXPORTERS: Dict[str, str] = {
    "nir": "cognet.interchange.nir:export_run",
    "brian2": "cognet.interchange.brian2_script:export_run",
    "nwb": "cognet.interchange.nwb:export_run",
    "tensorboard": "cognet.interchange.tensorboard_events:export_run",
}
#: format name -> "module:function"
IMPORTERS: Dict[str, str] = {
    "nir": "cognet.interchange.nir:import_file",
}


def _load(table: Dict[str, str], kind: str, name: str) -> Callable:
    if name not in table:
        raise ValueError(f"unknown {kind} format {name!r}; available: {', '.join(sorted(table)) or 'none'}")
    module, func = table[name].split(":")
    return getattr(importlib.import_module(module), func)


def exporter(name: str) -> Callable:
    """The ``export_run`` function of format ``name``."""
    return _load(EXPORTERS, "export", name)


def importer(name: str) -> Callable:
    """The ``import_file`` function of format ``name``."""
    return _load(IMPORTERS, "import", name)
