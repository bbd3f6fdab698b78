"""Setting memq up beside the assistant: ``memq install`` and ``memq uninstall`` (Claude
Code's hooks, and the settings the hook must share with this shell), and ``memq hook``'s
help (``memq.cli.main`` runs the hook itself before any of this is imported)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memq import env as memq_env
from memq.cli.command import EXIT_ERROR, EXIT_OK, EXIT_USAGE, Command, Subcommands
from memq.cli.settings_commands import toml_value
from memq.config import HIDDEN, SETTINGS, SETTINGS_BY_KEY, SettingError, Settings
from memq.env import Sources
from memq.events import SUBSCRIBED_EVENTS
from memq.exceptions import InstallError
from memq.settings_file import format_value, read_table, variables_of, write_table


def add_parsers(commands: Subcommands) -> None:
    """Add memq hook, memq install and memq uninstall to ``memq``'s parser."""
    hook = commands.add_parser(
        "hook",
        help="hand one hook event (JSON on stdin) to memq; what the assistant's hooks run",
        description="Reads one hook payload on stdin and delivers it to the daemon, or "
        "straight into the queue when the daemon does not answer. Always exits 0; prints "
        "only SessionStart's context. MEMQ_DISABLED=1 makes it a no-op.",
    )
    hook.add_argument("event", nargs="?", help="the hook event (default: hook_event_name)")
    install = commands.add_parser("install", help="add memq's hooks to Claude Code's settings")
    _add_settings_target(install)
    output = install.add_mutually_exclusive_group()
    output.add_argument(
        "--print",
        dest="print_only",
        action="store_true",
        help="print the hooks JSON that would be merged and change nothing",
    )
    output.add_argument(
        "--plugin",
        metavar="DIR",
        help="write a Claude Code plugin folder carrying the hooks instead of changing settings",
    )
    uninstall = commands.add_parser(
        "uninstall", help="remove memq's hooks from Claude Code's settings"
    )
    _add_settings_target(uninstall)


def _add_settings_target(parser: argparse.ArgumentParser) -> None:
    """The --project / --settings choice of which Claude Code settings file to change."""
    target = parser.add_mutually_exclusive_group()
    target.add_argument(
        "--project",
        action="store_true",
        help="./.claude/settings.json instead of the user's ~/.claude/settings.json",
    )
    target.add_argument("--settings", metavar="PATH", help="this settings file instead")


def cmd_hook(args: argparse.Namespace, settings: Settings) -> int:
    from memq.hooks.run import main as hook_main

    return hook_main([args.event] if args.event else [])


def cmd_install(args: argparse.Namespace, settings: Settings) -> int:
    from memq.hooks import install as hooks

    try:
        # The hook runs from the assistant's environment, not this shell's: the command
        # carries MEMQ_HOME, the home's settings file the rest.
        command = hooks.memq_hook_command(home=hook_home(settings))
        if args.print_only:
            print(json.dumps(hooks.hooks_fragment(command), indent=2))
            return EXIT_OK
        recorded = recorded_lines(record_environment(settings, os.environ))
        if args.plugin:
            written = hooks.write_plugin(args.plugin, command)
            print(f"memq plugin written to {args.plugin} (hook command: {command})")
            for path in written:
                print(f"  {path}")
            for line in recorded:
                print(line)
            print(f"load it with: claude --plugin-dir {args.plugin}")
            return EXIT_OK
        path = hooks.settings_path(project=args.project, settings=args.settings)
        result = hooks.install(path, command)
    except InstallError as exc:
        print(f"memq install: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except SettingError as exc:
        print(f"memq install: {exc}; nothing changed", file=sys.stderr)
        return EXIT_USAGE
    if not result.changed:
        print(f"memq hooks already installed in {result.path}; nothing changed")
        for line in recorded:
            print(line)
        return EXIT_OK
    print(f"memq hooks installed in {result.path}{' (new file)' if result.created else ''}")
    print(f"  events: {', '.join(SUBSCRIBED_EVENTS)}")
    print(f"  command: {result.command}")
    if result.backup is not None:
        print(f"  backup of the previous file: {result.backup}")
    for line in recorded:
        print(line)
    print("They take effect in Claude Code sessions started from now on.")
    return EXIT_OK


def cmd_uninstall(args: argparse.Namespace, settings: Settings) -> int:
    from memq.hooks import install as hooks

    path = hooks.settings_path(project=args.project, settings=args.settings)
    try:
        result = hooks.uninstall(path)
    except InstallError as exc:
        print(f"memq uninstall: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if not result.existed:
        print(f"no settings file at {result.path}; nothing to remove")
    elif not result.removed:
        print(f"no memq hooks in {result.path}; nothing changed")
    else:
        print(f"removed {result.removed} memq hook(s) from {result.path}")
        print(f"  backup of the previous file: {result.backup}")
    return EXIT_OK


# -- what install records in MEMQ_HOME/settings.toml --------------------------------------------


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


COMMANDS: dict[str, Command] = {
    "hook": cmd_hook,
    "install": cmd_install,
    "uninstall": cmd_uninstall,
}
