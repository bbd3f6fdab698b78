"""Benchmark of the memq worker daemon's HTTP intake, against two floors.

All traffic stays on 127.0.0.1; every loop is bounded and every child process is killed at
the end, even on an error or Ctrl-C.

1. The real daemon: ``python -m memq serve --quiet`` in a subprocess, with a fresh
   ``MEMQ_HOME`` and a free ``MEMQ_PORT``. Realistic Claude Code ``PostToolUse`` (Bash)
   payloads, each with its own ``tool_use_id``, spread over 20 session ids, marked as
   redacted by the built-in rules as ``memq hook`` sends them (``memq.redact``), are POSTed to
   ``/api/events`` with the bearer token from ``MEMQ_HOME/token``:

   a. durable events/s and p50/p99 latency of the 202, with 1 sequential keep-alive client
      and with 32 concurrent keep-alive clients (each round waits until the daemon has
      processed the previous round's backlog, then uses 20 fresh session ids), with the
      default processor running: how many events were processed during the round, and how
      long the daemon took after it to process the rest. The 32-client targets are met only
      when it processed during the round and had processed every event by the end;
   b. event-to-processed latency with the default ``extract`` processor: one event at a time,
      then ``GET /api/sessions/{id}/observations?limit=1`` every ``POLL_INTERVAL`` until the
      session's observation total grows; the time from sending the POST to that answer;
   c. the daemon's resident memory (``VmRSS``), idle after start-up and idle after the load.

2. Floor A, "queue only": ``Queue.open`` on a temporary file and 32 concurrent producers
   calling ``enqueue`` with the same payloads, no HTTP.
3. Floor B, "store nothing": the same server stack (uvicorn configured by the daemon's
   ``server_config``, ``RequestGuard`` with a token, Starlette) whose ``POST /api/events``
   reads the body, parses and routes it (the daemon's ``json_body``, ``route_event``) and
   answers 202 without storing anything. It runs in its own process (this script,
   re-invoked with ``--serve-floor PORT``), and is measured with the same client, payloads
   and concurrency.

The load generator is one thread driving raw keep-alive sockets through ``epoll`` with
pre-built request bytes, so its own cost per request stays far below the server's; it sets
``TCP_QUICKACK`` so that no figure can hang on its delayed ACKs (one context figure measures
a plain keep-alive client without it). Each throughput figure also gives the server's and
the client's CPU time per request (``/proc``), which is far less sensitive than a rate to
other work on the machine. Figures are printed with their target and whether it was met;
the exit status is 0 unless something crashed. A table goes to stderr; one JSON object is
the last line of stdout (the whole of stdout with ``--json-only``).

Run it from the project root::

    .venv/bin/python scripts/bench_worker.py [--quick] [--json-only] [--dir DIR] [--keep]

Throughput figures are the best of 3 runs (2 with ``--quick``) of 5,000 requests with 32
clients and 2,000 with 1 client (1,000 and 500 with ``--quick``). The full run takes two to
four minutes on a small machine; ``--quick`` under a minute.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import secrets
import select
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Final, TextIO

import anyio
import uvicorn
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
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from memq.config import Settings
from memq.events import Route as EventRoute
from memq.events import route_event
from memq.queue import Queue, QueueSettings
from memq.redact import BUILT_IN, REDACTED_MARK
from memq.worker.daemon import bind_listener, server_config
from memq.worker.http.request import json_body
from memq.worker.security import RequestGuard

HOST: Final = "127.0.0.1"
PROJECT_ROOT: Final = Path(__file__).resolve().parent.parent
SESSIONS: Final = 20
CONCURRENCY: Final = 32
BODY_LIMIT: Final = Settings().body_limit  # the daemon's default MEMQ_BODY_LIMIT
FLOOR_TOKEN_ENV: Final = "MEMQ_BENCH_FLOOR_TOKEN"
START_TIMEOUT: Final = 30.0  # seconds for a server to answer /api/health
STALL_TIMEOUT: Final = 30.0  # seconds without any response before a load run is void
IDLE_TIMEOUT: Final = 90.0  # seconds for the daemon to work off a round's backlog
PROCESS_TIMEOUT: Final = 10.0  # seconds for one event to be processed in the latency test
POLL_INTERVAL: Final = 0.001  # seconds between observation polls in the latency test
LATENCY_GAP: Final = 0.02  # seconds between latency-test events (a moderate rate)
NAGLE_PROBE_REQUESTS: Final = 50
STALL_MS: Final = 35.0  # a plain keep-alive request slower than this hit the delayed ACK
LINGER_WAIT: Final = 15.0  # seconds to wait for session generators to end before the RSS
# Seconds between status polls while waiting for the daemon: each poll counts the queue's
# rows (milliseconds of the daemon's CPU), so more often would slow what it waits for.
IDLE_POLL: Final = 0.05
SOCKET_TIMEOUT: Final = 30.0
KEEP_ALIVE_REUSE: Final = 3.0  # seconds idle after which a connection is not reused
RECV_BYTES: Final = 65536
SESSION_NAMESPACE: Final = uuid.UUID("6f1c2a8e-3d4b-4b5e-9a7c-0e1f2d3c4b5a")

TARGET_SHARE_OF_FLOOR_B: Final = 0.70
TARGET_P99_MS: Final = 10.0
TARGET_RSS_MB: Final = 80.0

# (command, description, stdout) of the Bash calls the payloads describe.
BASH_CALLS: Final = (
    (
        "pytest -q tests/unit",
        "Run the unit tests",
        "........................ [100%]\n24 passed in 0.41s\n",
    ),
    (
        "git status --short",
        "Show working tree status",
        " M memq/queue/_queue.py\n M memq/worker/api.py\n?? scripts/bench_worker.py\n",
    ),
    (
        "ls -la memq/worker",
        "List the worker package",
        "total 64\n"
        "-rw-r--r-- 1 dev dev  9120 api.py\n-rw-r--r-- 1 dev dev  7311 daemon.py\n"
        "-rw-r--r-- 1 dev dev  4102 security.py\n-rw-r--r-- 1 dev dev  6630 sessions.py\n",
    ),
    (
        "rg -n 'async def enqueue' memq",
        "Find enqueue",
        "memq/queue/_queue.py:183:    async def enqueue(\n",
    ),
    ("echo hello > out.txt", "write file", ""),
    (
        "python -m mypy memq",
        "Type-check the package",
        "Success: no issues found in 41 source files\n",
    ),
)


# -- configuration -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much work each scenario does."""

    requests: int = 5_000  # per throughput run with CONCURRENCY clients
    sequential: int = 2_000  # per throughput run with 1 client
    warmup: int = 300  # requests before the first timed run against a server
    floor_a_messages: int = 10_000
    latency_events: int = 300
    repeats: int = 3  # throughput figures are the best of this many runs


FULL_SIZES: Final = Sizes()
QUICK_SIZES: Final = Sizes(
    requests=1_000,
    sequential=500,
    warmup=200,
    floor_a_messages=2_000,
    latency_events=100,
    repeats=2,
)


@dataclass(slots=True)
class LoadRun(Run):
    """One timed load run: requests answered, seconds, each request's latency, and facts
    (CPU time, backlog) for its figure."""

    latencies: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def ms(self, pct: float) -> float:
        """The ``pct`` percentile latency in milliseconds."""
        return percentile(self.latencies, pct) * 1e3


# -- helpers -------------------------------------------------------------------------------


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


# -- payloads ------------------------------------------------------------------------------


def session_ids(tag: str) -> list[str]:
    """``SESSIONS`` Claude Code session ids (UUIDs), the same for the same ``tag``."""
    return [str(uuid.uuid5(SESSION_NAMESPACE, f"{tag}-{k}")) for k in range(SESSIONS)]


def make_event(session_id: str, seq: int, tag: str) -> dict[str, Any]:
    """A Claude Code PostToolUse hook payload for a Bash call, shaped like the fixture
    ``tests/fixtures/claude-code/PostToolUse.Bash.json``, with a unique ``tool_use_id``."""
    command, description, stdout = BASH_CALLS[seq % len(BASH_CALLS)]
    return {
        "session_id": session_id,
        "transcript_path": f"/home/dev/.claude/projects/-home-dev-project/{session_id}.jsonl",
        "cwd": "/home/dev/project",
        "prompt_id": str(uuid.uuid5(SESSION_NAMESPACE, f"{tag}-prompt-{seq // 8}")),
        "permission_mode": "bypassPermissions",
        "effort": {"level": "high"},
        "hook_event_name": "PostToolUse",
        "tool_name": "Bash",
        "tool_input": {"command": command, "description": description},
        "tool_response": {
            "stdout": stdout,
            "stderr": "",
            "interrupted": False,
            "isImage": False,
            "noOutputExpected": not stdout,
        },
        "tool_use_id": f"toolu_{tag}_{seq:012x}",
        "duration_ms": 20 + seq % 400,
        # As `memq hook` sends it: redacted by the built-in rules, and marked so.
        REDACTED_MARK: BUILT_IN.fingerprint,
    }


def make_events(count: int, tag: str) -> list[dict[str, Any]]:
    """``count`` events round-robin over the ``SESSIONS`` session ids of ``tag``."""
    sessions = session_ids(tag)
    return [make_event(sessions[i % len(sessions)], i, tag) for i in range(count)]


def encode(value: Any) -> bytes:
    """Compact JSON bytes, the way a hook sends its payload."""
    return json.dumps(value, separators=(",", ":")).encode()


def request_bytes(port: int, token: str, method: str, path: str, body: bytes = b"") -> bytes:
    """One complete HTTP/1.1 keep-alive request, as the hook's client would send it."""
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        f"Authorization: Bearer {token}\r\nAccept: application/json\r\n"
    )
    if method != "GET":
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


def post_requests(port: int, token: str, events: Sequence[dict[str, Any]]) -> list[bytes]:
    """Pre-built ``POST /api/events`` requests, one per event."""
    return [request_bytes(port, token, "POST", "/api/events", encode(e)) for e in events]


# -- the HTTP client -----------------------------------------------------------------------


def response_length(buffer: bytearray) -> int | None:
    """The length of the complete response at the start of ``buffer``, or None while its
    head has not fully arrived."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buffer[:end]).lower()
    start = head.find(b"content-length:")
    if start < 0:
        raise BenchError(f"response without Content-Length: {head[:200]!r}")
    stop = head.find(b"\r\n", start)
    value = head[start + len(b"content-length:") : stop if stop >= 0 else end]
    return end + 4 + int(value)


def connect(port: int) -> socket.socket:
    """A blocking keep-alive TCP connection to the loopback ``port``, Nagle off."""
    sock = socket.create_connection((HOST, port), timeout=SOCKET_TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class Client:
    """A tiny blocking keep-alive HTTP client for control requests and the latency test.

    Like the load generator it acknowledges each response at once (``TCP_QUICKACK``; see
    ``run_load``), and it reconnects when the server may have closed the idle connection.
    """

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.token = token
        self._sock = connect(port)
        self._buffer = bytearray()
        self._used = time.monotonic()

    def close(self) -> None:
        """Close the connection."""
        self._sock.close()

    def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, Any]:
        """Send one request; return its status and decoded JSON body."""
        if time.monotonic() - self._used > KEEP_ALIVE_REUSE:
            self._sock.close()
            self._sock, self._buffer = connect(self.port), bytearray()
        self._sock.sendall(request_bytes(self.port, self.token, method, path, body))
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        while (length := response_length(self._buffer)) is None or len(self._buffer) < length:
            chunk = self._sock.recv(RECV_BYTES)
            if not chunk:
                raise BenchError(f"{method} {path}: the server closed the connection")
            self._buffer += chunk
        self._used = time.monotonic()
        response = bytes(self._buffer[:length])
        del self._buffer[:length]
        status = int(response[9:12])
        return status, json.loads(response[response.index(b"\r\n\r\n") + 4 :])

    def get(self, path: str) -> Any:
        """GET ``path``; its JSON body, or ``BenchError`` unless the answer is 200."""
        status, body = self.request("GET", path)
        if status != 200:
            raise BenchError(f"GET {path} answered {status}: {body}")
        return body


class _Slot:
    """One connection of the load generator and the request it is waiting for."""

    __slots__ = ("buffer", "index", "sent_at", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.index = -1
        self.sent_at = 0.0


def run_load(
    port: int,
    requests: Sequence[bytes],
    concurrency: int,
    *,
    quickack: bool = True,
    server_pid: int | None = None,
) -> LoadRun:
    """Send every request, ``concurrency`` at a time over as many keep-alive connections,
    each connection sending its next request as soon as the previous one is answered.

    With ``quickack`` each connection acknowledges every response at once, so no figure can
    hang on the client's delayed ACK (uvicorn writes a response's head and body separately;
    a server socket without ``TCP_NODELAY`` holds the body until the head is acknowledged,
    ~40 ms). ``delayed_ack_probe`` measures without it. ``server_pid``, when given, has its
    CPU time per request measured.

    Raises ``BenchError`` for any answer but 202, or when no answer comes for
    ``STALL_TIMEOUT`` seconds.
    """
    total = len(requests)
    slots = [_Slot(connect(port)) for _ in range(min(concurrency, total))]
    poller = select.epoll()
    by_fd = {slot.sock.fileno(): slot for slot in slots}
    latencies = [0.0] * total
    statuses: Counter[int] = Counter()

    def send(slot: _Slot, index: int) -> None:
        slot.index, slot.sent_at = index, time.perf_counter()
        slot.sock.sendall(requests[index])
        if quickack:
            slot.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)

    try:
        for fd in by_fd:
            poller.register(fd, select.EPOLLIN)
        sent = done = 0
        server_cpu, client_cpu = cpu_seconds(server_pid), time.process_time()
        start = last_answer = time.perf_counter()
        for slot in slots:
            send(slot, sent)
            sent += 1
        while done < total:
            events = poller.poll(1.0)
            now = time.perf_counter()
            if not events and now - last_answer > STALL_TIMEOUT:
                raise BenchError(f"no answer for {STALL_TIMEOUT:.0f} s ({done}/{total} done)")
            for fd, _ in events:
                slot = by_fd[fd]
                chunk = slot.sock.recv(RECV_BYTES)
                if not chunk:
                    raise BenchError("the server closed a keep-alive connection")
                slot.buffer += chunk
                length = response_length(slot.buffer)
                if length is None or len(slot.buffer) < length:
                    continue
                statuses[int(slot.buffer[9:12])] += 1
                latencies[slot.index] = now - slot.sent_at
                del slot.buffer[:length]
                done += 1
                last_answer = now
                if sent < total:
                    send(slot, sent)
                    sent += 1
        elapsed = time.perf_counter() - start
        server_cpu, client_cpu = (
            cpu_seconds(server_pid) - server_cpu,
            time.process_time() - client_cpu,
        )
    finally:
        poller.close()
        for slot in slots:
            slot.sock.close()
    if set(statuses) != {202}:
        raise BenchError(f"expected only 202 answers, got {dict(statuses)}")
    cpu = {"client_cpu_us_per_request": round(client_cpu / total * 1e6, 1)}
    if server_pid is not None:
        cpu["server_cpu_us_per_request"] = round(server_cpu / total * 1e6, 1)
    return LoadRun(total, elapsed, latencies=latencies, extra=cpu)


# -- child processes -----------------------------------------------------------------------


class Children:
    """Every subprocess this benchmark starts; ``stop_all`` ends them whatever happened."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []

    def start(
        self, args: Sequence[str], env: dict[str, str], stderr: Path
    ) -> subprocess.Popen[bytes]:
        """Start ``args`` with stdout discarded and stderr appended to the file ``stderr``."""
        with stderr.open("ab") as log:
            proc = subprocess.Popen(
                list(args),
                env=env,
                cwd=PROJECT_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        self._procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], grace: float = 10.0) -> int:
        """SIGTERM, then SIGKILL after ``grace`` seconds; returns the exit status."""
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if proc in self._procs:
            self._procs.remove(proc)
        return int(proc.returncode)

    def stop_all(self) -> None:
        """Stop every child still running."""
        for proc in list(self._procs):
            try:
                self.stop(proc, grace=5.0)
            finally:
                if proc.poll() is None:
                    proc.kill()


def child_env(**extra: str) -> dict[str, str]:
    """This environment, with the project importable and ``extra`` set."""
    path = os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def wait_healthy(proc: subprocess.Popen[bytes], port: int, stderr: Path) -> float:
    """Poll ``/api/health`` until it answers 200; returns the seconds it took."""
    start = time.perf_counter()
    while time.perf_counter() - start < START_TIMEOUT:
        if proc.poll() is not None:
            tail = stderr.read_text(errors="replace")[-2000:]
            raise BenchError(f"server exited with {proc.returncode}: {tail}")
        try:
            client = Client(port, "")
        except OSError:
            time.sleep(0.02)
            continue
        try:
            status, _ = client.request("GET", "/api/health")
        finally:
            client.close()
        if status == 200:
            return time.perf_counter() - start
        time.sleep(0.02)
    raise BenchError(f"no healthy answer on port {port} within {START_TIMEOUT:.0f} s")


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds ``pid`` (all its threads) has used; 0 for None."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_kb(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` (peak) of ``pid`` in kB, from ``/proc/<pid>/status``."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in {"VmRSS", "VmHWM"}:
            values[name] = int(rest.split()[0])
    return values


# -- the real daemon -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """A server under load: where it listens, its token, and its pid (for CPU time)."""

    name: str
    port: int
    token: str
    pid: int


@dataclass(slots=True)
class Daemon:
    """A running ``memq serve`` and what the benchmark needs to talk to it."""

    proc: subprocess.Popen[bytes]
    port: int
    token: str
    home: Path
    started_in: float

    def client(self) -> Client:
        """A control client with the bearer token."""
        return Client(self.port, self.token)

    @property
    def target(self) -> Target:
        """The daemon as a load target."""
        return Target("daemon", self.port, self.token, self.proc.pid)


def start_daemon(children: Children, root: Path) -> Daemon:
    """``python -m memq serve --quiet`` on a free port with a fresh MEMQ_HOME."""
    home, port = root / "home", free_port()
    env = child_env(MEMQ_HOME=str(home), MEMQ_PORT=str(port))
    stderr = root / "daemon.stderr"
    proc = children.start([sys.executable, "-m", "memq", "serve", "--quiet"], env, stderr)
    started_in = wait_healthy(proc, port, stderr)
    token = (home / "token").read_text(encoding="ascii").strip()
    return Daemon(proc, port, token, home, started_in)


def queue_counts(client: Client) -> dict[str, Any]:
    """``/api/status``: the queue's counts and the active session generators."""
    status = client.get("/api/status")
    return {**status["counts"], "active_generators": status["active_generators"]}


def wait_idle(client: Client, *, generators: bool = False, timeout: float = IDLE_TIMEOUT) -> float:
    """Wait until nothing is pending or processing (and, with ``generators``, until every
    session generator has stopped lingering); returns the seconds waited."""
    start = time.perf_counter()
    while True:
        counts = queue_counts(client)
        busy = counts["pending"] + counts["processing"]
        if not busy and not (generators and counts["active_generators"]):
            return time.perf_counter() - start
        if time.perf_counter() - start > timeout:
            raise BenchError(f"daemon still busy after {timeout:.0f} s: {counts}")
        time.sleep(IDLE_POLL)


def load_run(target: Target, events: Sequence[dict[str, Any]], concurrency: int) -> LoadRun:
    """One timed load run of ``events`` against ``target``."""
    requests = post_requests(target.port, target.token, events)
    return run_load(target.port, requests, concurrency, server_pid=target.pid)


def daemon_round(daemon: Daemon, events: Sequence[dict[str, Any]], concurrency: int) -> LoadRun:
    """One timed load run against the daemon, after it has worked off earlier backlogs; then
    the time it takes to process what the run left (the daemon processes while it takes
    events in, but puts intake first: its backlog is worked off once the run ends)."""
    client = daemon.client()
    try:
        drained = wait_idle(client)
        before = queue_counts(client)
        run = load_run(daemon.target, events, concurrency)
        after = queue_counts(client)
        started = time.perf_counter()
        wait_idle(client)
        drain = time.perf_counter() - started
        idle = queue_counts(client)
    finally:
        client.close()
    run.extra.update(
        processed_during_run=after["processed"] - before["processed"],
        processed_after_run=idle["processed"] - after["processed"],
        drain_after_s=round(drain, 3),
        backlog_wait_before_s=round(drained, 3),
    )
    if idle["failed"] != before["failed"]:
        raise BenchError(f"messages failed during the run: {idle}")
    return run


def throughput(
    target: Target, sizes: Sizes, tag: str, say: Progress, daemon: Daemon | None = None
) -> dict[int, LoadRun]:
    """Scenarios 1a and 3: a warm-up, then the best of N load runs with 1 and with
    ``CONCURRENCY`` clients; each run has fresh events (20 fresh session ids). Against the
    daemon, each run first waits until the previous run's backlog is processed."""
    say(f"{target.name} warm-up: {sizes.warmup} events")
    load_run(target, make_events(sizes.warmup, f"{tag}w"), CONCURRENCY)
    results: dict[int, LoadRun] = {}
    for concurrency, count in ((1, sizes.sequential), (CONCURRENCY, sizes.requests)):
        say(f"{target.name}: {count} events, {concurrency} client(s) (best of {sizes.repeats})")
        runs = []
        for i in range(sizes.repeats):
            events = make_events(count, f"{tag}c{concurrency}r{i}")
            if daemon is None:
                runs.append(load_run(target, events, concurrency))
            else:
                runs.append(daemon_round(daemon, events, concurrency))
        results[concurrency] = best_of(runs)
    return results


def delayed_ack_probe(daemon: Daemon, tag: str, say: Progress) -> LoadRun:
    """One keep-alive client that acknowledges responses the ordinary way (no quick ACK),
    as ``http.client`` or httpx would: ~40 ms per request if the server's sockets lack
    ``TCP_NODELAY`` (Nagle holding the body until the client's delayed ACK)."""
    say(f"daemon: {NAGLE_PROBE_REQUESTS} events, 1 plain keep-alive client (no quick ACK)")
    client = daemon.client()
    try:
        wait_idle(client)
    finally:
        client.close()
    events = make_events(NAGLE_PROBE_REQUESTS, f"{tag}n")
    return run_load(
        daemon.port, post_requests(daemon.port, daemon.token, events), 1, quickack=False
    )


def processed_latency(daemon: Daemon, sizes: Sizes, tag: str, say: Progress) -> LoadRun:
    """Scenario 1b: for each event, the seconds from sending it to the first observations
    poll that shows it stored; ``extra`` holds the 202 latencies."""
    say(f"daemon: event-to-processed latency, {sizes.latency_events} events one at a time")
    events = make_events(sizes.latency_events, tag)
    client = daemon.client()
    totals: dict[str, int] = {}
    samples: list[float] = []
    accepted: list[float] = []
    polls = 0
    try:
        wait_idle(client)
        for event in events:
            sid = event["session_id"]
            path = f"/api/sessions/{sid}/observations?limit=1"
            expected = totals.get(sid, 0) + 1
            sent = time.perf_counter()
            status, body = client.request("POST", "/api/events", encode(event))
            accepted.append(time.perf_counter() - sent)
            if status != 202:
                raise BenchError(f"POST /api/events answered {status}: {body}")
            while True:
                total = client.request("GET", path)[1].get("total", 0)
                polls += 1
                if total >= expected:
                    samples.append(time.perf_counter() - sent)
                    break
                if time.perf_counter() - sent > PROCESS_TIMEOUT:
                    raise BenchError(f"event not processed within {PROCESS_TIMEOUT:.0f} s")
                time.sleep(POLL_INTERVAL)
            totals[sid] = total
            time.sleep(LATENCY_GAP)
    finally:
        client.close()
    run = LoadRun(len(samples), sum(samples), latencies=samples)
    run.extra = {
        "accepted_p50_ms": round(percentile(accepted, 50) * 1e3, 3),
        "accepted_p99_ms": round(percentile(accepted, 99) * 1e3, 3),
        "polls_per_event": round(polls / len(samples), 2),
    }
    return run


def idle_memory(daemon: Daemon, *, after_load: bool) -> dict[str, Any]:
    """Scenario 1c: the daemon's memory once idle (after the load: queue empty and every
    session generator done lingering)."""
    client = daemon.client()
    try:
        waited = wait_idle(client, generators=after_load, timeout=IDLE_TIMEOUT + LINGER_WAIT)
    finally:
        client.close()
    time.sleep(1.0)
    return {**memory_kb(daemon.proc.pid), "waited_s": round(waited, 2)}


# -- floor B: the same server stack, storing nothing ---------------------------------------


def floor_app(token: str, port: int) -> RequestGuard:
    """The floor's ASGI app: Starlette routes behind the daemon's own ``RequestGuard``."""
    ids = itertools.count(1)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def post_event(request: Request) -> Response:
        route_event(await json_body(request))  # the daemon's body reading and checks
        return JSONResponse({"status": "queued", "message_id": next(ids)}, status_code=202)

    app = Starlette(
        routes=[
            Route("/api/health", health, methods=["GET"]),
            Route("/api/events", post_event, methods=["POST"]),
        ]
    )
    app.state.body_limit = BODY_LIMIT  # read by json_body, as in the daemon's app
    return RequestGuard(app, token=token, port=port, body_limit=BODY_LIMIT)


def serve_floor(port: int, token: str) -> int:
    """Run floor B on ``port`` until SIGTERM/SIGINT, with the daemon's uvicorn options."""
    sock = bind_listener(port)
    server = uvicorn.Server(server_config(floor_app(token, port)))
    # The daemon runs uvicorn inside anyio.run (a plain asyncio loop); so does the floor.
    anyio.run(server.serve, [sock])
    return 0


def floor_b_throughput(
    children: Children, root: Path, sizes: Sizes, tag: str, say: Progress
) -> tuple[dict[int, LoadRun], dict[str, int]]:
    """Scenario 3: the same load runs as scenario 1a against floor B in its own process;
    also its memory after the load."""
    port, token = free_port(), secrets.token_urlsafe(32)
    stderr = root / "floor.stderr"
    env = child_env(**{FLOOR_TOKEN_ENV: token})
    args = [sys.executable, str(Path(__file__).resolve()), "--serve-floor", str(port)]
    proc = children.start(args, env, stderr)
    try:
        wait_healthy(proc, port, stderr)
        results = throughput(Target("floor B", port, token, proc.pid), sizes, tag, say)
        memory = memory_kb(proc.pid)
    finally:
        children.stop(proc)
    return results, memory


# -- floor A: the queue alone --------------------------------------------------------------


async def enqueue_all(path: Path, events: Sequence[dict[str, Any]], producers: int) -> LoadRun:
    """``producers`` concurrent tasks enqueue ``events`` (each a slice) into a fresh queue."""
    work = [[(route_event(e), e) for e in events[k::producers]] for k in range(producers)]

    async def produce(items: list[tuple[EventRoute, dict[str, Any]]]) -> None:
        for route, payload in items:
            await queue.enqueue(route.session_key, route.kind, payload, route.dedupe_key)

    queue = await Queue.open(path, QueueSettings())
    try:
        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for items in work:
                tg.start_soon(produce, items)
        elapsed = time.perf_counter() - start
    finally:
        await queue.close()
    return LoadRun(len(events), elapsed)


def floor_a_throughput(root: Path, sizes: Sizes, tag: str, say: Progress) -> LoadRun:
    """Scenario 2: best of N concurrent-enqueue runs, each on a fresh database."""
    say(
        f"floor A: {sizes.floor_a_messages} enqueues, {CONCURRENCY} producers "
        f"(best of {sizes.repeats})"
    )
    runs = []
    for i in range(sizes.repeats):
        events = make_events(sizes.floor_a_messages, f"{tag}{i}")
        runs.append(anyio.run(enqueue_all, root / f"floor_a_{i}.db", events, CONCURRENCY))
    return best_of(runs)


# -- figures -------------------------------------------------------------------------------


def rate_figure(key: str, label: str, run: LoadRun, **kwargs: Any) -> Figure:
    """A throughput figure, with its latency percentiles when they were measured."""
    facts, notes = run_facts(run)
    if run.latencies:
        p50, p99 = run.ms(50), run.ms(99)
        facts.update(p50_ms=round(p50, 3), p99_ms=round(p99, 3))
        notes.append(f"202 p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    facts.update(run.extra)
    if "server_cpu_us_per_request" in run.extra:
        notes.append(
            f"CPU/request: server {run.extra['server_cpu_us_per_request']:,.0f} us, "
            f"client {run.extra['client_cpu_us_per_request']:,.0f} us"
        )
    if "processed_during_run" in run.extra:
        notes.append(
            f"{run.extra['processed_during_run']:,} processed during the run, "
            f"{run.extra['processed_after_run']:,} in the {run.extra['drain_after_s']:.2f} s "
            "after it"
        )
    return Figure(key, label, run.rate, "events/s", detail="; ".join(notes), extra=facts, **kwargs)


def processing_ran(run: LoadRun) -> bool:
    """Whether the daemon processed while it took the run's events in, and processed every
    one of them by the time it was idle again: a daemon that met the intake targets by not
    processing would not meet them."""
    during: int = run.extra["processed_during_run"]
    after: int = run.extra["processed_after_run"]
    return during > 0 and during + after == run.count


def first_wave_facts(run: LoadRun) -> dict[str, float]:
    """Where the slowest answers of a run with ``CONCURRENCY`` clients are: the first wave
    (its first ``CONCURRENCY`` requests, the first events of the round's new sessions) and
    the rest. Context for the p99, which is judged over all of them."""
    first, rest = run.latencies[:CONCURRENCY], run.latencies[CONCURRENCY:]
    return {
        "first_wave_p50_ms": round(percentile(first, 50) * 1e3, 3),
        "first_wave_max_ms": round(max(first) * 1e3, 3),
        "after_first_wave_p99_ms": round(percentile(rest, 99) * 1e3, 3),
    }


def first_wave_note(run: LoadRun) -> str:
    facts = first_wave_facts(run)
    return (
        f"first {CONCURRENCY} answers (where the round's new sessions start) p50 "
        f"{facts['first_wave_p50_ms']:.2f} ms, max {facts['first_wave_max_ms']:.2f} ms; "
        f"the rest p99 {facts['after_first_wave_p99_ms']:.2f} ms"
    )


def drain_figure(run: LoadRun) -> Figure:
    """How long the daemon took, after a run with 32 clients, to process what was left
    (context: no target; ``processing_ran`` judges it)."""
    during, after = run.extra["processed_during_run"], run.extra["processed_after_run"]
    drain = run.extra["drain_after_s"]
    rate = after / drain if drain > 0 else 0.0
    return Figure(
        f"daemon_{CONCURRENCY}_drain",
        f"daemon, {CONCURRENCY} clients, backlog worked off after",
        drain,
        "s",
        detail=(
            f"{during:,} of {run.count:,} processed during the {run.seconds:.2f} s run, "
            f"{after:,} after it ({rate:,.0f}/s, status polled every {IDLE_POLL * 1e3:g} ms); "
            f"processing ran: {'yes' if processing_ran(run) else 'NO'}"
        ),
        extra={
            "processed_during_run": during,
            "processed_after_run": after,
            "processed_per_s_after": round(rate, 1),
            "processing_ran": processing_ran(run),
        },
    )


def throughput_figures(
    daemon: dict[int, LoadRun], floor_b: dict[int, LoadRun], floor_a: LoadRun
) -> list[Figure]:
    """Scenarios 1a, 2 and 3 as figures, with the targets judged: the 32-client ones only
    with processing running (``processing_ran``)."""
    busy = daemon[CONCURRENCY]
    share_b = ratio(busy.rate, floor_b[CONCURRENCY].rate)
    share_a = ratio(busy.rate, floor_a.rate)
    p99 = busy.ms(99)
    ran = processing_ran(busy)
    unless_idle = "" if ran else "; NOT MET: the daemon did not process during the run"
    return [
        rate_figure("daemon_1_client", "daemon, 1 client", daemon[1]),
        rate_figure(f"daemon_{CONCURRENCY}_clients", f"daemon, {CONCURRENCY} clients", busy),
        Figure(
            f"daemon_{CONCURRENCY}_p99",
            f"daemon, {CONCURRENCY} clients, 202 p99",
            p99,
            "ms",
            target=f"< {TARGET_P99_MS:g} ms",
            met=p99 < TARGET_P99_MS and ran,
            detail=(
                f"p50 {busy.ms(50):.2f} ms, max {busy.ms(100):.2f} ms; "
                f"{first_wave_note(busy)}{unless_idle}"
            ),
            extra={
                "p50_ms": round(busy.ms(50), 3),
                "max_ms": round(busy.ms(100), 3),
                **first_wave_facts(busy),
            },
        ),
        drain_figure(busy),
        rate_figure("floor_b_1_client", "floor B (store nothing), 1 client", floor_b[1]),
        rate_figure(
            f"floor_b_{CONCURRENCY}_clients",
            f"floor B (store nothing), {CONCURRENCY} clients",
            floor_b[CONCURRENCY],
        ),
        rate_figure(
            f"floor_a_{CONCURRENCY}_producers",
            f"floor A (queue only), {CONCURRENCY} producers",
            floor_a,
        ),
        Figure(
            "daemon_vs_floor_b",
            f"daemon / floor B, {CONCURRENCY} clients",
            share_b,
            "ratio",
            target=f">= {TARGET_SHARE_OF_FLOOR_B:g}",
            met=share_b >= TARGET_SHARE_OF_FLOOR_B and ran,
            detail=(
                f"{busy.rate:,.0f} / {floor_b[CONCURRENCY].rate:,.0f} events/s, "
                f"{busy.extra['processed_during_run']:,} processed during the run{unless_idle}"
            ),
        ),
        Figure("daemon_vs_floor_a", f"daemon / floor A, {CONCURRENCY} clients", share_a, "ratio"),
    ]


def stall_figure(run: LoadRun) -> Figure:
    """The delayed-ACK probe as a figure (context: no target)."""
    stalled = sum(latency * 1e3 > STALL_MS for latency in run.latencies)
    return Figure(
        "daemon_plain_keepalive_p50",
        "daemon, 1 plain keep-alive client, 202 p50",
        run.ms(50),
        "ms",
        detail=(
            f"{run.count} requests without TCP_QUICKACK, p99 {run.ms(99):.2f} ms, "
            f"{stalled} over {STALL_MS:g} ms (~40 ms each would be Nagle + delayed ACK, "
            "a server socket without TCP_NODELAY)"
        ),
        extra={
            "p50_ms": round(run.ms(50), 3),
            "p99_ms": round(run.ms(99), 3),
            f"over_{STALL_MS:g}_ms": stalled,
            **run.extra,
        },
    )


def latency_figure(run: LoadRun) -> Figure:
    """Scenario 1b as a figure (context: no target)."""
    p50, p99 = run.ms(50), run.ms(99)
    return Figure(
        "processed_latency_p99",
        "event sent -> observation stored, p99",
        p99,
        "ms",
        detail=(
            f"p50 {p50:.2f} ms, max {run.ms(100):.2f} ms; {run.count} events one at a time, "
            f"{LATENCY_GAP * 1e3:g} ms apart, polled every {POLL_INTERVAL * 1e3:g} ms "
            f"({run.extra['polls_per_event']} polls/event); 202 p50 "
            f"{run.extra['accepted_p50_ms']:.2f} ms"
        ),
        extra={
            "p50_ms": round(p50, 3),
            "p99_ms": round(p99, 3),
            "max_ms": round(run.ms(100), 3),
            "events": run.count,
            "method": (
                "one POST at a time on a keep-alive connection, then GET "
                "/api/sessions/{id}/observations?limit=1 until the session's total grows; "
                "time from sending the POST to that answer"
            ),
            **run.extra,
        },
    )


def memory_figures(
    start: dict[str, Any], after: dict[str, Any], floor_b: dict[str, int]
) -> list[Figure]:
    """Scenario 1c as figures: idle RSS after start-up and after the load."""
    figures = []
    for key, label, values in (
        ("rss_idle_start", "daemon RSS, idle after start-up", start),
        ("rss_idle_after_load", "daemon RSS, idle after the load", after),
    ):
        mb = values["VmRSS"] / 1024
        figures.append(
            Figure(
                key,
                label,
                mb,
                "MB",
                target=f"< {TARGET_RSS_MB:g} MB",
                met=mb < TARGET_RSS_MB,
                detail=f"peak (VmHWM) {values['VmHWM'] / 1024:.1f} MB",
                extra={
                    "vm_rss_kb": values["VmRSS"],
                    "vm_hwm_kb": values["VmHWM"],
                    "waited_for_idle_s": values["waited_s"],
                },
            )
        )
    floor_rss = floor_b["VmRSS"] / 1024
    figures.append(Figure("rss_floor_b", "floor B RSS, right after its load", floor_rss, "MB"))
    return figures


# -- reporting -----------------------------------------------------------------------------


def git_state() -> dict[str, Any]:
    """The project's commit and whether ``memq/`` differs from it (None without git)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "memq"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None, "memq_modified": None}
    return {"git_commit": head, "memq_modified": bool(dirty)}


def describe(root: Path, quick: bool, load_before: Sequence[float]) -> dict[str, Any]:
    """The report's environment, with how busy the machine was (load average before and
    after: other work on a 2-CPU machine moves every figure)."""
    return environment(
        root,
        quick,
        ("memq", "uvicorn", "starlette", "httptools", "anyio", "aiosqlite"),
        load_average_before=[round(x, 2) for x in load_before],
        load_average_after=[round(x, 2) for x in os.getloadavg()],
        client="1 thread, epoll, raw keep-alive sockets, pre-built requests, TCP_QUICKACK",
        daemon="python -m memq serve --quiet; MEMQ_* defaults but MEMQ_HOME, MEMQ_PORT",
        **git_state(),
    )


def print_header(report: dict[str, Any], out: TextIO) -> None:
    """The lines above the table: what ran, where, how long."""
    env = report["environment"]
    print(
        f"\nmemq worker benchmark ({env['mode']}): {env['cpus']} CPUs, Python {env['python']}, "
        f"uvicorn {env['uvicorn']}, {report['elapsed_seconds']:.0f} s",
        file=out,
    )
    print(
        f"load average before {env['load_average_before']}, after {env['load_average_after']}",
        file=out,
    )


# -- main ----------------------------------------------------------------------------------


def run_all(children: Children, root: Path, sizes: Sizes, say: Progress) -> list[Figure]:
    """Every scenario, in order: the daemon, floor B, floor A."""
    nonce = secrets.token_hex(3)
    say("starting memq serve")
    daemon = start_daemon(children, root)
    say(
        f"daemon pid {daemon.proc.pid} healthy on port {daemon.port} "
        f"after {daemon.started_in:.2f} s"
    )
    rss_start = idle_memory(daemon, after_load=False)
    daemon_runs = throughput(daemon.target, sizes, f"{nonce}d", say, daemon)
    latency = processed_latency(daemon, sizes, f"{nonce}l", say)
    stall = delayed_ack_probe(daemon, nonce, say)
    say("daemon: waiting for idle (queue empty, generators done lingering) for the RSS")
    rss_after = idle_memory(daemon, after_load=True)
    children.stop(daemon.proc)
    floor_b, floor_b_memory = floor_b_throughput(children, root, sizes, f"{nonce}f", say)
    floor_a = floor_a_throughput(root, sizes, f"{nonce}a", say)
    return [
        *throughput_figures(daemon_runs, floor_b, floor_a),
        stall_figure(stall),
        latency_figure(latency),
        *memory_figures(rss_start, rss_after, floor_b_memory),
    ]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line: ``bench_parser``'s options and the internal ``--serve-floor``."""
    description = __doc__.splitlines()[0] if __doc__ else None
    parser = bench_parser(description, "smaller sizes, under a minute")
    parser.add_argument(
        "--serve-floor",
        type=int,
        metavar="PORT",
        help=f"internal: run floor B on PORT (token in ${FLOOR_TOKEN_ENV})",
    )
    return parser.parse_args(argv)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM ends the benchmark like Ctrl-C, so that its children are stopped."""
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print the table (stderr) and the JSON object (stdout)."""
    args = parse_args(argv)
    if args.serve_floor is not None:
        return serve_floor(args.serve_floor, os.environ[FLOOR_TOKEN_ENV])
    signal.signal(signal.SIGTERM, _interrupt)
    # floor A's queue logs its opening; keep the benchmark's output to its own lines.
    silence_logs()
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    load_before = os.getloadavg()
    children = Children()

    def run(root: Path, say: Progress) -> list[Figure]:
        try:
            return run_all(children, root, sizes, say)
        finally:
            children.stop_all()  # before the temp dir (their MEMQ_HOME and logs) goes

    try:
        return run_benchmark(
            args,
            "memq.worker",
            run,
            lambda root: describe(root, args.quick, load_before),
            print_header,
            prefix="memq-bench-worker-",
        )
    except KeyboardInterrupt:
        print("bench_worker: interrupted; child processes stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
