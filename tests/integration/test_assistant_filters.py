"""Issue 15: memory of more than one assistant on a real SQLite file. Sessions, search, the
context, the feed and their HTTP routes name each record's assistant and filter by it; a
project's context holds every assistant's work, labelled when it mixes them."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from anyio import to_thread

from memq.config import Settings
from memq.memory import (
    MemoryStore,
    ObservationKind,
    ObservationRecord,
    SummaryRecord,
    direct,
)
from memq.memory.context import ContextBuilder
from memq.memory.feed import FeedReader
from memq.memory.recall import format_recall
from memq.memory.search import MemorySearch
from memq.queue import Queue
from memq.storage import schema
from memq.storage.sqlfile import load_queries
from memq.worker.http.app import create_app
from memq.worker.services import Services
from tests.helpers.memory import Prompt, write
from tests.helpers.services import built_services

APP = "/home/dev/app"
CLAUDE = "claude-code:c-1"
CODEX = "codex:x-1"
GEMINI = "gemini-cli:g-1"
TOKEN = "test-token"
LABELLED = re.compile(r"^([-*]) (#[SP]?\d+) \[([a-z-]+)\] ")


def change(title: str, *files: str) -> ObservationRecord:
    return ObservationRecord(kind=ObservationKind.CHANGE, title=title, files_modified=files)


@pytest.fixture
async def two_assistants(queue: Queue, store: MemoryStore) -> None:
    """A project worked on by Claude Code, then by Codex; Gemini CLI elsewhere."""
    await write(
        queue,
        store,
        [
            Prompt("Fix the retry logic"),
            change("Edited src/retry.py backoff", "src/retry.py"),
            SummaryRecord(request="Fix the retry logic", completed="retries back off"),
        ],
        session=CLAUDE,
        project=APP,
    )
    await write(
        queue,
        store,
        [
            Prompt("Add tests for the backoff"),
            change("Wrote tests/test_backoff.py", "tests/test_backoff.py"),
            SummaryRecord(request="Backoff tests", completed="tests pass"),
        ],
        session=CODEX,
        project=APP,
    )
    await write(
        queue,
        store,
        [Prompt("Elsewhere: backoff notes"), change("Edited notes.md backoff", "notes.md")],
        session=GEMINI,
        project="/home/dev/other",
    )


@pytest.fixture
async def builder(queue: Queue, db_path: Path) -> AsyncIterator[ContextBuilder]:
    async with await ContextBuilder.open(db_path) as built:
        yield built


@pytest.fixture
async def services(tmp_path: Path, queue: Queue, db_path: Path) -> AsyncIterator[Services]:
    """The daemon's services on the queue's database."""
    settings = Settings(home=tmp_path / "home", database=db_path, reserve_bytes=0)
    async with built_services(settings, queue) as built:
        yield built.services


@pytest.fixture
async def api(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """The HTTP API of those services, in process."""
    app = create_app(services, token=TOKEN, body_limit=1 << 20)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://127.0.0.1:1",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as client:
        yield client


def labels(text: str) -> list[str]:
    """The assistant label of each labelled summary and index line, in order."""
    return [m.group(3) for line in text.splitlines() if (m := LABELLED.match(line))]


@pytest.mark.usefixtures("two_assistants")
class TestReads:
    async def test_sessions_name_and_filter_their_assistant(self, store: MemoryStore) -> None:
        every = await store.list_sessions()
        assert {(s.key, s.assistant) for s in every.items} == {
            (CLAUDE, "claude-code"),
            (CODEX, "codex"),
            (GEMINI, "gemini-cli"),
        }
        codex = await store.list_sessions(assistants=["codex"])
        assert [s.key for s in codex.items] == [CODEX]
        assert codex.total == 1
        two = await store.list_sessions(assistants=["codex", "claude-code"], limit=1)
        assert [s.key for s in two.items] == [CODEX]  # newest first, paged
        assert two.total == 2
        assert (await store.list_sessions(assistants=["cursor"])).total == 0

    async def test_search_filters_and_names_the_assistant(self, db_path: Path) -> None:
        async with await MemorySearch.open(db_path) as search:
            every = await search.search("backoff")
            codex = await search.search("backoff", assistants=["codex"])
            both = await search.search("backoff", assistants=["codex", "gemini-cli"])
        assert {hit.session_key for hit in every} == {CLAUDE, CODEX, GEMINI}
        assert codex
        assert {hit.session_key for hit in codex} == {CODEX}
        assert {hit.to_dict()["assistant"] for hit in codex} == {"codex"}
        assert {hit.session_key for hit in both} == {CODEX, GEMINI}

    async def test_timeline_records_name_their_assistant(self, db_path: Path) -> None:
        async with await MemorySearch.open(db_path) as search:
            hit = (await search.search("tests", assistants=["codex"]))[0]
            timeline = await search.timeline(hit.message_id)
        assert timeline is not None
        answer = timeline.to_dict()
        assert answer["assistant"] == "codex"
        assert {item["assistant"] for item in answer["items"]} == {"codex"}

    async def test_the_feed_filters_and_names_the_assistant(
        self, queue: Queue, db_path: Path
    ) -> None:
        async with await FeedReader.open(db_path) as feed:
            every = await feed.after(0)
            codex = await feed.after(0, assistants=["codex"])
            newest = await feed.newest(await feed.last_seq(), assistants=["gemini-cli"])
        assert {item.assistant for item in every} == {"claude-code", "codex", "gemini-cli"}
        assert codex
        assert {(i.session_key, i.to_json()["assistant"]) for i in codex} == {(CODEX, "codex")}
        assert newest
        assert {item.session_key for item in newest} == {GEMINI}


@pytest.mark.usefixtures("two_assistants")
class TestContext:
    async def test_a_project_context_holds_every_assistants_work_labelled(
        self, builder: ContextBuilder
    ) -> None:
        text = await builder.build(APP)
        for shown in ("Wrote tests/test_backoff.py", "Edited src/retry.py", "Backoff tests"):
            assert shown in text
        assert "notes.md" not in text  # another project
        lines = [line for line in text.splitlines() if line.startswith(("- #", "* #"))]
        assert len(lines) == 4
        assert labels(text) == ["codex", "claude-code", "codex", "claude-code"]
        # The label follows the reference.
        assert "- #1 [claude-code] just now [change] Edited src/retry.py backoff" in text
        assert "* #S2 [codex] just now: Backoff tests" in text

    async def test_restricted_to_one_assistant_it_needs_no_labels(
        self, builder: ContextBuilder
    ) -> None:
        text = await builder.build(APP, assistants=["codex"])
        assert "Wrote tests/test_backoff.py" in text
        assert "retry.py" not in text
        assert labels(text) == []
        assert "[change] Wrote tests/test_backoff.py" in text

    async def test_one_assistant_shown_means_no_labels(self, builder: ContextBuilder) -> None:
        """Excluding the Codex session leaves Claude Code's work alone: unlabelled."""
        text = await builder.build(APP, exclude_session=CODEX)
        assert "Edited src/retry.py backoff" in text
        assert labels(text) == []

    async def test_labels_stay_within_the_budget(self, builder: ContextBuilder) -> None:
        for budget in (40, 80, 120, 200, 400):
            shown = await builder.build_shown(APP, budget_tokens=budget)
            assert len(shown.text) <= budget * 4, budget
            mixed = set(labels(shown.text))
            # Labelled only when what is shown comes from both.
            assert mixed in (set(), {"codex", "claude-code"}), (budget, shown.text)


@pytest.mark.usefixtures("two_assistants")
class TestRecall:
    async def test_recalled_hits_are_labelled_when_they_mix_assistants(self, db_path: Path) -> None:
        now = datetime.now(UTC)
        async with await MemorySearch.open(db_path) as search:
            mixed = await search.search("backoff", project=APP)
            codex = await search.search("backoff", project=APP, assistants=["codex"])
        text = format_recall(mixed, APP, budget_tokens=500, now=now).text
        assert set(labels(text)) == {"claude-code", "codex"}
        alone = format_recall(codex, APP, budget_tokens=500, now=now).text
        assert alone
        assert labels(alone) == []


@pytest.mark.usefixtures("two_assistants")
class TestHttp:
    async def test_sessions(self, api: httpx.AsyncClient) -> None:
        every = (await api.get("/api/sessions")).json()
        assert {item["key"]: item["assistant"] for item in every["items"]} == {
            CLAUDE: "claude-code",
            CODEX: "codex",
            GEMINI: "gemini-cli",
        }
        for query in ("assistant=codex,claude", "assistant=codex&assistant=CLAUDE"):
            answer = await api.get(f"/api/sessions?{query}")
            assert answer.status_code == 200, answer.text
            assert {item["key"] for item in answer.json()["items"]} == {CLAUDE, CODEX}
            assert answer.json()["total"] == 2
        gemini = (await api.get("/api/sessions?assistant=gemini")).json()
        assert [item["key"] for item in gemini["items"]] == [GEMINI]

    @pytest.mark.parametrize(
        "path",
        [
            "/api/sessions?assistant=nope",
            "/api/sessions?assistant=codex,nope",
            "/api/search?q=backoff&assistant=nope",
            f"/api/context?project={APP}&assistant=nope",
            "/api/feed?assistant=nope",
        ],
    )
    async def test_an_unknown_assistant_is_a_422_naming_it(
        self, api: httpx.AsyncClient, path: str
    ) -> None:
        answer = await api.get(path)
        assert answer.status_code == 422
        assert "unknown assistant 'nope'" in answer.json()["error"]
        assert "codex" in answer.json()["error"]  # and the names memq knows

    async def test_search_context_and_records(self, api: httpx.AsyncClient) -> None:
        found = (await api.get("/api/search?q=backoff&assistant=codex")).json()
        assert found["items"]
        assert {i["assistant"] for i in found["items"]} == {"codex"}
        every = (await api.get("/api/search?q=backoff")).json()
        assert {i["assistant"] for i in every["items"]} == {"claude-code", "codex", "gemini-cli"}

        mixed = (await api.get(f"/api/context?project={APP}")).json()
        assert set(labels(mixed["context"])) == {"claude-code", "codex"}
        claude = (await api.get(f"/api/context?project={APP}&assistant=claude")).json()
        assert claude["has_memory"]
        assert labels(claude["context"]) == []
        assert "Wrote tests/test_backoff.py" not in claude["context"]
        none = (await api.get(f"/api/context?project={APP}&assistant=cursor")).json()
        assert none == {"project": APP, "context": "", "has_memory": False}

        ref = found["items"][0]
        kind = {"observation": "", "summary": "S", "prompt": "P"}[ref["record_type"]]
        records = (await api.get(f"/api/records?ids=%23{kind}{ref['id']}")).json()
        assert records["items"][0]["assistant"] == "codex"
        timeline = (await api.get(f"/api/timeline?around={ref['message_id']}")).json()
        assert timeline["assistant"] == "codex"
        history = (await api.get(f"/api/sessions/{CODEX}/history")).json()
        assert history["assistant"] == "codex"


@pytest.mark.usefixtures("two_assistants")
class TestDirectReads:
    """The CLI's reads when no daemon runs answer the same."""

    async def test_sessions_search_and_context(self, db_path: Path, api: httpx.AsyncClient) -> None:
        status, body = await to_thread.run_sync(
            lambda: direct.sessions(db_path, assistants=["codex"])
        )
        assert status == 200
        assert json.loads(body) == (await api.get("/api/sessions?assistant=codex")).json()
        status, body = await to_thread.run_sync(
            lambda: direct.search(db_path, "backoff", assistants=["gemini-cli"])
        )
        assert status == 200
        assert {i["session_key"] for i in json.loads(body)["items"]} == {GEMINI}
        status, body = await to_thread.run_sync(
            lambda: direct.context(db_path, APP, budget_tokens=2000, assistants=["codex"])
        )
        want = (await api.get(f"/api/context?project={APP}&assistant=codex")).json()
        assert json.loads(body) == want


class TestQueryPlans:
    def test_assistant_sessions_read_by_index(self) -> None:
        """One assistant's sessions and their count are searches of index
        sessions_assistant (migration 0014), newest first with no sort; several
        assistants' walk sessions_updated newest first and stop at their page, also with
        no sort (EXPLAIN QUERY PLAN on a migrated database without ANALYZE)."""
        queries = load_queries("memory")
        conn = sqlite3.connect(":memory:", isolation_level=None)
        schema.migrate(conn)
        params: dict[str, Any] = {
            "assistant": "codex",
            "assistants": '["codex", "cursor"]',
            "limit": 10,
            "offset": 0,
        }

        def plan(name: str) -> list[str]:
            rows = conn.execute("EXPLAIN QUERY PLAN " + queries[name], params)
            steps = [str(row[3]) for row in rows]
            assert not [step for step in steps if "TEMP B-TREE" in step], (name, steps)
            return steps

        index = "sessions USING INDEX sessions_assistant (assistant=?)"
        assert plan("list_sessions_of_assistant")[0] == f"SEARCH {index}"
        assert plan("count_sessions_of_assistant")[0] == f"SEARCH {index}".replace(
            "USING INDEX", "USING COVERING INDEX"
        )
        assert plan("count_sessions_by_assistant")[0].startswith(
            "SEARCH sessions USING COVERING INDEX sessions_assistant"
        )
        assert plan("list_sessions_by_assistant")[0] == "SCAN sessions USING INDEX sessions_updated"
