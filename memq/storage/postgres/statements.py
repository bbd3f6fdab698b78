"""SQLite statements in their PostgreSQL form, found by their text.

The memory and worker code look their statements up in ``load_queries(component)`` (SQLite's
dialect) and hand the text to whatever transaction or connection they were given. On
PostgreSQL that is a ``PgTransaction``, a ``PgConnection`` or ``PgQueue.read``, which pass
every statement through ``pg_form``: a text that is one of the SQLite statements becomes the
same-named statement of ``load_queries(component, POSTGRES)`` (its overlay, or the shared
text with psycopg's parameters); any other text (already PostgreSQL's) is run as it is. So
the code that writes and reads memory runs unchanged on both backends.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from types import MappingProxyType

from memq.storage.sqlfile import POSTGRES, QUERIES_DIR, load_queries


@functools.cache
def pg_forms() -> Mapping[str, str]:
    """Every SQLite statement's text -> its PostgreSQL form. A text that two statements share
    with different PostgreSQL forms is left out (it runs as it is, and fails loudly on its
    ``:name`` parameters); a test asserts there is none."""
    forms: dict[str, str] = {}
    ambiguous: set[str] = set()
    for path in sorted(QUERIES_DIR.glob("*.sql")):
        base = load_queries(path.stem)
        try:
            converted = load_queries(path.stem, POSTGRES)
        except ValueError:
            continue  # a SQLite-only component (positional parameters): never run here
        for name, text in base.items():
            if forms.setdefault(text, converted[name]) != converted[name]:
                ambiguous.add(text)
    return MappingProxyType({text: form for text, form in forms.items() if text not in ambiguous})


def pg_form(sql: str) -> str:
    """``sql`` as PostgreSQL runs it: its PostgreSQL form when it is a SQLite statement of
    ``memq/storage/queries``, else ``sql`` itself."""
    return pg_forms().get(sql, sql)
