"""Running one ``memq`` command: parse it, check the home and read the settings it uses,
call it, and turn what it raised into an exit status."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Final

from memq import env as memq_env
from memq.cli import (
    archive_commands,
    daemon_commands,
    key_commands,
    mcp_commands,
    memory_commands,
    open_commands,
    queue_commands,
    session_commands,
    settings_commands,
    setup_commands,
    stats_commands,
    storage_commands,
    upstream_commands,
)
from memq.cli.command import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, Command
from memq.cli.command_settings import command_settings, is_global_config
from memq.cli.parser import build_parser
from memq.config import SettingError
from memq.exceptions import UnsafeFileError
from memq.private_files import check_home

COMMANDS: Final[dict[str, Command]] = {
    **daemon_commands.COMMANDS,
    **memory_commands.COMMANDS,
    **session_commands.COMMANDS,
    **archive_commands.COMMANDS,
    **settings_commands.COMMANDS,
    **queue_commands.COMMANDS,
    **setup_commands.COMMANDS,
    **mcp_commands.COMMANDS,
    **stats_commands.COMMANDS,
    **open_commands.COMMANDS,
    **storage_commands.COMMANDS,
    **key_commands.COMMANDS,
    **upstream_commands.COMMANDS,
}
# Commands that neither read nor write MEMQ_HOME (they edit Claude Code's settings), so a
# home others can write to does not stop them.
HOME_FREE_COMMANDS: Final = frozenset({"install", "uninstall"})


def run(args: Sequence[str]) -> int:
    """Parse ``args`` (without the program name) and run that command."""
    parser = build_parser()
    parsed = parser.parse_args(args)
    if parsed.command is None:
        parser.print_help()
        return EXIT_OK
    if parsed.command == "config" and parsed.session is None and not is_global_config(parsed):
        parser.error("config needs a SESSION (or --global for memq's own settings)")
    try:
        return run_command(parsed)
    except UnsafeFileError as exc:  # a home others can write to, a planted token: never quoted
        print(f"memq: {exc}", file=sys.stderr)
        return EXIT_ERROR


def run_command(parsed: argparse.Namespace) -> int:
    """Run the parsed command with its settings. Raises ``UnsafeFileError`` for a home (or
    a file in it) memq must not trust."""
    if parsed.command not in HOME_FREE_COMMANDS:
        # Before anything is read from the home (settings.toml, the token) or written to it.
        check_home(memq_env.home_dir(os.environ))
    try:
        # The environment over MEMQ_HOME/settings.toml, checked as far as the command uses it.
        settings = command_settings(parsed, os.environ)
    except SettingError as exc:
        print(f"memq: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return COMMANDS[parsed.command](parsed, settings)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `memq status | head`: the reader left; exit quietly, as other tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
