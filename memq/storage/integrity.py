"""Whether the database file is whole: SQLite's header, then ``PRAGMA quick_check``.

The daemon checks the whole file before it starts (a damaged database must not run on
reporting healthy); ``memq status`` checks it within a time budget, read-only, whether or not a
daemon runs; ``memq repair`` checks it with ``integrity_check`` before rebuilding. Measured on
this kind of machine: ``quick_check`` reads about 1.5 GB/s from the page cache and 200 MB/s
from a cold disk, so a budget of one second covers every database but a very large one.

Standard library only: the hook asks ``is_damage`` about the error its direct write got.
"""

from __future__ import annotations

import os
import sqlite3
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

# SQLite's primary result codes for a damaged file: "database disk image is malformed" and
# "file is not a database".
SQLITE_CORRUPT: Final = 11
SQLITE_NOTADB: Final = 26
DAMAGE_CODES: Final = frozenset({SQLITE_CORRUPT, SQLITE_NOTADB})

HEADER: Final = b"SQLite format 3\x00"
HEADER_BYTES: Final = 100
# How often (in SQLite virtual-machine steps) a bounded check looks at the clock: about a
# tenth of a millisecond of work between looks.
PROGRESS_STEPS: Final = 1000
# Lines of ``quick_check``'s report kept: the first ones name the damaged pages.
DETAIL_LINES: Final = 3


class Verdict:
    """What a check found (strings: they go into ``memq status --json``)."""

    OK: Final = "ok"  # checked through, nothing wrong
    DAMAGED: Final = "damaged"  # not a SQLite database, or damaged pages
    MISSING: Final = "missing"  # no file yet: nothing to check (memq creates it)
    UNCHECKED: Final = "unchecked"  # not checked through: out of time, or the file is busy


class Integrity:
    """The result of ``check``: the verdict, and for a damaged file what SQLite said."""

    __slots__ = ("detail", "path", "seconds", "verdict")

    def __init__(self, path: str, verdict: str, detail: str = "", seconds: float = 0.0) -> None:
        self.path = path
        self.verdict = verdict
        self.detail = detail
        self.seconds = seconds

    @property
    def damaged(self) -> bool:
        return self.verdict == Verdict.DAMAGED

    def as_dict(self) -> dict[str, object]:
        """The ``database_check`` key of ``memq status --json``."""
        return {
            "state": self.verdict,
            "path": self.path,
            "detail": self.detail or None,
            "seconds": round(self.seconds, 3),
        }

    def __repr__(self) -> str:
        return f"Integrity({self.path!r}, {self.verdict!r}, {self.detail!r})"


def damage_message(path: str, detail: str) -> str:
    """The sentence every command uses for a damaged database, naming the next step."""
    why = f" ({detail})" if detail else ""
    return (
        f"the database {path} is damaged{why}; run memq repair: it keeps the damaged file "
        "aside and builds a new database from every row that can still be read"
    )


def session_notice(path: str) -> str:
    """The one line a session starts with while the database is damaged (the hook prints it
    on SessionStart, where the person sees it in the assistant)."""
    return (
        f"memq: the memory database {path} is damaged, so this session starts without memq's "
        "memory; run `memq repair` to rebuild it (events are kept meanwhile).\n"
    )


def is_damage(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or an exception it was raised from) is SQLite saying the file is
    damaged or is no database."""
    seen = 0
    while exc is not None and seen < 10:
        code = getattr(exc, "sqlite_errorcode", None)
        if isinstance(code, int) and code & 0xFF in DAMAGE_CODES:
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def check(path: str, *, budget_seconds: float | None = None, thorough: bool = False) -> Integrity:
    """Check the database at ``path`` without writing to it.

    The header first (a text file at the path is no database), then ``PRAGMA quick_check``
    (``integrity_check`` when ``thorough``: it also compares every index with its table). With
    ``budget_seconds`` the check stops when the time is up and the verdict is ``UNCHECKED``
    unless damage was found before. Never raises for what it finds in the file.
    """
    started = time.monotonic()
    try:
        header = _read_header(path)
    except FileNotFoundError:
        return Integrity(path, Verdict.MISSING)
    except IsADirectoryError:
        return Integrity(path, Verdict.DAMAGED, "a directory, not a database file")
    except OSError as exc:
        return Integrity(path, Verdict.UNCHECKED, f"cannot read it: {exc.strerror}")
    if not header:
        return Integrity(path, Verdict.OK)  # empty: SQLite makes a database of it
    if len(header) < HEADER_BYTES or not header.startswith(HEADER):
        return Integrity(path, Verdict.DAMAGED, "not a SQLite database: its header is wrong")
    verdict, detail = _run_check(path, budget_seconds, thorough)
    return Integrity(path, verdict, detail, time.monotonic() - started)


def _read_header(path: str) -> bytes:
    """The first ``HEADER_BYTES`` of the file (fewer for a shorter file)."""
    with open(path, "rb") as handle:
        return handle.read(HEADER_BYTES)


def _run_check(path: str, budget_seconds: float | None, thorough: bool) -> tuple[str, str]:
    pragma = "integrity_check" if thorough else "quick_check"
    try:
        conn = sqlite3.connect(f"file:{_uri_path(path)}?mode=ro", uri=True, timeout=1.0)
    except sqlite3.Error as exc:
        return _classify(exc)
    try:
        if budget_seconds is not None:
            deadline = time.monotonic() + budget_seconds

            def out_of_time() -> bool:
                return time.monotonic() > deadline

            conn.set_progress_handler(out_of_time, PROGRESS_STEPS)
        try:
            rows = conn.execute(f"PRAGMA {pragma}").fetchall()
        except sqlite3.Error as exc:
            if budget_seconds is not None and "interrupted" in str(exc):
                return Verdict.UNCHECKED, f"not checked through within {budget_seconds:g} s"
            return _classify(exc)
    finally:
        conn.close()
    lines = [str(row[0]) for row in rows]
    if lines == ["ok"]:
        return Verdict.OK, ""
    report = [
        line.strip()
        for text in lines
        for line in text.splitlines()
        if line.strip() and not line.startswith("***")
    ]
    return Verdict.DAMAGED, "; ".join(report[:DETAIL_LINES]) or "quick_check failed"


def _classify(exc: sqlite3.Error) -> tuple[str, str]:
    if is_damage(exc):
        return Verdict.DAMAGED, str(exc)
    return Verdict.UNCHECKED, f"cannot check it: {exc}"


def _uri_path(path: str) -> str:
    # A file name with ``?`` or ``#`` must not be read as the URI's query or fragment.
    return os.path.abspath(path).replace("%", "%25").replace("?", "%3f").replace("#", "%23")
