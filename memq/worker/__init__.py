"""The memq daemon: HTTP API, session manager and processing, on top of ``memq.queue``.

This face exports nothing and imports nothing; the modules are used by name: ``daemon``
runs it, ``composition`` builds its services, ``http`` answers the API,
``session_operations`` acts on whole sessions.
"""

from __future__ import annotations

__all__: list[str] = []
