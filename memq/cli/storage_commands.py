"""``memq migrate``: bring the database's schema up to date, and say what was applied.

With ``MEMQ_DATABASE_URL`` set, the PostgreSQL schema it names (``memq.storage.postgres``):
safe while daemons start against the same database, which wait for each other. Without it,
``MEMQ_HOME/memq.db``, under the queue's instance lock, so never while a daemon has the file
open; a running daemon brought it up to date when it started, which is then said instead.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

from memq.cli.command import EXIT_ERROR, EXIT_OK, EXIT_USAGE, Command, Subcommands
from memq.config import Settings
from memq.exceptions import QueueLockedError, SchemaError, SettingError, StorageError


def add_parsers(commands: Subcommands) -> None:
    """Add memq migrate to ``memq``'s parser."""
    migrate = commands.add_parser(
        "migrate",
        help="bring the database's schema up to date",
        description="Apply the schema migrations this memq has and the database has not. "
        "With MEMQ_DATABASE_URL set: the PostgreSQL schema it names (daemons starting at the "
        "same time wait for each other; each migration is applied once). Without it: "
        "MEMQ_HOME/memq.db, unless a daemon has it open (the daemon migrates it when it "
        "starts).",
    )
    migrate.add_argument("--json", action="store_true", help="print JSON")


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    """``memq migrate [--json]``."""
    try:
        if settings.database_url:
            report = _migrate_postgres(settings.database_url)
        else:
            report = _migrate_sqlite(settings)
    except SettingError as exc:  # the postgres extra is not installed
        print(f"memq: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (StorageError, SchemaError, QueueLockedError) as exc:
        print(f"memq migrate: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for line in _report_lines(report):
            print(line)
    return EXIT_OK if report["up_to_date"] else EXIT_ERROR


def _migrate_postgres(url: str) -> dict[str, Any]:
    import asyncio

    from memq.storage.postgres import connection, schema
    from memq.storage.postgres.url import shown_url

    async def run() -> schema.MigrationResult:
        conn = await connection.connect(url)
        try:
            return await schema.migrate(conn, url=url)
        finally:
            await conn.close()

    result = asyncio.run(run())
    return {
        "backend": "postgresql",
        "database": shown_url(url),
        "before": result.before,
        "after": result.after,
        "applied": [f"{m.version:04d}_{m.name}" for m in result.applied],
        "up_to_date": True,
        "note": None,
    }


def _migrate_sqlite(settings: Settings) -> dict[str, Any]:
    from memq.queue import InstanceLock, lock_path_for
    from memq.storage import connection, schema

    database = settings.database_path
    wanted = schema.available_migrations()
    latest = wanted[-1].version if wanted else 0
    report: dict[str, Any] = {
        "backend": "sqlite",
        "database": str(database),
        "applied": [],
        "up_to_date": True,
        "note": None,
    }
    settings.paths.create_home()
    try:
        lock = InstanceLock.acquire(lock_path_for(database))
    except QueueLockedError as exc:
        # The daemon (or a repair) has the file: it migrated it when it opened it.
        version = _version_read_only(database)
        report.update(before=version, after=version, up_to_date=version == latest)
        report["note"] = (
            f"the database is open by another memq process ({exc}); a daemon brings the "
            "schema up to date when it starts"
            + ("" if version == latest else f": restart it to go from {version} to {latest}")
        )
        return report
    try:
        conn = connection.connect(
            database, synchronous=connection.Synchronous(settings.synchronous)
        )
        try:
            before = schema.current_version(conn)
            after = schema.migrate(conn, wanted)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise StorageError(f"{database}: {exc}") from exc
    finally:
        lock.release()
    report.update(
        before=before,
        after=after,
        applied=[f"{m.version:04d}_{m.name}" for m in wanted[before:after]],
    )
    return report


def _version_read_only(database: Path) -> int:
    from memq.storage import schema

    try:
        conn = sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True)
        try:
            return schema.current_version(conn)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise StorageError(f"{database}: {exc}") from exc


def _report_lines(report: dict[str, Any]) -> list[str]:
    where = f"{report['backend']} {report['database']}"
    lines = []
    if report["applied"]:
        lines.append(f"{where}: applied {', '.join(report['applied'])}")
    if report["note"]:
        lines.append(f"{where}: {report['note']}")
    if report["up_to_date"]:
        state = "already " if not report["applied"] else ""
        lines.append(f"{where}: schema {state}at version {report['after']}")
    else:
        lines.append(f"{where}: schema at version {report['after']}, not up to date")
    return lines


COMMANDS: dict[str, Command] = {"migrate": cmd_migrate}
