"""A second process for crash and cross-process tests: ``python -m tests.helpers.queue_child``.

DB is a database file, or (hold-claims, crash-on-poison) a PostgreSQL URL naming its schema.

Commands:
    hold-open DB                   open the queue, print "ready", wait to be killed
    hold-claims DB SESSION...      claim one message of each session, print their ids, wait
    crash-on-poison DB SESSION     ack messages in order; SIGKILL itself on {"poison": true};
                                   print "drained" if the stream ends without meeting one
    insert-direct DB SESSION KEY   write one row through the hook's fallback (stdlib only);
                                   print [its id] (DB must be named memq.db)
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import structlog

from memq import env as memq_env
from memq.events import Route
from memq.hooks import fallback
from memq.queue import Queue, QueueSettings


async def _open(db: str, settings: QueueSettings | None = None) -> Any:
    """A SQLite queue on the file ``db``, or a PostgreSQL one when ``db`` is a URL."""
    if db.startswith(("postgresql://", "postgres://")):
        from memq.queue.postgres import PgQueue  # noqa: PLC0415 - the driver is optional

        return await PgQueue.open(db, settings)
    return await Queue.open(db, settings)


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def _hold_open(db: str) -> None:

    await Queue.open(db)
    _say("ready")
    time.sleep(3600)  # noqa: ASYNC251 - block the whole process until killed


async def _hold_claims(db: str, sessions: list[str]) -> None:

    queue = await _open(db)
    held = []
    for session in sessions:
        stream = queue.stream(session, linger=0)
        held.append(await stream.__anext__())
    _say(json.dumps([claim.message.id for claim in held]))
    time.sleep(3600)  # noqa: ASYNC251 - hold the claims until killed


async def _crash_on_poison(db: str, session: str) -> None:

    queue = await _open(db, QueueSettings(retry_delay=0))
    async for claim in queue.stream(session, linger=0):
        if claim.message.payload.get("poison"):
            _say(f"crashing {claim.message.id}")
            os.kill(os.getpid(), signal.SIGKILL)
        await claim.ack()
    _say("drained")
    await queue.close()


def _insert_direct(db: str, session: str, key: str) -> None:
    path = Path(db)
    if path.name != memq_env.DATABASE_FILE:
        raise SystemExit(f"the fallback writes {memq_env.DATABASE_FILE}, not {path.name}")
    route = Route("PostToolUse", session, "observation", key)
    message_id = fallback.store_directly(str(path.parent), route, b'{"via":"fallback"}', 5.0)
    _say(json.dumps([message_id]))


def main(argv: list[str]) -> None:
    # stdout is the protocol with the parent; logs go to stderr.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    command, db, *rest = argv
    if command == "hold-open":
        anyio.run(_hold_open, db)
    elif command == "hold-claims":
        anyio.run(_hold_claims, db, rest)
    elif command == "crash-on-poison":
        anyio.run(_crash_on_poison, db, rest[0])
    elif command == "insert-direct":
        _insert_direct(db, rest[0], rest[1])
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main(sys.argv[1:])
