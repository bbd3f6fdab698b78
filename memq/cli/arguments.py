"""The CLI's argument types: values checked as they are parsed, so that a bad one is named by
its flag, within the limits the daemon's API keeps (``memq.limits``: a direct read of the
database, with no daemon, must refuse what the daemon would, and say so by the flag's name)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterable, Iterator


def whole_number(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``low`` (and at most ``high``)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, not {value}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be at most {high}, not {value}")
        return value

    return parse


def number(text: str) -> float:
    """An argparse type: a finite number."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a number, not {text!r}")
    return value


def iso_time(text: str) -> str:
    """An argparse type: an ISO-8601 time (``2025-01-31``, ``2025-01-31T12:00:00Z``), kept
    as written (the daemon is sent the text)."""
    # Imported only when a time is given: memq.memory loads the database drivers.
    from memq.memory.answers import parse_time

    try:
        parse_time(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be an ISO-8601 time such as 2025-01-31 or 2025-01-31T12:00:00Z, not {text!r}"
        ) from None
    return text


class LateChoices:
    """An argument's choices, read from their home the first time they are needed.

    The parser of every command is built on each run, while the homes of some choices (the
    enums of ``memq.memory``) load the database drivers: only a command given the flag, or
    asked for its help, pays for that. Give the flag a ``metavar`` (without one argparse
    lists the choices while it builds the parser) and show them with ``%(choices)s``.
    """

    def __init__(self, load: Callable[[], Iterable[str]]) -> None:
        self._load = load
        self._values: tuple[str, ...] | None = None

    def _all(self) -> tuple[str, ...]:
        if self._values is None:
            self._values = tuple(self._load())
        return self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __contains__(self, value: object) -> bool:
        return value in self._all()


def add_utc_option(parser: argparse.ArgumentParser) -> None:
    """``--utc`` on a command that prints times (local time with its offset by default)."""
    parser.add_argument(
        "--utc",
        action="store_true",
        help="show times in UTC (default: local time, with its offset from UTC)",
    )
