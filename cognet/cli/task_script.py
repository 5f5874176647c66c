"""Run one task as a script: ``python -m tasks.<module> [options]`` is
``cognet train --task <name> [options]`` (the same options, help and exit codes)."""

from __future__ import annotations

import sys
from typing import Optional, Sequence


def script_command(name: str):
    """``cognet train`` for one task: the same options except ``--task`` (fixed, so hidden from
    the help)."""
    import copy

    from cognet.cli.main import train_cmd

    cmd = copy.copy(train_cmd)
    cmd.params = []
    for p in train_cmd.params:
        if p.name == "task":
            p = copy.copy(p)
            p.hidden = True
        cmd.params.append(p)
    cmd.help = f"Train task {name!r}, as `cognet train --task {name}` does; resumes an interrupted run in the same --out."
    return cmd


def run(name: str, argv: Optional[Sequence[str]] = None) -> None:
    """Call the ``cognet train`` command with ``--task name`` prepended to ``argv`` (``-h`` and
    ``--help`` show its help, without ``--task``)."""
    import tasks

    args = list(sys.argv[1:] if argv is None else argv)
    module = tasks.script_module(name)
    if any(a == "--task" or a.startswith("--task=") for a in args):
        sys.stderr.write(f"Error: python -m {module} trains task {name!r}; do not pass --task "
                         f"(use `cognet train --task ...` for another task)\n")
        raise SystemExit(2)
    script_command(name).main(args=["--task", name, *args], prog_name=f"python -m {module}",
                              help_option_names=["-h", "--help"])
