"""``memq.team.team_search``: the synchronous team search of the reads no daemon serves,
against a real HTTP server on 127.0.0.1 and real SQLite files. The end-to-end paths (a team
server on PostgreSQL, laptops, ``memq search``, ``memq mcp``) are in
tests/postgres/test_team_search_paths.py."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from memq.config import Settings
from memq.storage import connection, schema
from memq.team.team_search import (
    QUERIES,
    asks_team,
    machine_names,
    with_team_hits,
)
from tests.helpers.json_stub import JsonStub, serving

LOCAL = {"record_type": "observation", "id": 1, "score": 1.0, "author": None}
TEAM_HIT = {"record_type": "observation", "id": 1, "score": 2.0, "author": "alice"}
KEY = "memq_k1_not-a-real-secret"
OK_ANSWER = (200, json.dumps({"items": [LOCAL], "total": 1}).encode())


@pytest.fixture
def stub() -> Iterator[JsonStub]:
    """A team server's search route on 127.0.0.1, answering TEAM_HIT."""
    with serving(lambda _: (200, {"items": [TEAM_HIT], "total": 1})) as made:
        yield made


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    directory = tmp_path / "repo"
    directory.mkdir()
    for args in (["init", "-q"], ["remote", "add", "origin", "git@github.com:acme/repo.git"]):
        subprocess.run(["git", *args], cwd=directory, check=True, capture_output=True)
    return directory


def laptop_settings(home: Path, url: str, **env: str) -> Settings:
    home.mkdir(mode=0o700, exist_ok=True)
    key = home / "upstream.key"
    key.write_text(f"{KEY}\n")
    key.chmod(0o600)
    return Settings.from_env({"MEMQ_HOME": str(home), "MEMQ_UPSTREAM": url, **env})


def merged(answer: tuple[int, bytes]) -> dict[str, Any]:
    status, raw = answer
    assert status == 200
    body: dict[str, Any] = json.loads(raw)
    return body


def test_the_team_is_asked_only_for_filters_it_honours() -> None:
    assert asks_team(["q", "limit", "project", "cwd", "author"])
    for name in ("session", "type", "kind", "file", "since", "until", "assistant"):
        assert not asks_team(["q", name]), name
    assert not asks_team(["q", "min_score"])
    assert not asks_team(["q", "syntax"])
    assert not asks_team(["q", "local"])  # local records only (the MCP timeline's anchor)


def test_an_author_filter_is_asked_of_the_server(
    tmp_path: Path, repo: Path, stub: JsonStub
) -> None:
    settings = laptop_settings(tmp_path / "home", stub.url)
    params = [("q", "word"), ("author", "carol"), ("author", "dan")]
    with_team_hits(
        OK_ANSWER,
        settings,
        where=str(repo),
        params=params,
        query="word",
        limit=5,
        authors=["carol", "dan"],
    )
    [query] = [asked.query for asked in stub.asked]
    assert query["author"] == ["carol", "dan"]
    assert query["limit"] == ["5"]  # exactly the search's limit: the server filters


def test_a_direct_search_merges_the_teams_hits_leaving_this_machine_out(
    tmp_path: Path, repo: Path, stub: JsonStub
) -> None:
    settings = laptop_settings(tmp_path / "home", stub.url)
    params = [("q", "word"), ("limit", "5")]
    body = merged(
        with_team_hits(
            OK_ANSWER, settings, where=str(repo), params=params, query="word", limit=5, authors=None
        )
    )
    assert [(i["id"], i.get("team"), i.get("ref")) for i in body["items"]] == [
        (1, True, "team#1"),
        (1, None, None),
    ]
    assert body["team_note"] is None
    [(query, authorization)] = [(a.query, a.headers.get("authorization", "")) for a in stub.asked]
    assert authorization == f"Bearer {KEY}"
    assert query["project"] == ["github.com/acme/repo"]
    assert query["exclude_machine"] == [socket.gethostname()]  # mode both
    assert "author" not in query


def test_in_mode_forward_nothing_is_left_out(tmp_path: Path, repo: Path, stub: JsonStub) -> None:
    settings = laptop_settings(tmp_path / "home", stub.url, MEMQ_UPSTREAM_MODE="forward")
    with_team_hits(
        OK_ANSWER, settings, where=str(repo), params=[], query="w", limit=5, authors=None
    )
    [query] = [asked.query for asked in stub.asked]
    assert "exclude_machine" not in query


def test_no_team_is_asked_without_a_plain_search_a_repository_or_an_answer(
    tmp_path: Path, repo: Path, stub: JsonStub
) -> None:
    settings = laptop_settings(tmp_path / "home", stub.url)
    plain: list[tuple[str, str]] = [("q", "w")]
    typed = [("q", "w"), ("type", "summary")]
    failed = (503, b'{"error": "cannot read memory"}')
    for answer, where, params in (
        (OK_ANSWER, str(repo), typed),
        (OK_ANSWER, str(tmp_path), plain),  # no repository there
        (failed, str(repo), plain),
    ):
        kept = with_team_hits(
            answer, settings, where=where, params=params, query="w", limit=5, authors=None
        )
        assert kept == answer
    assert stub.asked == []
    alone = Settings.from_env({"MEMQ_HOME": str(tmp_path / "home")})  # no team server
    kept = with_team_hits(
        OK_ANSWER, alone, where=str(repo), params=plain, query="w", limit=5, authors=None
    )
    assert kept == OK_ANSWER


def test_an_unreachable_server_leaves_local_hits_and_a_note(tmp_path: Path, repo: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"  # bound, not listening: refused
        settings = laptop_settings(tmp_path / "home", url)
        body = merged(
            with_team_hits(
                OK_ANSWER, settings, where=str(repo), params=[], query="w", limit=5, authors=None
            )
        )
    assert body["items"] == [LOCAL]
    assert body["team_note"].startswith(f"team memory not searched ({url}: ")


def test_the_machines_are_every_name_the_outbox_gave_this_database(
    tmp_path: Path, repo: Path, stub: JsonStub
) -> None:
    settings = laptop_settings(tmp_path / "home", stub.url)
    assert machine_names(settings) == [socket.gethostname()]  # no database yet
    conn = connection.connect(settings.database_path)
    try:
        schema.migrate(conn)
        assert machine_names(settings) == [socket.gethostname()]  # nothing forwarded yet
        for name in ("old-name", "newer-name"):  # a rename: both names hold records upstream
            conn.execute(QUERIES["claim_machine"], {"machine": name})
            conn.execute(QUERIES["remember_machine"], {"machine": name})
        conn.commit()
    finally:
        conn.close()
    assert machine_names(settings) == ["newer-name", "old-name", socket.gethostname()]
    # A direct search asks the server to leave out this laptop's records under each name.
    with_team_hits(
        OK_ANSWER, settings, where=str(repo), params=[], query="w", limit=5, authors=None
    )
    [query] = [asked.query for asked in stub.asked]
    assert query["exclude_machine"] == ["newer-name", "old-name", socket.gethostname()]
