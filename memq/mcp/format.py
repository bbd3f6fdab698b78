"""What the MCP tools answer, as text for a model: one compact line per record for an index
(search, timeline), records in full for ``get_observations``, and the cut that keeps any
answer within ``MCP_ANSWER_BUDGET``.

An index line is what the model needs to choose what to read in full::

    #1234  2026-12-04 13:59  change  Edited src/retry.py  [src/retry.py]  ~180 tok

Its reference, when, what kind of record, the title, the files (at most ``MAX_FILES``) and a
cost hint: about how many tokens ``get_observations`` would answer for it. The functions
take the records as the API sends them (plain dicts).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from memq.client.record_text import record_files, record_ref, record_text
from memq.limits import MCP_ANSWER_BUDGET
from memq.memory.context import CHARS_PER_TOKEN, estimate_tokens
from memq.memory.store import split_session_key

MAX_FILES: Final = 3  # files named on an index line; the rest are counted
MAX_TITLE_CHARS: Final = 160  # an index line's title is cut here
ANCHOR_MARK: Final = "▶"  # marks the anchor of a timeline


def utc_time(iso: str) -> str:
    """A time the API sent, as the model reads it: ``2026-12-04 13:59``, UTC."""
    at = datetime.fromisoformat(iso)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return f"{at.astimezone(UTC):%Y-%m-%d %H:%M}"


def full_text(item: dict[str, Any]) -> str:
    """A record in full, as ``get_observations`` answers it (times in UTC)."""
    return record_text(item, lambda iso: utc_time(iso) + " UTC")


def assistant_of(item: dict[str, Any]) -> str:
    """The assistant of a record or hit the API sent (from its session key when the
    answer does not name it)."""
    return str(item.get("assistant") or split_session_key(str(item.get("session_key") or ""))[0])


def index_line(
    item: dict[str, Any], *, anchor: bool = False, cost: bool = True, labelled: bool = False
) -> str:
    """One record as a line of an index: reference (and its assistant, ``labelled``:
    ``#12 [codex]``; its author when it has one: ``team#12 [alice]``), time, kind, title,
    files and the cost of reading it in full. ``item`` is a full record (``GET
    /api/records``, a timeline's); without ``cost``, a search hit will do (it has no
    files)."""
    kind = item.get("kind") or item["record_type"]
    title = " ".join(str(item.get("title") or "").split())
    if len(title) > MAX_TITLE_CHARS:
        title = title[: MAX_TITLE_CHARS - 1] + "…"
    ref = record_ref(item) + (f" [{assistant_of(item)}]" if labelled else "")
    if item.get("author"):  # someone's record on the team server: whose
        ref += f" [{item['author']}]"
    parts = [ref, utc_time(str(item["created_at"])), str(kind), title]
    files = record_files(item)
    if files:
        shown = ", ".join(files[:MAX_FILES])
        more = f" +{len(files) - MAX_FILES}" if len(files) > MAX_FILES else ""
        parts.append(f"[{shown}{more}]")
    if cost:
        parts.append(f"~{estimate_tokens(full_text(item))} tok")
    return ("▶ " if anchor else "") + "  ".join(parts)


@dataclass(frozen=True, slots=True)
class Cut:
    """An answer within the budget, and how many of its blocks were left out."""

    text: str
    left_out: int


def within_budget(
    blocks: Sequence[str],
    *,
    note: str,
    budget_tokens: int = MCP_ANSWER_BUDGET,
    separator: str = "\n",
) -> Cut:
    """``blocks`` (lines of an index, whole records) joined by ``separator`` while they fit
    in ``budget_tokens``; when some do not, a last line says how many were left out and
    ``note`` (how to page or narrow). The first block alone is cut to fit, so that an answer
    never comes back empty because one record is huge."""
    budget = budget_tokens * CHARS_PER_TOKEN
    if len(separator.join(blocks)) <= budget:
        return Cut(separator.join(blocks), 0)
    # Room for the longest closing line this cut can end with.
    closing_room = len(_closing(len(blocks), note, budget_tokens, first_cut=True))
    room = budget - closing_room - len(separator)
    kept: list[str] = []
    used = 0
    for block in blocks:
        cost = len(block) + (len(separator) if kept else 0)
        if used + cost > room:
            break
        kept.append(block)
        used += cost
    first_cut = not kept and room > 1
    if first_cut:
        kept.append(blocks[0][: room - 1] + "…")
    left_out = len(blocks) - len(kept)
    closing = _closing(left_out, note, budget_tokens, first_cut=first_cut)
    return Cut(separator.join([*kept, closing]), left_out)


def _closing(left_out: int, note: str, budget_tokens: int, *, first_cut: bool = False) -> str:
    cut = "the first was cut short, " if first_cut else ""
    return f"[answer cut to about {budget_tokens} tokens: {cut}{left_out} more left out; {note}]"
