"""A turn in one call (``memq.processors.llm.batch``): what the model is shown of a turn, and
how its answer becomes a summary and rewritten records."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from memq.exceptions import InvalidOutputError
from memq.memory.records import ObservationKind, ObservationRecord, PromptRecord, SessionContext
from memq.processors.budget import asks_a_model
from memq.processors.extract import ExtractProcessor
from memq.processors.llm import AnthropicProcessor
from memq.processors.llm.batch import BATCH_SYSTEM, batch_prompt, parse_batch
from memq.queue import MessageKind

WHEN = datetime(2026, 12, 4, tzinfo=UTC)


def record(n: int, **changes: Any) -> ObservationRecord:
    base = ObservationRecord(
        kind=ObservationKind.COMMAND,
        title=f"Ran `make {n}`",
        command=f"make {n}",
        exit_code=0,
        excerpt="x" * 5000 if n == 2 else "ok",
        files_modified=(f"f{n}.py",),
        id=n,
        message_id=10 + n,
        session_key="claude-code:s",
        created_at=WHEN,
    )
    return dataclasses.replace(base, **changes)


CONTEXT = SessionContext(
    "claude-code:s",
    "/p",
    prompts=(PromptRecord(1, "build it", 1, 1, "claude-code:s", WHEN),),
    observations=(record(1), record(2), record(3)),
)


def shown(prompt_user: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(
        prompt_user[prompt_user.index("{") : prompt_user.rindex("}") + 1]
    )
    return loaded


class TestPrompt:
    def test_shows_the_turn_s_records_by_id_with_their_excerpts_cut(self) -> None:
        prompt = batch_prompt(
            {"hook_event_name": "Stop", "last_assistant_message": "done"}, CONTEXT
        )
        assert prompt.system == BATCH_SYSTEM
        document = shown(prompt.user)
        assert [r["id"] for r in document["records"]] == [1, 2, 3]
        assert document["prompts"] == ["build it"]
        assert document["stop"]["last_assistant_message"] == "done"
        assert len(document["records"][1]["excerpt"]) < 2000


class TestAnswer:
    def test_rewrites_named_records_and_keeps_the_payload_s_facts(self) -> None:
        answer = json.dumps(
            {
                "records": [
                    {"id": 1, "kind": "bugfix", "title": "Fixed the build", "facts": ["a"]},
                    {"id": 99, "kind": "other", "title": "not in the turn"},
                ],
                "summary": {"request": "build it", "completed": "built"},
            }
        )
        summary, rewritten = parse_batch(answer, CONTEXT)
        assert summary.completed == "built"
        assert summary.files_edited == ("f1.py", "f2.py", "f3.py")
        (one,) = rewritten
        assert (one.id, one.kind, one.title, one.facts) == (
            1,
            ObservationKind.BUGFIX,
            "Fixed the build",
            ("a",),
        )
        assert (one.command, one.files_modified, one.excerpt) == ("make 1", ("f1.py",), "ok")

    @pytest.mark.parametrize(
        ("answer", "message"),
        [
            ({"records": []}, "no 'summary' object"),
            ({"records": {}, "summary": {"request": "", "completed": ""}}, "must be a list"),
            ({"records": ["x"], "summary": {"request": "", "completed": ""}}, "an object"),
            (
                {"records": [{"id": 1, "kind": "nope", "title": "t"}], "summary": {}},
                "record 1",
            ),
        ],
    )
    def test_an_invalid_answer_is_refused(self, answer: dict[str, Any], message: str) -> None:
        with pytest.raises(InvalidOutputError, match=message):
            parse_batch(json.dumps(answer), CONTEXT)


class TestBudgetKinds:
    def test_a_batching_processor_spends_nothing_on_a_tool_call(self) -> None:
        model = AnthropicProcessor.from_env({"MEMQ_API_KEY": "k", "MEMQ_BATCH_TURNS": "1"})
        assert model.batch_turns
        assert not asks_a_model(model, MessageKind.OBSERVATION)
        assert asks_a_model(model, MessageKind.SUMMARIZE)
        assert not asks_a_model(ExtractProcessor(), MessageKind.SUMMARIZE)
        assert not asks_a_model(model, MessageKind.PROMPT)
