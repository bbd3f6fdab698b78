"""What the benchmarks in scripts/ share: the command line, the driver, timed runs, figures,
progress lines, the table and the report.

Each ``bench_*.py`` measures its own scenarios and prints a readable table on stderr and one
JSON object as the last line of stdout, through the helpers here: its ``main`` parses
``bench_parser``'s options and hands ``run_benchmark`` a function that returns its figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import secrets
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO, TypeVar

import structlog


class BenchError(RuntimeError):
    """A scenario did not do what it should have (wrong counts or answers): its figures are
    void."""


@dataclass(slots=True)
class Figure:
    """One reported number, with its target (None for context figures)."""

    key: str
    label: str
    value: float
    unit: str
    target: str | None = None
    met: bool | None = None
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The figure as a JSON-ready mapping."""
        return {
            "label": self.label,
            "value": round(self.value, 6),
            "unit": self.unit,
            "target": self.target,
            "met": self.met,
            **self.extra,
        }


class Progress:
    """Timestamped progress lines on stderr (silent with ``--json-only``)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.started = time.perf_counter()

    def __call__(self, text: str) -> None:
        """Print one progress line."""
        if self.enabled:
            elapsed = time.perf_counter() - self.started
            print(f"[{elapsed:6.1f}s] {text}", file=sys.stderr, flush=True)


@dataclass(slots=True)
class Run:
    """One timed piece of work: ``count`` items in ``seconds``. A benchmark that records more
    per run (commits, latencies) subclasses it."""

    count: int
    seconds: float
    rounds: list[float] = field(default_factory=list)  # every run's rate, when best of several

    @property
    def rate(self) -> float:
        """Items per second."""
        return self.count / self.seconds if self.seconds > 0 else math.inf


RunT = TypeVar("RunT", bound=Run)


def best_of(runs: Sequence[RunT]) -> RunT:
    """The fastest of ``runs``, remembering every run's rate in its ``rounds``."""
    best = max(runs, key=lambda run: run.rate)
    best.rounds = [run.rate for run in runs]
    return best


def run_facts(run: Run) -> tuple[dict[str, Any], list[str]]:
    """What every throughput figure says about its run: JSON facts (count, seconds, and each
    round's rate when it was the best of several) and the matching readable notes."""
    facts: dict[str, Any] = {"count": run.count, "seconds": round(run.seconds, 4)}
    notes = [f"{run.count:,} in {run.seconds:.2f} s"]
    if len(run.rounds) > 1:
        facts["rounds_per_s"] = [round(rate, 1) for rate in run.rounds]
        notes.append(f"best of {len(run.rounds)}: " + ", ".join(f"{r:,.0f}" for r in run.rounds))
    return facts, notes


def percentile(values: Sequence[float], pct: float) -> float:
    """The nearest-rank percentile of ``values``."""
    ordered = sorted(values)
    rank = max(math.ceil(pct / 100 * len(ordered)), 1)
    return ordered[rank - 1]


def ratio(value: float, baseline: float) -> float:
    """``value / baseline``, infinite for a zero baseline."""
    return value / baseline if baseline > 0 else math.inf


def format_value(figure: Figure) -> str:
    """A figure's value, rounded for reading."""
    if math.isnan(figure.value):
        return "skipped"
    if figure.unit in {"s", "ms", "ratio"}:
        return f"{figure.value:.3f}"
    if figure.unit == "MB":
        return f"{figure.value:.1f}"
    return f"{figure.value:,.0f}"


def build_report(
    name: str, figures: Sequence[Figure], env: dict[str, Any], elapsed: float
) -> dict[str, Any]:
    """The JSON object printed on stdout."""
    targeted = [f for f in figures if f.met is not None]
    return {
        "benchmark": name,
        "environment": env,
        "elapsed_seconds": round(elapsed, 1),
        "targets_met": sum(bool(f.met) for f in targeted),
        "targets_total": len(targeted),
        "missed": [f.key for f in targeted if not f.met],
        "figures": {f.key: f.as_json() for f in figures},
    }


def print_table(report: dict[str, Any], figures: Sequence[Figure], out: TextIO) -> None:
    """The readable table of every figure, with its target and whether it was met."""
    unit_width = max([4, *(len(f.unit) for f in figures)])
    header = f"{'figure':<44} {'value':>12} {'unit':<{unit_width}} {'met':<5} target"
    print(header, file=out)
    print("-" * len(header), file=out)
    for figure in figures:
        met = "-" if figure.met is None else ("yes" if figure.met else "NO")
        print(
            f"{figure.label:<44} {format_value(figure):>12} {figure.unit:<{unit_width}} "
            f"{met:<5} {figure.target or ''}",
            file=out,
        )
        if figure.detail:
            print(f"{'':<6}{figure.detail}", file=out)
    print(f"targets met: {report['targets_met']}/{report['targets_total']}", file=out)


# -- the driver ----------------------------------------------------------------------------


def bench_parser(description: str | None, quick_help: str) -> argparse.ArgumentParser:
    """The options every benchmark takes: --quick (``quick_help`` says what it does),
    --json-only, --dir and --keep. A benchmark may add its own before parsing."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--json-only", action="store_true", help="print only the JSON object")
    parser.add_argument("--dir", type=Path, default=Path("/tmp"), help="parent of the temp dir")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    return parser


def silence_logs() -> None:
    """Drop memq's log output (structlog and the standard library's) in this process: the
    benchmark's stderr is its own progress lines and table."""
    logging.disable(logging.CRITICAL)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))


def environment(root: Path, quick: bool, packages: Sequence[str], **extra: Any) -> dict[str, Any]:
    """Where and with what a benchmark ran: mode, directory, machine, Python and SQLite, then
    ``extra`` in the order given, then the installed version of each of ``packages``."""
    return {
        "mode": "quick" if quick else "full",
        "directory": str(root),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        **extra,
        **{name: metadata.version(name) for name in packages},
    }


def run_benchmark(
    args: argparse.Namespace,
    name: str,
    run: Callable[[Path, Progress], list[Figure]],
    describe: Callable[[Path], dict[str, Any]],
    print_header: Callable[[dict[str, Any], TextIO], None],
    *,
    prefix: str,
) -> int:
    """Run a benchmark from its parsed ``bench_parser`` options and return the exit status.

    ``run(root, say)`` measures every scenario in a fresh temporary directory ``root`` (made
    under ``--dir`` with ``prefix``, removed afterwards unless ``--keep``) and returns the
    figures. Then ``describe(root)`` gives the report's environment, and unless
    ``--json-only`` the header (``print_header(report, out)``) and the table go to stderr;
    the JSON report named ``name`` is the last line of stdout (and, when ``args`` has a
    ``json`` path, written there too). An exception from ``run``
    propagates once the directory is dealt with.
    """
    say = Progress(enabled=not args.json_only)
    root = Path(tempfile.mkdtemp(prefix=prefix, dir=args.dir))
    say(f"working in {root}")
    try:
        figures = run(root, say)
    finally:
        if args.keep:
            say(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    elapsed = time.perf_counter() - say.started
    report = build_report(name, figures, describe(root), elapsed)
    if not args.json_only:
        print_header(report, sys.stderr)
        print_table(report, figures, sys.stderr)
    print(json.dumps(report), flush=True)
    json_path = getattr(args, "json", None)  # a benchmark's own --json PATH option
    if json_path is not None:
        Path(json_path).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


@contextmanager
def pg_schema(url: str, prefix: str) -> Iterator[str]:
    """A new schema named ``<prefix>_<pid>_<random>`` on the PostgreSQL server at ``url``,
    dropped with everything in it afterwards."""
    import psycopg  # noqa: PLC0415 - only the PostgreSQL benchmarks need it

    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"'.encode())
    try:
        yield name
    finally:
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP SCHEMA "{name}" CASCADE'.encode())
