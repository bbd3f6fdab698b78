"""What hook events get back (``memq.worker.injection``) on a real SQLite file, with the
daemon's services as ``memq serve`` builds them: the recap after a compaction, per-prompt
recall above and below its score, and recall's time limit against a search held up on
purpose; the last also through the HTTP intake, where the event must be stored whatever
the recall does."""

from __future__ import annotations

import dataclasses
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from memq.config import Settings
from memq.events import route_event
from memq.memory import MemoryStore, ObservationKind, ObservationRecord, SummaryRecord
from memq.memory.context import ContextBuilder, estimate_tokens
from memq.memory.recap import FILES_TITLE, RECAP_ITEMS, SINCE_TITLE, SUMMARY_TITLE, build_recap
from memq.memory.records import RecordType
from memq.memory.refs import RecordRef
from memq.queue import Queue
from memq.storage.sqlfile import load_queries
from memq.worker import injection
from memq.worker.http.app import create_app
from memq.worker.services import Services
from tests.helpers.memory import OTHER, SESSION, Item, Prompt, query_plan, sample, write
from tests.helpers.rows import all_rows
from tests.helpers.services import built_services

APP = "/home/dev/project"  # the samples' cwd (no .git above it: its own project)
TOKEN = "test-token"


def change(title: str, *files: str) -> ObservationRecord:
    return ObservationRecord(kind=ObservationKind.CHANGE, title=title, files_modified=files)


def ids(db_path: Path, table: str, column: str, value: str) -> int:
    """The id of the row of ``table`` whose ``column`` is ``value``."""
    with sqlite3.connect(db_path) as conn:
        row = conn.execute(f"SELECT id FROM {table} WHERE {column} = ?", (value,)).fetchone()
    return int(row[0])


@pytest.fixture
async def services(tmp_path: Path, queue: Queue, db_path: Path) -> AsyncIterator[Services]:
    """The daemon's services on the queue's database, with per-prompt recall on."""
    settings = Settings(
        home=tmp_path / "home",
        database=db_path,
        reserve_bytes=0,
        recall_on_prompt=True,
        recall_min_score=5.0,
    )
    async with built_services(settings, queue) as built:
        yield built.services


async def two_sessions(queue: Queue, store: MemoryStore) -> None:
    """The session at hand (SESSION): a turn summarized, then a turn not yet summarized;
    and an earlier session (OTHER) of the same project."""
    await write(
        queue,
        store,
        [
            Prompt("Clean up the parser"),
            change("Edited src/parser.py", "src/parser.py"),
            SummaryRecord(request="Parser cleanup", completed="split the tokenizer out"),
        ],
        session=OTHER,
        project=APP,
    )
    await write(
        queue,
        store,
        [
            Prompt("Fix the retry logic"),
            change("Edited src/retry.py", "src/retry.py"),
            SummaryRecord(
                request="Fix the retry logic",
                completed="retries back off exponentially",
                next_steps="add tests for the backoff",
            ),
            Prompt("Now add tests for the backoff"),
            change("Wrote tests/test_backoff.py", "tests/test_backoff.py"),
        ],
        session=SESSION,
        project=APP,
    )


async def inject(services: Services, name: str, **changes: Any) -> injection.Injected:
    payload = sample(name, **changes)
    return await injection.injected(services, route_event(payload), payload)


class TestRecapAfterCompaction:
    async def test_the_session_at_hand_comes_first(
        self, services: Services, queue: Queue, store: MemoryStore, db_path: Path
    ) -> None:
        """After a compaction: the session's latest summary, the prompts and changes since
        it (not those before), the files it changed, then the project's other sessions,
        every line with its reference; the refs shown are those of the lines."""
        await two_sessions(queue, store)
        given = await inject(services, "SessionStart.compact")
        assert (given.source, given.project) == ("compact", APP)
        lines = given.shown.text.splitlines()
        assert lines[0] == "<memq-context>"
        assert "of this session so far" in lines[1]
        assert lines[-1] == "</memq-context>"
        summary_id = ids(db_path, "summaries", "request", "Fix the retry logic")
        later_prompt = ids(db_path, "prompts", "text", "Now add tests for the backoff")
        earlier_prompt = ids(db_path, "prompts", "text", "Fix the retry logic")
        written = ids(db_path, "observations", "title", "Wrote tests/test_backoff.py")
        summary_at = lines.index(SUMMARY_TITLE)
        assert lines[summary_at + 1].startswith(f"* #S{summary_id} ")
        assert lines[summary_at + 1].endswith(": Fix the retry logic")
        assert "  Next steps: add tests for the backoff" in lines
        since = lines[lines.index(SINCE_TITLE) + 1 : lines.index(FILES_TITLE) - 1]
        assert len(since) == 2
        assert since[0].startswith(f"- #P{later_prompt} ")
        assert since[0].endswith("[prompt] Now add tests for the backoff")
        assert since[1].startswith(f"- #{written} ")
        assert f"#P{earlier_prompt} " not in given.shown.text  # before the summary
        assert lines[lines.index(FILES_TITLE) + 1] == "tests/test_backoff.py, src/retry.py"
        # Then the project, without this session: its other session's summary only.
        latest = lines.index("Latest sessions:")
        assert latest > lines.index(FILES_TITLE)
        assert lines[latest + 1].endswith(": Parser cleanup")
        assert given.shown.text.count("Fix the retry logic") == 1
        assert given.shown.refs[:3] == (
            RecordRef(RecordType.SUMMARY, summary_id),
            RecordRef(RecordType.PROMPT, later_prompt),
            RecordRef(RecordType.OBSERVATION, written),
        )
        assert given.shown.tokens == estimate_tokens(given.shown.text)

    async def test_resume_gets_the_recap_and_startup_and_clear_the_project(
        self, services: Services, queue: Queue, store: MemoryStore
    ) -> None:
        """resume continues the session: a recap. startup and clear start anew: the
        project's context, which leads with the latest sessions."""
        await two_sessions(queue, store)
        resumed = await inject(services, "SessionStart.resume")
        assert SUMMARY_TITLE in resumed.shown.text.splitlines()
        for source in ("startup", "clear"):
            fresh = await inject(services, "SessionStart.compact", source=source, session_id="new")
            lines = fresh.shown.text.splitlines()
            assert fresh.source == source
            assert SUMMARY_TITLE not in lines
            assert "memq recalled these notes from earlier sessions" in lines[1]
            requests = [line.split(": ", 1)[1] for line in lines if line.startswith("* #S")]
            assert requests == ["Fix the retry logic", "Parser cleanup"]

    async def test_a_session_memory_never_saw_gets_the_project(
        self, services: Services, queue: Queue, store: MemoryStore
    ) -> None:
        """A compaction of a session with no memory yet (its events still queued) shows the
        project's context; a project without memory shows nothing."""
        await two_sessions(queue, store)
        given = await inject(services, "SessionStart.compact", session_id="unknown")
        assert SUMMARY_TITLE not in given.shown.text
        assert "Parser cleanup" in given.shown.text
        nowhere = await inject(
            services, "SessionStart.compact", session_id="unknown", cwd="/elsewhere"
        )
        assert nowhere.shown.text == ""
        assert nowhere.shown.refs == ()

    def test_every_read_goes_through_an_index(self) -> None:
        """The recap's statements read one session through its indexes, never a table
        scan, however much memory holds (the files walk stops at FILES_SCAN rows)."""
        expected = {
            "recap_session": "sqlite_autoindex_sessions_1",
            "recap_summary": "summaries_session",
            "recap_files": "observations_session",
        }
        for name, sql in load_queries("recap").items():
            plan = query_plan(sql)
            assert any(expected[name] in step for step in plan), (name, plan)
            assert not any(
                re.fullmatch(r"SCAN (observations|summaries|sessions)", step) for step in plan
            )

    @pytest.mark.parametrize("budget", [0, 20, 60, 100, 120, 150, 200, 400, 2000])
    async def test_within_any_budget(
        self, queue: Queue, store: MemoryStore, db_path: Path, budget: int
    ) -> None:
        """The recap and the project's context together never pass the budget."""
        await two_sessions(queue, store)
        async with await ContextBuilder.open(db_path) as builder:
            history = await store.history(SESSION, RECAP_ITEMS)
            shown = await build_recap(builder, SESSION, history, project=APP, budget_tokens=budget)
        assert estimate_tokens(shown.text) <= budget
        if budget >= 200:
            assert SUMMARY_TITLE in shown.text


class TestRecall:
    async def seed(self, queue: Queue, store: MemoryStore) -> None:
        # Scores are BM25: a word found in most records weighs nothing, so the project
        # holds other work too, as a real one does.
        filler: list[Item] = [
            change(f"Edited src/module_{n}.py", f"src/module_{n}.py") for n in range(40)
        ]
        await write(queue, store, filler, session="claude-code:filler", project=APP)
        await write(
            queue,
            store,
            [
                Prompt("the uploads keep failing"),
                change("Retry the upload on 503 with exponential backoff", "src/upload.py"),
            ],
            session=OTHER,
            project=APP,
        )
        # The session at hand knows the same words: its records are not recalled to it.
        await write(
            queue,
            store,
            [change("Looked at upload 503 backoff again")],
            session=SESSION,
            project=APP,
        )

    async def test_a_strong_match_is_recalled(
        self, services: Services, queue: Queue, store: MemoryStore, db_path: Path
    ) -> None:
        """Hits above the score, of other sessions, as fenced lines with their refs."""
        await self.seed(queue, store)
        given = await inject(
            services, "UserPromptSubmit", prompt="why does the upload fail with 503 backoff?"
        )
        observation = ids(
            db_path, "observations", "title", "Retry the upload on 503 with exponential backoff"
        )
        assert given.source == "prompt"
        text = given.shown.text
        assert text.startswith("<memq-context>\n")
        assert f"- #{observation} " in text
        assert "again" not in text  # the session's own record
        assert RecordRef(RecordType.OBSERVATION, observation) in given.shown.refs
        assert estimate_tokens(text) <= services.recall.budget_tokens

    async def test_nothing_below_the_score(
        self, services: Services, queue: Queue, store: MemoryStore
    ) -> None:
        """A threshold no hit reaches gives nothing; so does a prompt with no match."""
        await self.seed(queue, store)
        services.recall = dataclasses.replace(services.recall, min_score=10_000.0)
        given = await inject(services, "UserPromptSubmit", prompt="upload 503 backoff")
        assert given.shown.text == ""
        services.recall = dataclasses.replace(services.recall, min_score=0.0)
        unrelated = await inject(services, "UserPromptSubmit", prompt="what is the weather")
        assert unrelated.shown.text == ""

    async def test_off_by_default(self, services: Services) -> None:
        """Without the setting a prompt gets nothing, and the intake its plain 202."""
        assert injection.answers(services, "UserPromptSubmit")
        services.recall = dataclasses.replace(services.recall, enabled=False)
        assert not injection.answers(services, "UserPromptSubmit")
        assert injection.answers(services, "SessionStart")
        assert not injection.answers(services, "PostToolUse")
        given = await inject(services, "UserPromptSubmit", prompt="upload 503")
        assert given.shown.text == ""


class HeldSearch:
    """A search that answers only when the test lets it: recall's time limit must cut it."""

    def __init__(self) -> None:
        self.entered = anyio.Event()
        self.release = anyio.Event()
        self.cancelled = False

    async def search(self, *args: Any, **kwargs: Any) -> list[Any]:
        self.entered.set()
        try:
            await self.release.wait()
        except anyio.get_cancelled_exc_class():
            self.cancelled = True
            raise
        return []


class TestRecallTimeLimit:
    async def test_a_slow_search_is_abandoned(self, services: Services) -> None:
        """A search still running at the time limit is cancelled and the prompt gets
        nothing."""
        held = HeldSearch()
        services.search = held  # type: ignore[assignment]
        services.recall = dataclasses.replace(services.recall, time_limit=0.05)
        given = await inject(services, "UserPromptSubmit", prompt="upload 503 backoff")
        assert held.entered.is_set()
        assert held.cancelled
        assert given.shown.text == ""

    async def test_the_event_is_stored_first(self, services: Services, db_path: Path) -> None:
        """Through the HTTP intake: the prompt is stored before its recall starts, and a
        recall cut by the time limit still answers 200 with no context."""
        held = HeldSearch()
        services.search = held  # type: ignore[assignment]
        services.recall = dataclasses.replace(services.recall, time_limit=0.05)
        app = create_app(services, token=TOKEN, body_limit=1 << 20)
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        payload = sample("UserPromptSubmit", prompt="upload 503 backoff")
        stored_when_searched: list[int] = []

        async def watch() -> None:
            await held.entered.wait()
            stored_when_searched.append(count_messages(db_path))

        with anyio.fail_after(30):  # a recall that never searched must not hang the test
            async with (
                httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:1") as client,
                anyio.create_task_group() as tasks,
            ):
                tasks.start_soon(watch)
                answer = await client.post("/api/events", json=payload, headers=headers)
        assert answer.status_code == 200
        body = answer.json()
        assert body["status"] == "queued"
        assert body["additionalContext"] == ""
        assert stored_when_searched == [1]
        assert held.cancelled


def count_messages(db_path: Path) -> int:
    """The queue's messages, read as an outside process would."""
    return len(all_rows(db_path))
