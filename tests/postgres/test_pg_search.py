"""Memory search on PostgreSQL (memq.memory.pg_search, queries/postgres/search.sql): the
filters, query syntaxes, identifiers, ranking, snippets and timeline of ``MemorySearch`` with
``dialect=POSTGRES``, on rows written with plain INSERTs into a freshly migrated schema; and
the recall corpus loaded into both backends, its questions asked of both."""

from __future__ import annotations

import itertools
import json
import sqlite3
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import memq.memory.search
from memq.exceptions import InvalidQueryError
from memq.limits import DEFAULT_RECALL_MIN_SCORE
from memq.memory.pg_search import PgMemoryReader
from memq.memory.search import MemorySearch, SearchHit
from memq.storage.postgres import schema
from memq.storage.sqlfile import POSTGRES
from tests.postgres.conftest import PgSchema

S1 = "claude-code:s1"
S2 = "codex:s2"
FORK = "claude-code:fork"
P1 = "/home/dev/app"
P2 = "/home/dev/site"
DAY_MS = 86_400_000
T0 = 1_760_000_000_000  # created_at of message 1; each message a day later


class Rows:
    """Plain INSERTs into the migrated schema, one message id each (in order)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self._ids = itertools.count(1)

    async def session(self, key: str, project: str | None, *, parent: str | None = None) -> None:
        assistant, external = key.split(":", 1)
        await self.conn.execute(
            "INSERT INTO sessions (key, assistant, external_id, project, started_at, updated_at,"
            " created_at, parent_key) VALUES (%s, %s, %s, %s, 1, 1, 1, %s)",
            (key, assistant, external, project, parent),
        )

    async def observation(self, session: str = S1, *, inherited: int = 0, **fields: Any) -> int:
        message_id = next(self._ids)
        row = {
            "kind": "change",
            "title": "",
            "subtitle": "",
            "narrative": "",
            "facts": [],
            "concepts": [],
            "files_read": [],
            "files_modified": [],
            "command": None,
            "excerpt": "",
            "tool_name": None,
            **fields,
        }
        for name in ("facts", "concepts", "files_read", "files_modified"):
            row[name] = json.dumps(row[name])
        await self.conn.execute(
            "INSERT INTO observations (message_id, session_key, kind, title, subtitle,"
            " narrative, facts, concepts, files_read, files_modified, command, excerpt,"
            " tool_name, created_at, inherited) VALUES (%(id)s, %(session)s, %(kind)s,"
            " %(title)s, %(subtitle)s, %(narrative)s, %(facts)s, %(concepts)s, %(files_read)s,"
            " %(files_modified)s, %(command)s, %(excerpt)s, %(tool_name)s, %(at)s,"
            " %(inherited)s)",
            {
                "id": message_id,
                "session": session,
                "at": _at(message_id),
                "inherited": inherited,
                **row,
            },
        )
        return message_id

    async def summary(self, session: str = S1, **fields: Any) -> int:
        message_id = next(self._ids)
        row = {
            "request": "",
            "investigated": "",
            "learned": "",
            "completed": "",
            "next_steps": "",
            "files_read": [],
            "files_edited": [],
            "notes": "",
            **fields,
        }
        row["files_read"] = json.dumps(row["files_read"])
        row["files_edited"] = json.dumps(row["files_edited"])
        await self.conn.execute(
            "INSERT INTO summaries (message_id, session_key, request, investigated, learned,"
            " completed, next_steps, files_read, files_edited, notes, created_at) VALUES"
            " (%(id)s, %(session)s, %(request)s, %(investigated)s, %(learned)s, %(completed)s,"
            " %(next_steps)s, %(files_read)s, %(files_edited)s, %(notes)s, %(at)s)",
            {"id": message_id, "session": session, "at": _at(message_id), **row},
        )
        return message_id

    async def prompt(self, text: str, session: str = S1) -> int:
        message_id = next(self._ids)
        await self.conn.execute(
            "INSERT INTO prompts (message_id, session_key, number, text, created_at)"
            " VALUES (%s, %s, %s, %s, %s)",
            (message_id, session, message_id, text, _at(message_id)),
        )
        return message_id


def _at(message_id: int) -> int:
    return T0 + (message_id - 1) * DAY_MS


def _when(message_id: int) -> datetime:
    return datetime.fromtimestamp(_at(message_id) / 1000, UTC)


@pytest.fixture
async def rows(pg_conn: Any) -> Rows:
    await schema.migrate(pg_conn)
    made = Rows(pg_conn)
    await made.session(S1, P1)
    await made.session(S2, P2)
    await made.session(FORK, P1, parent=S1)
    return made


@pytest.fixture
async def memory(pg_schema: PgSchema, rows: Rows) -> AsyncIterator[MemorySearch]:
    reader = await PgMemoryReader.open(pg_schema.url, pg_schema.options(min_size=1, max_size=2))
    async with MemorySearch(reader, dialect=POSTGRES) as search:
        yield search


def ids(hits: list[SearchHit]) -> list[int]:
    return [hit.message_id for hit in hits]


class TestFilters:
    @pytest.fixture
    async def made(self, rows: Rows) -> dict[str, int]:
        return {
            "obs": await rows.observation(
                title="Retry uploads", kind="bugfix", files_modified=["src/Net/Upload.py"]
            ),
            "other_kind": await rows.observation(title="retry notes", kind="discovery"),
            "summary": await rows.summary(
                request="make retry work", files_edited=["docs/retry.md"]
            ),
            "prompt": await rows.prompt("why does the retry fail?"),
            "elsewhere": await rows.observation(S2, title="retry in the site"),
            "copied": await rows.observation(FORK, title="retry copied", inherited=1),
        }

    async def test_each_filter(self, memory: MemorySearch, made: dict[str, int]) -> None:
        own = {made[name] for name in ("obs", "other_kind", "summary", "prompt")}
        everything = await memory.search("retry")
        assert set(ids(everything)) == own | {made["elsewhere"]}  # no inherited copy
        assert set(ids(await memory.search("retry", project=P1))) == own
        assert ids(await memory.search("retry", session_key=FORK)) == [made["copied"]]
        assert (await memory.search("retry", session_key=FORK))[0].inherited
        assert ids(await memory.search("retry", assistants=["codex"])) == [made["elsewhere"]]
        assert ids(await memory.search("retry", types=["summary"])) == [made["summary"]]
        assert ids(await memory.search("retry", types=["prompt"])) == [made["prompt"]]
        assert ids(await memory.search("retry", kinds=["bugfix"])) == [made["obs"]]
        kinds_and_prompts = await memory.search(
            "retry", kinds=["discovery"], types=["observation", "prompt"]
        )
        assert set(ids(kinds_and_prompts)) == {made["other_kind"], made["prompt"]}
        assert ids(await memory.search("retry", file="net/upload")) == [made["obs"]]
        assert ids(await memory.search("retry", file="RETRY.md")) == [made["summary"]]
        since = await memory.search("retry", since=_when(made["summary"]))
        assert set(ids(since)) == {made["summary"], made["prompt"], made["elsewhere"]}
        until = await memory.search("retry", until=_when(made["summary"]))
        assert set(ids(until)) == {made["obs"], made["other_kind"]}
        assert len(await memory.search("retry", limit=2)) == 2

    async def test_a_hit_reads_as_on_sqlite(
        self, memory: MemorySearch, made: dict[str, int]
    ) -> None:
        (hit,) = await memory.search("retry", types=["summary"])
        assert hit.record_type.value == "summary"
        assert (hit.title, hit.session_key, hit.project) == ("make retry work", S1, P1)
        assert hit.created_at == _when(made["summary"])
        assert hit.kind is None
        assert hit.score > 0

    async def test_rank_window_ranks_the_newest_matches(
        self, memory: MemorySearch, rows: Rows, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With more matches than the window, the newest are ranked; filters that leave
        too few hits there rank them all (as SQLite's _ranked does)."""
        old = await rows.observation(title="backoff backoff backoff")
        newer = [await rows.observation(narrative=f"backoff {n}") for n in range(3)]
        monkeypatch.setattr(memq.memory.search, "RANK_WINDOW", 2)
        assert set(ids(await memory.search("backoff", limit=2))) == set(newer[1:])
        assert ids(await memory.search("backoff", limit=2, until=_when(newer[0]))) == [old]


class TestSyntax:
    @pytest.fixture
    async def made(self, rows: Rows) -> dict[str, int]:
        return {
            "policy": await rows.observation(
                title="Retry policy for uploads", narrative="flaky network handling"
            ),
            "reversed": await rows.observation(title="Policy on retry", narrative="stable"),
            "retrieve": await rows.observation(narrative="retrieval of cached pages"),
        }

    async def test_words_find_every_word_then_any(
        self, memory: MemorySearch, made: dict[str, int]
    ) -> None:
        hits = await memory.search("where is the retry policy?")
        assert set(ids(hits[:2])) == {made["policy"], made["reversed"]}
        assert ids(await memory.search("retry policy uploads", limit=5))[0] == made["policy"]
        # any word, when every word finds too few: scores keep descending
        loose = await memory.search("retry nonexistentword", limit=5)
        assert set(ids(loose)) == {made["policy"], made["reversed"]}
        assert [h.score for h in loose] == sorted((h.score for h in loose), reverse=True)

    async def test_phrases_exclusion_and_prefix(
        self, memory: MemorySearch, made: dict[str, int]
    ) -> None:
        assert ids(await memory.search('"retry policy"', syntax="fts")) == [made["policy"]]
        assert ids(await memory.search('"retry" + "policy"', syntax="fts")) == [made["policy"]]
        assert ids(await memory.search("retry NOT flaky", syntax="fts")) == [made["reversed"]]
        assert set(ids(await memory.search("retr*", syntax="fts"))) == set(made.values())
        assert ids(await memory.search('"policy for uplo"*', syntax="fts")) == [made["policy"]]
        both = await memory.search("stable OR flaky", syntax="fts")
        assert set(ids(both)) == {made["policy"], made["reversed"]}

    async def test_column_filters(self, memory: MemorySearch, made: dict[str, int]) -> None:
        assert ids(await memory.search("title: flaky", syntax="fts")) == []
        assert ids(await memory.search("body: flaky", syntax="fts")) == [made["policy"]]
        assert ids(await memory.search("-title: flaky", syntax="fts")) == [made["policy"]]
        assert ids(await memory.search("{title}: (policy NOT uploads)", syntax="fts")) == [
            made["reversed"]
        ]

    @pytest.mark.parametrize(
        ("query", "says"),
        [
            ("NEAR(retry policy, 3)", "NEAR"),
            ("^retry", r"\^"),
            ("detail: retry", "column filter"),
            ("retry AND", "syntax error"),
            ("nosuchcolumn: retry", "no such column"),
        ],
    )
    async def test_refused(self, memory: MemorySearch, query: str, says: str) -> None:
        with pytest.raises(InvalidQueryError, match=says):
            await memory.search(query, syntax="fts")

    async def test_stop_words_alone_find_nothing(self, memory: MemorySearch) -> None:
        """PostgreSQL's english configuration indexes no stop words (SQLite does)."""
        assert await memory.search("the") == []


class TestIdentifiers:
    @pytest.fixture
    async def made(self, rows: Rows) -> dict[str, int]:
        return {
            "class": await rows.observation(title="Added class HTTPClient"),
            "camel": await rows.observation(narrative="retryWithBackoff now waits longer"),
            "snake": await rows.observation(excerpt="def parse_config_file(path):"),
            "path": await rows.observation(
                title="Edited module", files_modified=["src/net/retry_policy.py"]
            ),
        }

    @pytest.mark.parametrize(
        ("query", "name"),
        [
            ("HTTPClient", "class"),
            ("http_client", "class"),  # the joined expression: httpclient
            ("retryWithBackoff", "camel"),
            ("retry_with_backoff", "camel"),  # the camelCase parts (0011)
            ("backoff", "camel"),
            ("parse_config_file", "snake"),
            ("parseConfigFile", "snake"),
            ("config", "snake"),
            ("src/net/retry_policy.py", "path"),
            ("retry_policy.py", "path"),
            ("src/net", "path"),
        ],
    )
    async def test_found_however_spelled(
        self, memory: MemorySearch, made: dict[str, int], query: str, name: str
    ) -> None:
        assert ids(await memory.search(query))[:1] == [made[name]]

    async def test_the_whole_identifier_ranks_above_its_parts(
        self, memory: MemorySearch, rows: Rows
    ) -> None:
        whole = await rows.observation(narrative="class RetryPolicy: pass")
        parts = await rows.observation(narrative="class RetryPolicyFactory: pass")
        assert ids(await memory.search("RetryPolicy")) == [whole, parts]


class TestRankingAndSnippets:
    async def test_a_title_outranks_the_body(self, memory: MemorySearch, rows: Rows) -> None:
        body = await rows.observation(title="Edited files", narrative="changed the backoff")
        title = await rows.observation(title="Backoff for uploads", narrative="edited files")
        prompt = await rows.prompt("what about backoff?")
        output = await rows.observation(title="Ran tests", excerpt="backoff test passed")
        hits = await memory.search("backoff")
        assert ids(hits) == [title, prompt, body, output]
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)

    async def test_ties_in_message_order(self, memory: MemorySearch, rows: Rows) -> None:
        same = [await rows.observation(title="retry it") for _ in range(3)]
        assert ids(await memory.search("retry")) == same

    async def test_snippet_marks_the_matches(self, memory: MemorySearch, rows: Rows) -> None:
        await rows.observation(
            title="Edited upload",
            narrative="The uploader now retries failed requests with exponential backoff "
            "and gives up after five attempts, logging each retry.",
        )
        (hit,) = await memory.search("retry backoff")
        assert "[retries]" in hit.snippet
        assert "[backoff]" in hit.snippet
        assert len(hit.snippet.split()) <= memq.memory.search.SNIPPET_TOKENS + 2

    async def test_a_match_inside_a_path_is_marked(self, memory: MemorySearch, rows: Rows) -> None:
        """PostgreSQL's parser keeps a path whole, so the snippet is made again from the
        text as the index saw it (punctuation as spaces)."""
        await rows.observation(title="Edited", files_modified=["src/net/retry_policy.py"])
        (hit,) = await memory.search("retry_policy")
        assert "[retry] [policy]" in hit.snippet

    async def test_min_score(self, memory: MemorySearch, rows: Rows) -> None:
        """A score is 40 * r / (r + 1) of ts_rank's r: below 40, a title match (weight A)
        well above a match in a tool's output (weight D); min_score drops the hits below it,
        as on SQLite."""
        strong = await rows.observation(title="backoff")
        weak = await rows.observation(excerpt="a long output " * 20 + "backoff")
        hits = await memory.search("backoff")
        assert ids(hits) == [strong, weak]
        assert 0 < hits[1].score * 5 < hits[0].score < 40
        assert ids(await memory.search("backoff", min_score=hits[1].score + 0.01)) == [strong]


class TestTimeline:
    async def test_records_around_one(self, memory: MemorySearch, rows: Rows) -> None:
        first = await rows.prompt("fix the retry")
        middle = await rows.observation(title="Retry fixed", facts=["waits 2s"])
        await rows.observation(S2, title="elsewhere")
        last = await rows.summary(request="fix the retry", completed="done")
        timeline = await memory.timeline(middle, before=1, after=1)
        assert timeline is not None
        assert [item.message_id for item in timeline.items] == [first, middle, last]
        assert timeline.anchor.record.facts == ("waits 2s",)  # type: ignore[union-attr]
        assert await memory.timeline(999) is None


# -- the recall corpus on both backends ---------------------------------------------------------

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
TOP = 10


def _bench_recall() -> Any:
    sys.path.insert(0, str(SCRIPTS))
    try:
        import bench_recall  # noqa: PLC0415 - scripts/, the benchmark's corpus and figures
    finally:
        sys.path.remove(str(SCRIPTS))
    return bench_recall


async def copy_memory(sqlite_path: Path, conn: Any) -> None:
    """The memory tables of a SQLite store, row for row, into the PostgreSQL schema."""
    source = sqlite3.connect(sqlite_path)
    source.row_factory = sqlite3.Row
    try:
        for table in ("sessions", "prompts", "observations", "summaries"):
            cursor = await conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s"
                " AND table_schema = current_schema() AND is_generated = 'NEVER'",
                (table,),
            )
            wanted = {row[0] for row in await cursor.fetchall()}
            read = source.execute(f"SELECT * FROM {table}")
            rows = read.fetchall()
            columns = [name for name, *_ in read.description if name in wanted]
            async with conn.cursor() as insert:
                await insert.executemany(
                    f"INSERT INTO {table} ({', '.join(columns)})"
                    f" VALUES ({', '.join(['%s'] * len(columns))})",
                    [tuple(row[name] for name in columns) for row in rows],
                )
    finally:
        source.close()


async def test_recall_corpus_on_both_backends(
    tmp_path: Path, pg_schema: PgSchema, pg_conn: Any
) -> None:
    """The benchmark's corpus written by the real SQLite store, copied into PostgreSQL; its
    questions asked of both: recall@1/@5/@10 and MRR each, how much of SQLite's top 10
    PostgreSQL returns, and how many hits reach the default recall_min_score. Printed
    (pytest -s) and held within a few points of SQLite's."""
    bench = _bench_recall()
    db_path = tmp_path / "memq.db"
    questions = json.loads((bench.RECALL / "questions.json").read_text("utf-8"))["questions"]
    labels = await bench.build(db_path, bench.corpus())
    await schema.migrate(pg_conn)
    await copy_memory(db_path, pg_conn)

    reader = await PgMemoryReader.open(pg_schema.url, pg_schema.options(max_size=2))
    results: dict[str, list[Any]] = {"sqlite": [], "postgres": []}
    scores: dict[str, list[float]] = {"sqlite": [], "postgres": []}
    overlaps = []
    async with (
        await MemorySearch.open(db_path) as on_sqlite,
        MemorySearch(reader, dialect=POSTGRES) as on_postgres,
    ):
        for question in questions:
            tops = []
            for name, memory in (("sqlite", on_sqlite), ("postgres", on_postgres)):
                hits = await memory.search(question["q"], limit=bench.TOP)
                results[name].append(_result(bench, question, hits, labels))
                tops.append({(hit.record_type, hit.id) for hit in hits[:TOP]})
                scores[name] += [hit.score for hit in hits[:TOP]]
            overlaps.append(len(tops[0] & tops[1]) / max(1, len(tops[0])))

    figures = {name: _figures(bench, found) for name, found in results.items()}
    overlap = round(sum(overlaps) / len(overlaps), 3)
    print(f"\nrecall corpus ({len(questions)} questions): {json.dumps(figures)}")
    print(f"share of SQLite's top {TOP} that PostgreSQL returns: {overlap}")
    # recall_min_score's default keeps about as many hits on both (the score scale)
    passing = {
        name: round(sum(score >= DEFAULT_RECALL_MIN_SCORE for score in found) / len(found), 2)
        for name, found in scores.items()
    }
    print(f"share of top {TOP} hits scoring >= {DEFAULT_RECALL_MIN_SCORE}: {passing}")
    assert abs(passing["postgres"] - passing["sqlite"]) <= 0.15
    sqlite, postgres = figures["sqlite"], figures["postgres"]
    assert postgres["recall_at_10"] >= sqlite["recall_at_10"] - 0.04
    assert postgres["recall_at_5"] >= sqlite["recall_at_5"] - 0.04
    assert postgres["mrr"] >= sqlite["mrr"] - 0.05
    assert postgres["recall_at_5"] >= bench.TARGET_RECALL_AT_5
    assert overlap >= 0.65


def _result(bench: Any, question: Any, hits: list[SearchHit], labels: Any) -> Any:
    """The benchmark's Result of one question (scripts/bench_recall.py's ``ask``)."""
    ranked = tuple(labels.get(hit.message_id, f"({hit.title[:50]})") for hit in hits)
    answers = tuple(question["answers"])
    rank = next((i for i, name in enumerate(ranked, 1) if name in answers), None)
    return bench.Result(question["q"], answers, ranked, rank)


def _figures(bench: Any, results: list[Any]) -> dict[str, Any]:
    at_10 = sum(r.rank is not None and r.rank <= TOP for r in results) / len(results)
    figures: dict[str, Any] = bench.figures(results)
    return figures | {"recall_at_10": round(at_10, 3)}
