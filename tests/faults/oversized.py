"""Oversized events: a tool answer of 50 MB through the real ``memq hook`` command.

Each driver sends one event of each shape (below) through ``memq hook`` as a real process,
measures the hook's wall time and peak memory (``wait4``'s rusage of that very child), and
checks that every event was stored once and never past ``MEMQ_BODY_LIMIT``.

    huge_string     one string of 50 MB (a ``cat`` of a big file)
    short_strings   1.1 million short strings (the issue's case: 4.1 s and 405 MB before)
    deep_nesting    90 levels, each with a list of short strings, 50 MB in all

    daemon_up       a real daemon takes them over HTTP (a 413 would make the hook fall back)
    daemon_down     nothing listens: the hook writes them straight into the database
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.faults import FaultReport
from tests.faults.kit import MEMQ, keep_hooks_from_spawning
from tests.helpers.daemon import Daemon, free_port
from tests.helpers.processes import project_env
from tests.helpers.rows import table

PAYLOAD_BYTES = 50_000_000
SHAPES = ("huge_string", "short_strings", "deep_nesting")
SESSION_ID = "oversized-fault"
BODY_LIMIT = 1024 * 1024  # the default MEMQ_BODY_LIMIT
DEEP_LEVELS = 90


def payload(shape: str, tool_use_id: str, size: int = PAYLOAD_BYTES) -> bytes:
    """A PostToolUse payload of about ``size`` bytes, written as bytes directly (building
    it with ``json.dumps`` would cost the test process what the hook must not spend)."""
    head = (
        b'{"session_id":"' + SESSION_ID.encode() + b'","hook_event_name":"PostToolUse",'
        b'"cwd":"/tmp/oversized","tool_name":"Bash","tool_input":{"command":"cat big"},'
        b'"tool_response":'
    )
    tail = b',"tool_use_id":"' + tool_use_id.encode() + b'"}'
    if shape == "huge_string":
        body = b'{"stdout":"' + b"x" * size + b'","stderr":""}'
    elif shape == "short_strings":
        count = size // 45  # 1.1 M in 50 MB: the tool answer
        lines = b",".join(b'"line %07d of the tool output, 44 bytes"' % i for i in range(count))
        body = b'{"lines":[' + lines + b"]}"
    elif shape == "deep_nesting":
        per_level = size // DEEP_LEVELS // 11
        pad = b",".join(b'"p%07d"' % i for i in range(per_level))
        opens = [
            b'{"level":%d,"pad":[' % level + pad + b'],"child":'
            for level in reversed(range(DEEP_LEVELS))
        ]
        body = b"".join(opens) + b'["leaf"]' + b"}" * DEEP_LEVELS
    else:
        raise ValueError(f"no shape {shape!r}")
    return head + body + tail


@dataclass(frozen=True, slots=True)
class HookRun:
    """One ``memq hook`` process: its exit status, wall time, peak memory and output."""

    exit_code: int
    seconds: float
    max_rss_mb: float
    stdout: bytes


# Runs a command and writes its wall time and peak memory to the file in argv[1]. The
# measuring process is this small one: Linux keeps a process's peak memory across exec, and
# a child forked from the test process (which holds the 50 MB payload) would start its peak
# at the test's own size.
MEASURE = """
import json, os, sys, time
started = time.perf_counter()
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - started
with open(sys.argv[1], "w") as out:
    json.dump({"exit_code": os.waitstatus_to_exitcode(status), "seconds": seconds,
               "max_rss_kb": usage.ru_maxrss}, out)
"""


def run_measured(
    argv: list[str], data: bytes, env: dict[str, str]
) -> tuple[int, float, float, bytes]:
    """Run ``argv`` with ``data`` on stdin: its exit status, wall time (spawn to exit), peak
    memory in MB (its own, see ``MEASURE``) and output."""
    with tempfile.TemporaryDirectory() as scratch:
        figures = Path(scratch) / "figures.json"
        output = Path(scratch) / "output"
        with output.open("wb") as out:
            child = subprocess.Popen(
                [sys.executable, "-c", MEASURE, str(figures), *argv],
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=project_env(env),
            )
            assert child.stdin is not None
            try:
                child.stdin.write(data)
                child.stdin.close()
            except BrokenPipeError:
                pass  # it stopped reading: its exit status says the rest
            child.wait(timeout=120)
        measured = json.loads(figures.read_text())
        return (
            int(measured["exit_code"]),
            float(measured["seconds"]),
            measured["max_rss_kb"] / 1024,
            output.read_bytes(),
        )


def measured_hook(data: bytes, env: dict[str, str]) -> HookRun:
    """Run the real ``memq hook`` with ``data`` on stdin, measured (``run_measured``)."""
    return HookRun(*run_measured([str(MEMQ), "hook"], data, env))


def stored_sizes(database: Path, key: str) -> list[int | None]:
    """The stored payload's size in bytes of each row with dedupe key ``key`` (None once
    processed: the queue drops a payload when it is turned into memory)."""
    rows = table(
        database,
        "SELECT length(CAST(payload AS BLOB)) AS size FROM pending_messages WHERE dedupe_key = ?",
        key,
    )
    return [row["size"] for row in rows]


@dataclass(frozen=True, slots=True)
class OversizedReport(FaultReport):
    """A ``FaultReport`` with each hook's figures, by shape.

    Args:
        runs: the hook run of each shape, in ``SHAPES`` order.
        stored_bytes: the size the database holds for each (None: processed already).
        fell_back: whether hook.log recorded a fallback (with the daemon up: a refusal).
    """

    runs: tuple[HookRun, ...] = ()
    stored_bytes: tuple[int | None, ...] = ()
    fell_back: bool = False

    @property
    def worst_seconds(self) -> float:
        return max((run.seconds for run in self.runs), default=0.0)

    @property
    def worst_rss_mb(self) -> float:
        return max((run.max_rss_mb for run in self.runs), default=0.0)


def _send_all(home: Path, env: dict[str, str], scenario: str) -> tuple[list[HookRun], list[str]]:
    runs: list[HookRun] = []
    keys: list[str] = []
    for shape in SHAPES:
        tool_use_id = f"{scenario}-{shape}"
        keep_hooks_from_spawning(home)
        runs.append(measured_hook(payload(shape, tool_use_id), env))
        keys.append(f"tool:{tool_use_id}")
    return runs, keys


def _kept(database: Path, keys: list[str], limit: int) -> tuple[int, list[int | None]]:
    kept = 0
    sizes: list[int | None] = []
    for key in keys:
        found = stored_sizes(database, key)
        sizes.append(found[0] if found else None)
        kept += len(found) == 1 and (found[0] is None or found[0] <= limit)
    return kept, sizes


def _report(
    scenario: str, home: Path, sent: tuple[list[HookRun], list[str]], *, recovery: float
) -> OversizedReport:
    runs, keys = sent
    kept, sizes = _kept(home / "memq.db", keys, BODY_LIMIT)
    return OversizedReport(
        scenario=scenario,
        sent=len(runs),
        acknowledged=sum(run.exit_code == 0 for run in runs),
        kept=kept,
        recovery_seconds=recovery,
        runs=tuple(runs),
        stored_bytes=tuple(sizes),
        fell_back=(home / "logs" / "hook.log").exists(),
    )


def daemon_down(scratch: Path) -> OversizedReport:
    """The events of every shape with no daemon: the hook's direct write."""
    home = scratch / "home"
    env = {"MEMQ_HOME": str(home), "MEMQ_PORT": str(free_port())}
    sent = _send_all(home, env, "down")
    return _report("oversized events (50 MB), daemon down", home, sent, recovery=0.0)


def daemon_up(scratch: Path) -> OversizedReport:
    """The events of every shape through a real daemon."""
    home = scratch / "home"
    daemon = Daemon(home)
    daemon.start()
    try:
        sent = _send_all(home, {"MEMQ_HOME": str(home), "MEMQ_PORT": str(daemon.port)}, "up")
        started = time.monotonic()
        daemon.wait_idle()
        settled = time.monotonic() - started
    finally:
        daemon.kill()
    return _report("oversized events (50 MB), daemon up", home, sent, recovery=settled)


SCENARIOS = (daemon_down, daemon_up)
