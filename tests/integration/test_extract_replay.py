"""Captured and realistic Claude Code sessions replayed through the worker's processing path
(queue, claim, the extract processor with the context the worker gives, the ack) on a real
SQLite file: the records ``extract`` keeps, and the ones it leaves out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from memq.env import DEFAULT_SKIP_TOOLS
from memq.events import route_event
from memq.exceptions import InvalidRequestError
from memq.memory import MemoryStore
from memq.memory.records import ObservationKind, ObservationRecord, SummaryRecord
from memq.privacy import is_skipped
from memq.processors import ExtractProcessor
from memq.queue import Queue
from memq.worker.processing import ClaimHandler
from tests.helpers.memory import FIXTURES, SESSION, prompt, remember, tool
from tests.helpers.rows import table

FIX = "claude-code:5e7a91c2-0d4b-4f1e-9a63-2b8c7d4e1f90"
PARENT = "claude-code:c2c6f4bc-4c27-401e-9856-1cd43eb344f3"


def payloads(name: str) -> list[dict[str, Any]]:
    lines = (FIXTURES / name).read_text("utf-8").splitlines()
    return [json.loads(line)["payload"] for line in lines if line]


async def replay(queue: Queue, store: MemoryStore, items: list[dict[str, Any]]) -> None:
    """Enqueue what the hook would (its skipped tools left out) and process every session
    with the worker's claim handler, as the daemon does."""
    handler = ClaimHandler(lambda session: ExtractProcessor(), store)
    for payload in items:
        if is_skipped(payload, DEFAULT_SKIP_TOOLS):
            continue
        route = route_event(payload)
        await queue.enqueue(route.session_key, route.kind, payload, route.dedupe_key)
    while sessions := await queue.sessions_with_backlog():
        for session in sessions:
            async for claim in queue.stream(session, linger=0):
                await handler(claim)


async def records(
    store: MemoryStore, session: str
) -> tuple[list[ObservationRecord], list[SummaryRecord]]:
    observations = (await store.observations(session, limit=1000)).items
    summaries = (await store.summaries(session, limit=1000)).items
    return list(observations), list(summaries)


class TestRealisticTurns:
    async def test_a_fix_and_a_rename(
        self, queue: Queue, store: MemoryStore, db_path: Path
    ) -> None:
        """Kinds from evidence, diffs, head-and-tail output, noise left out, and summaries
        that state next steps only when the reply does."""
        await replay(queue, store, payloads("turns.fix-and-rename.jsonl"))
        observations, summaries = await records(store, FIX)
        titles = [(o.kind.value, o.title) for o in observations]
        assert titles == [
            ("search", "Searched for 'def retry_policy' in src"),
            ("discovery", "Read src/retry.py"),
            ("command", "Ran `pytest -q tests/test_retry.py` (exit 1)"),
            # the second read (nothing edited since) and `pwd` are left out
            ("change", "Edited src/retry.py"),
            ("discovery", "Read src/retry.py"),  # after the edit: new content, kept
            ("bugfix", "Fixed `pytest -q`: passes after edits to src/retry.py"),
            ("command", "Ran `git status`"),  # it lists a change: kept
            ("refactor", "Renamed retry_policy to backoff_delays in src/retry.py"),
            ("refactor", "Moved tests/test_retry.py to tests/test_backoff.py"),
            ("feature", "Created src/jitter.py"),
            # `ls` is left out (memq's own search, by the hook)
        ]
        edit = observations[3]
        assert edit.excerpt.startswith("@@ -")
        assert "-    return [base_delay * 2**i for i in range(attempts)]" in edit.excerpt
        assert "+    return [base_delay * 2**i for i in range(attempts - 1)]" in edit.excerpt
        assert "time.sleep" not in edit.excerpt  # a few lines of context, not the whole file
        assert "1 line added, 1 removed" in edit.facts
        failed = observations[2]
        assert failed.excerpt.splitlines()[0] == "Exit code 1"
        assert "lines cut] …" in failed.excerpt
        assert failed.excerpt.splitlines()[-1].startswith("===")
        assert "1 failed" in failed.excerpt
        fix = observations[5]
        assert fix.exit_code == 0
        assert "fixed by edits to src/retry.py" in fix.facts
        assert "failed earlier in the turn (exit 1)" in fix.facts
        assert observations[9].excerpt.startswith('"""Random jitter')
        first, second = summaries
        assert first.next_steps.splitlines() == [
            "Add a test for `call_with_retry` giving up after the last attempt",
            "Document the backoff in README.md",
        ]
        assert "Next steps" not in first.completed
        assert first.completed.startswith("Fixed `retry_policy`")
        assert first.investigated.splitlines() == [
            "Searched for 'def retry_policy' in src",
            "Read src/retry.py",
        ]
        assert "2 tool calls not recorded (repeated reads, no-op commands)" in first.notes
        assert "$ pytest -q tests/test_retry.py (exit 1)" in first.notes
        assert second.next_steps == ""
        assert second.files_edited == (
            "src/retry.py",
            "tests/test_retry.py",
            "tests/test_backoff.py",
            "src/jitter.py",
        )
        assert "1 tool call not recorded" in second.notes
        # Every message was processed exactly once, the left-out ones too.
        rows = table(
            db_path,
            "SELECT status, count(*) AS n FROM pending_messages WHERE session_id = ? "
            "GROUP BY status",
            FIX,
        )
        assert rows == [{"status": "processed", "n": 17}]


class TestCapturedSequence:
    async def test_hooks_sequence(self, queue: Queue, store: MemoryStore) -> None:
        """The captured run: every tool call Claude Code made is an observation of today's
        kinds (no invented fix or feature), and each Stop a summary."""
        await replay(queue, store, payloads("hooks.sequence.jsonl"))
        observations, summaries = await records(store, PARENT)
        assert [(o.kind, o.title[:30]) for o in observations] == [
            (ObservationKind.COMMAND, "Ran `echo hello > out.txt`"),
            (ObservationKind.COMMAND, "Ran `echo failing >&2; exit 3`"),
            (ObservationKind.CHANGE, "Created notes.txt"),
            (ObservationKind.COMMAND, "Ran `echo one > one.txt`"),
            (ObservationKind.COMMAND, "Ran `echo two > two.txt`"),
            (ObservationKind.DISCOVERY, "Ran agent: say hi"),
            (ObservationKind.COMMAND, "Ran `mkdir -p sub && cd sub &&"),
            (ObservationKind.COMMAND, "Ran `sleep 1 && echo a >> watc"),
            (ObservationKind.COMMAND, "Ran `mkdir -p .claude && echo "),
        ]
        assert observations[2].excerpt == "hello from Write"
        assert len(summaries) >= 8
        assert all(s.next_steps == "" and s.learned == "" for s in summaries)
        assert all("not recorded" not in s.notes for s in summaries)


class TestTurnReads:
    async def test_turn_for(self, queue: Queue, store: MemoryStore) -> None:
        """A tool call's context: the last prompt and the observations after it, newest
        ``max_items`` of them, oldest first; nothing for an unknown session."""
        await remember(
            queue,
            store,
            prompt("first"),
            tool("make a"),
            prompt("second"),
            tool("make b"),
            tool("make c"),
            tool("make d"),
        )
        context = await store.turn_for(SESSION)
        assert [p.text for p in context.prompts] == ["second"]
        assert [o.command for o in context.observations] == ["make b", "make c", "make d"]
        assert context.project is None
        bounded = await store.turn_for(SESSION, max_items=2)
        assert [o.command for o in bounded.observations] == ["make c", "make d"]
        empty = await store.turn_for("claude-code:nobody")
        assert (empty.prompts, empty.observations) == ((), ())
        with pytest.raises(InvalidRequestError):
            await store.turn_for(SESSION, max_items=0)

    async def test_left_out_counts_the_last_turns_noise(
        self, queue: Queue, store: MemoryStore
    ) -> None:
        """``context_for`` counts the tool calls of the last prompt's turn that were
        processed into no record; an earlier turn's are not counted."""
        await remember(queue, store, prompt("one"), tool("pwd"), prompt("two"), tool("make"))
        assert (await store.context_for(SESSION)).left_out == 0
        await remember(queue, store, tool("cd src"), tool("ls"), tool("make"))
        context = await store.context_for(SESSION)
        assert context.left_out == 2
        assert [o.command for o in context.observations] == ["make", "make"]
