"""Benchmark of the MCP server's ``search`` tool at 100,000 observations, against the daemon's
own search measured in the same run.

The database of ``bench_memory.py`` (100,000 observations with prompts and summaries over
1,000 sessions in 20 projects) is built in a fresh MEMQ_HOME, a real daemon (``memq serve``)
serves it on a free loopback port, and ``memq mcp`` runs as an assistant starts it: a
subprocess spoken to over stdio by the MCP SDK's own client. Then, cycling through the same
realistic queries:

1. baseline: ``GET /api/search`` over HTTP from this process, as the MCP server calls it
   (``urllib``, the token, a new connection each time): p50 / p99 / max;
2. baseline: the two calls the tool makes (``/api/search``, then ``/api/records`` for the
   hits' files and sizes), still without MCP;
3. the ``search`` tool through the stdio client, in the busiest project and across all of
   them (``project="*"``): p50 / p99 / max (target p99 < 50 ms), and the tool's overhead over
   baseline 1 (its p50 minus the raw search's).

These are figures, not tests: each is printed with its target and whether it was met, and the
exit status is 0 unless something crashed. A table goes to stderr; one JSON object is the last
line of stdout.

    .venv/bin/python scripts/bench_mcp.py [--quick] [--json-only] [--dir DIR] [--keep]

The full run takes about a minute, mostly building the database; ``--quick`` times fewer
rounds on the same database.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TextIO
from urllib.parse import urlencode

import anyio
from bench_memory import SEARCH_QUERIES, build_database, latency_figure
from benchkit import BenchError, Figure, Progress, bench_parser, environment, run_benchmark
from mcp import Client, StdioServerParameters
from mcp.types import CallToolResult, TextContent

from memq.memory.records import RecordType
from memq.memory.refs import format_ref

SEARCH_TARGET_MS: Final = 50.0
OBSERVATIONS: Final = 100_000
ROOT: Final = Path(__file__).resolve().parents[1]


@dataclass(frozen=True, slots=True)
class Sizes:
    """How many timed calls each scenario makes (after a warm-up of every query)."""

    rounds: int = 400


FULL_SIZES: Final = Sizes()
QUICK_SIZES: Final = Sizes(rounds=100)


# -- the daemon ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Daemon:
    """``memq serve`` on a free loopback port with its own home, stopped at the end."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "MEMQ_HOME": str(home),
            "MEMQ_PORT": str(self.port),
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "memq", "serve", "--quiet"],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError("memq serve exited at start")
            try:
                with urllib.request.urlopen(self.url("/api/health"), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise BenchError("memq serve did not answer in time")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str) -> bytes:
        """``GET path`` with the token, as the MCP server calls the API."""
        token = (self.home / "token").read_text().strip()
        request = urllib.request.Request(
            self.url(path), headers={"Authorization": f"Bearer {token}", "X-Memq-Via": "mcp"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body: bytes = response.read()
            return body


# -- timing ----------------------------------------------------------------------------------


def search_path(query: str, project: str | None) -> str:
    params = {"q": query, "limit": "20"} | ({"project": project} if project else {})
    return "/api/search?" + urlencode(params)


def time_http(daemon: Daemon, project: str, rounds: int, *, with_records: bool) -> list[float]:
    """Seconds per raw search over HTTP (and the records read after it, ``with_records``)."""

    def once(query: str) -> int:
        found = json.loads(daemon.get(search_path(query, project)))["items"]
        if with_records and found:
            refs = [format_ref(RecordType(hit["record_type"]), hit["id"]) for hit in found]
            daemon.get("/api/records?" + urlencode({"ids": ",".join(refs), "purpose": "index"}))
        return len(found)

    if not sum(once(query) for query in SEARCH_QUERIES):
        raise BenchError(f"no search hits at all in {project}")
    samples = []
    for query in itertools.islice(itertools.cycle(SEARCH_QUERIES), rounds):
        start = time.perf_counter()
        once(query)
        samples.append(time.perf_counter() - start)
    return samples


async def time_tool(daemon: Daemon, project: str, rounds: int) -> list[float]:
    """Seconds per ``search`` tool call through the SDK's stdio client."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "memq", "mcp"],
        env={"PYTHONPATH": str(ROOT), "MEMQ_HOME": str(daemon.home), "MEMQ_PORT": str(daemon.port)},
        cwd=daemon.home,
    )
    samples: list[float] = []
    async with Client(params, read_timeout_seconds=30) as client:

        async def once(query: str) -> str:
            result = await client.call_tool("search", {"query": query, "project": project})
            assert isinstance(result, CallToolResult)
            text = "".join(b.text for b in result.content if isinstance(b, TextContent))
            if result.is_error:
                raise BenchError(f"the search tool failed: {text}")
            return text

        answers = [await once(query) for query in SEARCH_QUERIES]  # warm-up
        if not any("#" in answer for answer in answers):
            raise BenchError(f"the search tool found nothing in {project}")
        for query in itertools.islice(itertools.cycle(SEARCH_QUERIES), rounds):
            start = time.perf_counter()
            await once(query)
            samples.append(time.perf_counter() - start)
    return samples


def run_all(root: Path, sizes: Sizes, say: Progress) -> list[Figure]:
    home = root / "home"
    home.mkdir(mode=0o700)
    say(f"building {OBSERVATIONS:,} observations")
    data = build_database(home / "memq.db", OBSERVATIONS)
    busiest = data.projects[0]
    daemon = Daemon(home)
    say("starting memq serve")
    daemon.start()
    try:
        say("baseline: GET /api/search over HTTP")
        raw = time_http(daemon, busiest, sizes.rounds, with_records=False)
        say("baseline: /api/search then /api/records over HTTP")
        both = time_http(daemon, busiest, sizes.rounds, with_records=True)
        say("the search tool through memq mcp (one project)")
        tool = anyio.run(time_tool, daemon, busiest, sizes.rounds)
        say("the search tool through memq mcp (every project)")
        tool_all = anyio.run(time_tool, daemon, "*", sizes.rounds)
    finally:
        daemon.stop()
    overhead = (sorted(tool)[len(tool) // 2] - sorted(raw)[len(raw) // 2]) * 1e3
    return [
        latency_figure("http_search", "baseline: GET /api/search", raw),
        latency_figure("http_search_records", "baseline: /api/search + /api/records", both),
        latency_figure(
            "tool_search", "MCP search tool, one project", tool, target_ms=SEARCH_TARGET_MS
        ),
        latency_figure(
            "tool_search_all",
            "MCP search tool, every project",
            tool_all,
            target_ms=SEARCH_TARGET_MS,
        ),
        Figure("tool_overhead", "tool p50 minus raw search p50", overhead, "ms"),
    ]


def print_header(report: dict[str, Any], out: TextIO) -> None:
    env = report["environment"]
    print(
        f"\nmemq MCP benchmark ({env['mode']}): {env['cpus']} CPUs, Python {env['python']}, "
        f"{OBSERVATIONS:,} observations, {report['elapsed_seconds']:.0f} s",
        file=out,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print the table (stderr) and the JSON object (stdout)."""
    description = __doc__.splitlines()[0] if __doc__ else None
    args = bench_parser(description, "fewer timed rounds").parse_args(argv)
    sizes = QUICK_SIZES if args.quick else FULL_SIZES

    def run(root: Path, say: Progress) -> list[Figure]:
        return run_all(root, sizes, say)

    return run_benchmark(
        args,
        "memq.mcp",
        run,
        lambda root: environment(root, args.quick, ("memq", "mcp")),
        print_header,
        prefix="memq-bench-mcp-",
    )


if __name__ == "__main__":
    sys.exit(main())
