"""The parser of every ``memq`` command: each topic's module adds its commands, and the top
level's help lists them in groups."""

from __future__ import annotations

import argparse
from typing import Final

from memq import __version__
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
from memq.cli.help_layout import command_list, fill_paragraphs, help_width, subcommand_helps

DESCRIPTION: Final = """memq: a crash-safe memory worker for AI coding assistants.

Settings come from the environment: MEMQ_HOME (data directory, default ~/.memq), MEMQ_PORT
(default 37778), MEMQ_PROCESSOR (default extract), MEMQ_CAPACITY, MEMQ_LINGER, MEMQ_LEASE,
MEMQ_MAX_ATTEMPTS, MEMQ_BODY_LIMIT, MEMQ_SYNCHRONOUS (FULL or NORMAL), MEMQ_LOG_LEVEL; or from
MEMQ_HOME/settings.toml (port = 40000, ...), which memq config --global edits.
"""
# The top-level help lists the commands in these groups; a command added without a group
# is listed under "more".
COMMAND_GROUPS: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    ("daemon", ("serve", "start", "stop", "status", "open", "resume", "repair", "migrate")),
    (
        "memory",
        (
            "search",
            "timeline",
            "show",
            "context",
            "stats",
            "sessions",
            "history",
            "export",
            "import",
        ),
    ),
    ("sessions", ("title", "config", "fork", "revert", "transfer", "delete")),
    ("queue", ("failed", "retry")),
    ("setup", ("install", "uninstall", "hook", "mcp")),
    ("team", ("keys", "upstream")),
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every ``memq`` command."""
    width = help_width()
    parser = argparse.ArgumentParser(
        prog="memq",
        usage="memq [-h] [--version] COMMAND [ARGS ...]",
        description=fill_paragraphs(DESCRIPTION, width),
        epilog="Run memq COMMAND --help for a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"memq {__version__}")
    # Listed by the epilog, grouped (argparse's own list has no groups and wraps badly).
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", prog="memq", help=argparse.SUPPRESS
    )
    for topic in (
        daemon_commands,
        memory_commands,
        session_commands,
        archive_commands,
        settings_commands,
        queue_commands,
        setup_commands,
        mcp_commands,
        stats_commands,
        open_commands,
        storage_commands,
        key_commands,
        upstream_commands,
    ):
        topic.add_parsers(commands)
    listing = command_list(subcommand_helps(commands), COMMAND_GROUPS, width)
    parser.epilog = f"{listing}\n\n{parser.epilog}"
    return parser
