"""Helpers every ``cognet`` command shares: user errors (exit code 2, no traceback) and output."""

from __future__ import annotations

from typing import Any, Dict, Sequence

import click

from cognet.training.io import dumps


class UserError(click.ClickException):
    exit_code = 2


def _fail(exc: BaseException) -> None:
    raise UserError(str(exc)) from None


USER_ERRORS: tuple = ()


def _user_errors() -> tuple:
    global USER_ERRORS
    if not USER_ERRORS:
        from cognet.training.config import ConfigError
        from cognet.training.io import CorruptFileError
        from cognet.training.trainer import TrainingDiverged

        USER_ERRORS = (ConfigError, CorruptFileError, TrainingDiverged, FileNotFoundError, ValueError)
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
