"""Benchmark of oversized events: a 50 MB tool answer through the real ``memq hook`` command.

Three shapes of payload (``tests/faults/oversized.py`` builds them): one huge string, 1.1
million short strings (the issue's case: 4.1 s and 405 MB before the hook cut events as
text), and 90 levels of nesting. Each goes through ``memq hook`` as a real process with a
real daemon up (over HTTP) and with nothing listening (the hook's direct write), and for each
the hook's wall time (spawn to exit) and peak memory (the child's own rusage) are measured.

The baseline, in the same run on the same input: ``python -c "import json, sys;
json.loads(sys.stdin.buffer.read())"``, the least a hook that parses the event whole would
spend. Targets: the hook under 1 s and 100 MB for every shape. Every event must also be
stored once and within MEMQ_BODY_LIMIT, or the run is void.

Figures, not a test: a table goes to stderr, one JSON object to stdout, and the exit status is
0 unless something broke.

    .venv/bin/python scripts/bench_oversized.py [--runs N] [--quick] [--json-only]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from benchkit import BenchError, Figure, Progress, bench_parser, environment, run_benchmark

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import memq  # noqa: E402 - after the project root is on the path
from tests.faults.kit import MEMQ, keep_hooks_from_spawning  # noqa: E402
from tests.faults.oversized import (  # noqa: E402
    BODY_LIMIT,
    SHAPES,
    payload,
    run_measured,
    stored_sizes,
)
from tests.helpers.daemon import Daemon, free_port  # noqa: E402

TARGET_SECONDS = 1.0
TARGET_RSS_MB = 100.0
BASELINE = [sys.executable, "-c", "import json, sys; json.loads(sys.stdin.buffer.read())"]
LABELS = {
    "huge_string": "one 50 MB string",
    "short_strings": "1.1 M short strings",
    "deep_nesting": "90 levels of nesting",
}

Measured = tuple[float, float]  # seconds, peak MB (each the median of the runs)


def measure(
    argv: list[str], make_input: Callable[[int], bytes], env: dict[str, str], runs: int
) -> Measured:
    """Median wall time and peak memory of ``runs`` runs of ``argv``; run ``i`` reads
    ``make_input(i)``."""
    seconds: list[float] = []
    peaks: list[float] = []
    for i in range(runs):
        code, took, peak, output = run_measured(argv, make_input(i), env)
        if code != 0 or output:
            raise BenchError(f"{argv[-1]} exited {code}: {output[:200]!r}")
        seconds.append(took)
        peaks.append(peak)
    return statistics.median(seconds), statistics.median(peaks)


def check_stored(database: Path, keys: list[str]) -> None:
    """Every event stored exactly once, within the limit (None: processed already)."""
    for key in keys:
        found = stored_sizes(database, key)
        if len(found) != 1 or (found[0] is not None and found[0] > BODY_LIMIT):
            raise BenchError(f"{key}: stored as {found} (limit {BODY_LIMIT})")


def hook_figures(shape: str, mode: str, measured: Measured, baseline: Measured) -> list[Figure]:
    seconds, peak = measured
    label = f"{LABELS[shape]}, daemon {mode}"
    return [
        Figure(
            f"{shape}_{mode}_seconds",
            f"{label}: time",
            seconds,
            "s",
            target=f"< {TARGET_SECONDS:g}",
            met=seconds < TARGET_SECONDS,
            detail=f"json.loads alone: {baseline[0]:.3f} s",
        ),
        Figure(
            f"{shape}_{mode}_rss",
            f"{label}: peak memory",
            peak,
            "MB",
            target=f"< {TARGET_RSS_MB:g}",
            met=peak < TARGET_RSS_MB,
            detail=f"json.loads alone: {baseline[1]:.1f} MB",
        ),
    ]


def run_all(root: Path, runs: int, say: Progress) -> list[Figure]:
    """Every shape: the baseline, then the hook with the daemon down and up."""
    figures: list[Figure] = []
    baselines: dict[str, Measured] = {}
    for shape in SHAPES:
        say(f"baseline: json.loads of {LABELS[shape]}")
        data = payload(shape, "baseline")

        def same_input(i: int, data: bytes = data) -> bytes:
            return data

        baselines[shape] = measure(BASELINE, same_input, {}, runs)
        figures += [
            Figure(
                f"{shape}_baseline_seconds",
                f"{LABELS[shape]}: json.loads",
                *baselines[shape][:1],
                "s",
            ),
            Figure(
                f"{shape}_baseline_rss",
                f"{LABELS[shape]}: json.loads memory",
                baselines[shape][1],
                "MB",
            ),
        ]

    down = root / "down"
    down_env = {"MEMQ_HOME": str(down), "MEMQ_PORT": str(free_port())}
    for shape in SHAPES:
        say(f"daemon down: {LABELS[shape]} x {runs}")

        def down_input(i: int, shape: str = shape) -> bytes:
            keep_hooks_from_spawning(down)  # the run measures the write, not a daemon start
            return payload(shape, f"down-{shape}-{i}")

        measured = measure([str(MEMQ), "hook"], down_input, down_env, runs)
        check_stored(down / "memq.db", [f"tool:down-{shape}-{i}" for i in range(runs)])
        figures += hook_figures(shape, "down", measured, baselines[shape])

    daemon = Daemon(root / "up")
    say(f"daemon up on port {daemon.port}")
    daemon.start()
    try:
        up_env = {"MEMQ_HOME": str(daemon.home), "MEMQ_PORT": str(daemon.port)}
        for shape in SHAPES:
            say(f"daemon up: {LABELS[shape]} x {runs}")

            def up_input(i: int, shape: str = shape) -> bytes:
                return payload(shape, f"up-{shape}-{i}")

            measured = measure([str(MEMQ), "hook"], up_input, up_env, runs)
            figures += hook_figures(shape, "up", measured, baselines[shape])
        daemon.wait_idle()
        if (daemon.home / "logs" / "hook.log").exists():
            raise BenchError("a hook fell back while the daemon was up (a 413?)")
        keys = [f"tool:up-{shape}-{i}" for shape in SHAPES for i in range(runs)]
        check_stored(daemon.home / "memq.db", keys)
    finally:
        daemon.kill()
    return figures


def print_header(report: dict[str, Any], out: TextIO) -> None:
    """The lines above the table: what ran, where, how long."""
    env = report["environment"]
    print(
        f"\nmemq oversized-event benchmark ({env['mode']}, {env['runs']} run(s) each, median): "
        f"{env['cpus']} CPUs, Python {env['python']}, {report['elapsed_seconds']:.0f} s",
        file=out,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print the table (stderr) and the JSON object (stdout)."""
    description = __doc__.splitlines()[0] if __doc__ else None
    parser = bench_parser(description, "one run per figure")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (3)")
    args = parser.parse_args(argv)
    runs = 1 if args.quick else max(1, args.runs)
    # As a pip install would: bytecode for memq, so no run pays for compiling it.
    package = Path(memq.__file__).parent
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True)
    return run_benchmark(
        args,
        "memq.oversized",
        lambda root, say: run_all(root, runs, say),
        lambda root: environment(
            root, args.quick, ("memq",), runs=runs, payload_bytes=50_000_000, limit=BODY_LIMIT
        ),
        print_header,
        prefix="memq-bench-oversized-",
    )


if __name__ == "__main__":
    sys.exit(main())
