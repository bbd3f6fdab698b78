"""Statements in their PostgreSQL form.

The memory and worker code look their statements up in ``load_queries(component)`` (SQLite's
dialect) and hand them to whatever transaction or connection they were given. On PostgreSQL
that is a ``PgTransaction``, a ``PgConnection`` or ``PgQueue.read``, which pass every
statement through ``pg_form``: a loaded ``Statement`` becomes the same-named statement of
``load_queries(component, POSTGRES)`` (its overlay, or the shared text with psycopg's
parameters); any other text (written for PostgreSQL) runs as it is. So the code that writes
and reads memory runs unchanged on both backends.
"""

from __future__ import annotations

from memq.storage.sqlfile import POSTGRES, in_dialect


def pg_form(sql: str) -> str:
    """``sql`` as PostgreSQL runs it: its PostgreSQL form when it is a statement loaded from
    ``memq/storage/queries``, else ``sql`` itself."""
    return in_dialect(sql, POSTGRES)
