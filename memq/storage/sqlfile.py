"""Load named SQL statements from the ``.sql`` files beside this module.

A file holds blocks, each opened by a ``-- name: <identifier>`` line; the block runs to the
next such line. Keeping every statement in one file per component lets a reader see all the
SQL the component can run in one place.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import MappingProxyType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

QUERIES_DIR: Final = Path(__file__).parent / "queries"
_NAME_LINE: Final = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


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


def load_queries(component: str) -> MappingProxyType[str, str]:
    """The named statements of ``queries/<component>.sql``."""
    return parse_named_queries((QUERIES_DIR / f"{component}.sql").read_text(encoding="utf-8"))
