"""The CLI's side of memq's settings: which settings each command checks, ``memq config
--global`` (which edits ``MEMQ_HOME/settings.toml``), and what ``memq install`` records there.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from memq import env as memq_env
from memq.cli_client import EXIT_OK, EXIT_USAGE
from memq.config import (
    HIDDEN,
    SETTINGS,
    SETTINGS_BY_KEY,
    SettingError,
    Settings,
    SettingSpec,
    settings_report,
)
from memq.env import Source, Sources
from memq.settings_file import LIST_KEYS, format_value, read_table, variables_of, write_table
from memq.worker.status import setting_text, settings_lines

# The settings each command reads. A command refuses a bad value only among these, so that
# MEMQ_LINGER=-1 stops the daemon, not `memq status`. The daemon (serve) checks them all.
CLIENT_SETTINGS: Final = frozenset({"port"})  # the daemon's address; the home always counts
SETTINGS_USED: Final[Mapping[str, frozenset[str]]] = {
    "stop": frozenset({"port", "shutdown_grace"}),
    "install": frozenset(),  # it checks what it records (see record_environment)
}
# Settings only the hook reads (on every event); the daemon reads the others when it starts.
HOOK_ONLY: Final = frozenset({"hook_connect_timeout", "hook_timeout", "disabled"})
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


def add_settings(status: dict[str, Any], settings: Settings) -> None:
    """Give a ``memq status`` answer its ``settings``: those the running daemon reported it
    runs with, else those of this command (what a daemon started from here would use)."""
    if isinstance(status.get("settings"), dict) and status["settings"]:
        status["settings_view"] = "daemon"
    else:
        env = settings.environment if settings.environment is not None else os.environ
        status["settings"] = settings_report(env)
        status["settings_view"] = "cli"
    status["settings_file"] = str(settings.paths.settings_file)


# -- memq config --global ---------------------------------------------------------------------


def cmd_config_global(args: argparse.Namespace, settings: Settings) -> int:
    """``memq config --global [KEY [VALUE]] [--unset] [--json]``.

    The session command's positional arguments carry KEY and VALUE here: ``session`` is the
    KEY and ``key`` the VALUE.
    """
    key, value = getattr(args, "session", None), getattr(args, "key", None)
    problem = _usage_problem(args, key, value)
    if problem:
        print(f"memq config --global: {problem}", file=sys.stderr)
        return EXIT_USAGE
    env = settings.environment if settings.environment is not None else os.environ
    path = str(settings.paths.settings_file)
    try:
        if key is None:
            _show_all(env, path, as_json=args.json)
        elif args.unset:
            _unset(key, path)
        elif value is None:
            _show_one(_spec(key), env, as_json=args.json)
        else:
            _set(_spec(key), value, settings, env)
    except SettingError as exc:
        print(f"memq config --global: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def _usage_problem(args: argparse.Namespace, key: str | None, value: str | None) -> str | None:
    if getattr(args, "create", False):
        return "--create is for sessions"
    if getattr(args, "value", None) is not None:
        return "give one KEY and at most one VALUE"
    if args.unset and value is not None:
        return "give a VALUE or --unset, not both"
    if args.unset and key is None:
        return "name the setting to unset"
    return None


def _spec(key: str) -> SettingSpec:
    """The setting called ``key`` (or by its variable, MEMQ_PORT); ``SettingError`` if none."""
    name = key.strip()
    spec = SETTINGS_BY_KEY.get(name)
    if spec is None:
        spec = next((s for s in SETTINGS if s.variable == name), None)
    if spec is not None:
        return spec
    if name.lower() in ("home", "memq_home"):
        raise SettingError(HOME_IS_NOT_A_SETTING)
    raise SettingError(f"no setting is called {name!r} (known: {', '.join(SETTINGS_BY_KEY)})")


def _show_all(env: Mapping[str, str], path: str, *, as_json: bool) -> None:
    report = settings_report(env)
    if as_json:
        print(json.dumps({"file": path, "settings": report}, indent=2))
        return
    for line in settings_lines(report, path, every=True):
        print(line)


def _show_one(spec: SettingSpec, env: Mapping[str, str], *, as_json: bool) -> None:
    entry = settings_report(env)[spec.key]
    if as_json:
        print(json.dumps({"name": spec.key, **entry}, indent=2))
        return
    print(f"{spec.key} = {setting_text(entry['value'])}  ({_origin(entry)})")
    if "error" in entry:
        print(f"  not usable: {entry['error']}")


def _set(spec: SettingSpec, text: str, settings: Settings, env: Mapping[str, str]) -> None:
    if text == "-" and spec.secret:
        text = sys.stdin.readline().strip()  # keeps the key out of the shell's history
    value = checked_value(spec, text)
    path = str(settings.paths.settings_file)
    table = read_table(path)
    table[spec.key] = value
    settings.paths.create_home()
    write_table(path, table)
    shown = HIDDEN if spec.secret else format_value(value)
    print(f"{spec.key} = {shown}  (written to {path})")
    _say_what_overrides(spec, env)
    _say_restart(spec, settings)


def _unset(key: str, path: str) -> None:
    table = read_table(path)
    if key in table and key not in SETTINGS_BY_KEY:
        # A key that is no setting (a typo): taking it out is how the file is mended.
        del table[key]
        write_table(path, table)
        print(f"{key} removed from {path}")
        return
    spec = _spec(key)
    if spec.key not in table:
        print(f"{spec.key} is not set in {path}; nothing changed")
        return
    del table[spec.key]
    write_table(path, table)
    entry = settings_report(memq_env.environment(os.environ))[spec.key]
    print(f"{spec.key} removed from {path}: now {setting_text(entry['value'])} ({_origin(entry)})")


def _say_what_overrides(spec: SettingSpec, env: Mapping[str, str]) -> None:
    if memq_env.source_of(env, spec.variable) == Source.ENVIRONMENT:
        print(f"  note: {spec.variable} is set in this environment and overrides it here")


def _say_restart(spec: SettingSpec, settings: Settings) -> None:
    if spec.key in HOOK_ONLY:
        return  # the hook reads the file on each event
    from memq.worker.pidfile import running_daemon  # noqa: PLC0415 - only after a change

    paths = settings.paths
    if running_daemon(paths.pidfile, paths.database) is not None:
        print("  the running daemon read its settings when it started: memq stop; memq start")


def checked_value(spec: SettingSpec, text: str) -> Any:
    """``text`` as the TOML value of ``spec``, checked by the parser that reads it.

    Raises:
        SettingError: ``text`` is not a value of the setting (saying why).
    """
    if not text.strip() and spec.key not in LIST_KEYS:
        raise SettingError(f"give {spec.key} a value (or --unset it)")
    probe = Sources({}, "", {spec.variable: text})
    parsed = spec.parse(probe)
    if spec.key == "processor":
        from memq.processors import processor_names  # noqa: PLC0415 - costs 0.2 s

        if parsed not in processor_names():
            known = ", ".join(processor_names())
            raise SettingError(f"processor = {parsed!r} is no processor (known: {known})")
    return toml_value(spec, text, parsed)


def toml_value(spec: SettingSpec, text: str, parsed: Any) -> Any:
    """The value to write for ``spec``, given as ``text`` and read by its parser as
    ``parsed``: a list of names for a list, else what the parser made of it."""
    if isinstance(parsed, frozenset):
        names = [name.strip() for name in text.split(",") if name.strip()]
        return list(dict.fromkeys(names))
    return parsed


# -- memq install -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Recorded:
    """What ``record_environment`` wrote into the settings file, and what it left out."""

    path: Path
    written: dict[str, Any]  # key -> the value written
    left_out: tuple[str, ...]  # variables set here that are not recorded (secrets, switches)


def record_environment(settings: Settings, environ: Mapping[str, str]) -> Recorded:
    """Copy into the settings file every setting ``environ`` gives a value other than the
    file's (or the default): a hook started by the assistant, outside this shell, then uses
    the same settings. Secrets and per-shell switches are left out.

    Raises:
        SettingError: a variable it would record has a bad value, or the file cannot be
            read or written. The file is then unchanged.
    """
    path = settings.paths.settings_file
    table = read_table(str(path))
    parsed = variables_of(table, str(path))
    file_only = Sources({}, str(path), parsed.values, invalid=parsed.invalid)
    written: dict[str, Any] = {}
    left_out: list[str] = []
    for spec in SETTINGS:
        if not memq_env.is_set(environ, spec.variable):
            continue
        wanted = spec.parse(environ)
        try:
            current = spec.parse(file_only)
        except SettingError:
            current = None  # the file's value is bad: the environment's replaces it
        if wanted == current:
            continue
        if spec.secret or not spec.recorded:
            left_out.append(spec.variable)
        else:
            written[spec.key] = toml_value(spec, environ[spec.variable], wanted)
    if written:
        settings.paths.create_home()
        write_table(str(path), {**table, **written})
    return Recorded(path, written, tuple(left_out))


def hook_home(settings: Settings) -> str | None:
    """The home the installed hook must be told, or None when it is the default one."""
    home = str(settings.home)
    return None if home == memq_env.home_dir({}) else home


def recorded_lines(recorded: Recorded) -> list[str]:
    """What ``memq install`` says about the settings it recorded."""
    lines = []
    if recorded.written:
        shown = ", ".join(
            f"{key} = {HIDDEN if SETTINGS_BY_KEY[key].secret else format_value(value)}"
            for key, value in recorded.written.items()
        )
        lines.append(f"  settings recorded in {recorded.path}: {shown}")
    for variable in recorded.left_out:
        spec = next(s for s in SETTINGS if s.variable == variable)
        why = "a secret" if spec.secret else "a switch for this shell only"
        lines.append(
            f"  {variable} is set here but not recorded ({why}): "
            f"memq config --global {spec.key} {'-' if spec.secret else 'VALUE'} records it"
        )
    return lines


def _origin(entry: Mapping[str, Any]) -> str:
    source = str(entry["source"])
    return f"{source}, {entry['variable']}" if source == Source.ENVIRONMENT else source
