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
from typing import TYPE_CHECKING, Any

from memq import env as memq_env
from memq.cli.command import EXIT_ERROR, EXIT_OK, EXIT_USAGE, Command, Subcommands
from memq.cli.settings_commands import toml_value
from memq.config import HIDDEN, SETTINGS, SETTINGS_BY_KEY, SettingError, Settings
from memq.env import Sources
from memq.events import SUBSCRIBED_EVENTS
from memq.exceptions import InstallError
from memq.settings_file import format_value, read_table, variables_of, write_table

if TYPE_CHECKING:
    from memq.hooks.install import InstallResult
    from memq.hooks.mcp_config import RegisterResult, UnregisterResult


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
    _add_assistant(hook, "the assistant whose hook event this is")
    install = commands.add_parser(
        "install",
        help="add memq's hooks and MCP server to Claude Code (or --assistant NAME)",
        description="Adds memq's hooks to Claude Code's settings and registers memq's MCP "
        "server (memq mcp) beside them: for the user by default (~/.claude/settings.json and "
        "~/.claude.json), for the project with --project (.claude/settings.json and .mcp.json). "
        "With --assistant, the same for Codex CLI, Gemini CLI, Cursor or OpenCode, in the "
        "files that assistant reads.",
    )
    _add_settings_target(install)
    _add_assistant(install, "the assistant to install memq into")
    output = install.add_mutually_exclusive_group()
    output.add_argument(
        "--print",
        dest="print_only",
        action="store_true",
        help="print the hooks and MCP server JSON that would be merged and change nothing",
    )
    output.add_argument(
        "--plugin",
        metavar="DIR",
        help="write a Claude Code plugin folder carrying the hooks and the MCP server instead "
        "of changing settings",
    )
    uninstall = commands.add_parser(
        "uninstall",
        help="remove memq's hooks and MCP server from Claude Code (or --assistant NAME)",
    )
    _add_settings_target(uninstall)
    _add_assistant(uninstall, "the assistant to remove memq from")


def _add_assistant(parser: argparse.ArgumentParser, text: str) -> None:
    from memq.assistants import CLAUDE_CODE, NAMES

    parser.add_argument(
        "--assistant",
        metavar="NAME",
        default=CLAUDE_CODE,
        type=_assistant_name,
        help=f"{text}: {', '.join(NAMES)} (default: {CLAUDE_CODE})",
    )


def _assistant_name(text: str) -> str:
    from memq.assistants import canonical_name
    from memq.exceptions import UnknownAssistantError

    try:
        return canonical_name(text)
    except UnknownAssistantError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_settings_target(parser: argparse.ArgumentParser) -> None:
    """Which files to change: --project / --settings for the hooks, --mcp-config / --no-mcp
    for the MCP server."""
    target = parser.add_mutually_exclusive_group()
    target.add_argument(
        "--project",
        action="store_true",
        help="the project's file (./.claude/settings.json for Claude Code) instead of the user's",
    )
    target.add_argument("--settings", metavar="PATH", help="this settings file instead")
    mcp = parser.add_mutually_exclusive_group()
    mcp.add_argument(
        "--mcp-config",
        metavar="PATH",
        help="this file's mcpServers instead of ~/.claude.json (or ./.mcp.json with --project)",
    )
    mcp.add_argument("--no-mcp", action="store_true", help="leave the MCP server out: hooks only")


def cmd_hook(args: argparse.Namespace, settings: Settings) -> int:
    from memq.assistants import ASSISTANT_OPTION
    from memq.hooks.run import main as hook_main

    return hook_main([ASSISTANT_OPTION, args.assistant, *([args.event] if args.event else [])])


def cmd_install(args: argparse.Namespace, settings: Settings) -> int:
    from memq.assistants import CLAUDE_CODE
    from memq.hooks import install as hooks
    from memq.hooks import mcp_config

    if args.assistant != CLAUDE_CODE:
        from memq.cli.assistant_setup import install_for

        return install_for(args, settings)

    try:
        # Hook and server run from the assistant's environment, not this shell's: they
        # carry MEMQ_HOME, the home's settings file the rest.
        home = hook_home(settings)
        command = hooks.memq_hook_command(home=home)
        server = None if args.no_mcp else mcp_config.server_entry(home=home)
        if args.print_only:
            shown = hooks.hooks_fragment(command)
            if server is not None:
                shown[hooks.MCP_SERVERS] = {mcp_config.SERVER_NAME: server}
            print(json.dumps(shown, indent=2))
            return EXIT_OK
        recorded = recorded_lines(record_environment(settings, os.environ))
        if args.plugin:
            return _write_plugin(args.plugin, command, server, recorded)
        path = hooks.settings_path(project=args.project, settings=args.settings)
        mcp_path = _mcp_path(args)
        if server is not None:  # refuse before writing anything
            mcp_config.preview_register(mcp_path, server)
        result = hooks.install(path, command)
        registered = None if server is None else mcp_config.register(mcp_path, server)
    except InstallError as exc:
        print(f"memq install: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except SettingError as exc:
        print(f"memq install: {exc}; nothing changed", file=sys.stderr)
        return EXIT_USAGE
    lines = _hooks_installed(result)
    if registered is not None:
        lines += _server_registered(registered)
    print("\n".join([*lines, *recorded]))
    if result.changed or (registered is not None and registered.changed):
        print("They take effect in Claude Code sessions started from now on.")
    return EXIT_OK


def cmd_uninstall(args: argparse.Namespace, settings: Settings) -> int:
    from memq.assistants import CLAUDE_CODE
    from memq.hooks import install as hooks
    from memq.hooks import mcp_config

    if args.assistant != CLAUDE_CODE:
        from memq.cli.assistant_setup import uninstall_for

        return uninstall_for(args)

    path = hooks.settings_path(project=args.project, settings=args.settings)
    mcp_path = None if args.no_mcp else _mcp_path(args)
    try:
        if mcp_path is not None:  # refuse before writing anything
            mcp_config.preview_unregister(mcp_path)
        result = hooks.uninstall(path)
        unregistered = None if mcp_path is None else mcp_config.unregister(mcp_path)
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
    if unregistered is not None:
        print("\n".join(_server_unregistered(unregistered)))
    return EXIT_OK


def _mcp_path(args: argparse.Namespace) -> Path:
    from memq.hooks import mcp_config

    return mcp_config.config_path(project=args.project, config=args.mcp_config)


def _write_plugin(
    directory: str, command: str, server: dict[str, Any] | None, recorded: list[str]
) -> int:
    from memq.hooks import install as hooks

    written = hooks.write_plugin(directory, command, server=server)
    print(f"memq plugin written to {directory} (hook command: {command})")
    for path in written:
        print(f"  {path}")
    if server is not None:
        print("  its MCP tools are named mcp__plugin_memq_memq__* (Claude Code prefixes plugins')")
    for line in recorded:
        print(line)
    print(f"load it with: claude --plugin-dir {directory}")
    return EXIT_OK


def _hooks_installed(result: InstallResult) -> list[str]:
    if not result.changed:
        return [f"memq hooks already installed in {result.path}; nothing changed"]
    lines = [
        f"memq hooks installed in {result.path}{' (new file)' if result.created else ''}",
        f"  events: {', '.join(SUBSCRIBED_EVENTS)}",
        f"  command: {result.command}",
    ]
    if result.backup is not None:
        lines.append(f"  backup of the previous file: {result.backup}")
    return lines


def _server_registered(result: RegisterResult) -> list[str]:
    from memq.hooks import mcp_config

    if not result.changed:
        return [f"memq MCP server already registered in {result.path}; nothing changed"]
    lines = [
        f"memq MCP server registered in {result.path}{' (new file)' if result.created else ''}",
        f"  command: {mcp_config.describe(result.entry)}",
        f"  tools: {', '.join(mcp_config.tool_names())}",
    ]
    if result.entry.get("env"):
        shown = " ".join(f"{key}={value}" for key, value in result.entry["env"].items())
        lines.append(f"  environment: {shown}")
    if result.backup is not None:
        lines.append(f"  backup of the previous file: {result.backup}")
    return lines


def _server_unregistered(result: UnregisterResult) -> list[str]:
    from memq.hooks import mcp_config

    lines = []
    if not result.existed:
        lines.append(f"no MCP configuration at {result.path}; no MCP server to remove")
    elif result.removed:
        lines.append(f"removed memq's MCP server from {result.path}")
        lines.append(f"  backup of the previous file: {result.backup}")
    else:
        lines.append(f"no memq MCP server in {result.path}; nothing changed")
    if result.other is not None:
        lines.append(
            f'  a server named "memq" there runs something else '
            f"({mcp_config.describe(result.other)}); left as it is"
        )
    return lines


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
            f"{key} = {HIDDEN if SETTINGS_BY_KEY[key].secret else format_value(_shown(key, value))}"
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


def _shown(key: str, value: Any) -> Any:
    """A recorded value as printed: a database URL without its password (the file keeps it,
    private to the user; the terminal and its scrollback need not)."""
    if key == "database_url" and isinstance(value, str):
        from memq.storage.postgres.url import shown_url

        return shown_url(value)
    return value


COMMANDS: dict[str, Command] = {
    "hook": cmd_hook,
    "install": cmd_install,
    "uninstall": cmd_uninstall,
}
