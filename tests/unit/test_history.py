"""Shaping a session's history for prompting: the window, where it starts, what it leaves out."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from memq.memory.history import History, HistoryEntry, entry_type, shape_history
from memq.memory.records import ObservationKind, ObservationRecord, PromptRecord

WHEN = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
KEY = "claude-code:s1"


def p(message_id: int) -> PromptRecord:
    return PromptRecord(
        number=message_id,
        text=f"prompt {message_id}",
        id=message_id,
        message_id=message_id,
        session_key=KEY,
        created_at=WHEN,
    )


def o(message_id: int) -> ObservationRecord:
    return ObservationRecord(
        kind=ObservationKind.COMMAND,
        title=f"tool {message_id}",
        id=message_id,
        message_id=message_id,
        session_key=KEY,
        created_at=WHEN,
    )


def ids(history: History) -> list[str]:
    """The history as "p3", "o4", ...: type and message id of each item."""
    return [f"{entry_type(item)[0]}{item.message_id}" for item in history.items]


def span(text: str) -> list[HistoryEntry]:
    """Entries from "p1 o2 o3": a prompt or an observation per word, ids as written."""
    return [(p if word[0] == "p" else o)(int(word[1:])) for word in text.split()]


class TestWindow:
    def test_everything_fits(self) -> None:
        """A span within max_items is the history whole, nothing omitted."""
        history = shape_history(span("p1 o2 o3 p4 o5"), 10)
        assert ids(history) == ["p1", "o2", "o3", "p4", "o5"]
        assert history.omitted == 0
        assert history.after_summary is None

    def test_keeps_the_newest(self) -> None:
        """Only the newest max_items are kept; the rest are counted as omitted."""
        history = shape_history(span("p1 o2 p3 o4 p5 o6"), 4)
        assert ids(history) == ["p3", "o4", "p5", "o6"]
        assert history.omitted == 2

    def test_leading_observations_are_dropped(self) -> None:
        """A window never starts with a tool result whose prompt fell outside it."""
        history = shape_history(span("p1 o2 o3 o4 p5 o6"), 5)
        assert ids(history) == ["p5", "o6"]
        assert history.omitted == 4

    def test_no_prompt_in_the_window(self) -> None:
        """The newest prompt before the window leads, then the newest max_items - 1."""
        history = shape_history(span("p1 o2 p3 o4 o5 o6 o7 o8"), 3)
        assert ids(history) == ["p3", "o7", "o8"]
        assert history.omitted == 5

    def test_max_one_on_an_observation(self) -> None:
        """With room for one entry and a tool result newest, the history is its prompt."""
        history = shape_history(span("p1 o2 o3"), 1)
        assert ids(history) == ["p1"]
        assert history.omitted == 2

    def test_max_one_on_a_prompt(self) -> None:
        """With room for one entry and a prompt newest, the history is that prompt."""
        history = shape_history(span("p1 o2 p3"), 1)
        assert ids(history) == ["p3"]
        assert history.omitted == 2

    def test_zero_is_refused(self) -> None:
        """max_items below 1 is a caller's error, not an empty history."""
        with pytest.raises(ValueError, match="at least 1"):
            shape_history(span("p1"), 0)


class TestSpan:
    def test_empty_session(self) -> None:
        """Nothing since the summary: an empty history that still names the summary."""
        history = shape_history([], 50, after_summary=7)
        assert history.items == ()
        assert history.omitted == 0
        assert history.after_summary == 7

    def test_after_summary_cut(self) -> None:
        """The id of the summary the span follows is carried, and total counts the span."""
        history = shape_history(span("p8 o9 o10"), 2, after_summary=7)
        assert ids(history) == ["p8", "o10"]
        assert history.after_summary == 7
        assert history.omitted == 1

    def test_observations_without_any_prompt_are_kept(self) -> None:
        """A span with no prompt at all (a turn that outlived its summary) gives its newest
        observations rather than nothing."""
        history = shape_history(span("o1 o2 o3 o4"), 3)
        assert ids(history) == ["o2", "o3", "o4"]
        assert history.omitted == 1

    def test_a_subset_with_the_span_total(self) -> None:
        """Given only the newest prompts and observations of a longer span (what the store
        reads), the history is the same as from the whole span, and omitted counts the span."""
        whole = span("p1 o2 o3 p4 o5 o6 o7 o8 o9 p10 o11 o12 o13 o14 o15")
        for max_items in range(1, len(whole) + 2):
            prompts = [e for e in whole if isinstance(e, PromptRecord)][-max_items:]
            observations = [e for e in whole if isinstance(e, ObservationRecord)][-max_items:]
            subset: list[HistoryEntry] = [*prompts, *observations]
            subset.sort(key=lambda e: e.message_id or 0)
            assert shape_history(subset, max_items, total=len(whole)) == shape_history(
                whole, max_items
            ), max_items

    def test_never_starts_with_an_observation_while_a_prompt_exists(self) -> None:
        """Whatever the window, a span holding a prompt gives a history that starts at one,
        at most max_items long, and items plus omitted make the span."""
        whole = span("o1 o2 p3 o4 o5 o6 p7 o8 p9 o10 o11 o12 o13")
        for max_items in range(1, 16):
            history = shape_history(whole, max_items)
            assert isinstance(history.items[0], PromptRecord), max_items
            assert len(history.items) <= max_items
            assert len(history.items) + history.omitted == len(whole)
            assert list(history.items[1:]) == whole[len(whole) - len(history.items) + 1 :]

    def test_total_smaller_than_the_entries_is_refused(self) -> None:
        """A span cannot hold fewer entries than were read from it."""
        with pytest.raises(ValueError, match="smaller"):
            shape_history(span("p1 o2"), 5, total=1)


class TestToDict:
    def test_items_carry_their_type(self) -> None:
        """Each item is its record's fields plus "prompt" or "observation"; JSON-ready."""
        data = shape_history(span("p1 o2"), 5, after_summary=None).to_dict()
        assert json.loads(json.dumps(data)) == data
        assert data["omitted"] == 0
        assert data["after_summary"] is None
        first, second = data["items"]
        assert (first["type"], first["text"], first["number"]) == ("prompt", "prompt 1", 1)
        assert (second["type"], second["title"], second["kind"]) == (
            "observation",
            "tool 2",
            "command",
        )
        assert first["created_at"].endswith("Z")

    def test_split_by_type(self) -> None:
        """prompts and observations keep message order within their type."""
        history = shape_history(span("p1 o2 p3 o4"), 5)
        assert [x.message_id for x in history.prompts] == [1, 3]
        assert [x.message_id for x in history.observations] == [2, 4]
