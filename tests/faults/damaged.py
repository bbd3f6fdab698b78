"""A damaged database: memq finds it, says it, and ``memq repair`` rebuilds it.

Each driver gets a home a real daemon wrote (events through its API, processed into memory,
the daemon stopped), damages ``memq.db`` in place the way a failing disk or a stray write
does, and then, with the daemon down:

1. sends events through the real ``memq hook`` (kept from starting a daemon themselves, so
   that recovery starts one at a known moment): each goes into the database if the damage
   lets it, else into the spool;
2. records what memq says: ``memq status`` and ``memq start`` (both must exit non-zero naming
   the file and ``memq repair``) and the context a session starts with (one line saying so);
3. runs ``memq repair``, then ``memq start``, and waits until every acknowledged event is in
   the queue, processed.

    index_pages   garbage over every page of two indexes (the queue's dedupe index, the
                  observations' session index): no row may be lost
    table_page    zeros over one leaf page of observations, in the middle of the table: only
                  the rows on that page may be lost, and the repair must count them exactly
    text_file     a text file at memq.db: nothing can be read; the events sent meanwhile are
                  kept all the same

Pages are found by walking each b-tree from its root page (``sqlite_schema.rootpage``) with
the file's ``PRAGMA page_size``, so the damage lands on the pages named, in the middle of the
file. ``kept`` counts the hook events found exactly once in the queue after recovery.
"""

from __future__ import annotations

import json
import os
import sqlite3
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.faults import FaultReport
from tests.faults.kit import memq, queue_counts, ran_home, run_hook, tool_call

EVENTS_BEFORE = 60  # processed into memory before the damage: enough for many leaf pages
EVENTS_DURING = 10  # sent through hooks while the database is damaged
SESSION_ID = "damaged-db"
CWD = "/tmp/damaged-db-project"
RECOVERY_TIMEOUT_SECONDS = 60.0
INTERIOR_PAGES = (0x02, 0x05)  # index and table interior b-tree pages
TABLE_LEAF = 0x0D


@dataclass(frozen=True, slots=True)
class DamagedFaultReport(FaultReport):
    """A ``FaultReport`` with what memq said about the damage and what the repair saved.

    Args:
        status: ``memq status`` while damaged: exit code and output.
        start: ``memq start`` while damaged: exit code and output.
        session_context: what a SessionStart hook printed while damaged.
        repair: ``memq repair --json``'s report.
        rows_before: rows of each reported table before the damage.
        rows_on_damaged_pages: rows of each table stored on the damaged table pages.
        search_hits: ``memq search`` hits after recovery for a word of the events before.
    """

    status: tuple[int, str] = (0, "")
    start: tuple[int, str] = (0, "")
    session_context: str = ""
    repair: dict[str, Any] = field(default_factory=dict)
    rows_before: dict[str, int] = field(default_factory=dict)
    rows_on_damaged_pages: dict[str, int] = field(default_factory=dict)
    search_hits: int = 0

    def repaired(self, table: str) -> dict[str, Any]:
        """The repair's entry for ``table``."""
        for entry in self.repair.get("tables", []):
            if entry["table"] == table:
                return dict(entry)
        raise KeyError(table)


# -- the damage -------------------------------------------------------------------------------


def page_size(database: Path) -> int:
    with sqlite3.connect(f"file:{database}?mode=ro&immutable=1", uri=True) as conn:
        (size,) = conn.execute("PRAGMA page_size").fetchone()
    conn.close()
    return int(size)


def root_page(database: Path, name: str) -> int:
    with sqlite3.connect(f"file:{database}?mode=ro&immutable=1", uri=True) as conn:
        (root,) = conn.execute(
            "SELECT rootpage FROM sqlite_schema WHERE name = ?", (name,)
        ).fetchone()
    conn.close()
    return int(root)


def btree_pages(database: Path, name: str) -> tuple[list[int], list[int]]:
    """The interior and leaf pages of the b-tree of table or index ``name`` (overflow pages
    not included), read from the file's bytes."""
    size = page_size(database)
    data = database.read_bytes()
    interior: list[int] = []
    leaves: list[int] = []
    pending = [root_page(database, name)]
    while pending:
        page = pending.pop()
        start = (page - 1) * size
        header = start + (100 if page == 1 else 0)
        kind = data[header]
        cells = struct.unpack(">H", data[header + 3 : header + 5])[0]
        if kind not in INTERIOR_PAGES:
            leaves.append(page)
            continue
        interior.append(page)
        pending.append(struct.unpack(">I", data[header + 8 : header + 12])[0])  # right-most
        for index in range(cells):
            pointer = header + 12 + 2 * index
            (offset,) = struct.unpack(">H", data[pointer : pointer + 2])
            pending.append(struct.unpack(">I", data[start + offset : start + offset + 4])[0])
    return interior, leaves


def cells_on(database: Path, page: int) -> int:
    """How many cells (rows, on a table leaf) the page holds."""
    size = page_size(database)
    with database.open("rb") as handle:
        handle.seek((page - 1) * size + (100 if page == 1 else 0))
        header = handle.read(8)
    return int(struct.unpack(">H", header[3:5])[0])


def overwrite_pages(database: Path, pages: list[int], *, fill: str) -> None:
    """Write ``fill`` ("zeros" or "garbage") over whole pages, in place, synced."""
    size = page_size(database)
    with database.open("r+b") as handle:
        for page in pages:
            handle.seek((page - 1) * size)
            handle.write(bytes(size) if fill == "zeros" else os.urandom(size))
        handle.flush()
        os.fsync(handle.fileno())


def checkpointed(database: Path) -> None:
    """Everything in the main file, no ``-wal`` beside it (a stopped daemon leaves it so;
    this makes sure the page numbers read are the pages in use)."""
    conn = sqlite3.connect(database, isolation_level=None)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def table_rows(database: Path) -> dict[str, int]:
    with sqlite3.connect(f"file:{database}?mode=ro&immutable=1", uri=True) as conn:
        counts = {
            table: int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
            for table in ("pending_messages", "sessions", "prompts", "observations", "summaries")
        }
    conn.close()
    return counts


# -- events and what became of them --------------------------------------------------------------


def payload(scenario: str, index: int) -> dict[str, Any]:
    """A tool call with a long output (a few fill a page), in this driver's session."""
    return tool_call(
        SESSION_ID,
        f"{scenario}-{index}",
        cwd=CWD,
        echo=str(index),
        stdout=f"flux capacitor reading {index}: " + "calibrated " * 60,
    )


def processed_counts(database: Path, keys: list[str]) -> dict[str, int]:
    """How many queue rows, processed, each dedupe key has (read-only)."""
    return queue_counts(database, SESSION_ID, keys, status="processed")


def ready_home(scratch: Path) -> tuple[Path, int]:
    """A home a real daemon wrote ``EVENTS_BEFORE`` events to, processed, then stopped in."""
    daemon = ran_home(scratch, [payload("before", index) for index in range(EVENTS_BEFORE)])
    checkpointed(daemon.home / "memq.db")
    return daemon.home, daemon.port


def recover(
    name: str,
    home: Path,
    port: int,
    *,
    rows_before: dict[str, int],
    rows_on_damaged_pages: dict[str, int],
) -> DamagedFaultReport:
    """Send events into the damaged home, record what memq says, repair, start, count."""
    keys = []
    acknowledged = 0
    for index in range(EVENTS_DURING):
        body = payload(name, index)
        keys.append(f"tool:{body['tool_use_id']}")
        acknowledged += run_hook(home, port, body).returncode == 0
    try:
        status = memq(home, port, "status")
        start = memq(home, port, "start", timeout=60)
        if start[0] == 0:
            raise AssertionError(f"memq started on the damaged database: {start[1]}")
        session = run_hook(
            home,
            port,
            {
                "hook_event_name": "SessionStart",
                "session_id": SESSION_ID,
                "cwd": CWD,
                "source": "startup",
            },
        )
        started = time.monotonic()
        code, text = memq(home, port, "repair", "--json", timeout=300)
        if code != 0:
            raise AssertionError(f"memq repair exited {code}: {text}")
        repaired = json.loads(text)
        code, text = memq(home, port, "start", timeout=60)
        if code != 0:
            raise AssertionError(f"memq start after the repair exited {code}: {text}")
        database = home / "memq.db"
        deadline = started + RECOVERY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if all(n == 1 for n in processed_counts(database, keys).values()):
                break
            time.sleep(0.1)
        recovery = time.monotonic() - started
        counts = processed_counts(database, keys)
        _, found = memq(home, port, "search", "flux", "--json", "--limit", "1000")
        hits = int(json.loads(found)["total"]) if found.strip().startswith("{") else 0
    finally:
        memq(home, port, "stop")  # whichever daemon started, none is left behind
    return DamagedFaultReport(
        scenario=name,
        sent=len(keys),
        acknowledged=acknowledged,
        kept=sum(1 for key in keys if counts[key] == 1),
        recovery_seconds=recovery,
        status=status,
        start=start,
        session_context=session.stdout.decode(errors="replace"),
        repair=repaired,
        rows_before=rows_before,
        rows_on_damaged_pages=rows_on_damaged_pages,
        search_hits=hits,
    )


# -- the scenarios --------------------------------------------------------------------------------


def index_pages(scratch: Path) -> DamagedFaultReport:
    """Garbage over every page of the queue's dedupe index and of the observations' session
    index: rows are all still readable through their tables."""
    home, port = ready_home(scratch)
    database = home / "memq.db"
    rows = table_rows(database)
    pages: list[int] = []
    for index in ("pending_messages_dedupe", "observations_session"):
        interior, leaves = btree_pages(database, index)
        pages += interior + leaves
    overwrite_pages(database, pages, fill="garbage")
    return recover(
        "damaged index pages, then memq repair",
        home,
        port,
        rows_before=rows,
        rows_on_damaged_pages={},
    )


def table_page(scratch: Path) -> DamagedFaultReport:
    """Zeros over one leaf page of observations in the middle of the table (neither its
    first nor its last): the rows on it are lost, every other row is saved."""
    home, port = ready_home(scratch)
    database = home / "memq.db"
    rows = table_rows(database)
    _, leaves = btree_pages(database, "observations")
    if len(leaves) < 3:
        raise AssertionError(f"observations fill {len(leaves)} leaf page(s); 3 are needed")
    middle = sorted(leaves)[len(leaves) // 2]
    on_page = cells_on(database, middle)
    overwrite_pages(database, [middle], fill="zeros")
    return recover(
        "a damaged table page, then memq repair",
        home,
        port,
        rows_before=rows,
        rows_on_damaged_pages={"observations": on_page},
    )


def text_file(scratch: Path) -> DamagedFaultReport:
    """A text file where memq.db belongs ("file is not a database")."""
    home, port = ready_home(scratch)
    database = home / "memq.db"
    rows = table_rows(database)
    database.write_text("notes I meant to keep somewhere else\n" * 40)
    return recover(
        "a text file at memq.db, then memq repair",
        home,
        port,
        rows_before=rows,
        rows_on_damaged_pages=dict(rows),
    )


SCENARIOS = (index_pages, table_page, text_file)
