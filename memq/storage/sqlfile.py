"""Load named SQL statements from the ``.sql`` files beside this module.

A file holds blocks, each opened by a ``-- name: <identifier>`` line; the block runs to the
next such line. Keeping every statement in one file per component lets a reader see all the
SQL the component can run in one place.

Statements are written once, in SQLite's dialect with ``:name`` parameters. For PostgreSQL,
``queries/postgres/<component>.sql`` holds the statements that must differ (same names; a
name there that the base file lacks is an error), and every statement, shared or not, gets
psycopg's ``%(name)s`` parameters (``to_pyformat``).

Each loaded statement is a ``Statement``: its text, which any driver runs, carrying the
component and name it was loaded by. So code written against SQLite's statements can run on
PostgreSQL: a PostgreSQL connection looks the statement up by component and name in its own
dialect (``in_dialect``), never by its text.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from types import MappingProxyType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

QUERIES_DIR: Final = Path(__file__).parent / "queries"
SQLITE: Final = "sqlite"
POSTGRES: Final = "postgres"
DIALECTS: Final = (SQLITE, POSTGRES)
# Literals, quoted identifiers and comments: a ? anywhere else is a positional parameter.
_QUOTED: Final = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/", re.DOTALL)
_NAME_LINE: Final = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)
# What ``to_pyformat`` must step over whole: string literals ('it''s'), quoted identifiers,
# comments, and PostgreSQL's ``::type`` casts; else a ``:name`` parameter, or a bare ``%``.
_SQL_TOKEN: Final = re.compile(
    r"'(?:[^']|'')*'"
    r'|"(?:[^"]|"")*"'
    r"|--[^\n]*"
    r"|/\*.*?\*/"
    r"|::"
    r"|:([A-Za-z_][A-Za-z0-9_]*)"
    r"|%",
    re.DOTALL,
)


class Statement(str):
    """A named statement's text, which knows where it came from (``component`` and
    ``name``): what ``in_dialect`` needs to find its form in another dialect."""

    __slots__ = ("component", "directory", "name")
    component: str
    name: str
    directory: Path

    def __new__(cls, text: str, component: str, name: str, directory: Path) -> Statement:
        made = super().__new__(cls, text)
        made.component = component
        made.name = name
        made.directory = directory
        return made


def in_dialect(sql: str, dialect: str) -> str:
    """``sql`` in ``dialect``: a ``Statement`` becomes the same-named statement of its
    component in that dialect; any other text (already written for it) is returned as is."""
    if isinstance(sql, Statement):
        return _loaded(sql.component, dialect, sql.directory)[sql.name]
    return sql


@functools.cache
def _loaded(component: str, dialect: str, directory: Path) -> MappingProxyType[str, str]:
    # The shipped files do not change while memq runs: each is read once per dialect here.
    return load_queries(component, dialect, directory=directory)


def parse_named_queries(text: str) -> MappingProxyType[str, str]:
    """Split ``text`` into ``{name: statement}``; raises ``ValueError`` on a repeated name."""
    queries: dict[str, str] = {}
    matches = list(_NAME_LINE.finditer(text))
    for match, following in zip(matches, [*matches[1:], None], strict=True):
        name = match.group(1)
        end = following.start() if following is not None else len(text)
        body = text[match.end() : end].strip()
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        if not body:
            raise ValueError(f"query {name!r} is empty")
        queries[name] = body
    return MappingProxyType(queries)


def load_queries(
    component: str, dialect: str = SQLITE, *, directory: Path = QUERIES_DIR
) -> MappingProxyType[str, str]:
    """The named statements of ``queries/<component>.sql`` in ``dialect`` (each a
    ``Statement``): for PostgreSQL, with ``queries/postgres/<component>.sql``'s in place of
    theirs, all in psycopg's parameter style.

    Raises ``ValueError`` for an unknown dialect, or an overlay naming a statement the base
    file does not have (a typo would otherwise leave the SQLite text in use)."""
    base = parse_named_queries((directory / f"{component}.sql").read_text(encoding="utf-8"))
    if dialect == SQLITE:
        return MappingProxyType(
            {name: Statement(text, component, name, directory) for name, text in base.items()}
        )
    if dialect != POSTGRES:
        raise ValueError(f"unknown SQL dialect {dialect!r}: memq has {', '.join(DIALECTS)}")
    overlay_path = directory / POSTGRES / f"{component}.sql"
    overlay = (
        parse_named_queries(overlay_path.read_text(encoding="utf-8"))
        if overlay_path.exists()
        else MappingProxyType({})
    )
    unknown = sorted(set(overlay) - set(base))
    if unknown:
        raise ValueError(f"{overlay_path.name} overlays queries {component}.sql lacks: {unknown}")
    converted = {
        name: Statement(to_pyformat(overlay.get(name, text)), component, name, directory)
        for name, text in base.items()
    }
    positional = sorted(name for name, sql in converted.items() if "?" in _QUOTED.sub("", sql))
    if positional:
        # psycopg would take a ? as text and fail only when the statement runs.
        raise ValueError(f"{component}.sql: {positional} use ? parameters: name them (:name)")
    return MappingProxyType(converted)


def to_pyformat(sql: str) -> str:
    """``sql`` with its ``:name`` parameters as ``%(name)s`` and every other ``%`` doubled,
    as psycopg reads a statement with parameters; a ``:name`` in a literal, a quoted
    identifier or a comment, and ``::type`` casts, are left as they are."""

    def replace(match: re.Match[str]) -> str:
        if match.group(1) is not None:
            return f"%({match.group(1)})s"
        # psycopg reads every % of the text, comments and literals included.
        return match.group(0).replace("%", "%%")

    return _SQL_TOKEN.sub(replace, sql)
