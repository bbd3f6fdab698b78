"""The fault table: every scenario in ``tests/faults`` against real daemons, files and disks.

Each driver module there lists its scenarios in ``SCENARIOS`` (functions of a scratch
directory returning a ``FaultReport``). This runs them one after another, each in a fresh
directory, and prints one row per scenario: events sent, acknowledged, kept, lost, and the
time memq took to work normally again. A scenario that cannot run here (not root, no tmpfs)
is listed as skipped with its reason. The exit status is 1 if any acknowledged event was
lost or a scenario broke, else 0.

    scripts/faults [-k SUBSTRING]
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import faults  # noqa: E402 - after the project root is on the path
from tests.faults import FaultReport, FaultSkipped  # noqa: E402

Scenario = Callable[[Path], FaultReport]


def scenarios() -> Iterator[tuple[str, Scenario]]:
    """Every ``(module.function, driver)`` listed in a ``SCENARIOS`` of ``tests/faults``."""
    for info in sorted(pkgutil.iter_modules(faults.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"tests.faults.{info.name}")
        for driver in getattr(module, "SCENARIOS", ()):
            yield f"{info.name}.{driver.__name__}", driver


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", dest="match", default="", help="run scenarios whose name has this")
    args = parser.parse_args(argv)
    header = f"{'scenario':<52} {'sent':>5} {'acked':>6} {'kept':>5} {'lost':>5} {'recover':>9}"
    print(header)
    print("-" * len(header))
    failed = False
    for name, driver in scenarios():
        if args.match not in name:
            continue
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="memq-fault-") as scratch:
            try:
                report = driver(Path(scratch))
            except FaultSkipped as why:
                print(f"{name:<52} skipped: {why}")
                continue
            except Exception:
                failed = True
                print(f"{name:<52} BROKE after {time.monotonic() - started:.1f} s:")
                traceback.print_exc(file=sys.stdout)
                continue
        failed = failed or report.lost != 0
        print(
            f"{report.scenario:<52} {report.sent:>5} {report.acknowledged:>6} "
            f"{report.kept:>5} {report.lost:>5} {report.recovery_seconds:>8.2f}s"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
