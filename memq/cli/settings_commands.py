"""``memq config``: a session's settings through the daemon, or with ``--global`` memq's own
settings in ``MEMQ_HOME/settings.toml``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import quote

from memq import env as memq_env
from memq.cli.command import EXIT_ERROR, EXIT_OK, EXIT_USAGE, Command, Subcommands
from memq.cli.command_settings import HOME_IS_NOT_A_SETTING, is_global_config
from memq.cli.settings_lines import setting_text, settings_lines
from memq.client.daemon_api import api, session_path
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
from memq.settings_file import LIST_KEYS, format_value, read_table, write_table

# Settings only the hook reads (on every event); the daemon reads the others when it starts.
HOOK_ONLY: Final = frozenset({"hook_connect_timeout", "hook_timeout", "disabled"})


def add_parsers(commands: Subcommands) -> None:
    """Add memq config to ``memq``'s parser."""
    config = commands.add_parser(
        "config",
        help="show or change a session's settings (processor, model, paused)",
        description="memq config SESSION shows every setting; memq config SESSION KEY shows "
        "one; memq config SESSION KEY VALUE sets it; --unset gives it back its default. "
        "The worker applies a change from the session's next message. Only a session memq "
        "knows can be configured; --create configures a new one ahead of its first event. "
        "memq config --global [KEY [VALUE]] [--unset] does the same for memq's own settings "
        "(MEMQ_HOME/settings.toml).",
    )
    config.add_argument(
        "session", nargs="?", help="the session (id or claude-code:<id>); with --global, KEY"
    )
    config.add_argument("key", nargs="?", help="processor, model or paused")
    config.add_argument("value", nargs="?", help="the new value (paused: true or false)")
    config.add_argument("--unset", action="store_true", help="give KEY back its default")
    config.add_argument(
        "--create",
        action="store_true",
        help="set KEY VALUE even for a session memq has not seen yet (else an error)",
    )
    config.add_argument(
        "--global",
        dest="global_settings",
        action="store_true",
        help="memq's own settings (port, linger, ...) in MEMQ_HOME/settings.toml",
    )
    config.add_argument("--json", action="store_true", help="print JSON")


def cmd_config(args: argparse.Namespace, settings: Settings) -> int:
    """``memq config SESSION [KEY [VALUE]]``, or ``memq config --global ...``."""
    if is_global_config(args):
        return config_global(args, settings)
    return config_session(args, settings)


def config_session(args: argparse.Namespace, settings: Settings) -> int:
    """``memq config SESSION [KEY [VALUE]] [--unset] [--create] [--json]``."""
    if args.key is None and (args.value is not None or args.unset):
        print("memq config: name the setting (processor, model or paused)", file=sys.stderr)
        return EXIT_USAGE
    if args.unset and args.value is not None:
        print("memq config: give a VALUE or --unset, not both", file=sys.stderr)
        return EXIT_USAGE
    if args.create and args.value is None:
        print("memq config: --create goes with a KEY and a VALUE to set", file=sys.stderr)
        return EXIT_USAGE
    path = session_path(args.session, "config")
    if args.key is None:
        body = api(settings, "GET", path)
        show: Callable[[dict[str, Any]], None] = _print_config
    else:
        path = f"{path}/{quote(args.key, safe='')}"
        if args.unset:
            body = api(settings, "DELETE", path)
        elif args.value is not None:
            request: dict[str, Any] = {"value": args.value}
            if args.create:
                request["create"] = True
            body = api(settings, "PUT", path, request)
        else:
            body = api(settings, "GET", path)
        show = _print_setting
    if body is None:
        return EXIT_ERROR
    if args.json:
        print(json.dumps(body, indent=2))
    else:
        show(body)
    return EXIT_OK


def _print_config(body: dict[str, Any]) -> None:
    explicit = set(body["set"])
    print(body["session_id"])
    for name, value in body["config"].items():
        origin = "" if name in explicit else "  (default)"
        print(f"  {name:<10} {_session_setting_text(value)}{origin}")
    effective = body["effective"]
    model = f" with {effective['model']}" if effective.get("model") else ""
    pause = body.get("pause")
    if pause is None:
        print(f"  next message: {effective['processor']}{model}")
        return
    print(f"  next message: {effective['processor']}{model}, once the session resumes")
    print(f"  PAUSED     {pause['reason']}")
    if pause["cause"] == "processor":
        print(
            "             restart memq with it set, or choose another processor: "
            f"memq config {body['session_id']} processor NAME"
        )


def _print_setting(body: dict[str, Any]) -> None:
    print(f"{body['name']} = {_session_setting_text(body['value'])}")
    if body.get("known") is False:
        print(f"  (memory has no session {body['session_id']} yet)")


def _session_setting_text(value: object) -> str:
    if value is None:
        return "-"
    return json.dumps(value) if isinstance(value, bool) else str(value)


# -- memq config --global ---------------------------------------------------------------------


def config_global(args: argparse.Namespace, settings: Settings) -> int:
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
    from memq.worker.pidfile import running_daemon  # only after a change

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
        from memq.processors import processor_names  # costs 0.2 s

        if parsed not in processor_names():
            known = ", ".join(processor_names())
            raise SettingError(f"processor = {parsed!r} is no processor (known: {known})")
    return toml_value(spec, text, parsed)


def toml_value(spec: SettingSpec, text: str, parsed: Any) -> Any:
    """The value to write for ``spec``, given as ``text`` and read by its parser as
    ``parsed``: a list of names for a list, else what the parser made of it."""
    if isinstance(parsed, tuple):  # redact_patterns: one a line
        return list(parsed)
    if isinstance(parsed, dict):  # model_prices: kept as the text that spells it
        return text.strip()
    if isinstance(parsed, frozenset):
        names = [name.strip() for name in text.split(",") if name.strip()]
        return list(dict.fromkeys(names))
    return parsed


def _origin(entry: Mapping[str, Any]) -> str:
    source = str(entry["source"])
    return f"{source}, {entry['variable']}" if source == Source.ENVIRONMENT else source


COMMANDS: dict[str, Command] = {"config": cmd_config}
