"""Helpers every ``cognet`` command shares: user errors (exit code 2, no traceback) and output.

A failure the user can act on (bad config, corrupt or locked file, divergence, an OS error
such as a read-only or full disk, a file nested too deeply, an impossible size) ends with
``Error: <message>`` on stderr and exit code 2. ``cognet --debug ...`` (or ``COGNET_DEBUG=1``)
re-raises it instead, with its traceback.
"""

from __future__ import annotations

import errno
import os
from typing import Any, Dict, Sequence

import click

from cognet.training.io import dumps


class UserError(click.ClickException):
    exit_code = 2


DEBUG = {"on": bool(os.environ.get("COGNET_DEBUG"))}


def describe_error(exc: BaseException) -> str:
    """The one-line message for a user error (OS errors name the file and the cause)."""
    if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError) and exc.strerror:
        where = exc.filename if exc.filename is not None else "a file"
        hint = {errno.ENOSPC: "; free some disk space and run the command again (it resumes)",
                errno.EACCES: "; the folder is not writable: choose another with --out",
                errno.EROFS: "; the file system is read-only: choose another folder with --out",
                errno.ENOTDIR: "; a path component is a file, not a folder",
                errno.EEXIST: "; a file of that name is in the way"}.get(exc.errno, "")
        return f"cannot write or read {where}: {exc.strerror}{hint}"
    if isinstance(exc, FileNotFoundError) and exc.strerror and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror}"
    if isinstance(exc, RecursionError):
        return "input nested too deeply (a YAML/JSON file or value with thousands of levels)"
    if isinstance(exc, MemoryError):
        return "out of memory: lower network.n_rec, train.batch_size or --trials"
    return str(exc)


def _fail(exc: BaseException) -> None:
    if DEBUG["on"]:
        raise exc
    raise UserError(describe_error(exc)) from None


USER_ERRORS: tuple = ()


def _user_errors() -> tuple:
    global USER_ERRORS
    if not USER_ERRORS:
        from cognet.training.config import ConfigError
        from cognet.training.io import CorruptFileError, RunDirBusy
        from cognet.training.trainer import TrainingDiverged

        USER_ERRORS = (ConfigError, CorruptFileError, RunDirBusy, TrainingDiverged, ValueError, OSError,
                       RecursionError, OverflowError, MemoryError)
    return USER_ERRORS


def emit(result: Dict[str, Any], as_json: bool, lines: Sequence[str] = ()) -> None:
    if as_json:
        click.echo(dumps(result, indent=None))
    else:
        for line in lines:
            click.echo(line)




def _load_plugins(ctx: click.Context, param: click.Parameter, value) -> None:
    if not value:
        return
    from cognet.core.errors import ConfigError
    from cognet.training import plugins

    try:
        plugins.add_to_env(value)
        plugins.ensure_loaded(value)
    except ConfigError as exc:
        _fail(exc)


def plugin_option() -> click.Option:
    """``--plugin MODULE`` (repeatable): import a module that registers tasks or rules first."""
    return click.Option(["--plugin", "plugins"], multiple=True, metavar="MODULE", is_eager=True, expose_value=False,
                        callback=_load_plugins,
                        help="import MODULE first: it registers tasks or rules (repeatable; also COGNET_PLUGINS)")
