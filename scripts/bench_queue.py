"""Benchmark of the durable queue (``memq.queue``) against raw SQLite baselines.

Everything runs in a fresh temporary directory (``--dir``, default under /tmp) and every
baseline is measured in the same run, on the same disk, with the same schema, WAL and
``synchronous=FULL``:

1. raw sqlite3: per-row-commit inserts (also with each insert handed to a thread of its own,
   one trip per row, as memq does: the floor of one producer), one-transaction inserts (one
   execute per row, and executemany for context), inserts committed 64 rows at a time (the
   ceiling of 64 producers that each wait for their message: one commit per round at best),
   and one-by-one claim+ack pairs
   (one-statement claim returning id, attempts and payload, then the ack, each committed),
   plus the same pairs at ``synchronous=NORMAL`` for context (memq claims and acks on a
   NORMAL connection);
2. ``Queue.enqueue`` throughput: one sequential producer (against raw per-row commits), and 64
   concurrent producers (against raw one-transaction inserts, with the number of commits, so
   the group-commit factor shows), also handing over each payload's JSON text as the daemon
   does (``payload_json``) for context;
3. drain rate with a no-op consumer: 50 session streams at once, and one stream alone;
4. wake-up latency of an idle stream, from ``enqueue`` returning to the stream yielding (the
   producer pauses 2 ms before each enqueue so that the stream is idle when it arrives),
   against a threaded sqlite3 "doorbell" paced the same way: a producer thread inserts and
   commits, then sets a ``threading.Event``; a consumer thread wakes and claims;
5. recovery: ``Queue.open`` and open + first yield on a database holding 100,000 pending and
   1,000 orphaned ``processing`` rows;
6. scale: the 50-stream drain rate with 10,000 rows in the table versus 1,000,000 (200,000
   with ``--quick``).

These are figures, not tests: each is printed with its target and whether the target was met,
and the exit status is 0 unless something crashed. memq's figures also say how many commits
and trips to a connection's thread each message took. A table goes to stderr; one JSON object is
the last line of stdout (the whole of stdout with ``--json-only``).

Run it from the project root::

    .venv/bin/python scripts/bench_queue.py [--quick] [--json-only] [--dir DIR] [--keep]

Throughput figures are the best of 5 runs (2 with ``--quick``), each on a fresh database. The
full run takes one to two minutes on a small machine; ``--quick`` well under 30 seconds.
"""

from __future__ import annotations

import functools
import json
import shutil
import sqlite3
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TextIO, TypeVar

import anyio
from benchkit import (
    BenchError,
    Figure,
    Progress,
    Run,
    bench_parser,
    best_of,
    environment,
    percentile,
    ratio,
    run_benchmark,
    run_facts,
    silence_logs,
)

from memq.queue import Queue, QueueSettings, Synchronous
from memq.queue._connection import ThreadConnection
from memq.storage import schema
from memq.storage.connection import connect, connection_pragmas

T = TypeVar("T")

PAYLOAD_BYTES: Final = 500
SCENARIO_TIMEOUT: Final = 180.0  # seconds; a hung scenario is a crash, not a figure
WAKE_SESSION: Final = "w"
WAKE_LINGER: Final = 30.0
WAKE_IDLE_GAP: Final = 0.002  # pause before each wake-up enqueue so the stream is idle
STORED_LEASE_MS: Final = 330_000
SCALE_SESSIONS: Final = [f"s{k:04d}" for k in range(1_000)]  # history spans these
SCALE_STREAMS: Final = 50  # the drained messages go to the first 50 of them

INSERT_PENDING: Final = (
    "INSERT INTO pending_messages (session_id, kind, payload, available_at, created_at) "
    "VALUES (?, 'observation', ?, ?, ?)"
)
INSERT_ROW: Final = (
    "INSERT INTO pending_messages (session_id, kind, payload, status, attempts, available_at, "
    "lease_until, created_at, started_at, finished_at) "
    "VALUES (?, 'observation', ?, ?, ?, ?, ?, ?, ?, ?)"
)
CLAIM_ONE: Final = """
UPDATE pending_messages
SET status = 'processing', attempts = attempts + 1, started_at = ?, lease_until = ?
WHERE id = (SELECT id FROM pending_messages
            WHERE session_id = ? AND status = 'pending'
            ORDER BY id LIMIT 1)
RETURNING id, attempts, payload
"""
ACK_ONE: Final = """
UPDATE pending_messages
SET status = 'processed', payload = NULL, lease_until = NULL, finished_at = ?
WHERE id = ? AND attempts = ? AND status = 'processing'
"""


# -- configuration -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much work each scenario does."""

    raw_per_row: int = 2_000
    raw_one_tx: int = 20_000
    raw_claim_ack: int = 2_000
    enqueue_sequential: int = 2_000
    enqueue_concurrent: int = 20_000
    producers: int = 64
    drain_total: int = 20_000
    drain_sessions: int = 50
    drain_single: int = 3_000
    wakeups: int = 1_000
    recovery_pending: int = 100_000
    recovery_processing: int = 1_000
    recovery_sessions: int = 1_000
    scale_drain: int = 5_000
    scale_small_rows: int = 10_000
    scale_large_rows: int = 1_000_000
    scale_rounds: int = 5
    repeats: int = 5  # throughput figures are the best of this many runs


FULL_SIZES: Final = Sizes()
QUICK_SIZES: Final = Sizes(
    raw_per_row=500,
    raw_one_tx=5_000,
    raw_claim_ack=500,
    enqueue_sequential=500,
    enqueue_concurrent=5_000,
    drain_total=5_000,
    drain_single=1_000,
    wakeups=300,
    scale_drain=2_000,
    scale_large_rows=200_000,
    scale_rounds=3,
    repeats=2,
)


@dataclass(slots=True)
class QueueRun(Run):
    """One timed piece of work, with the commits (and trips to a connection's thread) it
    took when they were counted."""

    commits: int | None = None
    trips: int | None = None

    @property
    def per_commit(self) -> float | None:
        """Items per commit (the group-commit factor), when commits were counted."""
        return self.count / self.commits if self.commits else None


# -- helpers -------------------------------------------------------------------------------


def now_ms() -> int:
    """Wall-clock milliseconds, the unit the schema stores."""
    return time.time_ns() // 1_000_000


def encode(value: Any) -> str:
    """Compact JSON, the way memq stores payloads."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def make_payload(session_id: str, seq: int) -> dict[str, Any]:
    """A Claude Code PostToolUse hook event of about ``PAYLOAD_BYTES`` bytes of JSON."""
    response: dict[str, Any] = {"stdout": "", "stderr": "", "interrupted": False, "isImage": False}
    event: dict[str, Any] = {
        "session_id": session_id,
        "transcript_path": f"/home/dev/.claude/projects/-home-dev-app/{session_id}.jsonl",
        "cwd": "/home/dev/app",
        "permission_mode": "default",
        "hook_event_name": "PostToolUse",
        "tool_name": "Bash",
        "tool_input": {
            "command": "pytest -q tests/test_queue.py",
            "description": "Run the queue tests",
        },
        "tool_response": response,
        "tool_use_id": f"toolu_01{seq:022d}",
    }
    room = max(PAYLOAD_BYTES - len(encode(event)), 0)
    response["stdout"] = ("collected 42 items; 42 passed in 0.31s; " * 20)[:room]
    return event


def trips(queue: Queue) -> int:
    """Calls handed to the queue's connection threads so far (each one a round trip)."""
    return sum(conn.trips for conn in queue._connections)


def fastest(repeats: int, measure: Callable[[int], QueueRun]) -> QueueRun:
    """The fastest of ``repeats`` runs of ``measure(round)``, remembering every rate."""
    return best_of([measure(round_) for round_ in range(repeats)])


def run_async(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run one async scenario in a fresh event loop, bounded by ``SCENARIO_TIMEOUT``."""

    async def bounded() -> T:
        with anyio.fail_after(SCENARIO_TIMEOUT):
            return await fn(*args)

    return anyio.run(bounded)


# -- raw sqlite3 ---------------------------------------------------------------------------


def open_raw(path: Path, synchronous: Synchronous = Synchronous.FULL) -> sqlite3.Connection:
    """A stdlib connection with memq's pragmas (WAL) and schema."""
    conn = connect(path, synchronous=synchronous)
    schema.migrate(conn)
    return conn


def pending_rows(sessions: Sequence[str], count: int, payload: str) -> Iterator[tuple[Any, ...]]:
    """``count`` pending rows for ``INSERT_PENDING``, round-robin over ``sessions``."""
    now = now_ms()
    for i in range(count):
        yield (sessions[i % len(sessions)], payload, now, now)


def history_rows(sessions: Sequence[str], count: int) -> Iterator[tuple[Any, ...]]:
    """``count`` processed rows (payload dropped) for ``INSERT_ROW``."""
    now = now_ms()
    for i in range(count):
        yield (sessions[i % len(sessions)], None, "processed", 1, now, None, now, now, now)


def insert_in_one_transaction(
    conn: sqlite3.Connection, sql: str, rows: Iterator[tuple[Any, ...]]
) -> None:
    """``executemany`` inside one ``BEGIN IMMEDIATE .. COMMIT``."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany(sql, rows)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def count_statuses(path: Path) -> dict[str, int]:
    """Rows per status in the database at ``path``."""
    conn = open_raw(path)
    try:
        sql = "SELECT status, count(*) FROM pending_messages GROUP BY status"
        return {str(status): int(n) for status, n in conn.execute(sql)}
    finally:
        conn.close()


def bench_raw_per_row(path: Path, count: int, payload: str) -> QueueRun:
    """Autocommit INSERT, one row per commit."""
    conn = open_raw(path)
    try:
        now = now_ms()
        start = time.perf_counter()
        for _ in range(count):
            conn.execute(INSERT_PENDING, ("raw", payload, now, now))
        return QueueRun(count, time.perf_counter() - start, commits=count)
    finally:
        conn.close()


async def bench_raw_per_row_thread(path: Path, count: int, payload: str) -> QueueRun:
    """``bench_raw_per_row`` with each insert handed to the connection's own thread, as memq
    does so that its event loop never waits on an fsync: one thread trip per row, the floor
    of ``Queue.enqueue`` with one producer."""
    open_raw(path).close()
    pragmas = connection_pragmas(Synchronous.FULL, int(QueueSettings().busy_timeout * 1000))
    conn = await ThreadConnection.open(path, pragmas, name="bench-raw-thread")
    try:
        now = now_ms()

        def insert(raw: sqlite3.Connection) -> None:
            raw.execute(INSERT_PENDING, ("raw", payload, now, now))

        start = time.perf_counter()
        for _ in range(count):
            await conn.run(insert)
        return QueueRun(count, time.perf_counter() - start, commits=count, trips=count)
    finally:
        await conn.close()


def raw_per_row_thread_round(root: Path, count: int, payload: str, round_: int) -> QueueRun:
    """``bench_raw_per_row_thread`` on a fresh database named after its round."""
    path = root / f"raw_per_row_thread_{round_}.db"
    return run_async(bench_raw_per_row_thread, path, count, payload)


def bench_raw_one_transaction(path: Path, count: int, payload: str) -> QueueRun:
    """``count`` rows in one transaction with executemany."""
    conn = open_raw(path)
    try:
        rows = list(pending_rows(["raw"], count, payload))
        start = time.perf_counter()
        insert_in_one_transaction(conn, INSERT_PENDING, iter(rows))
        return QueueRun(count, time.perf_counter() - start, commits=1)
    finally:
        conn.close()


def bench_raw_one_transaction_per_statement(path: Path, count: int, payload: str) -> QueueRun:
    """``count`` rows in one transaction, one ``execute`` per row: what an application that
    inserts its rows one statement at a time, committing once, gets from sqlite3."""
    conn = open_raw(path)
    try:
        rows = list(pending_rows(["raw"], count, payload))
        start = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        for row in rows:
            conn.execute(INSERT_PENDING, row)
        conn.execute("COMMIT")
        return QueueRun(count, time.perf_counter() - start, commits=1)
    finally:
        conn.close()


def bench_raw_grouped(path: Path, count: int, payload: str, group: int) -> QueueRun:
    """``count`` rows, one execute per row, committed ``group`` rows at a time."""
    conn = open_raw(path)
    try:
        rows = list(pending_rows(["raw"], count, payload))
        start = time.perf_counter()
        for first in range(0, count, group):
            conn.execute("BEGIN IMMEDIATE")
            for row in rows[first : first + group]:
                conn.execute(INSERT_PENDING, row)
            conn.execute("COMMIT")
        commits = -(-count // group)
        return QueueRun(count, time.perf_counter() - start, commits=commits)
    finally:
        conn.close()


def bench_raw_claim_ack(path: Path, count: int, payload: str, synchronous: Synchronous) -> QueueRun:
    """One-statement claim, commit, ack, commit; ``count`` times, on one session."""
    conn = open_raw(path, synchronous)
    try:
        insert_in_one_transaction(conn, INSERT_PENDING, pending_rows(["raw"], count, payload))
        start = time.perf_counter()
        for _ in range(count):
            now = now_ms()
            rows = conn.execute(CLAIM_ONE, (now, now + STORED_LEASE_MS, "raw")).fetchall()
            if not rows:
                raise BenchError("raw claim found nothing to claim")
            message_id, attempts, _payload = rows[0]
            conn.execute(ACK_ONE, (now_ms(), message_id, attempts))
        elapsed = time.perf_counter() - start
        if conn.in_transaction:
            raise BenchError("raw claim+ack left a transaction open")
        return QueueRun(count, elapsed, commits=2 * count)
    finally:
        conn.close()


def raw_claim_ack_round(
    root: Path, count: int, payload: str, synchronous: Synchronous, round_: int
) -> QueueRun:
    """``bench_raw_claim_ack`` on a fresh database named after its settings and round."""
    path = root / f"raw_claim_{synchronous.value.lower()}_{round_}.db"
    return bench_raw_claim_ack(path, count, payload, synchronous)


# -- memq: enqueue -------------------------------------------------------------------------


async def produce(queue: Queue, session_id: str, payloads: Sequence[dict[str, Any]]) -> None:
    """Enqueue ``payloads`` into ``session_id``, one after another."""
    for payload in payloads:
        await queue.enqueue(session_id, "observation", payload)


async def produce_text(queue: Queue, session_id: str, texts: Sequence[str]) -> None:
    """Enqueue payloads given as their JSON text (``payload_json``), as the daemon does."""
    for text in texts:
        await queue.enqueue(session_id, "observation", None, payload_json=text)


async def bench_enqueue(
    path: Path, producers: int, per_producer: int, *, as_text: bool = False
) -> QueueRun:
    """``producers`` concurrent tasks (one session each) enqueue ``per_producer`` messages
    (with ``as_text``, each payload's JSON text, encoded before the clock starts)."""
    sessions = [f"p{k:02d}" for k in range(producers)]
    work = {sid: [make_payload(sid, i) for i in range(per_producer)] for sid in sessions}
    texts = {sid: [encode(payload) for payload in payloads] for sid, payloads in work.items()}
    queue = await Queue.open(path)
    try:
        before, trips_before = queue._writer.batches, trips(queue)
        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for sid, payloads in work.items():
                if as_text:
                    tg.start_soon(produce_text, queue, sid, texts[sid])
                else:
                    tg.start_soon(produce, queue, sid, payloads)
        elapsed = time.perf_counter() - start
        commits, hops = queue._writer.batches - before, trips(queue) - trips_before
    finally:
        await queue.close()
    return QueueRun(producers * per_producer, elapsed, commits=commits, trips=hops)


# -- memq: drain ---------------------------------------------------------------------------


async def consume_session(queue: Queue, session_id: str, counter: list[int]) -> None:
    """A no-op consumer: ack every claim of ``session_id`` until the session is empty."""
    async with queue.stream(session_id, linger=0) as stream:
        async for claim in stream:
            await claim.ack()
            counter[0] += 1


async def drain_streams(path: Path, sessions: Sequence[str], expected: int) -> QueueRun:
    """Drain ``sessions`` with one stream each, all at once; checks the count."""
    queue = await Queue.open(path)
    counter = [0]
    try:
        before, trips_before = queue._writer.batches, trips(queue)
        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for sid in sessions:
                tg.start_soon(consume_session, queue, sid, counter)
        elapsed = time.perf_counter() - start
        commits, hops = queue._writer.batches - before, trips(queue) - trips_before
    finally:
        await queue.close()
    if counter[0] != expected:
        raise BenchError(f"drained {counter[0]} messages, expected {expected}")
    return QueueRun(counter[0], elapsed, commits=commits, trips=hops)


async def fill_with_enqueue(path: Path, sessions: Sequence[str], per_session: int) -> None:
    """Enqueue ``per_session`` messages into each session through memq (not timed)."""
    queue = await Queue.open(path)
    try:
        async with anyio.create_task_group() as tg:
            for sid in sessions:
                payloads = [make_payload(sid, i) for i in range(per_session)]
                tg.start_soon(produce, queue, sid, payloads)
    finally:
        await queue.close()


# -- memq: wake-up latency -----------------------------------------------------------------


@dataclass(slots=True)
class WakeState:
    """What the idle consumer and the producer share."""

    ready: anyio.Event
    yielded_at: list[float] = field(default_factory=list)


@dataclass(slots=True)
class WakeResult:
    """Per-message latencies, in seconds."""

    since_return: list[float]
    since_call: list[float]
    commits: int
    trips: int | None = None  # None for the doorbell: it has no thread hand-offs to count


async def wake_consumer(queue: Queue, state: WakeState, count: int) -> None:
    """Stream the wake-up session, noting when each claim is yielded."""
    async with queue.stream(WAKE_SESSION, linger=WAKE_LINGER) as stream:
        async for claim in stream:
            state.yielded_at.append(time.perf_counter())
            await claim.ack()
            state.ready.set()
            if len(state.yielded_at) >= count:
                break


async def bench_wakeup(path: Path, count: int) -> WakeResult:
    """Enqueue ``count`` messages one at a time to an idle stream; time each wake-up."""
    queue = await Queue.open(path, QueueSettings(change_check_interval=60))
    since_return: list[float] = []
    since_call: list[float] = []
    try:
        state = WakeState(anyio.Event())
        before, trips_before = queue._writer.batches, trips(queue)
        async with anyio.create_task_group() as tg:
            tg.start_soon(wake_consumer, queue, state, count)
            for i in range(count):
                payload = make_payload(WAKE_SESSION, i)
                await anyio.sleep(WAKE_IDLE_GAP)
                state.ready = anyio.Event()
                called = time.perf_counter()
                await queue.enqueue(WAKE_SESSION, "observation", payload)
                returned = time.perf_counter()
                await state.ready.wait()
                yielded = state.yielded_at[-1]
                since_return.append(yielded - returned)
                since_call.append(yielded - called)
        commits, hops = queue._writer.batches - before, trips(queue) - trips_before
    finally:
        await queue.close()
    return WakeResult(since_return, since_call, commits, hops)


def bench_doorbell(path: Path, count: int) -> WakeResult:
    """The wake-up baseline: plain sqlite3 and two threads, paced as ``bench_wakeup``.

    The producer thread (a FULL connection, as memq's enqueue) inserts one row, which
    commits, then rings a ``threading.Event``; the consumer thread (a NORMAL connection, as
    memq's claims) wakes, claims the head with one statement, notes the time, acks, and
    tells the producer, which pauses ``WAKE_IDLE_GAP`` before the next row.
    """
    open_raw(path).close()  # the schema, once
    bell, acked = threading.Event(), threading.Event()
    claimed_at: list[float] = []
    failures: list[BaseException] = []

    def claim_and_ack(conn: sqlite3.Connection) -> None:
        now = now_ms()
        claim = conn.execute(CLAIM_ONE, (now, now + STORED_LEASE_MS, WAKE_SESSION)).fetchone()
        claimed_at.append(time.perf_counter())
        if claim is None:
            raise BenchError("the doorbell rang but there was nothing to claim")
        message_id, attempts, _payload = claim
        conn.execute(ACK_ONE, (now_ms(), message_id, attempts))

    def consume() -> None:
        conn = open_raw(path, Synchronous.NORMAL)
        try:
            for _ in range(count):
                bell.wait()
                bell.clear()
                claim_and_ack(conn)
                acked.set()
        except BaseException as exc:
            failures.append(exc)
            acked.set()
        finally:
            conn.close()

    consumer = threading.Thread(target=consume, name="doorbell-consumer")
    consumer.start()
    since_return: list[float] = []
    since_call: list[float] = []
    conn = open_raw(path)
    try:
        for i in range(count):
            payload = make_payload(WAKE_SESSION, i)
            time.sleep(WAKE_IDLE_GAP)
            acked.clear()
            called = time.perf_counter()
            now = now_ms()
            conn.execute(INSERT_PENDING, (WAKE_SESSION, encode(payload), now, now))
            bell.set()
            returned = time.perf_counter()
            if not acked.wait(SCENARIO_TIMEOUT) or failures:
                raise BenchError(f"the doorbell consumer failed: {failures or 'timed out'}")
            since_return.append(claimed_at[-1] - returned)
            since_call.append(claimed_at[-1] - called)
    finally:
        conn.close()
        bell.set()  # a consumer still waiting finds nothing and ends
        consumer.join(SCENARIO_TIMEOUT)
    return WakeResult(since_return, since_call, commits=3 * count)


# -- memq: recovery ------------------------------------------------------------------------


def build_recovery_db(path: Path, sizes: Sizes, payload: str) -> None:
    """Pending rows plus orphaned 'processing' heads (attempts=1, lease set), raw."""
    sessions = [f"r{k:04d}" for k in range(sizes.recovery_sessions)]
    now = now_ms()
    lease_until = now + STORED_LEASE_MS
    orphans = (
        (sessions[i % len(sessions)], payload, "processing", 1, now, lease_until, now, now, None)
        for i in range(sizes.recovery_processing)
    )
    conn = open_raw(path)
    try:
        insert_in_one_transaction(conn, INSERT_ROW, orphans)
        rows = pending_rows(sessions, sizes.recovery_pending, payload)
        insert_in_one_transaction(conn, INSERT_PENDING, rows)
    finally:
        conn.close()


async def time_open(path: Path) -> float:
    """Seconds for ``Queue.open`` (recovery included)."""
    start = time.perf_counter()
    queue = await Queue.open(path)
    elapsed = time.perf_counter() - start
    await queue.close()
    return elapsed


async def time_open_first_yield(path: Path, session_id: str) -> tuple[float, int]:
    """Seconds from ``Queue.open`` to the first claim of ``session_id``; its attempt."""
    start = time.perf_counter()
    queue = await Queue.open(path)
    try:
        async with queue.stream(session_id, linger=0) as stream:
            claim = await anext(stream)
            elapsed = time.perf_counter() - start
            attempts = claim.message.attempts
    finally:
        await queue.close()
    return elapsed, attempts


# -- memq: scale ---------------------------------------------------------------------------


def build_history(path: Path, history: int) -> int:
    """``history`` processed rows over 1,000 sessions, raw; returns the last history id."""
    conn = open_raw(path)
    try:
        insert_in_one_transaction(conn, INSERT_ROW, history_rows(SCALE_SESSIONS, history))
        (last_id,) = conn.execute("SELECT coalesce(max(id), 0) FROM pending_messages").fetchone()
        return int(last_id)
    finally:
        conn.close()


def scale_round(
    path: Path, last_history_id: int, total_rows: int, drain: int, _round: int = 0
) -> QueueRun:
    """Replace the previous round's rows with ``drain`` pending ones, then drain them.

    The table holds exactly ``total_rows`` rows while it is drained: processed history plus
    the pending messages (over the first 50 history sessions).
    """
    payload = encode(make_payload("scale", 0))
    sessions = SCALE_SESSIONS[:SCALE_STREAMS]
    conn = open_raw(path)
    try:
        conn.execute("DELETE FROM pending_messages WHERE id > ?", (last_history_id,))
        insert_in_one_transaction(conn, INSERT_PENDING, pending_rows(sessions, drain, payload))
        (in_table,) = conn.execute("SELECT count(*) FROM pending_messages").fetchone()
    finally:
        conn.close()
    if in_table != total_rows:
        raise BenchError(f"scale table holds {in_table} rows, expected {total_rows}")
    return run_async(drain_streams, path, sessions, drain)


# -- scenarios -----------------------------------------------------------------------------


def raw_figures(root: Path, sizes: Sizes, payload: str, say: Progress) -> list[Figure]:
    """Scenario 1: the raw sqlite3 baselines."""
    n = sizes.repeats
    say(f"raw sqlite3: per-row-commit inserts x {sizes.raw_per_row} (best of {n})")
    per_row = fastest(
        n, lambda i: bench_raw_per_row(root / f"raw_per_row_{i}.db", sizes.raw_per_row, payload)
    )
    say(f"raw sqlite3: per-row-commit inserts, one thread trip each x {sizes.raw_per_row}")
    per_row_thread = fastest(
        n, functools.partial(raw_per_row_thread_round, root, sizes.raw_per_row, payload)
    )
    say(f"raw sqlite3: one-transaction inserts x {sizes.raw_one_tx} (best of {n})")
    one_tx = fastest(
        n,
        lambda i: bench_raw_one_transaction(root / f"raw_one_tx_{i}.db", sizes.raw_one_tx, payload),
    )
    say(f"raw sqlite3: one-transaction, one execute per row x {sizes.raw_one_tx} (best of {n})")
    one_tx_rows = fastest(
        n,
        lambda i: bench_raw_one_transaction_per_statement(
            root / f"raw_one_tx_rows_{i}.db", sizes.raw_one_tx, payload
        ),
    )
    say(f"raw sqlite3: inserts, {sizes.producers} rows/commit x {sizes.raw_one_tx} (best of {n})")
    grouped = fastest(
        n,
        lambda i: bench_raw_grouped(
            root / f"raw_grouped_{i}.db", sizes.raw_one_tx, payload, sizes.producers
        ),
    )
    say(f"raw sqlite3: one-by-one claim+ack x {sizes.raw_claim_ack}, FULL then NORMAL")
    full, normal = (
        fastest(
            n,
            functools.partial(raw_claim_ack_round, root, sizes.raw_claim_ack, payload, sync),
        )
        for sync in (Synchronous.FULL, Synchronous.NORMAL)
    )
    return [
        rate_figure("raw_insert_per_row_commit", "raw insert, 1 row/commit", per_row, "rows/s"),
        rate_figure(
            "raw_insert_per_row_thread",
            "raw insert, 1 row/commit, 1 thread trip",
            per_row_thread,
            "rows/s",
            detail=(
                f"{ratio(per_row_thread.rate, per_row.rate):.2f}x raw 1 row/commit; context: "
                "the floor of enqueue with 1 producer (its loop never waits on an fsync)"
            ),
        ),
        rate_figure(
            "raw_insert_one_transaction",
            "raw insert, 1 transaction, execute/row",
            one_tx_rows,
            "rows/s",
            detail="the baseline of the enqueue target",
        ),
        rate_figure(
            "raw_insert_one_transaction_executemany",
            "raw insert, 1 transaction, executemany",
            one_tx,
            "rows/s",
            detail="context: the fastest sqlite3 can insert",
        ),
        rate_figure(
            "raw_insert_grouped",
            f"raw insert, {sizes.producers} rows/commit",
            grouped,
            "rows/s",
            detail=(
                f"{ratio(grouped.rate, one_tx_rows.rate):.2f} of raw 1 transaction; context: "
                f"the ceiling of {sizes.producers} producers that each wait for their message "
                "(at best one commit per round)"
            ),
        ),
        rate_figure("raw_claim_ack", "raw claim+ack one by one", full, "pairs/s"),
        rate_figure(
            "raw_claim_ack_normal",
            "raw claim+ack, synchronous=NORMAL",
            normal,
            "pairs/s",
            detail="context: memq claims/acks on a NORMAL connection",
        ),
    ]


def enqueue_figures(root: Path, sizes: Sizes, raw: dict[str, float], say: Progress) -> list[Figure]:
    """Scenario 2: enqueue throughput, sequential and 64 producers, against the ``raw``
    figures (by key)."""
    raw_per_row = raw["raw_insert_per_row_commit"]
    floor = raw["raw_insert_per_row_thread"]
    raw_one_tx = raw["raw_insert_one_transaction"]
    raw_executemany = raw["raw_insert_one_transaction_executemany"]
    n = sizes.repeats
    say(f"memq enqueue: 1 producer x {sizes.enqueue_sequential} (best of {n})")
    sequential = fastest(
        n,
        lambda i: run_async(bench_enqueue, root / f"enqueue_1_{i}.db", 1, sizes.enqueue_sequential),
    )
    per_producer = sizes.enqueue_concurrent // sizes.producers
    say(f"memq enqueue: {sizes.producers} producers x {per_producer} (best of {n})")
    concurrent = fastest(
        n,
        lambda i: run_async(
            bench_enqueue, root / f"enqueue_many_{i}.db", sizes.producers, per_producer
        ),
    )
    say(f"memq enqueue: {sizes.producers} producers x {per_producer}, JSON text given")
    concurrent_text = fastest(
        n,
        lambda i: run_async(
            functools.partial(bench_enqueue, as_text=True),
            root / f"enqueue_text_{i}.db",
            sizes.producers,
            per_producer,
        ),
    )
    share = ratio(concurrent.rate, raw_one_tx)
    grouped = raw["raw_insert_grouped"]
    alone = ratio(sequential.rate, raw_per_row)
    return [
        rate_figure(
            "enqueue_1_producer",
            "enqueue, 1 producer",
            sequential,
            "msgs/s",
            target=f">= 0.9x raw insert, 1 row/commit ({raw_per_row:,.0f} rows/s)",
            met=alone >= 0.9,
            detail=(
                f"{alone:.2f}x raw 1 row/commit, "
                f"{ratio(sequential.rate, floor):.2f}x raw with 1 thread trip per row"
            ),
            extra={
                "ratio_to_raw_per_row_commit": round(alone, 4),
                "ratio_to_raw_per_row_thread": round(ratio(sequential.rate, floor), 4),
            },
        ),
        rate_figure(
            "enqueue_64_producers",
            f"enqueue, {sizes.producers} producers",
            concurrent,
            "msgs/s",
            target=f">= 50% of raw one-transaction insert ({raw_one_tx:,.0f} rows/s)",
            met=share >= 0.5,
            detail=(
                f"{share:.2f} of raw one-transaction insert, "
                f"{ratio(concurrent.rate, grouped):.2f} of raw {sizes.producers} rows/commit"
            ),
            extra={
                "fraction_of_raw_one_transaction": round(share, 4),
                "fraction_of_raw_executemany": round(ratio(concurrent.rate, raw_executemany), 4),
                "fraction_of_raw_grouped": round(ratio(concurrent.rate, grouped), 4),
            },
        ),
        rate_figure(
            "enqueue_64_producers_text",
            f"enqueue, {sizes.producers} producers, JSON text",
            concurrent_text,
            "msgs/s",
            detail=(
                f"{ratio(concurrent_text.rate, raw_one_tx):.2f} of raw one-transaction insert, "
                f"{ratio(concurrent_text.rate, grouped):.2f} of raw {sizes.producers} rows/commit;"
                " context: payloads handed over as JSON text (payload_json), as the daemon does"
            ),
            extra={
                "fraction_of_raw_one_transaction": round(
                    ratio(concurrent_text.rate, raw_one_tx), 4
                ),
                "fraction_of_raw_grouped": round(ratio(concurrent_text.rate, grouped), 4),
            },
        ),
    ]


def drain_wide(path: Path, sessions: Sequence[str], per_session: int) -> QueueRun:
    """Fill ``sessions`` through ``Queue.enqueue`` (not timed), then drain them all at once."""
    run_async(fill_with_enqueue, path, sessions, per_session)
    return run_async(drain_streams, path, sessions, per_session * len(sessions))


def drain_alone(path: Path, count: int) -> QueueRun:
    """Fill one session raw (not timed), then drain it with one stream."""
    conn = open_raw(path)
    try:
        payload = encode(make_payload("solo", 0))
        insert_in_one_transaction(conn, INSERT_PENDING, pending_rows(["solo"], count, payload))
    finally:
        conn.close()
    return run_async(drain_streams, path, ["solo"], count)


def drain_figures(
    root: Path, sizes: Sizes, raw_pairs: float, raw_pairs_normal: float, say: Progress
) -> list[Figure]:
    """Scenario 3: drain with 50 streams at once, and with one stream alone."""
    n = sizes.repeats
    sessions = [f"d{k:02d}" for k in range(sizes.drain_sessions)]
    per_session = sizes.drain_total // len(sessions)
    say(
        f"memq drain: {per_session * len(sessions)} messages enqueued over {len(sessions)} "
        f"sessions, {len(sessions)} streams at once (best of {n})"
    )
    wide = fastest(n, lambda i: drain_wide(root / f"drain_wide_{i}.db", sessions, per_session))
    say(f"memq drain: 1 stream x {sizes.drain_single} (best of {n})")
    alone = fastest(n, lambda i: drain_alone(root / f"drain_alone_{i}.db", sizes.drain_single))
    wide_ratio, alone_ratio = ratio(wide.rate, raw_pairs), ratio(alone.rate, raw_pairs)
    alone_normal = ratio(alone.rate, raw_pairs_normal)
    baseline = f"raw one-by-one claim+ack ({raw_pairs:,.0f} pairs/s)"
    return [
        rate_figure(
            "drain_50_streams",
            f"drain, {len(sessions)} streams",
            wide,
            "msgs/s",
            target=f">= 2x {baseline}",
            met=wide_ratio >= 2.0,
            extra={"ratio_to_raw_claim_ack": round(wide_ratio, 4)},
        ),
        rate_figure(
            "drain_1_stream",
            "drain, 1 stream",
            alone,
            "msgs/s",
            target=f">= 50% of {baseline}",
            met=alone_ratio >= 0.5,
            detail=(
                f"{alone_ratio:.2f}x raw claim+ack, {alone_normal:.2f}x raw claim+ack at "
                "NORMAL (memq claims and acks at NORMAL)"
            ),
            extra={
                "ratio_to_raw_claim_ack": round(alone_ratio, 4),
                "ratio_to_raw_claim_ack_normal": round(alone_normal, 4),
            },
        ),
    ]


def wakeup_figures(root: Path, sizes: Sizes, say: Progress) -> list[Figure]:
    """Scenario 4: latency from enqueue to an idle stream's yield, and the same through a
    threaded sqlite3 doorbell."""
    say(f"raw sqlite3 doorbell (threads) wake-up latency: {sizes.wakeups} messages")
    doorbell = bench_doorbell(root / "doorbell.db", sizes.wakeups)
    say(f"memq wake-up latency: {sizes.wakeups} messages")
    result = run_async(bench_wakeup, root / "wakeup.db", sizes.wakeups)
    figures = [
        latency_figure(
            "raw_doorbell_wakeup",
            "raw doorbell (threads), committed->claimed",
            doorbell.since_return,
            doorbell,
        ),
    ]
    for key, label, samples, target in (
        ("wakeup_after_enqueue_returned", "wake-up, enqueue returned->yield", "since_return", 1.0),
        ("wakeup_after_enqueue_called", "wake-up, enqueue called->yield", "since_call", None),
    ):
        figures.append(
            latency_figure(
                key,
                label,
                getattr(result, samples),
                result,
                target=None if target is None else f"p99 < {target:g} ms",
                limit_ms=target,
            )
        )
    memq_p99 = percentile(result.since_return, 99)
    bell_p99 = percentile(doorbell.since_return, 99)
    versus = ratio(memq_p99, bell_p99)
    figures.append(
        Figure(
            "wakeup_vs_doorbell",
            "wake-up p99, memq / threaded doorbell",
            versus,
            "ratio",
            target=f"<= 1 (at or below the doorbell's {bell_p99 * 1e3:.3f} ms)",
            met=versus <= 1.0,
            detail=(
                f"memq {memq_p99 * 1e3:.3f} ms, doorbell {bell_p99 * 1e3:.3f} ms; p50 "
                f"{percentile(result.since_return, 50) * 1e3:.3f} vs "
                f"{percentile(doorbell.since_return, 50) * 1e3:.3f} ms"
            ),
            extra={
                "memq_p99_ms": round(memq_p99 * 1e3, 4),
                "doorbell_p99_ms": round(bell_p99 * 1e3, 4),
            },
        )
    )
    return figures


def latency_figure(
    key: str,
    label: str,
    values: Sequence[float],
    result: WakeResult,
    *,
    target: str | None = None,
    limit_ms: float | None = None,
) -> Figure:
    """A wake-up latency figure (its p99), with the commits and trips per message."""
    p50, p99 = percentile(values, 50) * 1e3, percentile(values, 99) * 1e3
    messages = len(values)
    notes = [f"p50 {p50:.3f} ms, max {max(values) * 1e3:.3f} ms"]
    extra: dict[str, Any] = {
        "p50_ms": round(p50, 4),
        "p99_ms": round(p99, 4),
        "min_ms": round(min(values) * 1e3, 4),
        "max_ms": round(max(values) * 1e3, 4),
        "mean_ms": round(statistics.fmean(values) * 1e3, 4),
        "over_1ms": sum(v > 1e-3 for v in values),
        "messages": messages,
        "idle_gap_ms": WAKE_IDLE_GAP * 1e3,
        "commits": result.commits,
        "commits_per_message": round(result.commits / messages, 3),
    }
    per_message = f"{result.commits / messages:.2f} commits"
    if result.trips is not None:
        extra["trips"] = result.trips
        extra["trips_per_message"] = round(result.trips / messages, 3)
        per_message += f" and {result.trips / messages:.2f} thread trips"
    notes.append(per_message + " per message")
    return Figure(
        key,
        label + " p99",
        p99,
        "ms",
        target=target,
        met=None if limit_ms is None else p99 < limit_ms,
        detail="; ".join(notes),
        extra=extra,
    )


def recovery_figures(root: Path, sizes: Sizes, payload: str, say: Progress) -> list[Figure]:
    """Scenario 5: open and open + first yield on a database with orphaned claims."""
    first, second = root / "recovery_a.db", root / "recovery_b.db"
    say(
        f"memq recovery: building {sizes.recovery_pending:,} pending + "
        f"{sizes.recovery_processing:,} processing rows"
    )
    build_recovery_db(first, sizes, payload)
    shutil.copyfile(first, second)
    say("memq recovery: Queue.open, then open + first yield")
    opened = run_async(time_open, first)
    first_yield, attempts = run_async(time_open_first_yield, second, "r0000")
    after = [count_statuses(first), count_statuses(second)]
    processing_left = sum(counts.get("processing", 0) for counts in after)
    rows = sizes.recovery_pending + sizes.recovery_processing
    return [
        Figure(
            "recovery_open",
            "recovery, Queue.open",
            opened,
            "s",
            detail=f"{rows:,} rows, {sizes.recovery_processing:,} orphaned claims",
        ),
        Figure(
            "recovery_open_first_yield",
            "recovery, open + first yield",
            first_yield,
            "s",
            target="< 0.5 s",
            met=first_yield < 0.5,
            detail=f"first claim's attempt: {attempts}",
            extra={"first_claim_attempts": attempts},
        ),
        Figure(
            "recovery_processing_left",
            "recovery, rows still processing",
            processing_left,
            "rows",
            target="== 0",
            met=processing_left == 0,
            extra={"status_counts_after": after},
        ),
    ]


def scale_figures(root: Path, sizes: Sizes, say: Progress) -> list[Figure]:
    """Scenario 6: drain rate with a small versus a large table (best of several rounds)."""
    best: dict[int, QueueRun] = {}
    for rows in (sizes.scale_small_rows, sizes.scale_large_rows):
        path = root / f"scale_{rows}.db"
        say(f"memq scale: building {rows:,} rows")
        last_id = build_history(path, rows - sizes.scale_drain)
        say(
            f"memq scale: draining {sizes.scale_drain} of {rows:,} rows "
            f"(best of {sizes.scale_rounds})"
        )
        measure = functools.partial(scale_round, path, last_id, rows, sizes.scale_drain)
        best[rows] = fastest(sizes.scale_rounds, measure)
    small, large = best[sizes.scale_small_rows], best[sizes.scale_large_rows]
    share = ratio(large.rate, small.rate)
    figures = [
        rate_figure(f"scale_drain_{rows}_rows", f"drain, {rows:,} rows in table", run, "msgs/s")
        for rows, run in best.items()
    ]
    note = "" if sizes.scale_large_rows >= 1_000_000 else " (quick mode: not 1M)"
    figures.append(
        Figure(
            "scale_large_vs_small",
            f"drain rate {sizes.scale_large_rows:,} vs {sizes.scale_small_rows:,} rows",
            share,
            "ratio",
            target=">= 0.8 (within 20%)",
            met=share >= 0.8,
            detail=f"large table: {sizes.scale_large_rows:,} rows{note}",
            extra={"large_rows": sizes.scale_large_rows, "small_rows": sizes.scale_small_rows},
        )
    )
    return figures


def rate_figure(
    key: str,
    label: str,
    run: QueueRun,
    unit: str,
    *,
    target: str | None = None,
    met: bool | None = None,
    detail: str = "",
    extra: dict[str, Any] | None = None,
) -> Figure:
    """A throughput figure, with the run's count, time and commits."""
    facts, notes = run_facts(run)
    if run.commits is not None:
        facts["commits"] = run.commits
        per_commit = run.per_commit
        per_message = run.commits / run.count if run.count else 0.0
        facts["commits_per_message"] = round(per_message, 3)
        if per_commit is not None:
            facts["per_commit"] = round(per_commit, 2)
            notes.append(
                f"{run.commits:,} commits ({per_commit:.1f}/commit, {per_message:.3g}/message)"
            )
    if run.trips is not None and run.count:
        facts["trips"] = run.trips
        facts["trips_per_message"] = round(run.trips / run.count, 3)
        notes.append(f"{run.trips:,} thread trips ({run.trips / run.count:.3g}/message)")
    if detail:
        notes.append(detail)
    return Figure(
        key,
        label,
        run.rate,
        unit,
        target=target,
        met=met,
        detail="; ".join(notes),
        extra={**facts, **(extra or {})},
    )


# -- reporting -----------------------------------------------------------------------------


def print_header(report: dict[str, Any], out: TextIO) -> None:
    """The lines above the table: what ran, where, how long."""
    env = report["environment"]
    print(
        f"\nmemq queue benchmark ({env['mode']}): {env['cpus']} CPUs, Python {env['python']}, "
        f"SQLite {env['sqlite']}, {report['elapsed_seconds']:.0f} s",
        file=out,
    )
    if env["mode"] == "quick":
        print("quick mode: smaller sizes; the scale test uses 200,000 rows, not 1M", file=out)


# -- main ----------------------------------------------------------------------------------


def run_all(root: Path, sizes: Sizes, say: Progress) -> list[Figure]:
    """Every scenario, in order; each gets its own database files under ``root``."""
    payload = encode(make_payload("raw", 0))
    figures = raw_figures(root, sizes, payload, say)
    by_key = {f.key: f.value for f in figures}
    figures += enqueue_figures(root, sizes, by_key, say)
    figures += drain_figures(
        root, sizes, by_key["raw_claim_ack"], by_key["raw_claim_ack_normal"], say
    )
    figures += wakeup_figures(root, sizes, say)
    figures += recovery_figures(root, sizes, payload, say)
    figures += scale_figures(root, sizes, say)
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print the table (stderr) and the JSON object (stdout)."""
    description = __doc__.splitlines()[0] if __doc__ else None
    args = bench_parser(description, "smaller sizes, about 30 s").parse_args(argv)
    # memq's logs would drown the table: recovery alone logs one warning per reset row.
    silence_logs()
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    return run_benchmark(
        args,
        "memq.queue",
        lambda root, say: run_all(root, sizes, say),
        lambda root: environment(root, args.quick, ("memq", "anyio", "aiosqlite")),
        print_header,
        prefix="memq-bench-",
    )


if __name__ == "__main__":
    sys.exit(main())
