"""``memq mcp``: serve memory to an AI assistant over MCP on stdin and stdout."""

from __future__ import annotations

import argparse

from memq.cli.command import Command, Subcommands
from memq.config import Settings


def add_parsers(commands: Subcommands) -> None:
    """Add memq mcp to ``memq``'s parser."""
    commands.add_parser(
        "mcp",
        help="serve memory to an AI assistant over MCP (stdio)",
        description="A stdio MCP server named memq with the tools search, timeline, "
        "get_observations and recent_context. It reads through the daemon when it runs and "
        "from the database file (read-only) when it does not. An assistant starts it "
        "(memq install registers it); it is not meant to be run by hand.",
    )


def cmd_mcp(args: argparse.Namespace, settings: Settings) -> int:
    # The SDK (pydantic, starlette, ...) is imported by this command alone.
    from memq.mcp.server import serve

    return serve(settings)


COMMANDS: dict[str, Command] = {"mcp": cmd_mcp}
