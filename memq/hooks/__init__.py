"""The assistant side: the `memq hook` command and installing it into Claude Code.

Standard library only: this runs as a fresh process on every tool call, so this face imports
nothing and exports nothing. Its modules are used by name: ``run`` (the command), ``install``
(into Claude Code's settings), and ``spool`` (what the daemon takes in of events the hook had
to leave behind).
"""

from __future__ import annotations

__all__: list[str] = []
