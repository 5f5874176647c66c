"""Run one task as a script: ``python -m tasks.<module> [options]`` is
``cognet train --task <name> [options]`` (the same options, help and exit codes)."""

from __future__ import annotations

import sys
from typing import Optional, Sequence


def run(name: str, argv: Optional[Sequence[str]] = None) -> None:
    """Call the ``cognet train`` command with ``--task name`` prepended to ``argv``."""
    from cognet.cli.main import train_cmd

    import tasks

    args = list(sys.argv[1:] if argv is None else argv)
    module = tasks.script_module(name)
    if any(a == "--task" or a.startswith("--task=") for a in args):
        sys.stderr.write(f"Error: python -m {module} trains task {name!r}; do not pass --task "
                         f"(use `cognet train --task ...` for another task)\n")
        raise SystemExit(2)
    train_cmd.main(args=["--task", name, *args], prog_name=f"python -m {module}")
