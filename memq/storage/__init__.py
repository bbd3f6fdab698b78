"""The SQLite database file: schema, numbered migrations, named SQL and connection settings.

Standard library only. The hook's fallback path imports this package to write an event
straight into the pending table when the daemon does not answer, so nothing here may import
anyio, aiosqlite, structlog or the rest of memq (``memq.repair``, which takes the queue's
lock and asks whether a daemon runs, sits above this package and uses it).

This face exports nothing; the modules are used by name: ``schema`` (migrations and the
schema version), ``sqlfile`` (named SQL), ``connection`` (how a connection is configured),
``integrity`` (whether the file is whole), ``repairing`` (the mark a running repair leaves
for the hooks).
"""

from __future__ import annotations

__all__: list[str] = []
