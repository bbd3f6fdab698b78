"""What the MCP tools and ``memq show`` write: index lines, records in full, and the cut that
keeps an answer within its budget."""

from __future__ import annotations

from typing import Any

import pytest

from memq.client.record_text import record_files, record_ref, record_text, records_text
from memq.mcp.format import full_text, index_line, utc_time, within_budget
from memq.memory.context import estimate_tokens

OBSERVATION: dict[str, Any] = {
    "ref": "#12",
    "record_type": "observation",
    "project": "/work/retry-service",
    "title": "Ran `pytest -q` (exit 1)",
    "kind": "command",
    "subtitle": "",
    "narrative": "The retry test failed:\nbackoff too short.",
    "facts": ["1 failed", "12 passed"],
    "concepts": [],
    "files_read": ["src/retry.py", "tests/test_retry.py"],
    "files_modified": ["src/retry.py", "src/a.py", "src/b.py"],
    "tool_name": "Bash",
    "command": "pytest -q",
    "exit_code": 1,
    "excerpt": "",
    "id": 12,
    "message_id": 40,
    "session_key": "claude-code:abc",
    "created_at": "2026-12-04T13:59:30.250Z",
    "inherited": False,
}
SUMMARY: dict[str, Any] = {
    "record_type": "summary",
    "title": "fix the retry logic",
    "request": "fix the retry logic",
    "investigated": "",
    "learned": "jitter matters",
    "completed": "backoff added",
    "next_steps": "",
    "files_read": [],
    "files_edited": ["src/retry.py"],
    "notes": "",
    "id": 3,
    "message_id": 41,
    "session_key": "claude-code:abc",
    "created_at": "2026-12-04T14:00:00.000Z",
    "inherited": True,
}
PROMPT: dict[str, Any] = {
    "record_type": "prompt",
    "title": "fix it",
    "number": 2,
    "text": "fix it\nplease",
    "id": 7,
    "message_id": 39,
    "session_key": "claude-code:abc",
    "created_at": "2026-12-04T13:58:00.000Z",
    "inherited": False,
}


def utc(iso: str) -> str:
    return utc_time(iso) + " UTC"


class TestRecordText:
    def test_references_from_the_answer_or_the_type_and_id(self) -> None:
        assert [record_ref(item) for item in (OBSERVATION, SUMMARY, PROMPT)] == [
            "#12",
            "#S3",
            "#P7",
        ]

    def test_files_each_once_in_order(self) -> None:
        assert record_files(OBSERVATION) == [
            "src/retry.py",
            "tests/test_retry.py",
            "src/a.py",
            "src/b.py",
        ]
        assert record_files(PROMPT) == []

    def test_an_observation_in_full_without_its_empty_fields(self) -> None:
        assert record_text(OBSERVATION, utc) == "\n".join(
            [
                "#12  observation/command  2026-12-04 13:59 UTC",
                "session claude-code:abc  project /work/retry-service  message 40",
                "Title: Ran `pytest -q` (exit 1)",
                "Command: pytest -q (exit 1)",
                "Tool: Bash",
                "Files read: src/retry.py, tests/test_retry.py",
                "Files modified: src/retry.py, src/a.py, src/b.py",
                "Narrative:",
                "  The retry test failed:",
                "  backoff too short.",
                "Facts:",
                "  - 1 failed",
                "  - 12 passed",
            ]
        )

    def test_a_summary_says_it_was_inherited(self) -> None:
        text = record_text(SUMMARY, utc)
        assert text.splitlines()[1] == (
            "session claude-code:abc  message 41  inherited from the session it was forked from"
        )
        assert "Learned:\n  jitter matters\nCompleted:\n  backoff added" in text
        assert "Investigated" not in text
        assert "Files edited: src/retry.py" in text

    def test_a_prompt_and_several_records(self) -> None:
        text = records_text([PROMPT, SUMMARY], utc)
        first, second = text.split("\n\n")
        assert first.endswith("Prompt 2 of its session:\n  fix it\n  please")
        assert second.startswith("#S3  summary  ")


class TestIndexLine:
    def test_reference_time_kind_title_files_and_cost(self) -> None:
        cost = estimate_tokens(full_text(OBSERVATION))
        assert index_line(OBSERVATION) == (
            "#12  2026-12-04 13:59  command  Ran `pytest -q` (exit 1)  "
            f"[src/retry.py, tests/test_retry.py, src/a.py +1]  ~{cost} tok"
        )

    def test_the_anchor_is_marked_and_a_record_without_kind_shows_its_type(self) -> None:
        line = index_line(SUMMARY, anchor=True)
        assert line.startswith("▶ #S3  2026-12-04 14:00  summary  fix the retry logic  [src/")

    def test_long_and_multi_line_titles_stay_on_one_short_line(self) -> None:
        line = index_line(PROMPT | {"title": "word\n" * 100}, cost=False)
        assert "\n" not in line
        assert line.endswith("…")
        assert len(line) < 200


class TestWithinBudget:
    def test_what_fits_is_kept_whole(self) -> None:
        cut = within_budget(["a", "b"], note="narrow it", budget_tokens=10)
        assert (cut.text, cut.left_out) == ("a\nb", 0)

    def test_a_cut_ends_saying_how_many_were_left_out_and_what_to_do(self) -> None:
        lines = [f"line {n:03d} " + "x" * 30 for n in range(100)]
        cut = within_budget(lines, note="narrow it", budget_tokens=200)
        assert len(cut.text) <= 200 * 4
        kept = cut.text.splitlines()
        assert kept[:-1] == lines[: len(kept) - 1]
        assert cut.left_out == 100 - (len(kept) - 1)
        assert kept[-1] == (
            f"[answer cut to about 200 tokens: {cut.left_out} more left out; narrow it]"
        )

    def test_one_huge_block_is_cut_short_rather_than_left_out(self) -> None:
        cut = within_budget(["y" * 10_000, "z"], note="ask for fewer", budget_tokens=100)
        assert cut.text.startswith("y" * 100)
        assert "…\n[answer cut to about 100 tokens: the first was cut short, 1 more" in cut.text
        assert len(cut.text) <= 100 * 4
        assert cut.left_out == 1

    @pytest.mark.parametrize("separator", ["\n", "\n\n"])
    def test_never_over_budget(self, separator: str) -> None:
        blocks = ["b" * size for size in (50, 300, 20, 1000, 5)]
        for budget in (1, 10, 50, 100, 400):
            cut = within_budget(blocks, note="n", budget_tokens=budget, separator=separator)
            assert len(cut.text) <= max(budget * 4, len(cut.text.splitlines()[-1]) + 2)
