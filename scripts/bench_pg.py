"""Benchmark of the PostgreSQL queue (``memq.queue.postgres.PgQueue``) beside the SQLite one.

Every PostgreSQL figure is printed beside SQLite's (``memq.queue.Queue`` on a file in a fresh
temporary directory), measured in the same run with the same code path:

1. enqueue: 64 concurrent producers (one session each), messages/s and commits (the
   group-commit factor); raw psycopg one-row commits give the server's round trip for context;
2. drain: 50 sessions, one stream each, every message costing a fixed 2 ms (an
   ``anyio.sleep`` standing in for the extractor) and acked with its effect (one row written
   in the ack's transaction); messages/s, every message processed once and in order;
3. wake-up: an idle stream, from ``enqueue`` returning to the stream yielding, p50/p99; for
   PostgreSQL also across daemons: enqueued by a ``PgQueue`` here, claimed by another
   ``PgQueue`` in a child process (woken by NOTIFY);
4. daemons: the drain of (2) by 1, 2 and 3 daemons, each a child process (this script with
   ``--worker``) holding at most ``ceil(50 / daemons)`` sessions at once, so the concurrency
   stays 50 sessions and only the processes change: messages/s, the share of each daemon,
   and the per-session order check (every message processed exactly once, in order). The
   rounds interleave the daemon counts; each says how busy the machine's CPUs were and how
   much of that the daemons used, since on a small shared machine the CPU is what limits.
   ``--shuffle-sessions`` makes each daemon take free sessions in random order instead of
   sorted (as memq's worker does): daemons then race for leases in different orders.

PostgreSQL runs in a fresh schema on ``MEMQ_TEST_DATABASE_URL`` (default the local server),
created and dropped by the script; with no server answering it prints one line and exits 2.
These are figures, not tests: nothing is timed against a target, but a wrong count or order
voids the run (exit 1). A table goes to stderr; one JSON object is the last line of stdout
(``--json PATH`` also writes it to a file).

Run it from the project root::

    .venv/bin/python scripts/bench_pg.py [--quick] [--json PATH] [--shuffle-sessions]
        [--json-only] [--dir DIR] [--keep]

Throughput figures are the best of 3 runs (1 with ``--quick``); the full run takes two to
three minutes on a small machine, ``--quick`` under 20 seconds.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import select
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
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
    pg_schema,
    ratio,
    run_benchmark,
    run_facts,
    silence_logs,
)

from memq.exceptions import QueueClosedError, StorageError
from memq.queue import Queue, QueueSettings

T = TypeVar("T")

DEFAULT_URL: Final = "postgresql://postgres@127.0.0.1:5432/test"
URL_VARIABLE: Final = "MEMQ_TEST_DATABASE_URL"
NO_SERVER_EXIT: Final = 2
SCENARIO_TIMEOUT: Final = 240.0  # seconds; a hung scenario is a crash, not a figure
PAYLOAD_BYTES: Final = 500
WAKE_SESSION: Final = "w"
WAKE_LINGER: Final = 60.0
WAKE_IDLE_GAP: Final = 0.005  # pause before each wake-up enqueue so the stream is idle
# Streams and session managers poll nothing here: only wake-ups (or NOTIFY) move them.
SLOW_POLL: Final = 60.0
MANAGER_TICK: Final = 0.02  # how often a daemon's session manager looks for free sessions
SCRIPT: Final = Path(__file__).resolve()

RESULTS_SQLITE: Final = (
    "CREATE TABLE bench_results (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
    "message_id INTEGER NOT NULL UNIQUE, session_id TEXT NOT NULL, i INTEGER NOT NULL, "
    "daemon INTEGER NOT NULL)"
)
RESULTS_PG: Final = (
    "CREATE TABLE IF NOT EXISTS bench_results (seq BIGSERIAL PRIMARY KEY, "
    "message_id BIGINT NOT NULL UNIQUE, session_id TEXT NOT NULL, i INTEGER NOT NULL, "
    "daemon BIGINT NOT NULL)"
)
INSERT_SQLITE: Final = (
    "INSERT INTO bench_results (message_id, session_id, i, daemon) VALUES (?, ?, ?, ?)"
)
INSERT_PG: Final = (
    "INSERT INTO bench_results (message_id, session_id, i, daemon) VALUES (%s, %s, %s, %s)"
)
RESULTS_IN_ORDER: Final = "SELECT session_id, i, daemon FROM bench_results ORDER BY seq"


# -- configuration -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much work each scenario does."""

    producers: int = 64
    enqueue_per_producer: int = 300
    raw_commits: int = 1_000
    drain_sessions: int = 50
    drain_per_session: int = 100
    work_ms: float = 2.0
    wakeups: int = 500
    daemons: tuple[int, ...] = (1, 2, 3)
    daemon_per_session: int = 100
    repeats: int = 3  # throughput figures are the best of this many runs
    shuffle: bool = False  # daemons take free sessions in random order, not sorted


FULL_SIZES: Final = Sizes()
QUICK_SIZES: Final = Sizes(
    enqueue_per_producer=20,
    raw_commits=100,
    drain_per_session=8,
    wakeups=40,
    daemon_per_session=8,
    repeats=1,
)


@dataclass(slots=True)
class QueueRun(Run):
    """A timed piece of work with the commits it took."""

    commits: int | None = None
    per_daemon: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # storage errors the daemons met
    daemon_cpu_ms: float = math.nan  # the daemon processes' CPU time per message
    daemon_cpu_share: float = math.nan  # their share of the machine's busy CPU time
    machine_busy: float = math.nan  # share of the machine's CPUs busy during the run

    @property
    def per_commit(self) -> float | None:
        return self.count / self.commits if self.commits else None


# -- the server ----------------------------------------------------------------------------


def server_url() -> str:
    return os.environ.get(URL_VARIABLE) or DEFAULT_URL


def server_problem(url: str) -> str | None:
    """Why the server at ``url`` cannot be used, or None when it answered."""
    try:
        import psycopg  # noqa: PLC0415 - the message says when it is missing
    except ImportError:
        return "the driver is not installed: pip install 'memq[postgres]'"
    try:
        with psycopg.connect(url, connect_timeout=3, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        text = str(exc).strip()
        return text.splitlines()[0] if text else type(exc).__name__
    return None


@dataclass(frozen=True, slots=True)
class PgTarget:
    """The benchmark's schema on the server."""

    url: str
    schema: str

    def options(self) -> Any:
        from memq.storage.postgres.connection import ConnectOptions  # noqa: PLC0415

        return ConnectOptions(schema=self.schema)

    def query(self, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        """One statement in the schema, autocommitted, on a connection of its own."""
        import psycopg  # noqa: PLC0415

        with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'SET search_path TO "{self.schema}"'.encode())
            cursor = conn.execute(statement.encode(), params)
            return cursor.fetchall() if cursor.description is not None else []

    def reset(self) -> None:
        """Empty the queue's tables (and the results) between runs: every run starts as on
        a fresh schema, without the last run's dead rows."""
        self.query(RESULTS_PG)
        self.query("TRUNCATE pending_messages, session_leases, bench_results CASCADE")


@contextmanager
def fresh_schema(url: str) -> Iterator[PgTarget]:
    """A new schema on the server, dropped with everything in it afterwards."""
    with pg_schema(url, "memq_bench") as name:
        yield PgTarget(url, name)


def server_version(url: str) -> str:
    import psycopg  # noqa: PLC0415

    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "?"


def shown_url(url: str) -> str:
    """``url`` without a password."""
    from urllib.parse import urlsplit, urlunsplit  # noqa: PLC0415

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


# -- the two backends ----------------------------------------------------------------------


@dataclass(slots=True)
class Backend:
    """Opens a queue of one backend, empty, for each run; the SQL of the results table."""

    name: str  # "sqlite" | "postgres"
    root: Path
    pg: PgTarget | None = None
    runs: int = 0

    @property
    def insert(self) -> str:
        return INSERT_PG if self.pg is not None else INSERT_SQLITE

    async def open_empty(self, settings: QueueSettings | None = None) -> Any:
        """A queue with no rows: a new file for SQLite, emptied tables for PostgreSQL."""
        self.runs += 1
        if self.pg is None:
            queue = await Queue.open(self.root / f"run_{self.runs}.db", settings)
            await queue.run_in_transaction(lambda tx: tx.execute(RESULTS_SQLITE))
            return queue
        await anyio.to_thread.run_sync(self.pg.reset)
        return await open_pg(self.pg, settings)

    async def open_again(self, settings: QueueSettings | None = None) -> Any:
        """The last run's queue, opened again with its rows (after a fill)."""
        if self.pg is None:
            return await Queue.open(self.root / f"run_{self.runs}.db", settings)
        return await open_pg(self.pg, settings)


async def open_pg(target: PgTarget, settings: QueueSettings | None = None) -> Any:
    from memq.queue.postgres import PgQueue, PgSettings  # noqa: PLC0415

    return await PgQueue.open(
        target.url,
        settings,
        pg=PgSettings(listen_fallback_poll=SLOW_POLL),
        options=target.options(),
    )


# ``PgQueue.close`` raised ``QueueClosedError`` this many times in this process: its
# heartbeat task, between a beat and a sweep when the close began, calls ``sweep`` on the
# closed queue. The queue is closed all the same; the figures say how often it happened.
close_races = [0]


async def close(queue: Any) -> None:
    """Close ``queue``, counting (not raising) the close/heartbeat race above."""
    try:
        await queue.close()
    except QueueClosedError:
        close_races[0] += 1


def daemon_of(queue: Any) -> int:
    """The daemon id a queue writes into results (0 for SQLite's one process)."""
    return int(getattr(queue, "daemon_id", 0))


# -- helpers -------------------------------------------------------------------------------


def encode(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def make_payload(session_id: str, seq: int) -> dict[str, Any]:
    """A PostToolUse-like hook event of about ``PAYLOAD_BYTES`` of JSON, carrying ``i``."""
    event: dict[str, Any] = {
        "session_id": session_id,
        "i": seq,
        "hook_event_name": "PostToolUse",
        "tool_name": "Bash",
        "tool_input": {"command": "pytest -q tests/test_queue.py"},
        "tool_response": {"stdout": ""},
        "tool_use_id": f"toolu_01{seq:022d}",
    }
    room = max(PAYLOAD_BYTES - len(encode(event)), 0)
    event["tool_response"]["stdout"] = ("collected 42 items; 42 passed in 0.31s; " * 20)[:room]
    return event


def run_async(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run one async scenario in a fresh event loop, bounded by ``SCENARIO_TIMEOUT``."""

    async def bounded() -> T:
        with anyio.fail_after(SCENARIO_TIMEOUT):
            return await fn(*args)

    return anyio.run(bounded)


def check_order(rows: Sequence[tuple[str, int, int]], sessions: Sequence[str], per: int) -> None:
    """Every (session, i) processed exactly once, each session's in order (rows in the order
    they were written); raises ``BenchError`` otherwise."""
    by_session: dict[str, list[int]] = defaultdict(list)
    for session_id, i, _daemon in rows:
        by_session[str(session_id)].append(int(i))
    expected = list(range(per))
    wrong = [s for s in sessions if by_session.get(s) != expected]
    if len(rows) != len(sessions) * per or wrong:
        raise BenchError(
            f"{len(rows)} results for {len(sessions) * per} messages; sessions out of order "
            f"or incomplete: {wrong[:5]}"
        )


# -- enqueue -------------------------------------------------------------------------------


async def produce(queue: Any, session_id: str, payloads: Sequence[dict[str, Any]]) -> None:
    for payload in payloads:
        await queue.enqueue(session_id, "observation", payload)


async def bench_enqueue(backend: Backend, producers: int, per_producer: int) -> QueueRun:
    """``producers`` concurrent tasks, one session each, enqueue ``per_producer`` messages."""
    sessions = [f"p{k:02d}" for k in range(producers)]
    work = {sid: [make_payload(sid, i) for i in range(per_producer)] for sid in sessions}
    queue = await backend.open_empty()
    try:
        before = queue._writer.batches
        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for sid, payloads in work.items():
                tg.start_soon(produce, queue, sid, payloads)
        elapsed = time.perf_counter() - start
        commits = queue._writer.batches - before
        counts = await queue.stats()
    finally:
        await close(queue)
    if counts.counts.pending != producers * per_producer:
        raise BenchError(f"{counts.counts.pending} pending after {producers * per_producer}")
    return QueueRun(producers * per_producer, elapsed, commits=commits)


def bench_raw_commits(target: PgTarget, count: int) -> QueueRun:
    """psycopg, autocommit: one INSERT (one commit) at a time: the server's round trip plus
    its WAL flush, the unit that group commit shares."""
    import psycopg  # noqa: PLC0415

    with psycopg.connect(target.url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{target.schema}"'.encode())
        conn.execute("CREATE TABLE IF NOT EXISTS bench_raw (id BIGSERIAL, body TEXT)")
        body = encode(make_payload("raw", 0))
        start = time.perf_counter()
        for _ in range(count):
            conn.execute("INSERT INTO bench_raw (body) VALUES (%s)", (body,))
        elapsed = time.perf_counter() - start
        conn.execute("DROP TABLE bench_raw")
    return QueueRun(count, elapsed, commits=count)


# -- drain ---------------------------------------------------------------------------------


async def fill(queue: Any, sessions: Sequence[str], per_session: int) -> None:
    """Enqueue ``per_session`` messages into each session, concurrently (not timed)."""
    async with anyio.create_task_group() as tg:
        for sid in sessions:
            tg.start_soon(produce, queue, sid, [make_payload(sid, i) for i in range(per_session)])


async def process(queue: Any, claim: Any, insert: str, work: float) -> None:
    """The stand-in for the extractor: a fixed wait, then the ack with its one-row effect."""
    message = claim.message
    await anyio.sleep(work)
    row = (message.id, message.session_id, int(message.payload["i"]), daemon_of(queue))

    async def effect(tx: Any) -> None:
        await tx.execute(insert, row)

    await claim.ack(effect)


async def drain_session(
    queue: Any, session_id: str, insert: str, work: float, counter: list[int]
) -> None:
    async with queue.stream(session_id, linger=0) as stream:
        async for claim in stream:
            await process(queue, claim, insert, work)
            counter[0] += 1


async def bench_drain(backend: Backend, sessions: Sequence[str], per: int, work: float) -> QueueRun:
    """Fill the sessions, open the queue again, then drain them with one stream each."""
    queue = await backend.open_empty()
    try:
        await fill(queue, sessions, per)
    finally:
        await close(queue)
    queue = await backend.open_again()
    counter = [0]
    try:
        before = queue._writer.batches
        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for sid in sessions:
                tg.start_soon(drain_session, queue, sid, backend.insert, work, counter)
        elapsed = time.perf_counter() - start
        commits = queue._writer.batches - before
        rows = await queue.read(RESULTS_IN_ORDER)
    finally:
        await close(queue)
    check_order([(r["session_id"], r["i"], r["daemon"]) for r in rows], sessions, per)
    return QueueRun(counter[0], elapsed, commits=commits)


# -- wake-up -------------------------------------------------------------------------------


@dataclass(slots=True)
class Latencies:
    """Seconds from enqueue returning to the stream yielding, one per message."""

    values: list[float]
    commits: int | None = None


async def bench_wakeup(backend: Backend, count: int) -> Latencies:
    """One queue: an idle stream, and a producer that enqueues one message at a time."""
    queue = await backend.open_empty(QueueSettings(change_check_interval=SLOW_POLL))
    yielded: list[float] = []
    latencies: list[float] = []
    try:
        ready = anyio.Event()

        async def consume() -> None:
            nonlocal ready
            async with queue.stream(WAKE_SESSION, linger=WAKE_LINGER) as stream:
                async for claim in stream:
                    yielded.append(time.perf_counter())
                    await claim.ack()
                    ready.set()
                    if len(yielded) >= count:
                        return

        before = queue._writer.batches
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            for i in range(count):
                await anyio.sleep(WAKE_IDLE_GAP)
                ready = anyio.Event()
                await queue.enqueue(WAKE_SESSION, "observation", make_payload(WAKE_SESSION, i))
                returned = time.perf_counter()
                await ready.wait()
                latencies.append(yielded[-1] - returned)
        commits = queue._writer.batches - before
    finally:
        await close(queue)
    return Latencies(latencies, commits)


async def bench_wakeup_across(target: PgTarget, count: int) -> Latencies:
    """Enqueued by a ``PgQueue`` here, claimed by another in a child process: the child
    prints the monotonic time of each yield (CLOCK_MONOTONIC, shared by the processes)."""
    await anyio.to_thread.run_sync(target.reset)
    queue = await open_pg(target)
    latencies: list[float] = []
    with worker(target, "wake", count=count) as child:
        try:
            await anyio.to_thread.run_sync(child.expect, "ready")
            for i in range(count):
                await anyio.sleep(WAKE_IDLE_GAP)
                await queue.enqueue(WAKE_SESSION, "observation", make_payload(WAKE_SESSION, i))
                returned = time.monotonic()
                line = await anyio.to_thread.run_sync(child.line)
                latencies.append(float(line) - returned)
        finally:
            await close(queue)
        child.finish()
    return Latencies(latencies)


# -- daemons as child processes ------------------------------------------------------------


class Child:
    """A worker process (this script with ``--worker``): lines in, lines out."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc

    def line(self, timeout: float = SCENARIO_TIMEOUT) -> str:
        """The child's next stdout line; BenchError when it ended or said nothing in time."""
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        text = self.proc.stdout.readline() if ready else ""
        if not text:
            raise BenchError(f"worker {self.proc.pid} ended or hung (exit {self.proc.poll()})")
        return text.strip()

    def expect(self, word: str) -> None:
        got = self.line()
        if got != word:
            raise BenchError(f"worker {self.proc.pid} said {got!r}, not {word!r}")

    def say(self, word: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(word + "\n")
        self.proc.stdin.flush()

    def finish(self) -> None:
        """Tell it to stop, and wait for it to exit cleanly."""
        self.say("stop")
        if self.proc.wait(timeout=30) != 0:
            raise BenchError(f"worker {self.proc.pid} exited {self.proc.returncode}")


@contextmanager
def worker(target: PgTarget, role: str, **params: Any) -> Iterator[Child]:
    """Start ``role`` in a child process; it is killed (by its handle) if still running."""
    spec = {"url": target.url, "schema": target.schema, "role": role, **params}
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--worker", json.dumps(spec)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        yield Child(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()


def wait_for_results(target: PgTarget, expected: int, who: str) -> None:
    """Poll (one connection, every 0.1 s: little load on the machine) until ``expected``
    results are written; the time figures come from the workers, not from this poll."""
    import psycopg  # noqa: PLC0415

    deadline = time.monotonic() + SCENARIO_TIMEOUT
    with psycopg.connect(target.url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{target.schema}"'.encode())
        while True:
            row = conn.execute("SELECT count(*) FROM bench_results").fetchone()
            if row is not None and row[0] >= expected:
                return
            if time.monotonic() > deadline:
                raise BenchError(f"{who} did not drain {expected} messages in time")
            time.sleep(0.1)


def bench_daemons(
    target: PgTarget,
    daemons: int,
    sessions: Sequence[str],
    per: int,
    work: float,
    *,
    shuffle: bool,
) -> QueueRun:
    """Fill the sessions, start ``daemons`` worker processes, tell them all to go at once,
    and time until the last message is acked (the workers' own monotonic times)."""
    target.reset()
    run_async(fill_pg, target, sessions, per)
    room = math.ceil(len(sessions) / daemons)
    expected = len(sessions) * per
    with contextlib.ExitStack() as stack:
        children = [
            stack.enter_context(worker(target, "drain", room=room, work=work, shuffle=shuffle))
            for _ in range(daemons)
        ]
        for child in children:
            child.expect("ready")
        busy_before = cpu_jiffies()
        start = time.monotonic()
        for child in children:
            child.say("go")
        wait_for_results(target, expected, f"{daemons} daemons")
        busy_after = cpu_jiffies()
        for child in children:
            child.say("stop")
        reports = [json.loads(child.line()) for child in children]
        for child in children:
            close_races[0] += int(json.loads(child.line())["close_races"])
        for child in children:
            if child.proc.wait(timeout=30) != 0:
                raise BenchError(f"worker {child.proc.pid} exited {child.proc.returncode}")
    rows = [(str(s), int(i), int(d)) for s, i, d in target.query(RESULTS_IN_ORDER)]
    check_order(rows, sessions, per)
    acked = sum(int(r["acked"]) for r in reports)
    if acked != expected:
        raise BenchError(f"workers acked {acked} messages, expected {expected}")
    left = target.query("SELECT count(*) FROM pending_messages WHERE status <> 'processed'")
    if left[0][0]:
        raise BenchError(f"{left[0][0]} messages not processed after the drain")
    last = max(float(r["last"]) for r in reports if r["acked"])
    commits = sum(int(r["commits"]) for r in reports)
    per_daemon = sorted((int(r["acked"]) for r in reports), reverse=True)
    errors = [error for r in reports for error in r["errors"]]
    cpu = sum(float(r["cpu"]) for r in reports)
    return QueueRun(
        expected,
        last - start,
        commits=commits,
        per_daemon=per_daemon,
        errors=errors,
        daemon_cpu_ms=cpu * 1e3 / expected,
        daemon_cpu_share=cpu / busy_seconds(busy_before, busy_after),
        machine_busy=busy_share(busy_before, busy_after),
    )


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of every CPU since boot (Linux ``/proc/stat``; zeros elsewhere)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0, 0
    ticks = [int(x) for x in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return sum(ticks) - idle, sum(ticks)


def busy_seconds(before: tuple[int, int], after: tuple[int, int]) -> float:
    """CPU seconds the machine was busy (every process, every CPU) between two readings."""
    busy = (after[0] - before[0]) / os.sysconf("SC_CLK_TCK")
    return busy if busy > 0 else math.nan


def busy_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    """The share of all CPUs' time that was busy (any process) between two readings."""
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total > 0 else math.nan


async def prepare(target: PgTarget) -> None:
    """Migrate the schema once (a first ``PgQueue.open``) and make the results table."""
    queue = await open_pg(target)
    await close(queue)
    await anyio.to_thread.run_sync(target.query, RESULTS_PG)


async def fill_pg(target: PgTarget, sessions: Sequence[str], per: int) -> None:
    queue = await open_pg(target)
    try:
        await fill(queue, sessions, per)
    finally:
        await close(queue)


# -- the worker entry point (a child process) ----------------------------------------------


async def read_line() -> str:
    line: str = await anyio.to_thread.run_sync(sys.stdin.readline)
    return line.strip()


def tell(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


async def worker_wake(target: PgTarget, count: int) -> None:
    """Stream the wake-up session idle; print the monotonic time of each yield."""
    queue = await open_pg(target, QueueSettings(change_check_interval=SLOW_POLL))
    try:
        async with queue.stream(WAKE_SESSION, linger=WAKE_LINGER) as stream:
            tell("ready")
            seen = 0
            async for claim in stream:
                tell(repr(time.monotonic()))
                await claim.ack()
                seen += 1
                if seen >= count:
                    break
        if await read_line() != "stop":
            raise BenchError("the wake-up worker was not told to stop")
    finally:
        await close(queue)


async def worker_drain(target: PgTarget, room: int, work: float, shuffle: bool) -> None:
    """A small daemon: a session manager that streams at most ``room`` sessions with a
    backlog no other daemon holds (in sorted order, as ``memq.worker.sessions`` takes them;
    shuffled with ``shuffle``), processing each message as ``process`` does. A stream that
    meets a storage error ends, its claim handed back; the session is taken again later (as
    the worker does, after a pause), and the error is counted."""
    queue = await open_pg(target)
    running: set[str] = set()
    acked = [0]
    last = [0.0]
    errors: list[str] = []
    stop = anyio.Event()

    async def run(session_id: str) -> None:
        try:
            async with queue.stream(session_id, linger=0) as stream:
                async for claim in stream:
                    await process(queue, claim, INSERT_PG, work)
                    acked[0] += 1
                    last[0] = time.monotonic()
        except StorageError as exc:
            errors.append(str(exc).rsplit(": ", 1)[-1])
            await anyio.sleep(MANAGER_TICK)
        finally:
            running.discard(session_id)

    async def until_stop() -> None:
        await read_line()
        stop.set()

    try:
        tell("ready")
        if await read_line() != "go":
            raise BenchError("the drain worker was not told to go")
        before, cpu_before = queue._writer.batches, time.process_time()
        async with anyio.create_task_group() as tg:
            tg.start_soon(until_stop)
            while not stop.is_set():
                if len(running) < room:
                    free = await queue.sessions_with_backlog()
                    if shuffle:
                        random.shuffle(free)
                    for session_id in free:
                        if session_id not in running and len(running) < room:
                            running.add(session_id)
                            tg.start_soon(run, session_id)
                with anyio.move_on_after(MANAGER_TICK):
                    await stop.wait()
        commits, cpu = queue._writer.batches - before, time.process_time() - cpu_before
        report = {"daemon": queue.daemon_id, "acked": acked[0], "last": last[0], "cpu": cpu}
        tell(json.dumps({**report, "commits": commits, "errors": errors}))
    finally:
        await close(queue)
        tell(json.dumps({"close_races": close_races[0]}))


def worker_main(spec_text: str) -> int:
    silence_logs()
    spec = json.loads(spec_text)
    target = PgTarget(spec["url"], spec["schema"])
    if spec["role"] == "wake":
        anyio.run(worker_wake, target, int(spec["count"]))
    else:
        room, work, shuffle = int(spec["room"]), float(spec["work"]), bool(spec["shuffle"])
        anyio.run(worker_drain, target, room, work, shuffle)
    return 0


# -- figures -------------------------------------------------------------------------------


def rate_figure(
    key: str, label: str, run: QueueRun, unit: str, *, detail: str = "", **extra: Any
) -> Figure:
    facts, notes = run_facts(run)
    if run.commits:
        facts["commits"] = run.commits
        facts["per_commit"] = round(run.count / run.commits, 2)
        notes.append(f"{run.commits:,} commits ({run.count / run.commits:.1f}/commit)")
    if detail:
        notes.append(detail)
    return Figure(key, label, run.rate, unit, detail="; ".join(notes), extra={**facts, **extra})


def latency_figure(key: str, label: str, result: Latencies) -> Figure:
    values = result.values
    p50, p99 = percentile(values, 50) * 1e3, percentile(values, 99) * 1e3
    extra: dict[str, Any] = {
        "p50_ms": round(p50, 4),
        "p99_ms": round(p99, 4),
        "max_ms": round(max(values) * 1e3, 4),
        "messages": len(values),
    }
    return Figure(
        key,
        f"{label} p99",
        p99,
        "ms",
        detail=f"p50 {p50:.3f} ms, max {max(values) * 1e3:.3f} ms, {len(values)} messages",
        extra=extra,
    )


def enqueue_figures(
    backends: Sequence[Backend], target: PgTarget, sizes: Sizes, say: Progress
) -> list[Figure]:
    figures = []
    n, producers, per = sizes.repeats, sizes.producers, sizes.enqueue_per_producer
    for backend in backends:
        say(f"{backend.name}: enqueue, {producers} producers x {per} (best of {n})")
        run = best_of([run_async(bench_enqueue, backend, producers, per) for _ in range(n)])
        figures.append(
            rate_figure(
                f"{backend.name}_enqueue_{producers}_producers",
                f"{backend.name}: enqueue, {producers} producers",
                run,
                "msgs/s",
            )
        )
    say(f"postgres: raw psycopg one-row commits x {sizes.raw_commits}")
    raw = bench_raw_commits(target, sizes.raw_commits)
    figures.append(
        rate_figure(
            "postgres_raw_commit",
            "postgres: raw psycopg, 1 row/commit",
            raw,
            "rows/s",
            detail=f"{1e3 / raw.rate:.3f} ms per commit: the round trip group commit shares",
        )
    )
    return figures


def drain_figures(backends: Sequence[Backend], sizes: Sizes, say: Progress) -> list[Figure]:
    figures = []
    sessions = [f"d{k:02d}" for k in range(sizes.drain_sessions)]
    per, n, work = sizes.drain_per_session, sizes.repeats, sizes.work_ms / 1e3
    ceiling = len(sessions) / work
    for backend in backends:
        say(
            f"{backend.name}: drain, {len(sessions)} sessions x {per}, "
            f"{sizes.work_ms:g} ms each (best of {n})"
        )
        run = best_of([run_async(bench_drain, backend, sessions, per, work) for _ in range(n)])
        figures.append(
            rate_figure(
                f"{backend.name}_drain_{len(sessions)}_sessions",
                f"{backend.name}: drain, {len(sessions)} sessions",
                run,
                "msgs/s",
                detail=f"{ratio(run.rate, ceiling):.2f} of the {ceiling:,.0f}/s that the "
                f"{sizes.work_ms:g} ms work alone allows; order checked",
                in_order=True,
            )
        )
    return figures


def wakeup_figures(
    backends: Sequence[Backend], target: PgTarget, sizes: Sizes, say: Progress
) -> list[Figure]:
    figures = []
    for backend in backends:
        say(f"{backend.name}: wake-up, enqueue -> yield, {sizes.wakeups} messages")
        result = run_async(bench_wakeup, backend, sizes.wakeups)
        figures.append(
            latency_figure(
                f"{backend.name}_wakeup", f"{backend.name}: wake-up, same daemon", result
            )
        )
    say(f"postgres: wake-up across daemons (child process), {sizes.wakeups} messages")
    across = run_async(bench_wakeup_across, target, sizes.wakeups)
    figures.append(
        latency_figure("postgres_wakeup_across", "postgres: wake-up, other process", across)
    )
    return figures


def daemon_figures(target: PgTarget, sizes: Sizes, say: Progress) -> list[Figure]:
    sessions = [f"m{k:02d}" for k in range(sizes.drain_sessions)]
    per, n, work = sizes.daemon_per_session, sizes.repeats, sizes.work_ms / 1e3
    every: dict[int, list[QueueRun]] = defaultdict(list)
    # Rounds interleave the daemon counts (1, 2, 3, 1, 2, 3, ...): a change in the machine's
    # other load over time then weighs on every count alike, not on one.
    for round_ in range(n):
        for daemons in sizes.daemons:
            room = math.ceil(len(sessions) / daemons)
            say(
                f"postgres: drain by {daemons} daemon process(es), {room} sessions each at "
                f"most, {len(sessions)} x {per} (round {round_ + 1} of {n})"
            )
            every[daemons].append(
                bench_daemons(target, daemons, sessions, per, work, shuffle=sizes.shuffle)
            )
    errors = {d: [error for run in runs for error in run.errors] for d, runs in every.items()}
    runs = {d: best_of(runs) for d, runs in every.items()}
    one = runs[sizes.daemons[0]].rate
    figures = []
    for daemons, run in runs.items():
        speedup = ratio(run.rate, one)
        met = Counter(errors[daemons])
        met_text = ", ".join(f"{k} x{v}" for k, v in met.most_common(3)) or "none"
        figures.append(
            rate_figure(
                f"postgres_drain_{daemons}_daemons",
                f"postgres: drain, {daemons} daemon process(es)",
                run,
                "msgs/s",
                detail=(
                    f"{speedup:.2f}x 1 daemon; per daemon {run.per_daemon}; daemons' CPU "
                    f"{run.daemon_cpu_ms:.2f} ms/message; machine CPUs "
                    f"{run.machine_busy:.0%} busy, {run.daemon_cpu_share:.0%} of it the "
                    "daemons' (the rest: the server, this script, other work); "
                    f"exactly once and in order per session: checked; storage errors met "
                    f"(streams retried) over {n} run(s): {met_text}"
                ),
                storage_errors=dict(met),
                daemon_cpu_ms_per_message=round(run.daemon_cpu_ms, 3),
                daemon_cpu_share=round(run.daemon_cpu_share, 3),
                machine_busy=round(run.machine_busy, 3),
                speedup=round(speedup, 3),
                per_daemon=run.per_daemon,
                in_order=True,
            )
        )
    return figures


# -- reporting -----------------------------------------------------------------------------

COMPARED: Final = (
    ("enqueue, 64 producers (msgs/s)", "{}_enqueue_64_producers"),
    ("drain, 50 sessions, 2 ms work (msgs/s)", "{}_drain_50_sessions"),
    ("wake-up p99, same daemon (ms)", "{}_wakeup"),
)


def side_by_side(report: dict[str, Any], out: TextIO) -> None:
    """SQLite and PostgreSQL in two columns, then the scaling with daemons."""
    figures = report["figures"]

    def shown(key: str, field_name: str = "value") -> str:
        figure = figures.get(key)
        if figure is None:
            return "-"
        value = float(figure[field_name])
        return f"{value:,.3f}" if figure["unit"] == "ms" else f"{value:,.0f}"

    print(f"\n{'':<42} {'SQLite':>12} {'PostgreSQL':>12}", file=out)
    for label, key in COMPARED:
        print(
            f"{label:<42} {shown(key.format('sqlite')):>12} {shown(key.format('postgres')):>12}",
            file=out,
        )
        if key.endswith("wakeup"):
            p50 = "wake-up p50, same daemon (ms)"
            print(
                f"{p50:<42} {shown(key.format('sqlite'), 'p50_ms'):>12} "
                f"{shown(key.format('postgres'), 'p50_ms'):>12}",
                file=out,
            )
    across = figures.get("postgres_wakeup_across")
    if across is not None:
        print(
            f"{'wake-up p50 / p99, other process (ms)':<42} {'n/a':>12} "
            f"{across['p50_ms']:>5.2f} / {across['p99_ms']:.2f}",
            file=out,
        )
    scaling = [(k, f) for k, f in figures.items() if k.endswith("_daemons")]
    for key, figure in scaling:
        daemons = key.split("_")[2]
        print(
            f"{'drain, ' + daemons + ' daemon process(es) (msgs/s)':<42} {'n/a':>12} "
            f"{figure['value']:>12,.0f}  {figure['speedup']:.2f}x",
            file=out,
        )
    if scaling:
        speedups = [(int(k.split("_")[2]), float(f["speedup"])) for k, f in scaling]
        top, best = max(speedups, key=lambda pair: pair[1])
        if best < 1.3:
            verdict = "does not scale"
        elif top == speedups[-1][0]:
            verdict = "scales"
        else:
            verdict = f"scales up to {top} daemons, then falls"
        busy = [float(f["machine_busy"]) for _, f in scaling]
        share = [float(f["daemon_cpu_share"]) for _, f in scaling]
        cpu = " -> ".join(f"{float(f['daemon_cpu_ms_per_message']):.2f}" for _, f in scaling)
        print(
            f"daemons: {verdict} (best {best:.2f}x of 1 daemon). What limits it: the "
            f"{report['environment']['cpus']} CPUs were {min(busy):.0%}-{max(busy):.0%} busy, "
            f"the daemons' share {min(share):.0%}-{max(share):.0%} (the rest: the server, this "
            f"script, any other work on the machine); the daemons' CPU per message went {cpu} "
            "ms as daemons were added (smaller batches: more commits per message)\n",
            file=out,
        )


def print_header(report: dict[str, Any], out: TextIO) -> None:
    env = report["environment"]
    print(
        f"\nmemq PostgreSQL queue benchmark ({env['mode']}): {env['cpus']} CPUs, Python "
        f"{env['python']}, SQLite {env['sqlite']}, PostgreSQL {env['postgres']}, "
        f"{report['elapsed_seconds']:.0f} s",
        file=out,
    )
    if env.get("pg_close_races"):
        print(
            f"PgQueue.close raised QueueClosedError {env['pg_close_races']} time(s) "
            "(its heartbeat task swept a closed queue); counted, not raised",
            file=out,
        )
    side_by_side(report, out)


def run_all(root: Path, target: PgTarget, sizes: Sizes, say: Progress) -> list[Figure]:
    say(f"PostgreSQL schema {target.schema} on {shown_url(target.url)}")
    run_async(prepare, target)
    backends = [Backend("sqlite", root), Backend("postgres", root, target)]
    figures = enqueue_figures(backends, target, sizes, say)
    figures += drain_figures(backends, sizes, say)
    figures += wakeup_figures(backends, target, sizes, say)
    figures += daemon_figures(target, sizes, say)
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["--worker"]:
        return worker_main(args_list[1])
    description = __doc__.splitlines()[0] if __doc__ else None
    parser = bench_parser(description, "small sizes, under 20 s (the smoke test)")
    parser.add_argument("--json", type=Path, help="also write the JSON report to this file")
    parser.add_argument(
        "--shuffle-sessions",
        action="store_true",
        help="daemons take free sessions in random order (default: sorted, as memq's worker)",
    )
    args = parser.parse_args(args_list)
    url = server_url()
    problem = server_problem(url)
    if problem is not None:
        print(
            f"bench_pg: no PostgreSQL server at {shown_url(url)} ({problem}); "
            f"set {URL_VARIABLE} to a server's URL",
            file=sys.stderr,
        )
        return NO_SERVER_EXIT
    silence_logs()
    sizes = replace(QUICK_SIZES if args.quick else FULL_SIZES, shuffle=args.shuffle_sessions)
    version = server_version(url)
    with fresh_schema(url) as target:
        return run_benchmark(
            args,
            "memq.queue.postgres",
            lambda root, say: run_all(root, target, sizes, say),
            lambda root: environment(
                root,
                args.quick,
                ("memq", "anyio", "psycopg"),
                postgres=version,
                pg_close_races=close_races[0],
                server=shown_url(url),
                schema=target.schema,
            ),
            print_header,
            prefix="memq-bench-pg-",
        )


if __name__ == "__main__":
    sys.exit(main())
