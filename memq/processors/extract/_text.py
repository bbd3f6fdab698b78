"""Small text helpers of the extract rules: one-line clips, head-and-tail cuts, paths."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from typing import Any, Final

from memq.limits import EXTRACT_LINE_CHARS

# Integers from a payload outside this range are garbage (an exit code, a count), and some
# would not even fit an SQLite INTEGER.
INT_RANGE: Final = range(-(2**31), 2**32)

_WINDOWS_ABSOLUTE: Final = re.compile(r"^[A-Za-z]:[\\/]")


def relative_path(path: str, cwd: str | None) -> str:
    """``path`` relative to ``cwd`` when it lies inside it ('.' for ``cwd`` itself), else
    ``path`` normalized. Lexical only (the files may not exist here), and the same on every
    host: the payload may come from a Windows machine."""
    normalized = posixpath.normpath(_as_posix(path))
    if not cwd or not (normalized.startswith("/") or _WINDOWS_ABSOLUTE.match(normalized)):
        return normalized
    base = posixpath.normpath(_as_posix(cwd))
    if normalized == base:
        return "."
    prefix = base.rstrip("/") + "/"
    return normalized.removeprefix(prefix) if normalized.startswith(prefix) else normalized


def _as_posix(path: str) -> str:
    return path.replace("\\", "/") if _WINDOWS_ABSOLUTE.match(path) else path


def clip_line(text: str, limit: int) -> str:
    """The first non-blank line of ``text``, whitespace collapsed, at most ``limit`` chars;
    an ellipsis marks what was left out (more characters or more lines)."""
    lines = [line for line in text.splitlines() if line.strip()]
    line = " ".join(lines[0].split()) if lines else ""
    if len(lines) > 1:
        line += " …"
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def clip_block(text: str, limit: int) -> str:
    """``text`` stripped, at most ``limit`` characters, newlines kept."""
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def cut_marker(count: int) -> str:
    """The line that stands for ``count`` lines left out."""
    return f"… [{count} line{'s' if count != 1 else ''} cut] …"


def cut_middle(text: str, head: int, tail: int, limit: int) -> str:
    """``text`` whole when it is short; else its first ``head`` and last ``tail`` lines with a
    marker line counting the lines cut between them, fewer lines while over ``limit``
    characters. An over-long line keeps its start and end. The end of an output (a test
    run's verdict, an error's last frame) is often what matters most: it is never cut away
    whole."""
    lines = [_clip_long_line(line) for line in text.strip("\n").rstrip().splitlines()]
    if len(lines) <= head + tail and _joined_length(lines) <= limit:
        return "\n".join(lines)
    head, tail = min(head, len(lines)), min(tail, len(lines))
    while True:
        if head + tail >= len(lines):
            kept = lines
        else:
            cut = len(lines) - head - tail
            kept = [*lines[:head], cut_marker(cut), *(lines[len(lines) - tail :] if tail else [])]
        if _joined_length(kept) <= limit or head + tail <= 1:
            return "\n".join(kept)
        # Shrink the larger side first: both ends stay in view as long as possible.
        if tail >= head:
            tail -= 1
        else:
            head -= 1


def cut_head(text: str, lines_kept: int, limit: int) -> str:
    """The first ``lines_kept`` lines of ``text`` (fewer while over ``limit`` characters),
    then a marker counting the lines cut."""
    lines = [_clip_long_line(line) for line in text.strip("\n").rstrip().splitlines()]
    kept = lines[:lines_kept]
    while len(kept) > 1 and _joined_length(kept) > limit:
        kept.pop()
    if len(kept) < len(lines):
        kept.append(cut_marker(len(lines) - len(kept)))
    return "\n".join(kept)


def _clip_long_line(line: str) -> str:
    if len(line) <= EXTRACT_LINE_CHARS:
        return line
    start, end = EXTRACT_LINE_CHARS * 2 // 3, EXTRACT_LINE_CHARS // 4
    cut = len(line) - start - end
    return f"{line[:start]} … [{cut} chars cut] … {line[-end:]}"


def _joined_length(lines: list[str]) -> int:
    return sum(len(line) for line in lines) + max(len(lines) - 1, 0)


def first_line(value: Any) -> str:
    """The first non-blank line of ``value`` stripped; '' when it is not a string."""
    if not isinstance(value, str):
        return ""
    return next((line.strip() for line in value.splitlines() if line.strip()), "")


def integer(value: Any) -> int | None:
    """``value`` when it is an integer in ``INT_RANGE`` (not a bool)."""
    if isinstance(value, int) and not isinstance(value, bool) and value in INT_RANGE:
        return value
    return None


def unique(items: Iterable[str]) -> list[str]:
    """``items`` without repeats, in first-seen order."""
    return list(dict.fromkeys(items))
