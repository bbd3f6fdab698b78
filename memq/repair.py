"""``memq repair``: keep a damaged database aside and build a new one from every row that can
still be read.

1. Refuse while a daemon runs, and hold the queue's instance lock throughout, so none starts.
2. Check the file with ``PRAGMA integrity_check``; a whole database is left alone (unless
   forced).
3. Leave the repair mark (``memq.storage.repairing``) and wait out the hooks' budget: from then
   on a hook spools its event instead of opening the database, and none that started before
   is still writing.
4. Rename ``memq.db`` with its ``-wal`` and ``-shm`` to ``memq.db.damaged-<UTC stamp>``: kept,
   never deleted.
5. Build the new database beside it: the migrations up to the damaged one's schema version,
   then each table row by row. A rowid table is walked in rowid order; where a page cannot be
   read the walk looks for the first readable row after it (SQLite finds a rowid through the
   table's interior pages, so a bad page costs the rows on it, and a bad interior page those
   under it) and goes on from there. The rows the walk could not read are counted from the
   table's indexes, which still list them. A WITHOUT ROWID table is read from both ends.
   Indexes are built afresh; full-text search is rebuilt from its content tables, not
   copied; ids are never given out again. Then the remaining migrations.
6. Put it at the path, remove the mark, release the lock, and take in the spool.

Unlike the rest of ``memq.storage`` this is not for the hook: it takes the queue's instance
lock and reads the daemon's pid file.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from memq import env as memq_env
from memq import startup_error
from memq.exceptions import QueueLockedError, RepairError
from memq.file_sync import sync_directory
from memq.limits import MAX_INTEGER, MIN_INTEGER
from memq.queue import InstanceLock, lock_path_for
from memq.storage import connection, integrity, repairing, schema
from memq.storage.sqlfile import load_queries
from memq.worker.pidfile import running_daemon

QUERIES: Final = load_queries("repair")

CHUNK_ROWS: Final = 500  # rows inserted per transaction of the new database
# A hook takes at most its budget (1 s) once its event is ready, plus its start-up: after the
# mark has been there this long, no hook that began before it is still writing.
SETTLE_SECONDS: Final = 1.5
DAMAGED_SUFFIX: Final = ".damaged-"
BUILDING_SUFFIX: Final = ".repairing-"
SIDE_FILES: Final = ("-wal", "-shm", "-journal")

# The tables ``memq repair`` reports, in this order, by what they hold.
KINDS: Final = (
    ("pending_messages", "queue messages"),
    ("sessions", "sessions"),
    ("prompts", "prompts"),
    ("observations", "observations"),
    ("summaries", "summaries"),
    ("session_config", "settings"),
)
# Partial indexes that together list every row of their table (one per status, and a CHECK
# allows no other): what they hold counts a table's lost rows exactly.
COVERING_INDEXES: Final = {
    "pending_messages": frozenset(
        {
            "pending_messages_next",
            "pending_messages_leases",
            "pending_messages_processed",
            "pending_messages_failed",
        }
    ),
}
_WHERE: Final = re.compile(r"\bWHERE\b", re.IGNORECASE)

Gap = tuple[int, int | None]  # rowids [from, to) that could not be read; to None: the end


class RepairOutcome(StrEnum):
    """What ``repair`` did."""

    REPAIRED = "repaired"  # a new database is in place
    NOT_DAMAGED = "not_damaged"  # the check found nothing wrong: nothing done
    NO_DATABASE = "no_database"  # nothing at the path: nothing done


@dataclass(slots=True)
class TableRescue:
    """What became of one table's rows.

    ``lost`` is None when part of the table could not be read and nothing tells how many rows
    were there; ``lost_at_least`` when only some of the table's indexes could say.
    """

    table: str
    saved: int = 0
    lost: int | None = 0
    lost_at_least: bool = False
    unreadable: list[Gap] = field(default_factory=list)
    error: str | None = None  # why the table could not be read at all

    @property
    def kind(self) -> str:
        return dict(KINDS).get(self.table, self.table)

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "kind": self.kind,
            "saved": self.saved,
            "lost": self.lost,
            "lost_at_least": self.lost_at_least,
            "unreadable_rowids": [list(gap) for gap in self.unreadable],
            "error": self.error,
        }


@dataclass(slots=True)
class SpoolTaken:
    """The spool's part of a repair: events taken in, or why the repair left them."""

    taken: int = 0
    duplicates: int = 0
    rejected: int = 0
    waiting: int = 0
    note: str | None = None  # set when the repair did not take the spool in


@dataclass(slots=True)
class RepairReport:
    """What ``repair`` found and did."""

    outcome: RepairOutcome
    database: str
    found: integrity.Integrity
    kept_aside: list[str] = field(default_factory=list)
    tables: list[TableRescue] = field(default_factory=list)
    spool: SpoolTaken | None = None
    seconds: float = 0.0

    def table(self, name: str) -> TableRescue:
        for rescue in self.tables:
            if rescue.table == name:
                return rescue
        raise KeyError(name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome.value,
            "database": self.database,
            "check": self.found.as_dict(),
            "kept_aside": self.kept_aside,
            "tables": [rescue.as_dict() for rescue in self.tables],
            "spool": None if self.spool is None else _spool_dict(self.spool),
            "seconds": round(self.seconds, 3),
        }


def _spool_dict(spool: SpoolTaken) -> dict[str, Any]:
    return {
        "taken": spool.taken,
        "duplicates": spool.duplicates,
        "rejected": spool.rejected,
        "waiting": spool.waiting,
        "note": spool.note,
    }


TakeInSpool = Callable[[Path, Path], SpoolTaken]


def spool_intake(max_body_bytes: int) -> TakeInSpool:
    """Take ``home``'s spool into the queue of ``database`` now (``memq repair``, after its
    lock is released). A daemon that started in between takes it in itself."""

    def take_in(database: Path, home: Path) -> SpoolTaken:
        import anyio  # noqa: PLC0415 - the rest of a repair needs no event loop

        from memq.exceptions import StorageError  # noqa: PLC0415
        from memq.worker.spool_intake import take_in_to  # noqa: PLC0415

        async def run() -> SpoolTaken:
            report = await take_in_to(database, home, max_body_bytes=max_body_bytes)
            return SpoolTaken(report.taken, report.duplicates, report.rejected, report.waiting)

        try:
            return anyio.run(run)
        except QueueLockedError:
            return SpoolTaken(note="a daemon started meanwhile: it takes the spool in")
        except StorageError as exc:
            return SpoolTaken(note=f"not taken in now ({exc}): memq start takes it in")

    return take_in


def repair(
    home: Path,
    *,
    force: bool = False,
    take_in_spool: TakeInSpool | None = None,
    settle_seconds: float = SETTLE_SECONDS,
) -> RepairReport:
    """Repair ``home``'s database (see the module docstring); ``take_in_spool(database,
    home)`` takes the spool into the new database once the lock is released.

    Raises ``RepairError`` when it must not run now (a daemon runs, another process holds
    the database, the database is from a newer memq).
    """
    started = time.monotonic()
    database = home / memq_env.DATABASE_FILE
    record = running_daemon(home / memq_env.PID_FILE, database)
    if record is not None:
        raise RepairError(
            f"memq is running (pid {record.pid}) on {database}; stop it first (memq stop): "
            "a damaged database stops it from starting, so it was damaged after it started"
        )
    lock = _lock(database)
    try:
        _refuse_newer_schema(database)
        found = integrity.check(str(database), thorough=True)
        if found.verdict == integrity.Verdict.MISSING:
            report = RepairReport(RepairOutcome.NO_DATABASE, str(database), found)
        elif not found.damaged and not force:
            report = RepairReport(RepairOutcome.NOT_DAMAGED, str(database), found)
        else:
            report = _rebuild(home, database, found, settle_seconds)
    finally:
        lock.release()
    if report.outcome is RepairOutcome.REPAIRED and take_in_spool is not None:
        report.spool = take_in_spool(database, home)
    report.seconds = time.monotonic() - started
    return report


def _lock(database: Path) -> InstanceLock:
    database.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        return InstanceLock.acquire(lock_path_for(database))
    except QueueLockedError as exc:
        raise RepairError(f"another memq process has the database open: {exc}") from None


def _rebuild(
    home: Path, database: Path, found: integrity.Integrity, settle_seconds: float
) -> RepairReport:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    repairing.mark(str(home))
    try:
        time.sleep(settle_seconds)  # hooks that began before the mark finish their writes
        aside = _free_name(database, DAMAGED_SUFFIX + stamp)
        kept = _move_aside(database, aside)
        building = database.with_name(database.name + BUILDING_SUFFIX + stamp)
        _remove_building_leftovers(database)
        try:
            tables = build_from(aside, building)
        except BaseException:
            # Nothing half-done stays: the damaged files go back where they were.
            _remove_building_leftovers(database)
            _move_back(aside, database)
            raise
        _install(building, database)
        startup_error.clear(str(home))
    finally:
        repairing.unmark(str(home))
    return RepairReport(
        RepairOutcome.REPAIRED,
        str(database),
        found,
        kept_aside=[str(p) for p in kept],
        tables=tables,
    )


def _free_name(database: Path, suffix: str) -> Path:
    candidate = database.with_name(database.name + suffix)
    number = 2
    while any(Path(f"{candidate}{side}").exists() for side in ("", *SIDE_FILES)):
        candidate = database.with_name(f"{database.name}{suffix}-{number}")
        number += 1
    return candidate


def _move_aside(database: Path, aside: Path) -> list[Path]:
    """Rename the database and its side files (SQLite finds ``NAME-wal`` by the database's
    name, so they move together). Returns the new names."""
    moved = []
    for side in ("", *SIDE_FILES):
        source = Path(f"{database}{side}")
        if source.exists():
            target = Path(f"{aside}{side}")
            os.rename(source, target)
            moved.append(target)
    sync_directory(database.parent)
    return moved


def _move_back(aside: Path, database: Path) -> None:
    if any(Path(f"{database}{side}").exists() for side in ("", *SIDE_FILES)):
        return  # something was made at the path meanwhile: the damaged files stay aside
    for side in ("", *SIDE_FILES):
        source = Path(f"{aside}{side}")
        if source.exists():
            os.rename(source, Path(f"{database}{side}"))
    sync_directory(database.parent)


def _remove_building_leftovers(database: Path) -> None:
    """A database a repair was building when it died is incomplete: its source is still
    kept aside, so it is rebuilt from there, not taken."""
    for path in database.parent.glob(database.name + BUILDING_SUFFIX + "*"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _install(building: Path, database: Path) -> None:
    """Put the new database at the path; never over a file that appeared there."""
    try:
        os.link(building, database)
    except FileExistsError:
        raise RepairError(
            f"a file appeared at {database} while the repair ran; the rebuilt database is "
            f"kept at {building}: move that file away and rename it to {database.name}"
        ) from None
    building.unlink()
    sync_directory(database.parent)


def build_from(source: Path, target: Path) -> list[TableRescue]:
    """Build a new database at ``target`` from every row of ``source`` that can be read;
    what became of each table. ``source`` is opened read-only."""
    src = sqlite3.connect(f"file:{_uri(source)}?mode=ro", uri=True, timeout=5)
    # Text a damaged page garbled is kept as far as it reads, not refused whole.
    src.text_factory = lambda data: data.decode("utf-8", "replace")
    # Created 0600 before SQLite opens it: its -wal and -shm take the database's mode.
    os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
    dst = connection.connect(target, synchronous=connection.Synchronous.NORMAL)
    try:
        migrations = schema.available_migrations()
        version = _source_version(src, len(migrations))
        schema.migrate(dst, migrations[:version])
        dst.execute("PRAGMA foreign_keys = OFF")  # a row whose parent was lost is kept
        source_tables = _tables(src)
        rescues = []
        for table in _copy_order(_tables(dst)):
            if source_tables is None:
                rescues.append(TableRescue(table, lost=None, error=_unreadable_reason(src)))
            elif table not in source_tables:
                rescues.append(TableRescue(table))  # the damaged database had no such table
            else:
                rescues.append(_copy_table(src, dst, table, without_rowid=source_tables[table]))
        schema.migrate(dst, migrations)
        _rebuild_search(dst)
        _keep_ids_unique(src, dst, rescues)
        dst.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (verdict,) = dst.execute("PRAGMA quick_check").fetchone()
        if verdict != "ok":
            raise RepairError(f"the rebuilt database {target} failed its own check: {verdict}")
    finally:
        dst.close()
        src.close()
    _sync_file(target)
    return sorted(rescues, key=_report_order)


def _refuse_newer_schema(database: Path) -> None:
    """A database a newer memq wrote is left as it is (its version, if it can be read)."""
    if not database.is_file():
        return
    src = sqlite3.connect(f"file:{_uri(database)}?mode=ro", uri=True, timeout=5)
    try:
        _source_version(src, len(schema.available_migrations()))
    finally:
        src.close()


def _source_version(src: sqlite3.Connection, latest: int) -> int:
    try:
        (version,) = src.execute(QUERIES["schema_version"]).fetchone()
    except sqlite3.Error:
        return latest  # unreadable: the tables' own columns decide what is copied
    if version is None:
        return latest
    if int(version) > latest:
        raise RepairError(
            f"the damaged database is at schema version {version}, newer than this memq "
            f"understands ({latest}); repair it with the memq that wrote it"
        )
    return max(int(version), 1)


def _tables(conn: sqlite3.Connection) -> dict[str, bool] | None:
    """Ordinary tables to copy (name -> WITHOUT ROWID), or None when the schema itself
    cannot be read. Full-text tables and their shadow tables are rebuilt, not copied."""
    try:
        rows = conn.execute(QUERIES["tables"]).fetchall()
    except sqlite3.Error:
        return None
    return {
        str(name): bool(wr)
        for name, kind, wr in rows
        if kind == "table" and name != "schema_version"
    }


def _unreadable_reason(src: sqlite3.Connection) -> str:
    try:
        src.execute(QUERIES["tables"]).fetchall()
    except sqlite3.Error as exc:
        return f"nothing could be read from it: {exc}"
    return "nothing could be read from it"


def _copy_order(tables: dict[str, bool] | None) -> list[str]:
    names = list(tables or {})
    reported = [table for table, _ in KINDS if table in names]
    return reported + sorted(table for table in names if table not in reported)


def _report_order(rescue: TableRescue) -> int:
    order = [table for table, _ in KINDS]
    return order.index(rescue.table) if rescue.table in order else len(order)


def _copy_table(
    src: sqlite3.Connection, dst: sqlite3.Connection, table: str, *, without_rowid: bool
) -> TableRescue:
    rescue = TableRescue(table)
    try:
        wanted = [str(row[0]) for row in dst.execute(QUERIES["columns"], {"table": table})]
        old = src.execute(QUERIES["columns"], {"table": table}).fetchall()
    except sqlite3.Error as exc:
        return TableRescue(table, lost=None, error=f"its columns cannot be read: {exc}")
    present = {str(row[0]) for row in old}
    columns = [name for name in wanted if name in present]
    keys = [str(name) for name, pk in sorted(old, key=lambda row: row[1]) if pk]
    names = ", ".join(_quoted(name) for name in columns)
    marks = ", ".join("?" for _ in columns)
    statement = "replace_row" if without_rowid else "insert_row"
    insert = QUERIES[statement].format(table=table, columns=names, marks=marks)
    if without_rowid:
        broken: list[bool] = []
        rows: Iterator[Sequence[Any]] = _keyed_rows(src, table, columns, keys, broken)
        read = _insert_all(dst, insert, rows, rescue, skip=0)
        if broken:
            _count_lost_keyed(src, table, read, rescue)
    else:
        rows = _rowid_rows(src, table, names, rescue.unreadable)
        _insert_all(dst, insert, rows, rescue, skip=1)
        _count_lost_rowids(src, table, rescue)
    return rescue


def _insert_all(
    dst: sqlite3.Connection,
    insert: str,
    rows: Iterator[Sequence[Any]],
    rescue: TableRescue,
    *,
    skip: int,
) -> int:
    """Insert ``rows`` (their first ``skip`` values are not columns) in chunks; a row the new
    database refuses (a damaged value failing a constraint) counts as lost. Returns how many
    rows were read."""
    read = 0
    refused = 0
    chunk: list[Sequence[Any]] = []

    def flush() -> None:
        nonlocal refused
        dst.execute("BEGIN")
        try:
            for row in chunk:
                try:
                    dst.execute(insert, tuple(row[skip:]))
                    rescue.saved += 1
                except sqlite3.Error:
                    refused += 1
            dst.execute("COMMIT")
        except BaseException:
            dst.execute("ROLLBACK")
            raise
        chunk.clear()

    for row in rows:
        read += 1
        chunk.append(row)
        if len(chunk) >= CHUNK_ROWS:
            flush()
    if chunk:
        flush()
    if rescue.lost is not None:
        rescue.lost += refused
    return read


def _rowid_rows(
    conn: sqlite3.Connection, table: str, names: str, gaps: list[Gap]
) -> Iterator[Sequence[Any]]:
    """Every readable row of a rowid table (the rowid first), in rowid order; the rowid
    ranges that could not be read are appended to ``gaps``."""
    scan = QUERIES["rows_from"].format(table=table, columns=names)
    one = QUERIES["first_row_from"].format(table=table, columns=names)
    start = MIN_INTEGER
    while True:
        last = None
        try:
            for row in conn.execute(scan, {"start": start}):
                last = int(row[0])
                yield row
        except sqlite3.Error:
            pass  # a page that cannot be read: the rows before it were yielded
        else:
            return
        if last is not None:
            if last == MAX_INTEGER:
                return
            start = last + 1
        # A scan reads a row ahead: fetch the rows before the bad page one at a time.
        try:
            row = conn.execute(one, {"start": start}).fetchone()
        except sqlite3.Error:
            row = None
        else:
            if row is None:
                return
            yield row
            if int(row[0]) == MAX_INTEGER:
                return
            start = int(row[0]) + 1
            continue
        resume = _next_readable(conn, table, start)
        gaps.append((start, resume))
        if resume is None:
            return
        start = resume


def _next_readable(conn: sqlite3.Connection, table: str, bad: int) -> int | None:
    """The first rowid after ``bad`` (whose page cannot be read) that can be read again, or
    None when none can. Looking up the first row at or after a rowid fails while that row's
    page is the damaged one and works past it: step out in doubling strides until it works,
    then search back for where it starts to."""
    query = QUERIES["first_rowid_from"].format(table=table)

    def probe(rowid: int) -> tuple[Any, ...] | None:
        found: tuple[Any, ...] | None = conn.execute(query, {"start": rowid}).fetchone()
        return found

    stride = 1
    while True:
        ahead = min(bad + stride, MAX_INTEGER)
        try:
            probe(ahead)
        except sqlite3.Error:
            if ahead == MAX_INTEGER:
                return None
            bad, stride = ahead, stride * 2
            continue
        break
    low, high = bad + 1, ahead
    while low < high:
        middle = (low + high) // 2
        try:
            probe(middle)
        except sqlite3.Error:
            low = middle + 1
        else:
            high = middle
    try:
        row = probe(high)
    except sqlite3.Error:
        return None
    return None if row is None else int(row[0])


def _count_lost_rowids(conn: sqlite3.Connection, table: str, rescue: TableRescue) -> None:
    """Count the rows in the unreadable ranges from the table's indexes, which list the
    rowid of every row (a partial index, of the rows it covers)."""
    if not rescue.unreadable:
        return
    try:
        indexes = conn.execute(QUERIES["indexes"], {"table": table}).fetchall()
    except sqlite3.Error:
        indexes = []
    known: set[int] = set()
    exact = False
    covering = COVERING_INDEXES.get(table, frozenset())
    read_covering: set[str] = set()
    for name, partial, sql in indexes:
        where = _partial_where(sql) if partial else "1"
        if where is None:
            continue
        query = QUERIES["indexed_rowids"].format(table=table, index=name, where=where)
        try:
            for low, high in rescue.unreadable:
                bounds = {"low": low, "high": MAX_INTEGER if high is None else high}
                known.update(int(row[0]) for row in conn.execute(query, bounds))
        except sqlite3.Error:
            continue  # a damaged index says nothing
        if not partial:
            exact = True
        elif name in covering:
            read_covering.add(name)
    exact = exact or (bool(covering) and read_covering == covering)
    if not exact and not known:
        rescue.lost = None
        return
    rescue.lost = (rescue.lost or 0) + len(known)
    rescue.lost_at_least = not exact


def _partial_where(sql: object) -> str | None:
    """The WHERE of a partial index's CREATE INDEX statement."""
    if not isinstance(sql, str):
        return None
    parts = _WHERE.split(sql)
    return parts[-1].strip().rstrip(";") if len(parts) > 1 else None


def _keyed_rows(
    conn: sqlite3.Connection,
    table: str,
    columns: list[str],
    keys: list[str],
    broken: list[bool],
) -> Iterator[Sequence[Any]]:
    """A WITHOUT ROWID table's readable rows: in key order until a page cannot be read,
    then from the end back to there (``broken`` gets an entry when a page could not be)."""
    names = ", ".join(_quoted(name) for name in columns)
    order = ", ".join(_quoted(key) for key in keys)
    backwards = ", ".join(f"{_quoted(key)} DESC" for key in keys)
    key_at = [columns.index(key) for key in keys if key in columns]
    last: tuple[Any, ...] | None = None
    try:
        for row in conn.execute(
            QUERIES["keyed_rows"].format(table=table, columns=names, keys=order)
        ):
            last = tuple(row[i] for i in key_at)
            yield row
    except sqlite3.Error:
        broken.append(True)
    else:
        return
    if last is None or len(key_at) != len(keys):
        query, params = QUERIES["keyed_rows_back"], ()
    else:
        query, params = QUERIES["keyed_rows_back_to"], last
    text = query.format(
        table=table,
        columns=names,
        keys=order,
        keys_descending=backwards,
        marks=", ".join("?" for _ in keys),
    )
    with contextlib.suppress(sqlite3.Error):
        yield from conn.execute(text, params)


def _count_lost_keyed(conn: sqlite3.Connection, table: str, read: int, rescue: TableRescue) -> None:
    """Rows the table holds but were not read, by its count (an index may still give it)."""
    try:
        (total,) = conn.execute(QUERIES["count_rows"].format(table=table)).fetchone()
    except sqlite3.Error:
        rescue.lost = None
        return
    rescue.lost = (rescue.lost or 0) + max(0, int(total) - read)


def _rebuild_search(dst: sqlite3.Connection) -> None:
    """Rebuild every full-text index from its content tables."""
    for (name,) in dst.execute(QUERIES["fts_tables"]).fetchall():
        dst.execute(QUERIES["rebuild_fts"].format(table=name))


def _keep_ids_unique(
    src: sqlite3.Connection, dst: sqlite3.Connection, rescues: list[TableRescue]
) -> None:
    """Raise each table's id sequence past every id the damaged database gave out, as far
    as it says: its own sequences, the rowids its indexes list where its table could not be
    read, and the queue ids memory refers to."""
    wanted: dict[str, int] = {}
    with contextlib.suppress(sqlite3.Error):
        for name, seq in src.execute(QUERIES["sequences"]):
            wanted[str(name)] = int(seq)
    for rescue in rescues:
        for _, high in rescue.unreadable:
            if high is not None:
                wanted[rescue.table] = max(wanted.get(rescue.table, 0), high)
    (referenced,) = dst.execute(QUERIES["referenced_message_ids"]).fetchone()
    if referenced is not None:
        wanted["pending_messages"] = max(wanted.get("pending_messages", 0), int(referenced))
    dst.execute("BEGIN")
    try:
        for name, seq in wanted.items():
            params = {"name": name, "seq": seq}
            dst.execute(QUERIES["raise_sequence"], params)
            dst.execute(QUERIES["add_sequence"], params)
        dst.execute("COMMIT")
    except BaseException:
        dst.execute("ROLLBACK")
        raise


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _uri(path: Path) -> str:
    return str(path.resolve()).replace("%", "%25").replace("?", "%3f").replace("#", "%23")


def _sync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def report_lines(report: RepairReport) -> list[str]:
    """What ``memq repair`` prints."""
    if report.outcome is RepairOutcome.NO_DATABASE:
        return [f"no database at {report.database}: nothing to repair"]
    if report.outcome is RepairOutcome.NOT_DAMAGED:
        return [
            f"{report.database} passed integrity_check: nothing to repair "
            "(memq repair --force rebuilds it anyway)"
        ]
    found = report.found
    head = "is damaged" if found.damaged else "was rebuilt on request"
    why = f" ({found.detail})" if found.detail else ""
    lines = [f"{report.database} {head}{why}"]
    if report.kept_aside:
        lines.append(f"kept aside: {', '.join(report.kept_aside)}")
    lines.append(f"new database: {report.database}")
    unreadable = [rescue for rescue in report.tables if rescue.error]
    if unreadable and len(unreadable) == len(report.tables):
        lines.append(f"  {unreadable[0].error}: the new database starts empty")
    width = max(len(label) for _, label in KINDS)
    for table, label in KINDS:
        try:
            rescue = report.table(table)
        except KeyError:
            continue
        lines.append(f"  {label:<{width}}  {rescue.saved:>8} saved, {_lost_text(rescue)}")
    spool = report.spool
    if spool is not None:
        if spool.note:
            lines.append(f"spool: {spool.note}")
        elif spool.taken or spool.duplicates or spool.rejected:
            lines.append(
                f"spool: {spool.taken} event(s) taken in"
                + (f", {spool.duplicates} already stored" if spool.duplicates else "")
                + (
                    f", {spool.rejected} not readable (kept in spool/rejected)"
                    if spool.rejected
                    else ""
                )
            )
    lines.append("memq start runs memq on the new database")
    return lines


def _lost_text(rescue: TableRescue) -> str:
    if rescue.lost is None:
        return "an unknown number lost (part of it could not be read)"
    return f"{'at least ' if rescue.lost_at_least else ''}{rescue.lost} lost"
