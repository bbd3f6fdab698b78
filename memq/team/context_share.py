"""How one SessionStart budget is shared between the team's context and the local one.

The configured context budget (``MEMQ_CONTEXT_BUDGET``, 2,000 tokens by default) is the
total a SessionStart's text may use, team block included. The team's part is capped by
``team_share``: at most a third of the budget, and never more than ``TEAM_BUDGET``. Local
memory is this person's own recent work in the repository, the likeliest to matter to the
session, so it keeps at least two thirds; the team's third still holds a dozen or so lines
(666 tokens of the default 2,000). The local part gets the rest: the budget less what the
team's text, as cut, actually costs, so an empty team block leaves the whole budget to local
memory. A cached team text longer than its share (read with a larger budget, or a server
that did not keep to it) is cut at a line boundary, its fence closed again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from memq.memory.context import CHARS_PER_TOKEN, estimate_tokens
from memq.memory.fence import FENCE_CLOSE, FENCE_OPEN

TEAM_BUDGET: Final = 1000  # the most tokens the team's part of a context may use
TEAM_FRACTION: Final = 3  # the team's part is at most 1 / TEAM_FRACTION of the budget
SEPARATOR: Final = "\n\n"  # between the local text and the team's block
# A fenced block cut down to its opening line and note shows nothing: no block at all.
_FENCED_HEAD_LINES: Final = 2


@dataclass(frozen=True, slots=True)
class Shares:
    """The team's text as it will be shown (cut to its share; "" for none) and the tokens
    left to the local context."""

    team: str
    local_tokens: int


def team_share(total: int) -> int:
    """The most tokens the team's block may take of a ``total`` budget."""
    return max(0, min(TEAM_BUDGET, total // TEAM_FRACTION))


def share(total: int, team_text: str) -> Shares:
    """Split ``total`` tokens: the team's text cut to its share, the rest to local memory
    (less the separator, so ``local + SEPARATOR + team`` keeps within ``total``)."""
    team = cut_to_tokens(team_text, team_share(total))
    if not team:
        return Shares("", max(0, total))
    # ceil((a + b) / 4) <= ceil(a / 4) + ceil(b / 4): the two parts' sum bounds the whole.
    return Shares(team, max(0, total - estimate_tokens(SEPARATOR + team)))


def joined(local: str, team: str) -> str:
    """The SessionStart's text: the local context, then the team's block."""
    if not team:
        return local
    return f"{local}{SEPARATOR}{team}" if local else team


def cut_to_tokens(text: str, tokens: int) -> str:
    """``text`` if it fits in ``tokens``, else its first lines that fit; a fenced text
    (``<memq-context>`` ... ``</memq-context>``) keeps its closing line, and one left with
    no line past its note is dropped whole ("")."""
    if estimate_tokens(text) <= tokens:
        return text
    lines = text.split("\n")
    fenced = lines[0] == FENCE_OPEN and lines[-1] == FENCE_CLOSE
    tail = f"\n{FENCE_CLOSE}" if fenced else ""
    body = lines[:-1] if fenced else lines
    kept: list[str] = []
    used = len(tail)
    room = tokens * CHARS_PER_TOKEN  # what estimate_tokens counts as ``tokens``
    for line in body:
        cost = len(line) + (1 if kept else 0)
        if used + cost > room:
            break
        kept.append(line)
        used += cost
    if not kept or (fenced and len(kept) <= _FENCED_HEAD_LINES):
        return ""
    return "\n".join(kept) + tail
