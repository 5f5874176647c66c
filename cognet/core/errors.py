"""Errors shared by every layer (defined at the bottom so that tasks and rules can raise them)."""


class ConfigError(ValueError):
    """A configuration value or key is wrong; the message names it."""


class MissingExtra(ConfigError):
    """A task or feature needs an optional dependency (a ``cognet[extra]``) that is not installed;
    the message names the ``pip install`` command."""
