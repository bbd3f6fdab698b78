"""What the benchmarks in scripts/ share: figures, progress lines, the table and the report.

Each ``bench_*.py`` measures its own scenarios and prints a readable table on stderr and one
JSON object as the last line of stdout, through the helpers here.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO


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
