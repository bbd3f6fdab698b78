"""Memory search on each backend (SQLite, PostgreSQL): ranking, filters, query syntaxes, index
upkeep, timeline.

The corpus is written through the real path (the queue + MemoryStore.effect), so the index's
triggers are what index it: FTS5's of SQLite's migration 0003, the tsvector columns of
PostgreSQL's schema.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

import memq.memory.search
from memq.exceptions import InvalidQueryError, InvalidRequestError, SchemaError
from memq.memory import MemoryStore, ObservationKind, ObservationRecord, ProcessResult
from memq.memory.records import RecordType, SummaryRecord
from memq.memory.search import MemorySearch, SearchHit
from memq.queue import Queue, Transaction
from memq.storage import schema
from memq.storage.sqlfile import load_queries
from tests.helpers.backends import Backend, SqliteBackend
from tests.helpers.memory import Item, Prompt, query_plan, write

SESSION = "claude-code:6f1f3a52-0d8e-4c1e-9a39-2f7c1d0b5a11"
OTHER = "claude-code:0b9d8a0e-7c55-4f0e-8a7e-0c3f6c9e2b44"
PROJECT = "/home/dev/project"
OTHER_PROJECT = "/home/dev/deploy"


def obs(kind: ObservationKind, title: str, **fields: Any) -> ObservationRecord:
    return ObservationRecord(kind=kind, title=title, **fields)


@dataclass
class Corpus:
    """Message ids of the fixed corpus, by name."""

    ids: dict[str, int]

    def name(self, message_id: int) -> str:
        return {value: name for name, value in self.ids.items()}[message_id]

    def names(self, hits: list[SearchHit]) -> list[str]:
        return [self.name(hit.message_id) for hit in hits]


CORPUS: list[tuple[str, Item]] = [
    ("ask_retry", Prompt("Please make the retry logic of the HTTP client use backoff")),
    (
        "retry_fix",
        obs(
            ObservationKind.BUGFIX,
            "Retry backoff for the HTTP client",
            narrative="Added exponential backoff between retries of failed requests.",
            files_modified=("src/retry_policy.py",),
            concepts=("retries", "http"),
            tool_name="Edit",
        ),
    ),
    (
        "pytest_run",
        obs(
            ObservationKind.COMMAND,
            "Ran `pytest -q` (exit 0)",
            command="pytest -q",
            exit_code=0,
            excerpt="tests/test_client.py ........ 41 passed; test_retry uses a fake "
            "clock so backoff sleeps take no time; cache warmed; logs rotated; "
            "config loaded from env; fixtures reused across modules",
            tool_name="Bash",
        ),
    ),
    (
        "readme_edit",
        obs(
            ObservationKind.CHANGE,
            "Edited README.md",
            narrative="Documented the install steps and the configuration variables.",
            files_modified=("README.md",),
            tool_name="Edit",
        ),
    ),
    (
        "policy_read",
        obs(
            ObservationKind.DISCOVERY,
            "Read src/retry_policy.py",
            narrative="retryWithBackoff wraps every request of the client.",
            files_read=("src/retry_policy.py",),
            tool_name="Read",
        ),
    ),
    (
        "fts_decision",
        obs(
            ObservationKind.DECISION,
            "Use SQLite FTS5 for memory search",
            narrative="BM25 ranking is built in; no extra service to run.",
            facts=("FTS5 ships with Python's sqlite3",),
        ),
    ),
    (
        "snake_helper",
        obs(
            ObservationKind.SEARCH,
            "Searched for callers",
            command="grep -rn retry_with_backoff src/",
            files_read=("src/jobs/worker.py",),
            tool_name="Grep",
        ),
    ),
    (
        "summary",
        SummaryRecord(
            request="Fix the flaky retry logic in the worker",
            investigated="Read the retry policy and the job runner.",
            learned="The worker retried immediately, without any backoff.",
            completed="Added exponential backoff to the retry policy.",
            files_edited=("src/retry_policy.py",),
        ),
    ),
]

OTHER_CORPUS: list[tuple[str, Item]] = [
    (
        "deploy_retry",
        obs(
            ObservationKind.CHANGE,
            "Retry backoff in the deploy script",
            files_modified=("deploy/retry.sh",),
            narrative="The deploy script retries the upload with backoff.",
        ),
    ),
]

# Unrelated records, so that the words of the corpus are rare, as in a real memory (BM25
# gives words found in most records almost no weight).
NOISE = "claude-code:5d0c2a8e-9b1f-4f57-b1a4-6e2f0c9d7a33"
NOISE_PROJECT = "/home/dev/site"
NOISE_TOPICS = ("docs", "styles", "images", "fonts", "locale", "icons", "theme", "assets")
NOISE_CORPUS: list[Item] = [
    obs(
        ObservationKind.DISCOVERY,
        f"Read {topic}/index_{n}.txt",
        narrative=f"Looked through the {topic} folder for page {n}.",
        files_read=(f"{topic}/index_{n}.txt",),
        tool_name="Read",
    )
    for topic in NOISE_TOPICS
    for n in range(4)
]


@pytest.fixture
async def corpus(backend: Backend, backend_store: MemoryStore) -> Corpus:
    ids: dict[str, int] = {}
    for session, project, items in (
        (SESSION, PROJECT, CORPUS),
        (OTHER, OTHER_PROJECT, OTHER_CORPUS),
    ):
        written = await write(
            backend.queue,
            backend_store,
            [item for _, item in items],
            session=session,
            project=project,
        )
        ids |= dict(zip([name for name, _ in items], written, strict=True))
    await write(backend.queue, backend_store, NOISE_CORPUS, session=NOISE, project=NOISE_PROJECT)
    return Corpus(ids)


def table(db_path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def check_indexes(backend: Backend | Path) -> None:
    """FTS5's own check that the index matches its content (the memory tables) exactly. On
    PostgreSQL the index is each record's generated tsvector column: it cannot differ."""
    if isinstance(backend, Path | SqliteBackend):
        path = backend if isinstance(backend, Path) else backend.db_path
        table(path, "INSERT INTO memory_fts (memory_fts, rank) VALUES ('integrity-check', 1)")


def index_entries(backend: Backend) -> int:
    """How many records the search index holds: FTS5's documents, or on PostgreSQL the
    records with a tsvector."""
    if isinstance(backend, SqliteBackend):
        return int(backend.table("SELECT count(*) AS n FROM memory_fts_docsize")[0]["n"])
    counts = [
        backend.table(f"SELECT count(*) AS n FROM {name} WHERE search IS NOT NULL")[0]["n"]
        for name in ("observations", "summaries", "prompts")
    ]
    return int(sum(counts))


async def execute(backend: Backend, statement: str, *params: Any) -> None:
    """Run one statement (``?`` parameters) through the queue's writer, as memq writes."""

    async def run(tx: Transaction) -> None:
        await tx.execute(backend.sql(statement), params)

    await backend.queue.run_in_transaction(run)


class TestOpen:
    async def test_refuses_a_database_without_search_indexes(self, tmp_path: Path) -> None:
        """A database not migrated to 0003 is a clear SchemaError."""
        path = tmp_path / "old.db"
        conn = sqlite3.connect(path, isolation_level=None)
        schema.migrate(conn, schema.available_migrations()[:2])
        conn.close()
        with pytest.raises(SchemaError, match="open the queue first"):
            await MemorySearch.open(path)


class TestRanking:
    @pytest.mark.parametrize(
        ("query", "best"),
        [
            ("http retry backoff", "retry_fix"),
            ("README", "readme_edit"),
            ("fts5 ranking", "fts_decision"),
            ("callers", "snake_helper"),
            ("flaky worker", "summary"),
            ("exponential backoff http client", "retry_fix"),
            ("install configuration", "readme_edit"),
        ],
    )
    async def test_the_right_record_comes_first(
        self, backend_search: MemorySearch, corpus: Corpus, query: str, best: str
    ) -> None:
        """The record the query is about is the top hit."""
        hits = await backend_search.search(query)
        assert corpus.names(hits)[0] == best, [(h.title, h.score) for h in hits]

    async def test_a_title_outranks_a_passing_mention(
        self, backend_search: MemorySearch, corpus: Corpus
    ) -> None:
        """ "retry backoff" in a title ranks above the same words once in a long excerpt."""
        names = corpus.names(await backend_search.search("retry backoff", project=PROJECT))
        assert names.index("retry_fix") < names.index("pytest_run")

    async def test_scores_are_positive_and_descending(
        self, backend_search: MemorySearch, corpus: Corpus
    ) -> None:
        """Higher is better; hits of every record type are merged by score."""
        hits = await backend_search.search("retry")
        scores = [hit.score for hit in hits]
        assert all(score > 0 for score in scores)
        assert scores == sorted(scores, reverse=True)
        assert {hit.record_type for hit in hits} == set(RecordType)

    async def test_records_with_every_word_come_first(
        self, backend_search: MemorySearch, corpus: Corpus
    ) -> None:
        """Only the pytest run has both "retry" and "pytest": it comes first, and records with
        only one of the words follow it, scored below it."""
        hits = await backend_search.search("retry pytest")
        assert corpus.names(hits)[0] == "pytest_run"
        assert len(hits) > 1
        assert all(hit.score < hits[0].score for hit in hits[1:])
        scores = [hit.score for hit in hits]
        assert scores == sorted(scores, reverse=True)

    async def test_records_with_every_word_are_all_when_they_fill_the_limit(
        self, backend_search: MemorySearch, corpus: Corpus
    ) -> None:
        """With ``limit`` records that have every word, no record with only some is added."""
        hits = await backend_search.search("retry pytest", limit=1)
        assert corpus.names(hits) == ["pytest_run"]

    async def test_a_question_falls_back_to_any_word(
        self, backend: Backend, backend_search: MemorySearch, corpus: Corpus
    ) -> None:
        """No record has "change", "retry" and "logic"; the closest ones still come back."""
        hits = await backend_search.search("where did we change the retry logic?")
        names = corpus.names(hits)
        # Both backends: a record with "retry logic" first, and both such records found.
        assert names[0] in {"ask_retry", "summary"}
        assert {"ask_retry", "summary"} <= set(names)
        if not backend.postgres:
            # BM25 weighs the rarer "logic" most. ts_rank has no word rarity, so on
            # PostgreSQL titles with "retry" come before the prompt that also says "logic"
            # (memq/memory/pg_search.py, Scores).
            assert set(names[:2]) == {"ask_retry", "summary"}

    async def test_stemming_finds_other_word_forms(
        self, backend_search: MemorySearch, corpus: Corpus
    ) -> None:
        """ "retrying" finds records that say "retry", "retries" and "retried"."""
        names = corpus.names(await backend_search.search("retrying"))
        assert {"retry_fix", "summary", "ask_retry"} <= set(names)


class TestWords:
    async def test_punctuation_and_operators_are_just_words(
        self, backend_search: MemorySearch, corpus: Corpus
    ) -> None:
        """Quotes, brackets, FTS5 operators and column syntax never make a syntax error."""
        for query in (
            'retry" OR "x',
            "(backoff",
            "NEAR(retry backoff)",
            "title: retry AND",
            "retry*",
            "-backoff ^retry",
            "{title}: backoff",
        ):
            hits = await backend_search.search(query)
            assert hits, query

    async def test_a_path_matches_as_a_phrase(
        self, backend_search: MemorySearch, corpus: Corpus
    ) -> None:
        """src/retry_policy.py finds the records naming that path, not every "retry"."""
        names = corpus.names(await backend_search.search("src/retry_policy.py"))
        assert set(names) == {"retry_fix", "policy_read", "summary"}

    async def test_snake_case_matches_its_parts_in_order(
        self, backend_search: MemorySearch, corpus: Corpus
    ) -> None:
        """retry_policy finds the path; retry_with_backoff finds the grep for it."""
        assert "policy_read" in corpus.names(await backend_search.search("retry_policy"))
        assert corpus.names(await backend_search.search("retry_with_backoff"))[0] == "snake_helper"

    async def test_camel_case_also_matches_its_words(
        self, backend_search: MemorySearch, corpus: Corpus
    ) -> None:
        """retryWithBackoff finds itself and the snake_case retry_with_backoff."""
        names = corpus.names(await backend_search.search("retryWithBackoff()"))
        assert {"policy_read", "snake_helper"} <= set(names)

    @pytest.mark.parametrize("query", ["", "   ", "\n\t"])
    async def test_an_empty_query_is_refused(
        self, backend_search: MemorySearch, query: str
    ) -> None:
        """Nothing to search for is InvalidQueryError."""
        with pytest.raises(InvalidQueryError, match="empty"):
            await backend_search.search(query)

    async def test_a_query_without_words_is_refused(self, backend_search: MemorySearch) -> None:
        """Only punctuation is InvalidQueryError, in either syntax's sense of "no words"."""
        with pytest.raises(InvalidQueryError, match="no words"):
            await backend_search.search("?! ... --")

    async def test_no_match_is_an_empty_list(
        self, backend_search: MemorySearch, corpus: Corpus
    ) -> None:
        """A word no record has finds nothing, without error."""
        assert await backend_search.search("xylophone") == []


class TestFtsSyntax:
    async def test_phrases_and_operators(
        self, backend_search: MemorySearch, corpus: Corpus
    ) -> None:
        """Raw FTS5: a phrase, NOT, and a column filter."""
        names = corpus.names(await backend_search.search('"retry backoff"', syntax="fts"))
        assert set(names) == {"retry_fix", "deploy_retry"}
        names = corpus.names(await backend_search.search("backoff NOT deploy", syntax="fts"))
        assert "deploy_retry" not in names
        assert "retry_fix" in names

    async def test_column_filters(self, backend_search: MemorySearch, corpus: Corpus) -> None:
        """title is an observation's title or a summary's request."""
        names = corpus.names(await backend_search.search("title: backoff", syntax="fts"))
        assert set(names) == {"retry_fix", "deploy_retry"}
        names = corpus.names(await backend_search.search("title: flaky", syntax="fts"))
        assert names == ["summary"]

    @pytest.mark.sqlite_only(
        "FTS5 column filters on part of a weight class: PostgreSQL's tsvector keeps prompt, "
        "command and files at one weight and refuses them (tests/unit/test_pg_search_query.py)"
    )
    async def test_column_filters_of_one_column(
        self, backend_search: MemorySearch, corpus: Corpus
    ) -> None:
        """prompt is a prompt's text; command a command's; files every path of a record."""
        names = corpus.names(await backend_search.search("prompt: backoff", syntax="fts"))
        assert names == ["ask_retry"]
        names = corpus.names(await backend_search.search("command: pytest", syntax="fts"))
        assert names == ["pytest_run"]
        names = corpus.names(await backend_search.search("files: retry_policy", syntax="fts"))
        assert set(names) == {"retry_fix", "policy_read", "summary"}

    @pytest.mark.parametrize(
        ("query", "message", "on_postgres"),
        [
            ("retry AND", "syntax error", None),
            ('"unterminated', "unterminated string", None),
            ("nosuchcolumn: retry", "no such column", None),
            # FTS5's own word for a lone "*"; PostgreSQL's parser of FTS5 syntax has none.
            ("*", "special query", "syntax error"),
        ],
    )
    async def test_a_syntax_error_is_an_invalid_query(
        self,
        backend: Backend,
        backend_search: MemorySearch,
        corpus: Corpus,
        query: str,
        message: str,
        on_postgres: str | None,
    ) -> None:
        """The FTS5 message reaches the user as InvalidQueryError."""
        if backend.postgres and on_postgres is not None:
            message = on_postgres
        with pytest.raises(InvalidQueryError, match=message):
            await backend_search.search(query, syntax="fts")
        assert await backend_search.search("retry", syntax="fts")  # the connection is fine after


class TestFilters:
    async def test_project(self, backend_search: MemorySearch, corpus: Corpus) -> None:
        """Only records of sessions in that project."""
        hits = await backend_search.search("retry backoff", project=OTHER_PROJECT)
        assert corpus.names(hits) == ["deploy_retry"]
        assert hits[0].project == OTHER_PROJECT
        assert await backend_search.search("retry", project="/elsewhere") == []

    async def test_session(self, backend_search: MemorySearch, corpus: Corpus) -> None:
        """Only records of that session."""
        hits = await backend_search.search("retry", session_key=OTHER)
        assert corpus.names(hits) == ["deploy_retry"]
        hits = await backend_search.search("retry", session_key=SESSION)
        assert "deploy_retry" not in corpus.names(hits)
        assert {hit.session_key for hit in hits} == {SESSION}

    async def test_record_types(self, backend_search: MemorySearch, corpus: Corpus) -> None:
        """types keeps only those record types."""
        assert corpus.names(await backend_search.search("retry", types=["summary"])) == ["summary"]
        assert corpus.names(await backend_search.search("retry", types=["prompt"])) == ["ask_retry"]
        hits = await backend_search.search("retry", types=["summary", "prompt"])
        assert set(corpus.names(hits)) == {"summary", "ask_retry"}

    async def test_observation_kinds(self, backend_search: MemorySearch, corpus: Corpus) -> None:
        """kinds alone searches observations of those kinds; with types, other types stay."""
        hits = await backend_search.search("retry", kinds=["bugfix"])
        assert corpus.names(hits) == ["retry_fix"]
        assert hits[0].kind is ObservationKind.BUGFIX
        hits = await backend_search.search("retry", kinds=["discovery", "change"])
        assert set(corpus.names(hits)) == {"policy_read", "deploy_retry"}
        hits = await backend_search.search(
            "retry", types=["observation", "summary"], kinds=["bugfix"]
        )
        assert set(corpus.names(hits)) == {"retry_fix", "summary"}

    async def test_unknown_types_and_kinds_are_refused(self, backend_search: MemorySearch) -> None:
        """A misspelt filter is an InvalidRequestError naming the choices, not an empty
        result."""
        with pytest.raises(InvalidRequestError, match="one of observation, summary, prompt"):
            await backend_search.search("retry", types=["observations"])
        with pytest.raises(InvalidRequestError, match="unknown observation kind 'bug'"):
            await backend_search.search("retry", kinds=["bug"])

    async def test_file(self, backend_search: MemorySearch, corpus: Corpus) -> None:
        """Records that read, modified or edited a path containing the text, any case."""
        expected = {"retry_fix", "policy_read", "summary"}
        assert (
            set(corpus.names(await backend_search.search("retry", file="retry_policy"))) == expected
        )
        assert set(corpus.names(await backend_search.search("retry", file="RETRY_POLICY.PY"))) == (
            expected
        )
        assert corpus.names(await backend_search.search("retry", file="jobs/")) == ["snake_helper"]
        assert await backend_search.search("retry", file="nothing/like/this") == []

    async def test_time_range(self, backend_search: MemorySearch, corpus: Corpus) -> None:
        """since is inclusive, until exclusive, on the event's time."""
        everything = {
            hit.message_id: hit for hit in await backend_search.search("retry", limit=100)
        }
        middle = everything[corpus.ids["policy_read"]].created_at
        since = corpus.names(await backend_search.search("retry", since=middle, limit=100))
        until = corpus.names(await backend_search.search("retry", until=middle, limit=100))
        assert set(since) == {"policy_read", "snake_helper", "summary", "deploy_retry"}
        assert set(until) == {"ask_retry", "retry_fix", "pytest_run"}
        window = await backend_search.search(
            "retry", since=middle, until=middle + timedelta(milliseconds=1)
        )
        assert corpus.names(window) == ["policy_read"]
        naive = middle.replace(tzinfo=None)  # taken as UTC
        assert corpus.names(await backend_search.search("retry", since=naive, limit=100)) == since
        with pytest.raises(InvalidRequestError, match="since"):
            await backend_search.search("retry", since=middle, until=middle - timedelta(seconds=1))

    async def test_limit(self, backend_search: MemorySearch, corpus: Corpus) -> None:
        """limit keeps the best hits."""
        everything = await backend_search.search("retry", limit=100)
        assert len(everything) == 7
        assert await backend_search.search("retry", limit=3) == everything[:3]
        with pytest.raises(InvalidRequestError, match="limit"):
            await backend_search.search("retry", limit=0)

    async def test_min_score(self, backend_search: MemorySearch, corpus: Corpus) -> None:
        """min_score drops hits scoring below it."""
        everything = await backend_search.search("retry", limit=100)
        cut = (everything[2].score + everything[3].score) / 2
        assert await backend_search.search("retry", min_score=cut, limit=100) == everything[:3]
        assert await backend_search.search("retry", min_score=1e9) == []

    async def test_filters_combine(self, backend_search: MemorySearch, corpus: Corpus) -> None:
        """Every filter applies at once."""
        hits = await backend_search.search(
            "backoff", project=PROJECT, types=["observation"], file="src/", limit=5
        )
        # policy_read says retryWithBackoff: its part "backoff" is found since 0011
        assert set(corpus.names(hits)) == {"retry_fix", "snake_helper", "policy_read"}


class TestRankWindow:
    async def test_a_query_matching_too_much_ranks_the_newest_matches(
        self, backend_search: MemorySearch, corpus: Corpus, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Past RANK_WINDOW matches, only the newest are ranked (here 3 of the 7 "retry"
        records); filters that leave too few hits there rank every match after all."""
        monkeypatch.setattr(memq.memory.search, "RANK_WINDOW", 3)
        names = corpus.names(await backend_search.search("retry", limit=100))
        assert set(names) == {"snake_helper", "summary", "deploy_retry"}
        names = corpus.names(await backend_search.search("retry", limit=2))
        assert set(names) <= {"snake_helper", "summary", "deploy_retry"}
        names = corpus.names(await backend_search.search("retry", kinds=["bugfix"]))
        assert names == ["retry_fix"]  # older than the window: found by the full ranking
        names = corpus.names(await backend_search.search("retry", project=PROJECT, limit=3))
        assert len(names) == 3

    async def test_a_session_without_records_finds_nothing(
        self, backend_search: MemorySearch, corpus: Corpus
    ) -> None:
        """A session filter searches the session's span of message ids; no span, no hits."""
        assert await backend_search.search("retry", session_key="claude-code:unknown") == []


class TestHits:
    async def test_fields_and_json(
        self, backend: Backend, backend_search: MemorySearch, corpus: Corpus
    ) -> None:
        """A hit names its record, session, project, title, snippet and time."""
        (hit,) = await backend_search.search("exponential", types=["observation"])
        assert hit.record_type is RecordType.OBSERVATION
        assert hit.message_id == corpus.ids["retry_fix"]
        assert hit.session_key == SESSION
        assert hit.project == PROJECT
        assert hit.title == "Retry backoff for the HTTP client"
        assert "[exponential]" in hit.snippet
        data = hit.to_dict()
        assert json.loads(json.dumps(data)) == data
        assert data["record_type"] == "observation"
        assert data["kind"] == "bugfix"
        assert data["created_at"].endswith("Z")
        (stored,) = backend.table(
            "SELECT id FROM observations WHERE message_id = ?", hit.message_id
        )
        assert hit.id == stored["id"]

    async def test_titles_of_summaries_and_prompts(
        self, backend_search: MemorySearch, corpus: Corpus
    ) -> None:
        """A summary is titled by its request, a prompt by its text, in one line."""
        (summary,) = await backend_search.search("flaky", types=["summary"])
        assert summary.title == "Fix the flaky retry logic in the worker"
        assert summary.kind is None
        (prompt,) = await backend_search.search("please", types=["prompt"])
        assert prompt.title == "Please make the retry logic of the HTTP client use backoff"
        assert prompt.snippet.startswith("[Please]")


class TestIndexUpkeep:
    async def test_forgetting_a_session_removes_it_from_the_index(
        self,
        backend: Backend,
        backend_store: MemoryStore,
        backend_search: MemorySearch,
        corpus: Corpus,
    ) -> None:
        """Deleted records are gone from search in the same transaction; the rest stay."""
        queue, store = backend.queue, backend_store
        assert await backend_search.search("deploy")
        await queue.run_in_transaction(store.forget_effect(OTHER))
        assert await backend_search.search("deploy") == []
        assert await backend_search.search("retry backoff", project=OTHER_PROJECT) == []
        assert corpus.names(await backend_search.search("retry backoff"))[0] == "retry_fix"
        await queue.run_in_transaction(store.forget_effect(SESSION))
        assert await backend_search.search("retry") == []
        check_indexes(backend)
        await queue.run_in_transaction(store.forget_effect(NOISE))
        assert index_entries(backend) == 0

    async def test_an_update_reindexes_the_record(
        self, backend: Backend, backend_search: MemorySearch, corpus: Corpus
    ) -> None:
        """Changing an indexed column replaces its words in the index."""
        assert await backend_search.search("xylophone") == []
        await execute(
            backend,
            "UPDATE observations SET title = 'Tuned the xylophone' WHERE message_id = ?",
            corpus.ids["readme_edit"],
        )
        await execute(
            backend,
            "UPDATE prompts SET text = 'marimba' WHERE message_id = ?",
            corpus.ids["ask_retry"],
        )
        await execute(
            backend,
            "UPDATE summaries SET learned = 'glockenspiel' WHERE message_id = ?",
            corpus.ids["summary"],
        )
        assert corpus.names(await backend_search.search("xylophone")) == ["readme_edit"]
        assert corpus.names(await backend_search.search("marimba")) == ["ask_retry"]
        assert corpus.names(await backend_search.search("glockenspiel")) == ["summary"]
        assert await backend_search.search("title: README", syntax="fts") == []
        assert "ask_retry" not in corpus.names(await backend_search.search("please"))
        check_indexes(backend)

    async def test_records_written_before_the_migration_are_indexed(self, tmp_path: Path) -> None:
        """Migration 0003 indexes the memory a version-2 database already holds."""
        path = tmp_path / "v2.db"
        conn = sqlite3.connect(path, isolation_level=None)
        schema.migrate(conn, schema.available_migrations()[:2])
        memory = load_queries("memory")
        conn.execute(
            memory["upsert_session"],
            {
                "key": SESSION,
                "assistant": "claude-code",
                "external_id": SESSION.partition(":")[2],
                "project": PROJECT,
                "cwd": PROJECT,
                "title": "old",
                "prompts": 1,
                "at": 1_700_000_000_000,
                "ended_at": None,
                "now": 1_700_000_000_000,
                "reopen": 0,
            },
        )
        # The records as memq wrote them at version 2: the store's inserts now name columns of
        # later migrations (author, machine: 0018), so they are spelled out here.
        origin = {"session_key": SESSION, "created_at": 1_700_000_000_000}
        conn.execute(
            "INSERT INTO prompts (message_id, session_key, number, text, created_at)"
            " VALUES (:message_id, :session_key, 1, :text, :created_at)",
            {"message_id": 1, "text": "tune the harpsichord", **origin},
        )
        conn.execute(
            "INSERT INTO observations (message_id, session_key, kind, title, subtitle, narrative,"
            " facts, concepts, files_read, files_modified, tool_name, command, exit_code,"
            " excerpt, created_at) VALUES (:message_id, :session_key, :kind, :title, :subtitle,"
            " :narrative, :facts, :concepts, :files_read, :files_modified, :tool_name, :command,"
            " :exit_code, :excerpt, :created_at)",
            {
                "message_id": 2,
                "kind": "change",
                "title": "Edited harpsichord.py",
                "subtitle": "",
                "narrative": "",
                "facts": "[]",
                "concepts": "[]",
                "files_read": "[]",
                "files_modified": '["harpsichord.py"]',
                "tool_name": "Edit",
                "command": None,
                "exit_code": None,
                "excerpt": "",
                **origin,
            },
        )
        conn.execute(
            "INSERT INTO summaries (message_id, session_key, request, investigated, learned,"
            " completed, next_steps, files_read, files_edited, notes, created_at) VALUES"
            " (:message_id, :session_key, :request, :investigated, :learned, :completed,"
            " :next_steps, :files_read, :files_edited, :notes, :created_at)",
            {
                "message_id": 3,
                "request": "tune the harpsichord",
                "investigated": "",
                "learned": "",
                "completed": "harpsichord tuned",
                "next_steps": "",
                "files_read": "[]",
                "files_edited": "[]",
                "notes": "",
                **origin,
            },
        )
        conn.close()
        async with await Queue.open(path):
            assert table(path, "SELECT max(version) FROM schema_version")[0][0] >= 3
            async with await MemorySearch.open(path) as memory_search:
                hits = await memory_search.search("harpsichord")
        assert sorted((h.record_type.value, h.message_id) for h in hits) == [
            ("observation", 2),
            ("prompt", 1),
            ("summary", 3),
        ]
        check_indexes(path)

    async def test_a_failed_write_leaves_no_index_entry(
        self, backend: Backend, backend_store: MemoryStore, backend_search: MemorySearch
    ) -> None:
        """The index rides in the writer's transaction: a rolled-back write is not found."""
        queue = backend.queue
        await write(queue, backend_store, [Prompt("first")], session=SESSION, project=PROJECT)

        async def half_then_fail(tx: Any) -> None:
            await tx.execute(
                backend.sql("UPDATE prompts SET text = 'ocarina' WHERE session_key = ?"),
                (SESSION,),
            )
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            await queue.run_in_transaction(half_then_fail)
        assert await backend_search.search("ocarina") == []
        assert await backend_search.search("first")
        check_indexes(backend)


class TestTimeline:
    async def test_records_around_a_hit_in_message_order(
        self, backend_search: MemorySearch, corpus: Corpus
    ) -> None:
        """The anchor with the session's records just before and after it, all types."""
        (hit,) = await backend_search.search("README")
        timeline = await backend_search.timeline(hit.message_id, before=2, after=2)
        assert timeline is not None
        assert timeline.session_key == SESSION
        assert timeline.anchor.message_id == corpus.ids["readme_edit"]
        names = [corpus.name(item.message_id) for item in timeline.items]
        assert names == ["retry_fix", "pytest_run", "readme_edit", "policy_read", "fts_decision"]

    async def test_edges_of_the_session(self, backend_search: MemorySearch, corpus: Corpus) -> None:
        """At the first and last record there is simply less on one side; types mix."""
        first = await backend_search.timeline(corpus.ids["ask_retry"], before=5, after=1)
        assert first is not None
        assert [item.record_type for item in first.items] == [
            RecordType.PROMPT,
            RecordType.OBSERVATION,
        ]
        last = await backend_search.timeline(corpus.ids["summary"], before=1, after=5)
        assert last is not None
        assert [corpus.name(i.message_id) for i in last.items] == [
            "snake_helper",
            "summary",
        ]
        assert last.anchor.record_type is RecordType.SUMMARY
        assert last.anchor.title == "Fix the flaky retry logic in the worker"
        alone = await backend_search.timeline(corpus.ids["deploy_retry"])
        assert alone is not None
        assert [i.message_id for i in alone.items] == [corpus.ids["deploy_retry"]]
        only = await backend_search.timeline(corpus.ids["fts_decision"], before=0, after=0)
        assert only is not None
        assert only.items == (only.anchor,)

    async def test_a_message_with_two_records(
        self,
        backend: Backend,
        backend_store: MemoryStore,
        backend_search: MemorySearch,
        corpus: Corpus,
    ) -> None:
        """A message that made an observation and a summary anchors on the observation; the
        summary comes right after it."""
        queue, store = backend.queue, backend_store
        both = await queue.enqueue(SESSION, "summarize", {})
        record = obs(ObservationKind.OTHER, "Stopped the session")
        summary = SummaryRecord(request="wrap up the ocarina work")
        async for claim in queue.stream(SESSION, linger=0):
            result = ProcessResult(observation=record, summary=summary)
            await claim.ack(store.effect(claim.message, result, project=PROJECT))
        (hit,) = await backend_search.search("ocarina")
        assert hit.record_type is RecordType.SUMMARY
        timeline = await backend_search.timeline(hit.message_id, before=1, after=1)
        assert timeline is not None
        assert timeline.anchor.record_type is RecordType.OBSERVATION
        assert [(i.record_type, i.message_id) for i in timeline.items] == [
            (RecordType.SUMMARY, corpus.ids["summary"]),
            (RecordType.OBSERVATION, both.message_id),
            (RecordType.SUMMARY, both.message_id),
        ]

    async def test_unknown_message(self, backend_search: MemorySearch, corpus: Corpus) -> None:
        """A message id that produced no record has no timeline."""
        assert await backend_search.timeline(10**9) is None
        with pytest.raises(InvalidRequestError, match="negative"):
            await backend_search.timeline(corpus.ids["summary"], before=-1)

    async def test_json(self, backend_search: MemorySearch, corpus: Corpus) -> None:
        """Items carry the whole record, its type and a one-line title."""
        timeline = await backend_search.timeline(corpus.ids["pytest_run"], before=1, after=1)
        assert timeline is not None
        data = timeline.to_dict()
        assert json.loads(json.dumps(data)) == data
        assert data["session_key"] == SESSION
        assert data["anchor"]["command"] == "pytest -q"
        assert [item["record_type"] for item in data["items"]] == [
            "observation",
            "observation",
            "observation",
        ]
        assert data["items"][1] == data["anchor"]
        assert data["items"][0]["files_modified"] == ["src/retry_policy.py"]
        assert data["items"][1]["created_at"].endswith("Z")


class TestCancellation:
    async def test_a_search_cancelled_anywhere_leaves_the_connection_usable(
        self, backend_search: MemorySearch, corpus: Corpus
    ) -> None:
        """A cancelled search or timeline never leaves the read connection inside a
        transaction."""
        for step in range(200):
            with anyio.move_on_after(step * 0.00002):
                await backend_search.search("http retry backoff")
            with anyio.move_on_after(step * 0.00002):
                await backend_search.timeline(corpus.ids["readme_edit"])
        assert corpus.names(await backend_search.search("http retry backoff"))[0] == "retry_fix"
        assert await backend_search.timeline(corpus.ids["readme_edit"]) is not None


class TestStatements:
    # Every statement compiles: tests/integration/test_memory_store.py TestStatements.

    def plan(self, name: str) -> list[str]:
        return query_plan(load_queries("search")[name], query="retry")

    def test_search_is_driven_by_the_index_in_rank_order(self) -> None:
        """The FTS5 index finds and orders the hits (no sort by SQLite); records are read
        by primary key and sessions by key; nothing scans a table."""
        plan = self.plan("search")
        match = re.match(r"SCAN f VIRTUAL TABLE INDEX (\d+):", plan[0])
        assert match is not None, plan
        assert int(match.group(1)) & 32, plan  # FTS5 consumes ORDER BY rank
        assert not [step for step in plan if "TEMP B-TREE" in step], plan
        tables = [step for step in plan if step.startswith("SCAN") and "VIRTUAL" not in step]
        assert not tables, plan
        for alias, table in (("o", "observations"), ("m", "summaries"), ("p", "prompts")):
            step = f"SEARCH {alias} USING INDEX sqlite_autoindex_{table}_1 (message_id=?) LEFT-JOIN"
            assert step in plan
        assert "SEARCH s USING INDEX sqlite_autoindex_sessions_1 (key=?)" in plan

    def test_the_rank_window_is_found_by_the_index_alone(self) -> None:
        """Finding where the newest matches start walks the index, newest first."""
        plan = self.plan("window_start")
        assert len(plan) == 1
        assert plan[0].startswith("SCAN memory_fts VIRTUAL TABLE INDEX"), plan

    def test_a_session_span_reads_the_ends_of_indexes(self) -> None:
        """The session's first and last message ids come from its own index entries."""
        plan = self.plan("session_span")
        searches = [step for step in plan if step.startswith("SEARCH")]
        assert searches == [
            "SEARCH observations USING COVERING INDEX observations_session (session_key=?)",
            "SEARCH observations USING COVERING INDEX observations_session (session_key=?)",
            "SEARCH summaries USING COVERING INDEX summaries_session (session_key=?)",
            "SEARCH summaries USING COVERING INDEX summaries_session (session_key=?)",
            "SEARCH prompts USING COVERING INDEX prompts_session (session_key=?)",
            "SEARCH prompts USING COVERING INDEX prompts_session (session_key=?)",
        ], plan
        assert not [step for step in plan if "TEMP B-TREE" in step], plan

    def test_the_content_view_finds_one_record_by_index(self) -> None:
        """snippet() and the triggers read one record of the view by rid without a scan."""
        plan = query_plan("SELECT * FROM memory_fts_content AS T WHERE T.rid = :rid", rid=5)
        searches = [step for step in plan if step.startswith("SEARCH")]
        assert searches == [
            "SEARCH observations USING INDEX observations_fts_rid (<expr>=?)",
            "SEARCH summaries USING INDEX summaries_fts_rid (<expr>=?)",
            "SEARCH prompts USING INDEX prompts_fts_rid (<expr>=?)",
        ], plan

    @pytest.mark.parametrize(
        "name",
        [
            f"{kind}_{which}"
            for kind in ("prompts", "observations", "summaries")
            for which in ("of_message", "before", "after")
        ],
    )
    def test_timeline_statements_search_an_index(self, name: str) -> None:
        """The timeline never scans or sorts, however long the session."""
        plan = self.plan(name)
        assert all(step.startswith("SEARCH") for step in plan), plan
