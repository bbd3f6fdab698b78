"""Benchmark of the ``memq hook`` process: what the user waits for on every tool call.

Measures the wall time of one ``memq hook`` run (spawn to exit, a PostToolUse payload on
stdin), p50/p99 over many runs, in three situations, all in the same run and the same venv:

1. the floor: ``python -c "import json, socket"`` (no Python hook can start faster);
2. the daemon up: a real ``memq serve`` on a loopback port answers the hook;
3. the daemon down: nothing listens, so the hook writes the event straight into the pending
   table (the spawn of a daemon is held off by a fresh ``spawn.stamp``, so that every run
   measures the write and not a daemon start-up competing for the CPU).

Aim: daemon up <= 1.5x the floor, daemon down <= 2x the floor (p50). A table goes to stderr,
one JSON object to stdout. Figures, not a test: the exit status is 0 unless something broke.

The redaction of secrets (``memq.redact``) is budgeted in the same run, for a typical event
and a 1 MiB one (a tool answer of code that names tokens and keys, so that its rules run):
in process, the hook's own work on the event (parse, ``<private>``, fit, encode) against the
redaction's, and as whole ``memq hook`` runs with the daemon up, ``MEMQ_REDACT=off`` against
on, alternating.

    .venv/bin/python scripts/bench_hook.py [--runs N] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import memq
from memq.events import parse_event_body
from memq.hooks.fit import fit, fit_body
from memq.privacy import strip_private
from memq.redact import BUILT_IN

VENV_BIN = Path(sys.executable).parent
MEMQ = VENV_BIN / "memq"

PAYLOAD: dict[str, Any] = {
    "session_id": "bench-hook-session",
    "transcript_path": "/home/dev/.claude/projects/p/bench.jsonl",
    "cwd": "/home/dev/project",
    "permission_mode": "default",
    "hook_event_name": "PostToolUse",
    "tool_name": "Bash",
    "tool_input": {"command": "ls -la src/", "description": "list the sources"},
    "tool_response": {
        "stdout": "total 8\n" + "-rw-r--r-- 1 dev dev 120 file.py\n" * 20,
        "stderr": "",
        "interrupted": False,
        "isImage": False,
    },
}


# A tool answer of code that names secrets without holding any: every rule's trigger is in
# it, so this is the redaction's dearer case.
CODE_CHUNK = """\
def connect(settings: Settings) -> Client:
    token = settings.api_token or os.environ.get("GITHUB_TOKEN")
    password: str = settings.password  # never logged
    headers = {"Authorization": f"Bearer {token}", "x-api-key": settings.api_key}
    url = f"https://{settings.host}:{settings.port}/v1/items?limit=50"
    for attempt in range(settings.max_attempts):
        response = session.get(url, headers=headers, timeout=settings.timeout)
        if response.status_code == 429:
            time.sleep(backoff(attempt))  # commit 3f786850e387550fdab836ed7e6dc881de23001b
            continue
        return Client(response.json(), secret_ref=settings.secret_name)
"""


def big_payload(size: int = 1024 * 1024) -> dict[str, Any]:
    """A Read of a source file of about ``size`` bytes, as Claude Code sends it."""
    content = (CODE_CHUNK * (size // len(CODE_CHUNK) + 1))[: size - 2048]
    return {
        **PAYLOAD,
        "tool_name": "Read",
        "tool_input": {"file_path": "/home/dev/project/src/client.py"},
        "tool_response": {
            "type": "text",
            "file": {"filePath": "src/client.py", "content": content},
        },
    }


def hook_steps(raw: bytes, limit: int, *, redact: bool) -> bytes:
    """The hook's own work on one event (``memq.hooks.run.handle`` without the delivery),
    with or without the redaction."""
    payload = strip_private(parse_event_body(fit_body(raw, limit)))
    if redact:
        payload, _ = BUILT_IN.redact_value(payload)
    return fit(payload, limit)[1]


def in_process_cost(payload: dict[str, Any], repeat: int) -> dict[str, float]:
    """Median microseconds of the hook's steps on ``payload`` without and with redaction,
    alternating, and of the redaction alone."""
    raw, limit = json.dumps(payload).encode(), 1024 * 1024
    BUILT_IN.warm()  # a fresh hook compiles only the rules an event triggers; see below
    plain, redacted, alone = [], [], []
    for _ in range(repeat):
        start = time.perf_counter()
        hook_steps(raw, limit, redact=False)
        middle = time.perf_counter()
        hook_steps(raw, limit, redact=True)
        end = time.perf_counter()
        parsed = parse_event_body(raw)
        before = time.perf_counter()
        BUILT_IN.redact_value(parsed)
        alone.append((time.perf_counter() - before) * 1e6)
        plain.append((middle - start) * 1e6)
        redacted.append((end - middle) * 1e6)
    without, with_it = statistics.median(plain), statistics.median(redacted)
    return {
        "body_bytes": len(raw),
        "hook_steps_us": round(without, 1),
        "hook_steps_with_redaction_us": round(with_it, 1),
        "redaction_alone_us": round(statistics.median(alone), 1),
        "ratio": round(with_it / without, 3),
    }


def constant(data: bytes) -> Callable[[int], bytes]:
    """A ``stdin_for`` giving ``data`` every time."""
    return lambda _i: data


def time_alternating(
    argv: list[str], envs: tuple[dict[str, str], dict[str, str]], runs: int, payload: bytes
) -> tuple[list[float], list[float]]:
    """Wall milliseconds of ``runs`` executions under each of two environments, taking turns
    (so that a noisy neighbour costs both alike); each run its own tool_use_id."""
    first: list[float] = []
    second: list[float] = []
    template = json.loads(payload)
    for i in range(runs):
        for n, (env, times) in enumerate(zip(envs, (first, second), strict=True)):
            data = json.dumps({**template, "tool_use_id": f"toolu_alt_{n}_{i}"}).encode()
            times.extend(time_runs(argv, env, 1, constant(data)))
    return first, second


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def time_runs(
    argv: list[str], env: dict[str, str], runs: int, stdin_for: Callable[[int], bytes]
) -> list[float]:
    """Wall milliseconds of ``runs`` executions of ``argv``; ``stdin_for(i)`` gives stdin."""
    times = []
    for i in range(runs):
        data = stdin_for(i)
        start = time.perf_counter()
        done = subprocess.run(argv, input=data, capture_output=True, env=env, check=False)
        times.append((time.perf_counter() - start) * 1000)
        if done.returncode != 0 or done.stderr:
            raise RuntimeError(f"{argv} failed: {done.returncode} {done.stderr[:200]!r}")
    return times


def hook_input(prefix: str) -> Callable[[int], bytes]:
    """A function giving the i-th payload, each with its own tool_use_id."""

    def make(i: int) -> bytes:
        return json.dumps({**PAYLOAD, "tool_use_id": f"toolu_{prefix}_{i}"}).encode()

    return make


@contextmanager
def running_daemon(home: Path, port: int) -> Iterator[int]:
    """A real ``memq serve`` for the duration; yields its pid."""
    env = {**os.environ, "MEMQ_HOME": str(home), "MEMQ_PORT": str(port)}
    process = subprocess.Popen(
        [str(MEMQ), "serve", "--quiet"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1):
                    break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("the daemon did not start")
        yield process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def row_count(home: Path) -> int:
    """Rows in the pending table (to check the fallback really wrote)."""
    conn = sqlite3.connect(home / "memq.db")
    try:
        return int(conn.execute("SELECT count(*) FROM pending_messages").fetchone()[0])
    finally:
        conn.close()


def summarize(times: list[float]) -> dict[str, float]:
    """p50, p99, mean and min of a list of milliseconds."""
    return {
        "p50_ms": round(statistics.median(times), 2),
        "p99_ms": round(percentile(times, 99), 2),
        "mean_ms": round(statistics.fmean(times), 2),
        "min_ms": round(min(times), 2),
    }


def main() -> int:
    """Run the three measurements and print the table and JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=100, help="runs per situation (100)")
    parser.add_argument("--quick", action="store_true", help="50 runs per situation")
    args = parser.parse_args()
    runs = 50 if args.quick else max(50, args.runs)
    # As a pip install would: bytecode for memq, so no run pays for compiling it (environments
    # with PYTHONDONTWRITEBYTECODE=1 would otherwise compile every module on every run).
    package_dir = Path(memq.__file__).parent
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package_dir)], check=True)
    root = Path(tempfile.mkdtemp(prefix="memq-bench-hook-"))
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("MEMQ_")}

    floor = time_runs([sys.executable, "-c", "import json, socket"], base_env, runs, lambda i: b"")

    up_home, up_port = root / "up", free_port()
    up_env = {**base_env, "MEMQ_HOME": str(up_home), "MEMQ_PORT": str(up_port)}
    off_env = {**up_env, "MEMQ_REDACT": "off"}
    big = json.dumps(big_payload()).encode()
    typical = json.dumps(PAYLOAD).encode()
    with running_daemon(up_home, up_port):
        up = time_runs([str(MEMQ), "hook"], up_env, runs, hook_input("up"))
        typical_off, typical_on = time_alternating(
            [str(MEMQ), "hook"], (off_env, up_env), runs, typical
        )
        big_runs = max(10, runs // 5)
        big_off, big_on = time_alternating([str(MEMQ), "hook"], (off_env, up_env), big_runs, big)
    if (up_home / "logs" / "hook.log").exists():
        raise RuntimeError("the hook fell back while the daemon was up")

    down_home, down_port = root / "down", free_port()
    down_env = {**base_env, "MEMQ_HOME": str(down_home), "MEMQ_PORT": str(down_port)}
    down_home.mkdir(mode=0o700)
    stamp = down_home / "spawn.stamp"

    def down_input(i: int) -> bytes:
        stamp.write_text("0\n")  # keeps the hook from starting a daemon mid-benchmark
        return hook_input("down")(i)

    down_input(0)
    time_runs([str(MEMQ), "hook"], down_env, 1, hook_input("warm"))  # creates the schema
    down = time_runs([str(MEMQ), "hook"], down_env, runs, down_input)
    if row_count(down_home) != runs + 1:
        raise RuntimeError("the fallback did not store every event")

    figures = {
        "floor": summarize(floor),
        "daemon_up": summarize(up),
        "daemon_down": summarize(down),
    }
    ratio_up = figures["daemon_up"]["p50_ms"] / figures["floor"]["p50_ms"]
    ratio_down = figures["daemon_down"]["p50_ms"] / figures["floor"]["p50_ms"]
    targets = {
        "daemon_up_vs_floor": {
            "ratio": round(ratio_up, 3),
            "target": "<= 1.5",
            "met": ratio_up <= 1.5,
        },
        "daemon_down_vs_floor": {
            "ratio": round(ratio_down, 3),
            "target": "<= 2.0",
            "met": ratio_down <= 2.0,
        },
    }
    redaction: dict[str, dict[str, Any]] = {
        "in_process": {
            "typical": in_process_cost(PAYLOAD, 2000),
            "1MiB": in_process_cost(big_payload(), 20),
        },
        "hook_runs": {
            "typical": {
                "redact_off": summarize(typical_off),
                "redact_on": summarize(typical_on),
            },
            "1MiB": {"redact_off": summarize(big_off), "redact_on": summarize(big_on)},
        },
    }
    result = {
        "benchmark": "memq hook",
        "runs": runs,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "figures": figures,
        "targets": targets,
        "redaction": redaction,
    }
    print(f"memq hook: {runs} runs each, wall time of the whole process", file=sys.stderr)
    print(f"{'situation':<40}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}", file=sys.stderr)
    labels = {
        "floor": 'python -c "import json, socket"',
        "daemon_up": "memq hook, daemon up",
        "daemon_down": "memq hook, daemon down (fallback)",
    }
    for key, label in labels.items():
        f = figures[key]
        print(
            f"{label:<40}{f['p50_ms']:>9.2f}{f['p99_ms']:>9.2f}{f['mean_ms']:>9.2f}",
            file=sys.stderr,
        )
    for key, target in targets.items():
        verdict = "met" if target["met"] else "MISSED"
        print(
            f"{key}: {target['ratio']:.2f}x (target {target['target']}) {verdict}", file=sys.stderr
        )
    print("redaction (memq.redact), in process, median:", file=sys.stderr)
    for key, cost in redaction["in_process"].items():
        print(
            f"  {key:<8} {cost['body_bytes']:>8} B: hook steps {cost['hook_steps_us']:>9.1f} us, "
            f"with redaction {cost['hook_steps_with_redaction_us']:>9.1f} us "
            f"({cost['ratio']:.2f}x; the redaction alone {cost['redaction_alone_us']:.1f} us)",
            file=sys.stderr,
        )
    print("redaction, whole memq hook runs with the daemon up, p50 ms:", file=sys.stderr)
    for key, pair in redaction["hook_runs"].items():
        off, on = pair["redact_off"]["p50_ms"], pair["redact_on"]["p50_ms"]
        print(
            f"  {key:<8} MEMQ_REDACT=off {off:>8.2f}  on {on:>8.2f}  ({on - off:+.2f} ms)",
            file=sys.stderr,
        )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
