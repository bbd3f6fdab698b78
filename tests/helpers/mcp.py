"""``memq mcp`` as an assistant starts it: a subprocess spoken to over stdio by the MCP SDK's
own client (``mcp.Client`` on ``mcp.client.stdio``), with the minimal environment the SDK
passes (``HOME``, ``PATH``, ...) plus what a test names."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters
from mcp.types import CallToolResult, ListRootsResult, Root, TextContent
from pydantic import FileUrl

from tests.helpers.processes import PROJECT_ROOT


def roots_callback(*paths: Path | str) -> Any:
    """A client's answer to ``roots/list``: these directories as ``file://`` roots."""

    async def list_roots(context: Any) -> ListRootsResult:
        return ListRootsResult(roots=[Root(uri=FileUrl(Path(path).as_uri())) for path in paths])

    return list_roots


@asynccontextmanager
async def mcp_client(
    env: Mapping[str, str],
    *,
    cwd: Path,
    roots: tuple[Path | str, ...] | None = None,
    mode: str = "auto",
) -> AsyncIterator[Client]:
    """A connected client of ``memq mcp`` started in ``cwd`` with ``env`` (over the SDK's
    safe defaults; no MEMQ_* variable but those given); ``roots`` offered when given.
    ``mode`` is the SDK's protocol negotiation: ``"legacy"`` speaks the handshake-era
    protocol that assistants speak today, where a server may ask the client for its roots."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "memq", "mcp"],
        env={"PYTHONPATH": str(PROJECT_ROOT), **env},
        cwd=cwd,
    )
    callback = None if roots is None else roots_callback(*roots)
    async with Client(
        params, list_roots_callback=callback, read_timeout_seconds=30, mode=mode
    ) as client:
        yield client


def text_of(result: CallToolResult) -> str:
    """The text a tool answered."""
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


async def call(client: Client, tool: str, **arguments: Any) -> str:
    """Call ``tool``; its text, which must not be an error."""
    result = await client.call_tool(tool, arguments)
    assert isinstance(result, CallToolResult)
    assert not result.is_error, text_of(result)
    return text_of(result)


async def call_error(client: Client, tool: str, **arguments: Any) -> str:
    """Call ``tool``; its error text (the call must be a tool error, not a crash)."""
    result = await client.call_tool(tool, arguments)
    assert isinstance(result, CallToolResult)
    assert result.is_error, text_of(result)
    return text_of(result)
