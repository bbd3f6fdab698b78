"""Soak of team memory (issue 17): ten laptops forwarding to one team server, killed once.

One real ``memq serve --team`` on a fresh PostgreSQL schema, and ``--laptops`` real laptop
daemons (``memq serve``, each with its own MEMQ_HOME, SQLite database, loopback port, and a
key of its own made by ``memq keys create`` in its ``upstream.key``). Every laptop replays
``--sessions`` sessions of hook events shaped like tests/fixtures/claude-code (per turn a
prompt, tool calls of Bash, Read and Edit, a Stop) through its own ``POST /api/events``, the
sessions interleaved, all in one git repository with a remote. When half the events are
posted, the team server is SIGKILLed and started again (after 3 s; 1 s with ``--quick``);
the laptops keep taking events meanwhile.

At the end every laptop event must be on the server exactly once (counted by the server's
dedupe key, ``memq.team.intake.origin_key``, matched to the laptops' own rows), each
session's events in their laptop's order, no event refused, and every outbox empty; anything
else voids the run (exit 1). Figures: forwarding lag per event, from the laptop's enqueue
(its ``pending_messages.created_at``) to the server's (its row's ``created_at``, stamped in
the transaction committed before the laptop's answer; one machine, one clock), p50/p99/max,
for all events, for those on the server before the kill (which never waited on it) and
for those enqueued after the restart; the drain after the restart; the time from the first
event to the last forwarded; the outage.

Run it from the project root::

    .venv/bin/python scripts/bench_team.py [--quick] [--laptops N] [--sessions N]
        [--turns N] [--json PATH] [--json-only] [--dir DIR] [--keep]

The full run (10 laptops x 20 sessions x 2 turns: 2,000 events) takes one to two minutes on
a small machine; ``--quick`` (3 x 3 x 2: 90 events) about 15 seconds. A table goes to
stderr; one JSON object is the last line of stdout.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TextIO
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from benchkit import (
    BenchError,
    Figure,
    Progress,
    bench_parser,
    environment,
    percentile,
    pg_schema,
)
from benchkit import run_benchmark as run_bench

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from memq.team.intake import parse_origin_key  # noqa: E402 - after the root is on the path
from tests.helpers.daemon import Daemon, free_port  # noqa: E402

DEFAULT_URL: Final = "postgresql://postgres@127.0.0.1:5432/test"
URL_VARIABLE: Final = "MEMQ_TEST_DATABASE_URL"
NO_SERVER_EXIT: Final = 2
PROJECT: Final = "github.com/acme/soak"
REMOTE: Final = "git@github.com:Acme/Soak.git"
FORWARD_TIMEOUT: Final = 600.0  # seconds for the last event to reach the server


@dataclass(frozen=True, slots=True)
class Sizes:
    laptops: int
    sessions: int  # per laptop
    turns: int  # per session: a prompt, TOOLS tool calls and a Stop each
    outage: float  # seconds the server stays down


FULL: Final = Sizes(laptops=10, sessions=20, turns=2, outage=3.0)
QUICK: Final = Sizes(laptops=3, sessions=3, turns=2, outage=1.0)
TOOLS: Final = ("Bash", "Read", "Edit")


# -- the events ----------------------------------------------------------------------------


def session_events(laptop: int, session: int, turns: int, cwd: Path) -> list[dict[str, Any]]:
    """One session's hook events, shaped like tests/fixtures/claude-code's."""
    sid = f"soak-{laptop:02d}-{session:02d}-{secrets.token_hex(4)}"
    common = {
        "session_id": sid,
        "transcript_path": f"/home/dev/.claude/projects/soak/{sid}.jsonl",
        "cwd": str(cwd),
        "permission_mode": "acceptEdits",
    }
    events: list[dict[str, Any]] = []
    for turn in range(turns):
        prompt_id = f"{sid}-p{turn}"
        turn_common = {**common, "prompt_id": prompt_id}
        events.append(
            {
                **turn_common,
                "hook_event_name": "UserPromptSubmit",
                "prompt": f"laptop {laptop} session {session}: fix the retry loop, step {turn}",
            }
        )
        for n, tool in enumerate(TOOLS):
            events.append(
                {
                    **turn_common,
                    "hook_event_name": "PostToolUse",
                    "tool_name": tool,
                    "tool_use_id": f"toolu_{sid}_{turn}_{n}",
                    "tool_input": tool_input(tool, turn),
                    "tool_response": tool_response(tool, turn),
                    "duration_ms": 40 + n,
                }
            )
        events.append(
            {
                **turn_common,
                "hook_event_name": "Stop",
                "stop_hook_active": False,
                "last_assistant_message": f"Done with step {turn}: the retry loop backs off.",
                "memq_event_id": secrets.token_hex(12),  # as the hook adds to a Stop
            }
        )
    return events


def tool_input(tool: str, turn: int) -> dict[str, Any]:
    if tool == "Bash":
        return {"command": f"pytest tests/test_retry.py -k step{turn}", "description": "tests"}
    if tool == "Read":
        return {"file_path": "/home/dev/project/src/retry.py"}
    return {
        "file_path": "/home/dev/project/src/retry.py",
        "old_string": "delay = 1",
        "new_string": f"delay = min(2 ** attempt, {turn + 30})",
    }


def tool_response(tool: str, turn: int) -> dict[str, Any]:
    if tool == "Bash":
        return {"stdout": f"{turn + 3} passed in 0.4s", "stderr": "", "interrupted": False}
    if tool == "Read":
        return {"type": "text", "file": {"filePath": "src/retry.py", "content": "def retry(): ..."}}
    return {
        "filePath": "/home/dev/project/src/retry.py",
        "structuredPatch": [],
        "userModified": False,
    }


# -- the processes ---------------------------------------------------------------------------


def url_in_schema(url: str, schema: str) -> str:
    """``url`` with libpq's ``options`` setting the search path to ``schema``."""
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query), ("options", f"-csearch_path={schema}")]
    return urlunsplit(parts._replace(query=urlencode(query)))


class TeamServer:
    """``memq serve --team`` on the schema: started, SIGKILLed, started again."""

    def __init__(self, home: Path, url: str) -> None:
        self.team_port = free_port()
        self.daemon = Daemon(
            home,
            env={"MEMQ_DATABASE_URL": url, "MEMQ_TEAM_LISTEN": f"127.0.0.1:{self.team_port}"},
        )

    @property
    def team_url(self) -> str:
        return f"http://127.0.0.1:{self.team_port}"

    def start(self) -> None:
        daemon = self.daemon
        with daemon.stderr_path.open("ab") as log:
            daemon.process = subprocess.Popen(
                [sys.executable, "-m", "memq", "serve", "--team", "--quiet"],
                env=daemon.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        daemon.wait_healthy(60)

    def key(self, name: str) -> str:
        done = self.daemon.memq("keys", "create", name, "--project", PROJECT, "--json")
        if done.returncode != 0:
            raise BenchError(f"memq keys create {name}: {done.stderr}")
        return str(json.loads(done.stdout)["token"])


@dataclass(slots=True)
class Laptop:
    number: int
    daemon: Daemon
    name: str
    sessions: list[list[dict[str, Any]]]
    posted: int = 0


def start_laptop(root: Path, number: int, team: TeamServer, sizes: Sizes, repo: Path) -> Laptop:
    home = root / f"laptop-{number:02d}"
    home.mkdir(mode=0o700)
    token = team.key(f"laptop-{number:02d}")
    key = home / "upstream.key"
    key.write_text(token + "\n")
    key.chmod(0o600)
    daemon = Daemon(home, env={"MEMQ_UPSTREAM": team.team_url})
    daemon.start(60)
    sessions = [session_events(number, s, sizes.turns, repo) for s in range(sizes.sessions)]
    return Laptop(number, daemon, f"laptop-{number:02d}", sessions)


def git_repository(directory: Path) -> Path:
    if shutil.which("git") is None:
        raise BenchError("git is not installed")
    directory.mkdir()
    for args in (["init", "-q"], ["remote", "add", "origin", REMOTE]):
        subprocess.run(["git", *args], cwd=directory, check=True, capture_output=True)
    return directory


def replay(laptop: Laptop, failures: list[str]) -> None:
    """Post the laptop's sessions' events, interleaved (a step of each session in turn)."""
    try:
        with laptop.daemon.client() as client:
            longest = max(len(events) for events in laptop.sessions)
            for step in range(longest):
                for events in laptop.sessions:
                    if step < len(events):
                        answer = client.post("/api/events", json=events[step])
                        if answer.status_code not in (200, 202):
                            failures.append(f"laptop {laptop.number}: {answer.text}")
                            return
                        laptop.posted += 1
    except Exception as exc:
        failures.append(f"laptop {laptop.number}: {exc!r}")


# -- checks ----------------------------------------------------------------------------------


def sqlite_rows(home: Path, statement: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{home / 'memq.db'}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(statement).fetchall()
    finally:
        conn.close()


def pg_rows(url: str, schema: str, statement: str) -> list[tuple[Any, ...]]:
    import psycopg  # noqa: PLC0415

    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'SET search_path TO "{schema}"'.encode())
        return conn.execute(statement.encode()).fetchall()


def outbox_left(laptop: Laptop) -> dict[str, int]:
    rows = sqlite_rows(laptop.daemon.home, "SELECT state, count(*) FROM upstream_outbox GROUP BY 1")
    return {str(state): int(n) for state, n in rows}


@dataclass(slots=True)
class Outcome:
    lags_ms: list[int]
    lags_after_ms: list[int]  # events enqueued after the server was back
    lags_before_ms: list[int]  # events on the server before the kill
    events: int
    sessions: int
    last_server_ms: int
    first_local_ms: int


def check(laptops: Sequence[Laptop], url: str, schema: str, outage_ms: tuple[int, int]) -> Outcome:
    """Every laptop event on the server once, in its session's order; the lags."""
    by_name = {laptop.name: laptop for laptop in laptops}
    local: dict[tuple[str, int], tuple[str, int]] = {}  # (key id, local id) -> session, time
    for laptop in laptops:
        for local_id, session, created in sqlite_rows(
            laptop.daemon.home, "SELECT id, session_id, created_at FROM pending_messages"
        ):
            local[(laptop.name, int(local_id))] = (str(session), int(created))
    rows = pg_rows(
        url,
        schema,
        "SELECT id, session_id, dedupe_key, created_at FROM pending_messages ORDER BY id",
    )
    seen: set[tuple[str, int]] = set()
    order: dict[str, list[int]] = defaultdict(list)
    lags: list[int] = []
    lags_after: list[int] = []
    lags_before: list[int] = []
    last = 0
    for _, session, dedupe, created in rows:
        parsed = parse_origin_key(str(dedupe))
        if parsed is None or parsed[0] not in by_name:
            raise BenchError(f"a server row that is no laptop's event: {dedupe}")
        origin = (parsed[0], parsed[2])
        local_id = parsed[2]
        if origin in seen:
            raise BenchError(f"an event twice on the server: {dedupe}")
        seen.add(origin)
        if origin not in local:
            raise BenchError(f"a server row no laptop has: {dedupe}")
        local_session, local_created = local[origin]
        if local_session != session:
            raise BenchError(f"{dedupe} is {local_session} on its laptop, {session} on the server")
        order[session].append(local_id)
        lag = int(created) - local_created
        lags.append(lag)
        if local_created > outage_ms[1]:
            lags_after.append(lag)
        if int(created) < outage_ms[0]:
            lags_before.append(lag)
        last = max(last, int(created))
    missing = set(local) - seen
    if missing:
        raise BenchError(f"{len(missing)} laptop events never reached the server")
    for session, ids in order.items():
        if ids != sorted(ids):
            raise BenchError(f"session {session} out of order on the server")
    first = min(created for _, created in local.values())
    return Outcome(lags, lags_after, lags_before, len(seen), len(order), last, first)


def wait_forwarded(laptops: Sequence[Laptop], url: str, schema: str, total: int) -> None:
    deadline = time.monotonic() + FORWARD_TIMEOUT
    while True:
        on_server = pg_rows(url, schema, "SELECT count(*) FROM pending_messages")[0][0]
        left = [outbox_left(laptop) for laptop in laptops]
        if on_server >= total and not any(left):
            return
        if any(state != "waiting" for counts in left for state in counts):
            raise BenchError(f"events refused or kept local: {left}")
        if time.monotonic() > deadline:
            raise BenchError(f"after {FORWARD_TIMEOUT:.0f} s: {on_server}/{total} on the server")
        time.sleep(0.2)


# -- the run ---------------------------------------------------------------------------------


def soak(root: Path, url: str, schema: str, sizes: Sizes, say: Progress) -> list[Figure]:
    team = TeamServer(root / "team", url_in_schema(url, schema))
    team.start()
    laptops: list[Laptop] = []
    try:
        say(f"team server on {team.team_url}, schema {schema}")
        repo = git_repository(root / "repo")
        for number in range(sizes.laptops):
            laptops.append(start_laptop(root, number, team, sizes, repo))
        total = sum(len(e) for laptop in laptops for e in laptop.sessions)
        say(f"{len(laptops)} laptops up; replaying {total} events")
        failures: list[str] = []
        threads = [threading.Thread(target=replay, args=(lap, failures)) for lap in laptops]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        while sum(lap.posted for lap in laptops) < total // 2 and any(
            t.is_alive() for t in threads
        ):
            time.sleep(0.02)
        down_at = time.time()
        team.daemon.kill()  # SIGKILL
        say(f"team server killed after {sum(lap.posted for lap in laptops)} events posted")
        time.sleep(sizes.outage)
        team.start()
        up_at = time.time()
        say(f"team server up again after {up_at - down_at:.1f} s")
        for thread in threads:
            thread.join()
        if failures:
            raise BenchError("; ".join(failures))
        posted = time.monotonic()
        say(f"all {total} events posted in {posted - started:.1f} s; waiting for forwarding")
        wait_forwarded(laptops, url, schema, total)
        outcome = check(laptops, url, schema, (int(down_at * 1000), int(up_at * 1000)))
        for laptop in laptops:
            if left := outbox_left(laptop):
                raise BenchError(f"laptop {laptop.number}'s outbox still holds {left}")
        if outcome.events != total:
            raise BenchError(f"{outcome.events} events on the server, {total} posted")
        say(f"{outcome.events} events in {outcome.sessions} sessions on the server, each once")
        drain = outcome.last_server_ms / 1000 - up_at
        # Counted per key and hour by the server on each authenticated request.
        (requests,) = pg_rows(url, schema, "SELECT coalesce(sum(requests), 0) FROM key_use")[0]
        result = figures(sizes, outcome, total, (up_at - down_at), drain)
        result.append(Figure("requests", "team requests (all keys)", int(requests), "requests"))
        return result
    finally:
        for laptop in laptops:
            laptop.daemon.kill()
        team.daemon.kill()


def figures(
    sizes: Sizes, outcome: Outcome, total: int, outage: float, drain: float
) -> list[Figure]:
    detail = (
        f"{sizes.laptops} laptops x {sizes.sessions} sessions, {total} events, "
        f"server down {outage:.1f} s"
    )
    result = [
        Figure(
            "events_once_in_order",
            "events on the server, each once, in order",
            outcome.events,
            "events",
            detail=detail,
            extra={"sessions": outcome.sessions, "laptops": sizes.laptops},
        ),
        Figure(
            "total_seconds",
            "first enqueue to last on the server",
            (outcome.last_server_ms - outcome.first_local_ms) / 1000,
            "s",
        ),
        Figure("outage_seconds", "team server down (SIGKILL to healthy)", outage, "s"),
        Figure("drain_seconds", "restart (healthy) to last on the server", drain, "s"),
    ]
    for key, label, lags in (
        ("lag", "forwarding lag, all events", outcome.lags_ms),
        ("lag_before", "forwarding lag, on the server before kill", outcome.lags_before_ms),
        ("lag_after", "forwarding lag, enqueued after restart", outcome.lags_after_ms),
    ):
        if not lags:
            continue
        for pct in (50, 99):
            result.append(Figure(f"{key}_p{pct}", f"{label} p{pct}", percentile(lags, pct), "ms"))
        result.append(
            Figure(f"{key}_max", f"{label} max", max(lags), "ms", extra={"count": len(lags)})
        )
    return result


def print_header(report: dict[str, Any], out: TextIO) -> None:
    env = report["environment"]
    print(
        f"\nmemq team soak ({env['mode']}): PostgreSQL {env['postgres']}, "
        f"{env['cpus']} CPUs, Python {env['python']}",
        file=out,
    )


def main(argv: Sequence[str] | None = None) -> int:
    description = __doc__.splitlines()[0] if __doc__ else None
    parser = bench_parser(description, "3 laptops x 3 sessions, about half a minute")
    parser.add_argument("--json", type=Path, help="also write the JSON report to this file")
    parser.add_argument("--laptops", type=int)
    parser.add_argument("--sessions", type=int, help="per laptop")
    parser.add_argument("--turns", type=int, help="per session")
    args = parser.parse_args(argv)
    base = QUICK if args.quick else FULL
    sizes = Sizes(
        laptops=args.laptops or base.laptops,
        sessions=args.sessions or base.sessions,
        turns=args.turns or base.turns,
        outage=base.outage,
    )
    url = os.environ.get(URL_VARIABLE) or DEFAULT_URL
    try:
        import psycopg  # noqa: PLC0415

        with psycopg.connect(url, connect_timeout=3, autocommit=True) as conn:
            version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
    except Exception as exc:  # one line and exit 2, as bench_pg
        print(f"bench_team: no PostgreSQL server ({exc}); set {URL_VARIABLE}", file=sys.stderr)
        return NO_SERVER_EXIT
    with pg_schema(url, "memq_bench_team") as schema:
        try:
            return run_bench(
                args,
                "memq.team.soak",
                lambda root, say: soak(root, url, schema, sizes, say),
                lambda root: environment(
                    root, args.quick, ("memq", "httpx", "psycopg"), postgres=version, schema=schema
                ),
                print_header,
                prefix="memq-bench-team-",
            )
        except BenchError as exc:
            print(f"bench_team: the run is void: {exc}", file=sys.stderr)
            return 1


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # cleanup on SIGTERM as on ^C
    sys.exit(main())
