"""The CLI's argument types and its top-level help: values checked as they are parsed, so a
bad one is named by its flag, and the command list grouped and wrapped to the terminal."""

from __future__ import annotations

import argparse
import math
import shutil
import textwrap
from collections.abc import Callable, Iterable, Sequence

MAX_HELP_WIDTH = 100  # columns: wider help is harder to read, however wide the terminal

# The limits of the daemon's API (memq.worker.api, memq.worker.routes.common), checked as the
# arguments are parsed: a direct read of the database (no daemon) must refuse what the daemon
# would, and say so by the flag's name.
MAX_SEARCH_RESULTS = 1000
MAX_TIMELINE_SIDE = 100
MAX_CONTEXT_BUDGET = 100_000
MAX_PAGE = 10_000
MAX_ID = 2**63 - 1  # SQLite's largest integer


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
    from memq.memory.answers import parse_time  # noqa: PLC0415

    try:
        parse_time(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be an ISO-8601 time such as 2025-01-31 or 2025-01-31T12:00:00Z, not {text!r}"
        ) from None
    return text


def help_width() -> int:
    """The columns help text may fill: the terminal's (``COLUMNS`` when set), at most 100."""
    return min(shutil.get_terminal_size().columns, MAX_HELP_WIDTH) - 2


def fill_paragraphs(text: str, width: int) -> str:
    """``text`` with each paragraph (separated by blank lines) refilled to ``width``."""
    paragraphs = [" ".join(part.split()) for part in text.strip().split("\n\n")]
    return "\n\n".join(textwrap.fill(paragraph, width) for paragraph in paragraphs if paragraph)


def command_list(
    commands: Iterable[tuple[str, str]], groups: Sequence[tuple[str, Sequence[str]]], width: int
) -> str:
    """The commands (name, help) as titled groups, each help aligned in one column and
    wrapped within ``width``; a command in no group is listed under "more"."""
    helps = dict(commands)
    if not helps:
        return ""
    column = 2 + max(len(name) for name in helps) + 2
    grouped = [(title, [name for name in names if name in helps]) for title, names in groups]
    placed = {name for _, names in grouped for name in names}
    rest = [name for name in helps if name not in placed]
    if rest:
        grouped.append(("more", rest))
    blocks = []
    for title, names in grouped:
        if not names:
            continue
        lines = [f"{title}:"]
        for name in names:
            lines.append(
                textwrap.fill(
                    helps[name],
                    max(width, column + 20),
                    initial_indent=f"  {name}".ljust(column),
                    subsequent_indent=" " * column,
                )
            )
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def subcommand_helps(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> list[tuple[str, str]]:
    """(name, help) of every sub-command added with a help text, in the order added."""
    return [
        (str(action.dest), str(action.help or ""))
        for action in commands._choices_actions  # argparse keeps each command's help here
    ]


def add_utc_option(parser: argparse.ArgumentParser) -> None:
    """``--utc`` on a command that prints times (local time with its offset by default)."""
    parser.add_argument(
        "--utc",
        action="store_true",
        help="show times in UTC (default: local time, with its offset from UTC)",
    )
