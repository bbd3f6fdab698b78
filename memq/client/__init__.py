"""How a process other than the daemon reaches memory: the CLI and the MCP server.

``daemon_api`` calls the daemon's HTTP API with the token (standard library only: each
command is a fresh process); ``record_text`` prints the records the API sends as readable
text. Neither imports the daemon, the queue or the storage packages, so both fronts stay
cheap to start.
"""

from __future__ import annotations

__all__: list[str] = []
