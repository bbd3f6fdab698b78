"""Benchmark of memory reads: the SessionStart context and full-text search, at scale.

Two databases are built, with 10,000 and with 100,000 observations (plus prompts and
summaries) spread over 1,000 sessions in 20 projects (a few busy projects, a long tail of
quiet ones; sessions over the last 90 days; realistic titles, files and excerpts). Each is
migrated with ``memq.storage.schema.migrate`` and filled with raw ``sqlite3`` ``executemany``
through the memory tables themselves, so the full-text triggers of migration 0003 index every
row; the benchmark checks that they did. Then, on each database:

1. ``ContextBuilder.build`` with the default budget (2,000 tokens), for every project in turn:
   p50 / p99 / max (target at 100,000 observations: p99 < 50 ms); and for a project memory has
   never seen (the common case of a new checkout);
2. ``MemorySearch.search`` (``memq.memory.search``) with a handful of realistic queries, across
   all projects and within one: p50 / p99 / max;
3. the query plan of every statement the context builder runs (``EXPLAIN QUERY PLAN``): none
   may scan a table (the merge statements sort only their bounded candidates).

Last, the context's worst case: one project of 3,000 short sessions and no summary at all,
where the merges must walk every session of the project (target p99 < 50 ms too).

These are figures, not tests: each is printed with its target and whether the target was met,
and the exit status is 0 unless something crashed. A table goes to stderr; one JSON object is
the last line of stdout (the whole of stdout with ``--json-only``).

Run it from the project root::

    .venv/bin/python scripts/bench_memory.py [--quick] [--json-only] [--dir DIR] [--keep]

The full run takes under a minute on a small machine, mostly building the 100,000-observation
database; ``--quick`` (fewer timed rounds, the same databases) about 20 seconds.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import sqlite3
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TextIO

import anyio
from benchkit import (
    BenchError,
    Figure,
    Progress,
    bench_parser,
    environment,
    percentile,
    run_benchmark,
    silence_logs,
)

from memq.memory.context import ContextBuilder
from memq.memory.records import to_epoch_ms
from memq.memory.search import MemorySearch
from memq.storage import schema
from memq.storage.connection import Synchronous, connect
from memq.storage.sqlfile import load_queries

SEED: Final = 20250601
NOW: Final = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
HISTORY_DAYS: Final = 90
SESSIONS: Final = 1_000
_PROJECT_NAMES = """
memq billing-api web-frontend infra data-pipeline mobile-app docs-site auth-service
search-indexer cli-tools ml-experiments payments notifier analytics scheduler gateway
admin-panel sdk-python sdk-js dotfiles
"""
_MODULES = """
worker queue retry api sessions storage schema hooks install search context config logging
auth billing parser cache scheduler migrations client models views handlers utils metrics
"""
_WORDS = """
retry backoff lease timeout commit rollback migration index query session summary observation
prompt token budget cache invalidation race condition deadlock lock writer reader snapshot
transaction schema column trigger fixture assertion failure traceback handler request response
status header payload parser tokenizer porter stemming benchmark latency throughput percentile
worker daemon socket port signal shutdown graceful cancel shield scope task group event stream
consumer producer queue backlog
"""
PROJECT_NAMES: Final = tuple(_PROJECT_NAMES.split())  # 20 projects, busiest first by weight
MODULES: Final = tuple(_MODULES.split())
DIRECTORIES: Final = ("src", "lib", "tests", "app", "pkg/core", "src/services")
WORDS: Final = tuple(_WORDS.split())
SEARCH_QUERIES: Final = (
    "retry backoff",
    "pytest failure",
    "schema migration",
    "where did we change the lease timeout?",
    "cache invalidation race",
    "src/worker.py",
    "deadlock writer",
    "tokenizer porter",
)
INSERT_SESSION: Final = (
    "INSERT INTO sessions (key, assistant, external_id, project, cwd, title, prompt_count, "
    "started_at, ended_at, updated_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_PROMPT: Final = (
    "INSERT INTO prompts (message_id, session_key, number, text, created_at) VALUES (?, ?, ?, ?, ?)"
)
INSERT_OBSERVATION: Final = (
    "INSERT INTO observations (message_id, session_key, kind, title, subtitle, narrative, "
    "facts, concepts, files_read, files_modified, tool_name, command, exit_code, excerpt, "
    "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_SUMMARY: Final = (
    "INSERT INTO summaries (message_id, session_key, request, investigated, learned, "
    "completed, next_steps, files_read, files_edited, notes, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
CONTEXT_TARGET_MS: Final = 50.0
SPARSE_SESSIONS: Final = 3_000
RECORD_TABLES: Final = ("observations", "summaries", "prompts")


# -- configuration -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much work each scenario does."""

    observations: tuple[int, ...] = (10_000, 100_000)
    context_rounds: int = 400  # builds timed per database (every project in turn)
    empty_rounds: int = 200  # builds for a project without memory
    search_rounds: int = 200  # searches timed per database and per scope


FULL_SIZES: Final = Sizes()
QUICK_SIZES: Final = Sizes(context_rounds=100, empty_rounds=50, search_rounds=48)


# -- helpers -------------------------------------------------------------------------------


def encode(value: Any) -> str:
    """Compact JSON, as lists are stored."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def project_path(name: str) -> str:
    """Where a generated project lives."""
    return f"/home/dev/{name}"


# -- data ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Event:
    """One generated record before its message id is known."""

    at_ms: int
    session: int
    kind: str  # prompt, observation or summary
    values: tuple[Any, ...]  # the row's values after (message_id, session_key)


@dataclass(slots=True)
class Generated:
    """The rows of one database, ready for executemany."""

    sessions: list[tuple[Any, ...]]
    prompts: list[tuple[Any, ...]]
    observations: list[tuple[Any, ...]]
    summaries: list[tuple[Any, ...]]
    projects: list[str]  # busiest first


class Writer:
    """Makes up plausible memory: files, titles, excerpts, prompts and summaries."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def path(self) -> str:
        directory = self.rng.choice(DIRECTORIES)
        module = self.rng.choice(MODULES)
        if directory == "tests":
            return f"tests/test_{module}.py"
        return f"{directory}/{module}.py"

    def words(self, count: int) -> str:
        return " ".join(self.rng.choice(WORDS) for _ in range(count))

    def observation(self) -> tuple[Any, ...]:
        """(kind, title, subtitle, narrative, facts, concepts, files_read, files_modified,
        tool_name, command, exit_code, excerpt)."""
        rng = self.rng
        path = self.path()
        roll = rng.random()
        read: list[str] = []
        modified: list[str] = []
        command: str | None = None
        exit_code: int | None = None
        facts: list[str] = []
        if roll < 0.30:
            kind, tool = "change", "Edit"
            modified = [path, *([self.path()] if rng.random() < 0.2 else [])]
            title = f"Edited {path}" + (" and 1 more" if len(modified) > 1 else "")
            facts = [f"{rng.randint(1, 6)} edits"]
        elif roll < 0.55:
            kind, tool = "discovery", "Read"
            read = [path]
            title = f"Read {path}"
        elif roll < 0.80:
            kind, tool = "command", "Bash"
            module = rng.choice(MODULES)
            command = rng.choice(
                [
                    f"pytest -q tests/test_{module}.py",
                    "git status",
                    "ruff check .",
                    f"python -m {module} --help",
                    "npm run build",
                ]
            )
            exit_code = rng.choice([0, 0, 0, 1, 2])
            title = f"Ran `{command}`" + (f" (exit {exit_code})" if exit_code else "")
            facts = [f"exit code {exit_code}"]
        elif roll < 0.92:
            kind, tool = "search", "Grep"
            word = rng.choice(WORDS)
            read = [path.rsplit("/", 1)[0]]
            title = f"Searched for '{word}' in {read[0]}"
            facts = [f"{rng.randint(0, 40)} matches"]
        elif roll < 0.96:
            kind, tool = "web", "WebFetch"
            title = f"Fetched https://docs.python.org/3/library/{rng.choice(MODULES)}.html"
        else:
            kind, tool = rng.choice(["bugfix", "feature", "refactor", "decision"]), "Edit"
            modified = [path]
            title = f"{kind.capitalize()}: {self.words(3)} in {path}"
        excerpt = f"{path}: {self.words(rng.randint(25, 55))}"
        return (
            kind,
            title,
            "",
            "",
            encode(facts),
            encode([]),
            encode(read),
            encode(modified),
            tool,
            command,
            exit_code,
            excerpt,
        )

    def prompt(self) -> str:
        return (
            f"Please look at the {self.words(2)} in {self.path()} and fix the "
            f"{self.words(2)}; {self.words(self.rng.randint(5, 25))}"
        )

    def summary(self, request: str) -> tuple[Any, ...]:
        """(request, investigated, learned, completed, next_steps, files_read, files_edited,
        notes)."""
        edited = sorted({self.path() for _ in range(self.rng.randint(1, 4))})
        return (
            request,
            f"Looked at {self.words(6)}",
            f"The {self.words(4)} depends on {self.words(5)}",
            f"Changed the {self.words(5)}; tests pass",
            f"Still to do: {self.words(6)}",
            encode([self.path()]),
            encode(edited),
            f"$ pytest -q (exit {self.rng.choice([0, 1])})",
        )


def generate(observations: int, rng: random.Random) -> Generated:
    """Memory of ``observations`` observations over ``SESSIONS`` sessions in 20 projects."""
    writer = Writer(rng)
    weights = [1 / (rank + 1) for rank in range(len(PROJECT_NAMES))]  # a few busy ones
    projects = [project_path(name) for name in PROJECT_NAMES]
    shares = [rng.expovariate(1.0) for _ in range(SESSIONS)]
    scale = observations / sum(shares)
    counts = [int(share * scale) for share in shares]
    for i in range(observations - sum(counts)):
        counts[i % SESSIONS] += 1
    history_ms = HISTORY_DAYS * 24 * 3600 * 1000
    start_ms = to_epoch_ms(NOW) - history_ms
    events: list[Event] = []
    session_rows: list[list[Any]] = []
    activity: dict[str, int] = {}
    for s, count in enumerate(counts):
        project = rng.choices(projects, weights)[0]
        key = f"claude-code:bench-{s:04d}"
        at = start_ms + rng.randrange(history_ms - 6 * 3600 * 1000)
        first_at = at
        prompts = 0
        title: str | None = None
        request = ""
        for n in range(count):
            if n % 10 == 0:  # a prompt every ten tool calls
                request = writer.prompt()
                prompts += 1
                title = title or request[:80]
                events.append(Event(at, s, "prompt", (prompts, request, at)))
                at += rng.randint(2_000, 20_000)
            events.append(Event(at, s, "observation", (*writer.observation(), at)))
            at += rng.randint(5_000, 90_000)
            if n % 25 == 24 or n == count - 1:  # a Stop now and then, and at the end
                events.append(Event(at, s, "summary", (*writer.summary(request), at)))
                at += rng.randint(1_000, 10_000)
        external_id = key.split(":", 1)[1]
        # key, assistant, external_id, project, cwd, title, prompt_count, started_at,
        # ended_at, updated_at, created_at: the times are set once message ids are known.
        row = [key, "claude-code", external_id, project, project, title, prompts, first_at]
        session_rows.append([*row, first_at, first_at, first_at])
        activity[project] = activity.get(project, 0) + count
    events.sort(key=lambda event: (event.at_ms, event.session))
    rows: dict[str, list[tuple[Any, ...]]] = {"prompt": [], "observation": [], "summary": []}
    latest: dict[int, int] = {}
    for message_id, event in enumerate(events, start=1):
        key = session_rows[event.session][0]
        rows[event.kind].append((message_id, key, *event.values))
        latest[event.session] = event.at_ms
    for s, row in enumerate(session_rows):
        # ended, updated and written at the latest event's time, as the store keeps them.
        row[8] = row[9] = row[10] = latest.get(s, row[7])
    by_activity = sorted(activity, key=lambda p: (-activity[p], p))
    return Generated(
        sessions=[tuple(row) for row in session_rows],
        prompts=rows["prompt"],
        observations=rows["observation"],
        summaries=rows["summary"],
        projects=by_activity,
    )


def build_database(path: Path, observations: int) -> Generated:
    """A migrated database at ``path`` filled with generated memory, in one transaction."""
    data = generate(observations, random.Random(SEED + observations))
    conn = connect(path, synchronous=Synchronous.NORMAL)
    try:
        schema.migrate(conn)
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(INSERT_SESSION, data.sessions)
        conn.executemany(INSERT_PROMPT, data.prompts)
        conn.executemany(INSERT_OBSERVATION, data.observations)
        conn.executemany(INSERT_SUMMARY, data.summaries)
        conn.execute("COMMIT")
        (stored,) = conn.execute("SELECT count(*) FROM observations").fetchone()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    if stored != observations:
        raise BenchError(f"stored {stored} observations, expected {observations}")
    return data


def build_sparse_database(path: Path) -> int:
    """One project of ``SPARSE_SESSIONS`` short sessions (a prompt and one tool call each)
    and no summary at all: the context's worst case, since its merges must then walk every
    session of the project. Returns the number of observations."""
    writer = Writer(random.Random(SEED))
    project = project_path("monorepo")
    step_ms = HISTORY_DAYS * 24 * 3600 * 1000 // SPARSE_SESSIONS
    start_ms = to_epoch_ms(NOW) - HISTORY_DAYS * 24 * 3600 * 1000
    sessions, prompts, observations = [], [], []
    for s in range(SPARSE_SESSIONS):
        key = f"claude-code:sparse-{s:05d}"
        at = start_ms + s * step_ms
        text = writer.prompt()
        sessions.append(
            (key, "claude-code", key.split(":", 1)[1], project, project, text[:80], 1,
             at, at + 1_000, at + 1_000, at + 1_000)
        )  # fmt: skip
        prompts.append((2 * s + 1, key, 1, text, at))
        observations.append((2 * s + 2, key, *writer.observation(), at + 1_000))
    conn = connect(path, synchronous=Synchronous.NORMAL)
    try:
        schema.migrate(conn)
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(INSERT_SESSION, sessions)
        conn.executemany(INSERT_PROMPT, prompts)
        conn.executemany(INSERT_OBSERVATION, observations)
        conn.execute("COMMIT")
    finally:
        conn.close()
    return len(observations)


def check_full_text(path: Path) -> dict[str, Any]:
    """How many documents the full-text index holds against how many records there are:
    every observation, summary and prompt is one document of memory_fts (migration 0003)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        (documents,) = conn.execute("SELECT count(*) FROM memory_fts_docsize").fetchone()
        records = {
            name: conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
            for name in RECORD_TABLES
        }
        return {
            "indexes": {"memory_fts": documents},
            "records": records,
            "complete": documents == sum(records.values()),
        }
    finally:
        conn.close()


def context_plans(path: Path) -> dict[str, list[str]]:
    """The query plan of every statement the context builder runs, on ``path``."""
    queries = load_queries("context")
    sample = {
        "project": project_path(PROJECT_NAMES[0]),
        "exclude_session": None,
        "assistants": None,
        "before_updated_at": 2**62,
        "before_key": "",
        "session_keys": json.dumps([f"claude-code:bench-{n:04d}" for n in range(16)]),
        "after_created_at": -1,
        "after_message_id": -1,
        "limit": 32,
    }
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        plans = {}
        for name, sql in queries.items():
            params = {key: sample[key] for key in re.findall(r":(\w+)", sql)}
            plans[name] = [str(row[3]) for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]
        return plans
    finally:
        conn.close()


# -- timing --------------------------------------------------------------------------------


def run_async(fn: Callable[..., Awaitable[list[float]]], *args: Any) -> list[float]:
    """Run one async measurement to completion."""
    return anyio.run(fn, *args)


async def time_context(path: Path, projects: Sequence[str], rounds: int) -> list[float]:
    """Seconds per ``build``, every project in turn (after one warm-up build each)."""
    samples: list[float] = []
    async with await ContextBuilder.open(path) as builder:
        for project in projects:
            if not await builder.build(project, now=NOW):
                raise BenchError(f"empty context for {project}")
        for project in itertools.islice(itertools.cycle(projects), rounds):
            start = time.perf_counter()
            await builder.build(project, now=NOW)
            samples.append(time.perf_counter() - start)
    return samples


async def time_empty_context(path: Path, rounds: int) -> list[float]:
    """Seconds per ``build`` of a project memory has never seen."""
    samples: list[float] = []
    async with await ContextBuilder.open(path) as builder:
        for n in range(rounds):
            start = time.perf_counter()
            text = await builder.build(f"/home/dev/new-checkout-{n}", now=NOW)
            samples.append(time.perf_counter() - start)
            if text:
                raise BenchError("a project without memory got a context")
    return samples


async def time_search(path: Path, project: str | None, rounds: int) -> list[float]:
    """Seconds per ``MemorySearch.search``, cycling through ``SEARCH_QUERIES``."""
    samples: list[float] = []
    async with await MemorySearch.open(path) as search:
        hits = 0
        for query in SEARCH_QUERIES:  # warm-up
            hits += len(await search.search(query, project=project))
        if not hits:
            raise BenchError(f"no search hits at all (project {project})")
        for query in itertools.islice(itertools.cycle(SEARCH_QUERIES), rounds):
            start = time.perf_counter()
            await search.search(query, project=project)
            samples.append(time.perf_counter() - start)
    return samples


def latency_figure(
    key: str, label: str, samples: Sequence[float], *, target_ms: float | None = None
) -> Figure:
    """A p99 figure in milliseconds with p50, max and mean beside it."""
    p50, p99 = percentile(samples, 50) * 1e3, percentile(samples, 99) * 1e3
    return Figure(
        key,
        label + " p99",
        p99,
        "ms",
        target=None if target_ms is None else f"p99 < {target_ms:g} ms",
        met=None if target_ms is None else p99 < target_ms,
        detail=f"p50 {p50:.3f} ms, max {max(samples) * 1e3:.3f} ms, {len(samples)} runs",
        extra={
            "p50_ms": round(p50, 4),
            "p99_ms": round(p99, 4),
            "max_ms": round(max(samples) * 1e3, 4),
            "mean_ms": round(statistics.fmean(samples) * 1e3, 4),
            "runs": len(samples),
        },
    )


# -- scenarios -----------------------------------------------------------------------------


def database_figures(root: Path, observations: int, sizes: Sizes, say: Progress) -> list[Figure]:
    """Every figure of one database size."""
    path = root / f"memory_{observations}.db"
    label = f"{observations:,} obs"
    say(f"building {observations:,} observations over {SESSIONS:,} sessions")
    start = time.perf_counter()
    data = build_database(path, observations)
    built = time.perf_counter() - start
    full_text = check_full_text(path)
    incomplete = not full_text["complete"]
    figures = [
        Figure(
            f"build_{observations}",
            f"database build, {label}",
            built,
            "s",
            detail=(
                f"{len(data.sessions):,} sessions, {len(data.prompts):,} prompts, "
                f"{len(data.summaries):,} summaries, {path.stat().st_size / 2**20:.1f} MB; "
                + (
                    f"full-text index INCOMPLETE: {full_text}"
                    if incomplete
                    else f"full-text index complete: {full_text['indexes']}"
                )
            ),
            extra={
                "sessions": len(data.sessions),
                "prompts": len(data.prompts),
                "summaries": len(data.summaries),
                "full_text": full_text,
            },
        )
    ]
    if incomplete:
        raise BenchError(f"the full-text index does not cover every record: {full_text}")

    say(f"context build x {sizes.context_rounds} over {len(data.projects)} projects, {label}")
    samples = run_async(time_context, path, data.projects, sizes.context_rounds)
    target = CONTEXT_TARGET_MS if observations >= 100_000 else None
    figures.append(
        latency_figure(f"context_{observations}", f"context, {label}", samples, target_ms=target)
    )
    say(f"context build for a project without memory x {sizes.empty_rounds}, {label}")
    empty = run_async(time_empty_context, path, sizes.empty_rounds)
    figures.append(latency_figure(f"context_empty_{observations}", f"context, new, {label}", empty))

    plans = context_plans(path)
    bad = {name: plan for name, plan in plans.items() if any(_costly(step) for step in plan)}
    figures.append(
        Figure(
            f"context_plans_{observations}",
            f"context statements scanning a table, {label}",
            len(bad),
            "stmts",
            target="== 0",
            met=not bad,
            detail="; ".join(f"{name}: {' / '.join(plan)}" for name, plan in plans.items()),
            extra={"plans": plans},
        )
    )

    say(f"search x {sizes.search_rounds}, all projects then one, {label}")
    everywhere = run_async(time_search, path, None, sizes.search_rounds)
    figures.append(
        latency_figure(f"search_all_{observations}", f"search, all projects, {label}", everywhere)
    )
    within = run_async(time_search, path, data.projects[0], sizes.search_rounds)
    figures.append(
        latency_figure(f"search_project_{observations}", f"search, 1 project, {label}", within)
    )
    return figures


def _costly(step: str) -> bool:
    """A plan step that reads a whole table: what the context must never do. (Walking the
    JSON list of a chunk's session keys is a SCAN of a virtual table, and each chunk's
    candidates, at most sessions x limit rows, are sorted: both are bounded.)"""
    return step.startswith("SCAN") and "VIRTUAL TABLE" not in step


# -- reporting -----------------------------------------------------------------------------


def print_header(report: dict[str, Any], out: TextIO) -> None:
    """The lines above the table: what ran, where, how long."""
    env = report["environment"]
    print(
        f"\nmemq memory benchmark ({env['mode']}): {env['cpus']} CPUs, Python {env['python']}, "
        f"SQLite {env['sqlite']}, {report['elapsed_seconds']:.0f} s",
        file=out,
    )


# -- main ----------------------------------------------------------------------------------


def sparse_figures(root: Path, sizes: Sizes, say: Progress) -> list[Figure]:
    """The context of one project of many short sessions without summaries."""
    path = root / "memory_sparse.db"
    say(f"building one project of {SPARSE_SESSIONS:,} short sessions without summaries")
    observations = build_sparse_database(path)
    say(f"context build x {sizes.empty_rounds}, {SPARSE_SESSIONS:,} short sessions")
    samples = run_async(time_context, path, [project_path("monorepo")], sizes.empty_rounds)
    figure = latency_figure(
        "context_sparse",
        f"context, {SPARSE_SESSIONS:,} short sessions",
        samples,
        target_ms=CONTEXT_TARGET_MS,
    )
    figure.detail += (
        f"; 1 project, {observations:,} observations, no summary: every session is merged"
    )
    return [figure]


def run_all(root: Path, sizes: Sizes, say: Progress) -> list[Figure]:
    """Every database size in turn, then the sparse project, each in its own file under
    ``root``."""
    figures: list[Figure] = []
    for observations in sizes.observations:
        figures += database_figures(root, observations, sizes, say)
    figures += sparse_figures(root, sizes, say)
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print the table (stderr) and the JSON object (stdout)."""
    description = __doc__.splitlines()[0] if __doc__ else None
    args = bench_parser(description, "fewer timed rounds").parse_args(argv)
    # memq logs through structlog; keep the benchmark's output to its own lines.
    silence_logs()
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    migrations = [m.version for m in schema.available_migrations()]
    return run_benchmark(
        args,
        "memq.memory",
        lambda root, say: run_all(root, sizes, say),
        lambda root: environment(
            root, args.quick, ("memq", "anyio", "aiosqlite"), migrations=migrations
        ),
        print_header,
        prefix="memq-bench-memory-",
    )


if __name__ == "__main__":
    sys.exit(main())
