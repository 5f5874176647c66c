"""Third-party tasks and rules: entry points, ``--plugin MODULE`` and ``COGNET_PLUGINS``.

A plug-in is an importable module that registers tasks (:func:`tasks.register`) or rules
(:func:`rules.register`) when imported. cognet finds plug-ins three ways:

* **entry points** in the groups ``cognet.tasks`` and ``cognet.rules`` of any installed
  distribution; an entry point names a module (imported) or a class (registered)::

      [project.entry-points."cognet.tasks"]
      my-xor = "my_package.tasks:MyXorTask"

* **the environment**: ``COGNET_PLUGINS=mod_a,mod_b`` (commas or ``os.pathsep``);
* **the command line**: ``--plugin MODULE`` on every command that trains or loads a run
  (it also extends ``COGNET_PLUGINS``, so sweep workers and other child processes see it).

A run directory whose task or rule came from a plug-in records that module in
``plugins.json``; :func:`load_run_plugins` imports it again before the run is read, so
``cognet eval DIR`` works in a fresh shell without ``--plugin``. ``plugins.json`` is not
part of the configuration (the run's config hash does not depend on where a class lives).
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import sys
from importlib import metadata
from pathlib import Path
from typing import Dict, Iterable, List, Optional

import rules
import tasks

from cognet.core.errors import ConfigError

ENV = "COGNET_PLUGINS"
GROUPS = {"cognet.tasks": "task", "cognet.rules": "rule"}
PLUGINS_FILE = "plugins.json"
BUILTIN_PACKAGES = ("tasks", "rules")
_MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")

_entry_points_loaded = False


def _register(obj, kind: str, where: str) -> None:
    """Register a class found through an entry point (modules register themselves on import)."""
    if inspect.ismodule(obj):
        return
    registry, base, register = ((tasks.TASKS, tasks.Task, tasks.register) if kind == "task"
                                else (rules.RULES, rules.LearningRule, rules.register))
    if not (inspect.isclass(obj) and issubclass(obj, base)):
        raise ConfigError(f"entry point {where} is neither a module nor a {base.__name__} subclass")
    if registry.get(obj.name) is obj:
        return
    register(obj)


def _import_here_too(module: str) -> None:
    """Import ``module``; if it is not found, look in the current directory too (last on the
    path, so that it never shadows an installed package: ``python -m cognet`` and the console
    script leave the current directory off ``sys.path``, see ``cognet/__main__.py``)."""
    try:
        importlib.import_module(module)
        return
    except ModuleNotFoundError as exc:
        here = os.getcwd()
        top = module.split(".")[0]
        if exc.name != top or here in sys.path or "" in sys.path:
            raise
    sys.path.append(here)
    importlib.import_module(module)


def import_plugin(module: str) -> None:
    """Import plug-in ``module`` (a dotted module name; a module in the current directory is
    found too), with a clear error if it fails."""
    module = module.strip()
    if not _MODULE_RE.match(module):
        raise ConfigError(f"plug-in {module!r} is not a module name (e.g. my_package.tasks)")
    try:
        _import_here_too(module)
    except ConfigError:
        raise
    except Exception as exc:  # an ImportError or an error inside the plug-in module
        raise ConfigError(f"plug-in module {module!r} could not be imported: {type(exc).__name__}: {exc}") from None


def env_modules() -> List[str]:
    raw = os.environ.get(ENV, "")
    return [m.strip() for m in re.split(r"[,%s]" % re.escape(os.pathsep), raw) if m.strip()]


def add_to_env(modules: Iterable[str]) -> None:
    """Append ``modules`` to ``COGNET_PLUGINS`` (so child processes load them too)."""
    current = env_modules()
    new = [m for m in modules if m not in current]
    if new:
        os.environ[ENV] = ",".join(current + new)


def ensure_loaded(modules: Iterable[str] = ()) -> None:
    """Load entry-point plug-ins (once), the modules in ``COGNET_PLUGINS`` and ``modules``."""
    global _entry_points_loaded
    if not _entry_points_loaded:
        _entry_points_loaded = True
        for group, kind in GROUPS.items():
            for ep in metadata.entry_points(group=group):
                where = f"{ep.name} = {ep.value} (group {group})"
                try:
                    obj = ep.load()
                except Exception as exc:
                    raise ConfigError(f"entry point {where} could not be loaded: {type(exc).__name__}: {exc}") from None
                _register(obj, kind, where)
    for m in [*env_modules(), *modules]:
        import_plugin(m)


def _origin(kind: str, name: str) -> Optional[str]:
    """The module that defines task/rule ``name`` if it is not one of cognet's own."""
    try:
        cls = tasks.get_task_class(name) if kind == "task" else rules.get_rule_class(name)
    except ValueError:
        return None
    mod = cls.__module__
    if mod.split(".")[0] in BUILTIN_PACKAGES:
        return None
    return mod


def plugin_record(task: str, rule: str) -> Dict[str, str]:
    """``{"task": module, "rule": module}`` for the parts of a run that come from plug-ins."""
    rec = {}
    for kind, name in (("task", task), ("rule", rule)):
        mod = _origin(kind, name)
        if mod is not None:
            rec[kind] = mod
    return rec


def write_run_plugins(run_dir: Path, task: str, rule: str) -> None:
    from cognet.training.io import write_json

    rec = plugin_record(task, rule)
    path = Path(run_dir) / PLUGINS_FILE
    if rec:
        write_json(path, {"task_name": task, "rule_name": rule, "modules": rec})
    elif path.exists():
        path.unlink()


def load_run_plugins(run_dir: Path) -> List[str]:
    """Import the plug-in modules a run directory records (see the module docstring)."""
    from cognet.training.io import CorruptFileError, read_json

    ensure_loaded()
    path = Path(run_dir) / PLUGINS_FILE
    if not path.exists():
        return []
    data = read_json(path)
    mods = data.get("modules") if isinstance(data, dict) else None
    if not isinstance(mods, dict) or not all(isinstance(v, str) for v in mods.values()):
        raise CorruptFileError(f"{path} is not a cognet plug-in record (expected {{'modules': {{...}}}})")
    for m in mods.values():
        import_plugin(m)
    return list(mods.values())
