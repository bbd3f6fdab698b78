"""The layout of ``memq --help``: paragraphs and the command list, grouped and wrapped to the
terminal."""

from __future__ import annotations

import argparse
import shutil
import textwrap
from collections.abc import Iterable, Sequence

MAX_HELP_WIDTH = 100  # columns: wider help is harder to read, however wide the terminal


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
