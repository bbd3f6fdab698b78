"""Which settings each command reads, and those settings: the environment over
``MEMQ_HOME/settings.toml``, checked as far as the command uses them."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Final

from memq import env as memq_env
from memq.config import SETTINGS_BY_KEY, SettingError, Settings
from memq.env import Sources

# The settings each command reads. A command refuses a bad value only among these, so that
# MEMQ_LINGER=-1 stops the daemon, not `memq status`. The daemon (serve) checks them all.
CLIENT_SETTINGS: Final = frozenset({"port"})  # the daemon's address; the home always counts
SETTINGS_USED: Final[Mapping[str, frozenset[str]]] = {
    "stop": frozenset({"port", "shutdown_grace"}),
    "install": frozenset(),  # it checks what it records (memq.cli.setup_commands)
    "migrate": frozenset({"database_url", "synchronous"}),
    "keys": frozenset({"database_url", "synchronous"}),
}
# Commands that need neither the home nor the settings file: they work whatever is in it.
WITHOUT_SETTINGS: Final = frozenset({"hook", "uninstall"})
HOME_IS_NOT_A_SETTING: Final = (
    "home is not a setting of settings.toml, which lives in the home: set MEMQ_HOME "
    "(memq install puts it into the hook command)"
)


def is_global_config(parsed: argparse.Namespace) -> bool:
    """Whether the command is ``memq config --global ...``."""
    return parsed.command == "config" and bool(getattr(parsed, "global_settings", False))


def command_settings(parsed: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
    """The settings of the command ``parsed``: the environment ``environ`` laid over the
    settings file, checked as far as the command uses them.

    Raises:
        SettingError: the settings file cannot be read, or a setting the command uses has
            a bad value (naming the variable, or the key and the file); for ``serve``, also
            a key in the file that is no setting.
    """
    command = parsed.command
    if command in WITHOUT_SETTINGS:
        return Settings.from_env(environ, only=())
    sources = memq_env.environment(environ)
    if sources.unknown:
        problem = unknown_keys_problem(sources)
        if command == "serve":
            raise SettingError(problem)
        print(f"memq: warning: {problem}", file=sys.stderr)
    if command == "serve":
        return Settings.from_env(sources)
    uses = frozenset() if is_global_config(parsed) else SETTINGS_USED.get(command, CLIENT_SETTINGS)
    return Settings.from_env(sources, only=uses)


def unknown_keys_problem(sources: Sources) -> str:
    """What to say about the keys of the settings file that are no setting."""
    if "home" in sources.unknown:
        return f"{sources.file}: {HOME_IS_NOT_A_SETTING}"
    keys = ", ".join(sources.unknown)
    return (
        f"{sources.file}: no setting is called {keys} (known: {', '.join(SETTINGS_BY_KEY)}); "
        "memq config --global KEY --unset removes one"
    )
