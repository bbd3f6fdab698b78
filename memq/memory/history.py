"""A session's history for prompting: its newest prompts and observations since its last
summary, cut so that it starts at a user prompt.

What a summary already consolidated is left out (the summary stands for it), and so is what
does not fit in ``max_items``. A history never starts with a tool result whose prompt fell
outside the window: a model shown an orphaned result cannot tell what it answered.

:func:`shape_history` is the pure rule; ``MemoryStore.history`` reads what it needs (a bounded
number of rows, through indexes) and applies it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from memq.memory.records import ObservationRecord, PromptRecord, RecordType

HistoryEntry: TypeAlias = PromptRecord | ObservationRecord


def entry_type(entry: HistoryEntry) -> str:
    """``"prompt"`` or ``"observation"``: how the API names an entry's record type."""
    kind = RecordType.PROMPT if isinstance(entry, PromptRecord) else RecordType.OBSERVATION
    return kind.value


@dataclass(frozen=True, slots=True)
class History:
    """A session's recent history, oldest first."""

    items: tuple[HistoryEntry, ...] = ()
    omitted: int = 0  # entries since the last summary that are not in ``items``
    after_summary: int | None = None  # message id of the summary it follows; None: no summary

    @property
    def prompts(self) -> tuple[PromptRecord, ...]:
        return tuple(item for item in self.items if isinstance(item, PromptRecord))

    @property
    def observations(self) -> tuple[ObservationRecord, ...]:
        return tuple(item for item in self.items if isinstance(item, ObservationRecord))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: each item is its record's fields plus its ``type``."""
        return {
            "items": [{"type": entry_type(item), **item.to_dict()} for item in self.items],
            "omitted": self.omitted,
            "after_summary": self.after_summary,
        }


def shape_history(
    entries: Sequence[HistoryEntry],
    max_items: int,
    *,
    total: int | None = None,
    after_summary: int | None = None,
) -> History:
    """The history made of ``entries``: their newest ``max_items``, starting at a prompt.

    ``entries`` are the session's prompts and observations after its last summary
    (``after_summary``), in message order: all of them, or a subset holding at least the
    newest ``max_items`` prompts and the newest ``max_items`` observations (nothing older can
    end up in the history); ``total`` then says how many the whole span holds (default
    ``len(entries)``), so that ``omitted`` counts what is left out of the span.

    Leading observations of the window are dropped. A window without any prompt starts at the
    newest prompt before it, followed by the newest ``max_items - 1`` entries. A span without
    any prompt gives its newest observations: a turn can outlive a summary (a compact, a Stop
    hook that fired mid-turn, a prompt that failed processing), and its tool results are then
    the only record of that work; leaving them out would hand a summarizer nothing at all.
    """
    if max_items < 1:
        raise ValueError(f"max_items must be at least 1 (got {max_items})")
    span = len(entries) if total is None else total
    if span < len(entries):
        raise ValueError(f"total ({span}) is smaller than the entries given ({len(entries)})")
    window = list(entries[-max_items:])
    first_prompt = next(
        (i for i, entry in enumerate(window) if isinstance(entry, PromptRecord)), None
    )
    if first_prompt is not None:
        items = window[first_prompt:]
    else:
        before = entries[: len(entries) - len(window)]
        newest = next((e for e in reversed(before) if isinstance(e, PromptRecord)), None)
        # ``before`` is only non-empty when the window is full, so ``window[1:]`` is exactly
        # its newest max_items - 1 entries (none at all when max_items is 1).
        items = window if newest is None else [newest, *window[1:]]
    return History(items=tuple(items), omitted=span - len(items), after_summary=after_summary)
