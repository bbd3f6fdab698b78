"""Search that finds code, on real SQLite files: every spelling of an identifier finds the
others, paths match by file name and by directory, prose matches its word forms, and a
database made before migration 0011 keeps every record findable after it.

Records are written through the worker's path (Queue + MemoryStore.effect), so the triggers
of migration 0011 are what index them.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from memq.exceptions import InvalidQueryError
from memq.memory import MemoryStore, ObservationKind, ObservationRecord
from memq.memory.records import SummaryRecord
from memq.memory.search import MemorySearch, SearchHit
from memq.queue import Queue
from memq.storage import schema
from tests.helpers.memory import Item, Prompt, write

SESSION = "claude-code:0d6a3c1e-5b7f-4e2a-9c4d-8f1e2a3b4c5d"
PROJECT = "/home/dev/harbor"

SPELLINGS = {
    "snake": "retry_policy",
    "camel": "retryPolicy",
    "pascal": "RetryPolicy",
    "kebab": "retry-policy",
    "prose": "retry policy",
}


def obs(title: str, **fields: Any) -> ObservationRecord:
    return ObservationRecord(kind=ObservationKind.CHANGE, title=title, **fields)


# One record per spelling, each saying it in a line of code or prose, plus records with only
# one of the two words or with a longer identifier.
CORPUS: dict[str, Item] = {
    "snake": obs("Edited src/harbor/config.py", excerpt="+    retry_policy: dict = {}"),
    "camel": obs("Edited web/src/api.ts", excerpt="+  const retryPolicy = defaults();"),
    "pascal": obs("Edited src/harbor/net/policy.py", excerpt="+class RetryPolicy:\n+    pass"),
    "kebab": obs("Ran `harbor fetch --retry-policy none`", command="harbor fetch --retry-policy"),
    "prose": Prompt("Please make the retry policy less aggressive"),
    "only_retry": obs("Ran `pytest -k retry`", command="pytest -k retry", excerpt="2 passed"),
    "only_policy": obs("Read SECURITY.md", excerpt="Our disclosure policy is simple."),
    "longer": obs("Edited src/harbor/factory.py", excerpt="+    return RetryPolicyFactory()"),
    "net_retry": obs("Edited src/net/retry.py", files_modified=("src/net/retry.py",)),
    "db_retry": obs("Edited src/db/retry_queue.py", files_modified=("src/db/retry_queue.py",)),
    "net_test": obs("Read tests/net/test_client.py", files_read=("tests/net/test_client.py",)),
    "cart_page": obs(
        "Edited web/src/pages/CartPage.tsx", files_modified=("web/src/pages/CartPage.tsx",)
    ),
    "retries": obs("Backoff between retries", narrative="The client retries with backoff."),
    "retried": SummaryRecord(request="Why did it fail?", completed="The upload retried twice."),
    "decoy": obs("Read docs/index.md", excerpt="Nothing about that here."),
}


@pytest.fixture
async def names(queue: Queue, store: MemoryStore) -> dict[int, str]:
    """{message id: name} of the corpus, written through the worker's path."""
    ids = await write(queue, store, list(CORPUS.values()), session=SESSION, project=PROJECT)
    return dict(zip(ids, CORPUS, strict=True))


async def found(search: MemorySearch, names: dict[int, str], query: str, **kw: Any) -> list[str]:
    hits: list[SearchHit] = await search.search(query, limit=50, **kw)
    return [names[hit.message_id] for hit in hits]


def table(db_path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def check_index(db_path: Path) -> None:
    """FTS5's own check that the index matches its content exactly."""
    table(db_path, "INSERT INTO memory_fts (memory_fts, rank) VALUES ('integrity-check', 1)")


class TestSpellings:
    @pytest.mark.parametrize("spelling", list(SPELLINGS))
    async def test_each_spelling_finds_every_other(
        self, search: MemorySearch, names: dict[int, str], spelling: str
    ) -> None:
        """snake, camel, Pascal, kebab and prose: each finds all five records, ahead of the
        records with only one of the words."""
        hits = await found(search, names, SPELLINGS[spelling])
        assert set(hits[:6]) >= set(SPELLINGS), hits
        for partial in ("only_retry", "only_policy"):
            if partial in hits:
                assert hits.index(partial) >= len(SPELLINGS), hits

    async def test_a_part_of_a_camel_case_identifier_finds_it(
        self, search: MemorySearch, names: dict[int, str]
    ) -> None:
        """ "policy" finds RetryPolicy, retryPolicy and RetryPolicyFactory."""
        hits = await found(search, names, "policy")
        assert {"camel", "pascal", "longer", "snake", "kebab", "prose"} <= set(hits)

    async def test_the_very_identifier_ranks_above_a_longer_one(
        self, search: MemorySearch, names: dict[int, str]
    ) -> None:
        """RetryPolicy itself outranks RetryPolicyFactory, which only holds its parts."""
        hits = await found(search, names, "RetryPolicy")
        assert hits.index("pascal") < hits.index("longer"), hits

    async def test_the_same_spelling_ranks_first(
        self, search: MemorySearch, names: dict[int, str]
    ) -> None:
        """Asked for retry_policy, the record that says retry_policy comes before the one that
        says retryPolicy (found through its parts)."""
        hits = await found(search, names, "retry_policy")
        assert hits.index("snake") < hits.index("camel"), hits


class TestAcronyms:
    async def test_an_acronym_run_is_found_as_written_and_in_snake_case(
        self, queue: Queue, store: MemoryStore, search: MemorySearch
    ) -> None:
        """HTTPClient keeps its acronym whole in the index: found as HTTPClient, httpClient
        and http_client (joined, after the records that say it as written)."""
        ids = await write(
            queue,
            store,
            [obs("Edited net.py", excerpt="client = HTTPClient()"), Prompt("fix the http_client")],
            session=SESSION,
            project=PROJECT,
        )
        acronym, snake = ids
        for query in ("HTTPClient", "httpClient"):
            assert acronym in [hit.message_id for hit in await search.search(query)], query
        hits = [hit.message_id for hit in await search.search("http_client")]
        assert hits == [snake, acronym]


class TestPaths:
    async def test_a_file_name_finds_its_path(
        self, search: MemorySearch, names: dict[int, str]
    ) -> None:
        """retry.py is src/net/retry.py, not src/db/retry_queue.py."""
        hits = await found(search, names, "retry.py")
        assert hits[0] == "net_retry"
        assert "db_retry" not in hits

    async def test_a_file_name_without_extension_finds_both(
        self, search: MemorySearch, names: dict[int, str]
    ) -> None:
        """retry is in both file names."""
        assert {"net_retry", "db_retry"} <= set(await found(search, names, "retry"))

    async def test_a_directory_finds_the_files_in_it(
        self, search: MemorySearch, names: dict[int, str]
    ) -> None:
        """src/net is src/net/retry.py; tests/net and src/db are other directories."""
        hits = await found(search, names, "src/net")
        assert hits == ["net_retry"]

    async def test_a_camel_case_file_name_by_its_words(
        self, search: MemorySearch, names: dict[int, str]
    ) -> None:
        """CartPage.tsx is found as written, as "cart page", and as cart_page."""
        for query in ("CartPage.tsx", "CartPage", "cart page", "cart_page"):
            assert (await found(search, names, query))[0] == "cart_page", query

    async def test_the_file_filter_still_applies(
        self, search: MemorySearch, names: dict[int, str]
    ) -> None:
        """file= keeps the records whose paths contain the text."""
        assert await found(search, names, "retry", file="src/net/") == ["net_retry"]


class TestWordForms:
    @pytest.mark.parametrize("query", ["retry", "retries", "retried", "retrying"])
    async def test_prose_finds_every_form_of_a_word(
        self, search: MemorySearch, names: dict[int, str], query: str
    ) -> None:
        """porter: retry, retries, retried and retrying are one stem."""
        assert {"retries", "retried"} <= set(await found(search, names, query))


class TestFtsSyntax:
    async def test_raw_queries_still_work(
        self, search: MemorySearch, names: dict[int, str]
    ) -> None:
        """Phrases, boolean operators and columns, including the new parts column."""
        # one token, case folded: retryPolicy and RetryPolicy, not RetryPolicyFactory
        assert set(await found(search, names, '"RetryPolicy"', syntax="fts")) == {
            *("camel", "pascal"),
        }
        assert "pascal" in await found(search, names, "parts: policy", syntax="fts")
        assert "snake" not in await found(search, names, "parts: policy", syntax="fts")
        assert await found(search, names, "title: backoff", syntax="fts") == ["retries"]
        hits = await found(search, names, "retry NOT policy", syntax="fts")
        assert "only_retry" in hits
        assert "snake" not in hits

    @pytest.mark.parametrize("query", ['"unclosed', "AND retry", "nosuchcolumn: x", "(a"])
    async def test_a_bad_query_is_a_clear_error(self, search: MemorySearch, query: str) -> None:
        """FTS5 syntax errors are InvalidQueryError naming the problem."""
        with pytest.raises(InvalidQueryError, match="invalid search query"):
            await search.search(query, syntax="fts")


class TestIndexUpkeep:
    async def test_updates_and_deletes_keep_the_index_exact(
        self, search: MemorySearch, names: dict[int, str], db_path: Path
    ) -> None:
        """A hand-run UPDATE and DELETE (plain sqlite3, no memq function) keep the parts in
        step: FTS5's integrity check passes and the new words are found, the old ones not."""
        pascal = next(mid for mid, name in names.items() if name == "pascal")
        table(
            db_path,
            "UPDATE observations SET excerpt = 'class BackoffSchedule:' WHERE message_id = ?",
            pascal,
        )
        check_index(db_path)
        assert "pascal" in await found(search, names, "schedule")
        assert "pascal" not in await found(search, names, "RetryPolicy")
        table(db_path, "DELETE FROM observations WHERE message_id = ?", pascal)
        check_index(db_path)
        assert "pascal" not in await found(search, names, "schedule")


# -- migration from a database made before 0011 --------------------------------------------------

INSERT_SESSION = (
    "INSERT INTO sessions (key, assistant, external_id, project, cwd, started_at, updated_at,"
    " created_at) VALUES (?, 'claude-code', ?, ?, ?, 0, 0, 0)"
)
INSERT_OBSERVATION = (
    "INSERT INTO observations (message_id, session_key, kind, title, subtitle, narrative, facts,"
    " concepts, files_read, files_modified, tool_name, command, exit_code, excerpt, created_at)"
    " VALUES (?, ?, 'change', ?, '', ?, ?, '[]', '[]', ?, 'Edit', ?, NULL, ?, ?)"
)
INSERT_SUMMARY = (
    "INSERT INTO summaries (message_id, session_key, request, investigated, learned, completed,"
    " next_steps, files_read, files_edited, notes, created_at)"
    " VALUES (?, ?, ?, '', '', ?, '', '[]', ?, '', ?)"
)
INSERT_PROMPT = (
    "INSERT INTO prompts (message_id, session_key, number, text, created_at) VALUES (?, ?, ?, ?, ?)"
)


def old_database(path: Path, records: int) -> None:
    """A database at schema 0010 (before code-aware search) with ``records`` records of each
    type, each with its own word (w<n>) and a camelCase identifier."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        versions = [m for m in schema.available_migrations() if m.version <= 10]
        schema.migrate(conn, versions)
        conn.execute("BEGIN")
        conn.execute(INSERT_SESSION, (SESSION, SESSION.split(":")[1], PROJECT, PROJECT))
        message_id = 0
        for n in range(records):
            files = json.dumps([f"src/mod{n}/FileNumber{n}.py"])
            message_id += 1
            conn.execute(INSERT_PROMPT, (message_id, SESSION, n + 1, f"prompt w{n}p", n))
            message_id += 1
            conn.execute(
                INSERT_OBSERVATION,
                (message_id, SESSION, f"Edited w{n}o", f"calls handleItem{n}", json.dumps(["x"]),
                 files, f"run --flag-{n}", f"+ value{n}Ready = true", n),
            )  # fmt: skip
            message_id += 1
            conn.execute(
                INSERT_SUMMARY,
                (message_id, SESSION, f"request w{n}s", f"done with parseBlock{n}", files, n),
            )
        conn.execute("COMMIT")
    finally:
        conn.close()


class TestMigration:
    async def test_every_record_stays_findable_and_gains_its_parts(self, tmp_path: Path) -> None:
        """After 0011, every record of a 0010 database is found by its own words, by the whole
        camelCase identifiers it holds and by their parts, and the index checks out."""
        path = tmp_path / "old.db"
        count = 30
        old_database(path, count)
        async with await Queue.open(path):  # migrates
            assert table(path, "SELECT max(version) FROM schema_version")[0][0] >= 11
            check_index(path)
            (indexed,) = table(path, "SELECT count(*) FROM memory_fts_docsize")[0]
            assert indexed == 3 * count
            async with await MemorySearch.open(path) as search:
                for n in range(count):
                    for query, kind in (
                        (f"w{n}p", "prompt"),
                        (f"w{n}o", "observation"),
                        (f"w{n}s", "summary"),
                        (f"handleItem{n}", "observation"),
                        (f"handle_item{n}", "observation"),
                        (f"value{n} ready", "observation"),
                        (f"parse block{n}", "summary"),
                        (f"file number{n}", "observation"),
                        (f"src/mod{n}", "summary"),
                    ):
                        hits = await search.search(query, limit=3)
                        assert kind in {hit.record_type.value for hit in hits}, query


class TestRecallBenchmark:
    def test_the_questions_find_their_records(self, tmp_path: Path) -> None:
        """scripts/bench_recall.py, run as a user would: the sessions recorded through
        ``extract`` answer the questions (recall@5 at its target, 0.9)."""
        script = Path(__file__).parents[2] / "scripts" / "bench_recall.py"
        done = subprocess.run(
            [sys.executable, str(script), "--json-only", "--keep", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        report = json.loads(done.stdout.splitlines()[-1])
        assert report["questions"] >= 40
        assert report["recall_at_5"] >= 0.9, report
        assert 0 < report["mrr"] <= 1
