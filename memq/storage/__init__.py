"""The SQLite database file: schema, numbered migrations, named SQL and connection settings.

Standard library only. The hook's fallback path imports this package to write an event
straight into the pending table when the daemon does not answer, so nothing here may import
anyio, aiosqlite, structlog or the rest of memq.
"""
