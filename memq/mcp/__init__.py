"""``memq mcp``: memory served to an AI assistant over MCP (stdio), so that the model can
search it, see what happened around a record and read records in full while it works.

``server`` builds the server on the official MCP SDK (tools and instructions), ``reader``
reads memory through the daemon or, when it is down, from the file read-only, and
``format`` writes the answers for the model. This face offers nothing: ``memq mcp``
(``memq.cli.mcp_commands``) imports ``memq.mcp.server`` itself, and nothing else imports
the SDK.
"""

from __future__ import annotations

__all__: list[str] = []
