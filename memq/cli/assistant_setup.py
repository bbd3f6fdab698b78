"""``memq install --assistant NAME`` and ``memq uninstall --assistant NAME`` for every
assistant but Claude Code (whose are in ``setup_commands``): the work is the assistant's
installer's (``memq.hooks.installers``), this module parses and reports."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from memq.cli.command import EXIT_ERROR, EXIT_OK, EXIT_USAGE
from memq.config import SettingError, Settings
from memq.exceptions import InstallError

if TYPE_CHECKING:
    from memq.hooks.installers import AssistantInstaller, ConfigChange


def install_for(args: argparse.Namespace, settings: Settings) -> int:
    """Install memq's hooks (and MCP server, unless ``--no-mcp``) into ``args.assistant``."""
    from memq.cli.setup_commands import hook_home, record_environment, recorded_lines
    from memq.hooks import install as hooks
    from memq.hooks import mcp_config
    from memq.hooks.installers import installer

    found = installer(args.assistant)
    refused = _refused_options(args, found)
    if refused:
        print(f"memq install: {refused}", file=sys.stderr)
        return EXIT_USAGE
    try:
        home = hook_home(settings)
        command = hooks.memq_hook_command(home=home, assistant=found.name)
        server = None if args.no_mcp else mcp_config.server_entry(home=home)
        if args.print_only:
            print(json.dumps(found.fragment(command, server), indent=2))
            return EXIT_OK
        recorded = recorded_lines(record_environment(settings, os.environ))
        path = _path(args, found)
        changes = found.install(path, command, server, project=args.project)
    except InstallError as exc:
        print(f"memq install: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except SettingError as exc:
        print(f"memq install: {exc}; nothing changed", file=sys.stderr)
        return EXIT_USAGE
    lines = [line for change in changes for line in _installed(change, found)]
    print("\n".join([*lines, *recorded]))
    if any(change.changed for change in changes):
        for line in found.notes():
            print(line)
        print(f"They take effect in {found.label} sessions started from now on.")
    return EXIT_OK


def uninstall_for(args: argparse.Namespace) -> int:
    """Remove memq's hooks (and MCP server, unless ``--no-mcp``) from ``args.assistant``."""
    from memq.hooks.installers import installer

    found = installer(args.assistant)
    refused = _refused_options(args, found)
    if refused:
        print(f"memq uninstall: {refused}", file=sys.stderr)
        return EXIT_USAGE
    try:
        changes = found.uninstall(_path(args, found), project=args.project, mcp=not args.no_mcp)
    except InstallError as exc:
        print(f"memq uninstall: {exc}", file=sys.stderr)
        return EXIT_ERROR
    for change in changes:
        if not change.existed:
            print(f"no {change.path}; no memq {change.what} to remove")
        elif not change.removed:
            print(f"no memq {change.what} in {change.path}; nothing changed")
        else:
            print(f"removed memq's {change.what} from {change.path}")
            if change.backup is not None:
                print(f"  backup of the previous file: {change.backup}")
    return EXIT_OK


def _refused_options(args: argparse.Namespace, found: AssistantInstaller) -> str | None:
    if getattr(args, "plugin", None):
        return f"--plugin writes a Claude Code plugin; {found.label} has none"
    if args.mcp_config:
        return f"--mcp-config is Claude Code's; {found.label}'s MCP server goes where it reads it"
    return None


def _path(args: argparse.Namespace, found: AssistantInstaller) -> Path:
    if args.settings:
        return Path(args.settings)
    return found.config_path(project=args.project, cwd=Path.cwd())


def _installed(change: ConfigChange, found: AssistantInstaller) -> list[str]:
    if not change.changed:
        return [f"memq {change.what} already in {change.path}; nothing changed"]
    lines = [
        f"memq {change.what} installed for {found.label} in {change.path}"
        f"{'' if change.existed else ' (new file)'}"
    ]
    if change.backup is not None:
        lines.append(f"  backup of the previous file: {change.backup}")
    return lines
