"""What a tool's rule says about one call, and the helpers every rule shares."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from memq.memory.records import ObservationKind
from memq.processors.extract._text import clip_line

TITLE_TARGET_CHARS: Final = 80  # a command, path or pattern inside a title
FACT_CHARS: Final = 160
NARRATIVE_CHARS: Final = 600
_MAX_DEPTH: Final = 6  # how deep to look into a tool response for text

EXIT_CODE_LINE: Final = re.compile(r"^\s*Exit code (-?\d{1,10})\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Described:
    """What a tool's rule says about one call."""

    title: str
    target: str = ""  # what the tool acted on, for the failure title
    subtitle: str = ""
    narrative: str = ""
    facts: Sequence[str] = ()
    files_read: Sequence[str] = ()
    files_modified: Sequence[str] = ()
    command: str | None = None
    exit_code: int | None = None
    failure_title: str | None = None  # set by rules that word their own failures
    excerpt: str | None = None  # None: the output's head and tail
    kind: ObservationKind | None = None  # None: the tool's kind (TOOL_KINDS)


def target(text: str) -> str:
    """``text`` as it appears inside a title: one line, clipped."""
    return clip_line(text, TITLE_TARGET_CHARS)


def response_text(value: Any, depth: int) -> str:
    """The human-readable text in a tool response: a string, stdout and stderr, content
    blocks, or the first field that holds text. '' for anything else."""
    if isinstance(value, str):
        return value
    if depth >= _MAX_DEPTH:
        return ""
    texts: list[str] = []
    if isinstance(value, list):
        texts = [response_text(item, depth + 1) for item in value[:20]]
    elif isinstance(value, Mapping):
        streams = [value.get(key) for key in ("stdout", "stderr")]
        if any(isinstance(stream, str) for stream in streams):
            texts = [stream for stream in streams if isinstance(stream, str)]
        else:
            fields = (
                *("error", "text", "content", "result", "output", "message", "file"),
                *("newString", "filenames"),
            )
            found = (response_text(value.get(key), depth + 1) for key in fields)
            texts = [next((text for text in found if text.strip()), "")]
    return "\n".join(text for text in texts if text.strip())
