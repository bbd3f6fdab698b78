"""The viewer and team memory (issue 17): who produced a record, and the team's search hits.

A team server's memory holds records of several people (``author``, ``machine``): every list
labels them ([alice], the machine on hover) and the author filters narrow feed, sessions,
search and context to some people. On a laptop with ``MEMQ_UPSTREAM`` set, a search merges the
team's hits, whose ids are the server's: one opens the team's record (``team#1``, read through
the daemon from a stub team server on 127.0.0.1), never the local record with the same id.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.support import SEED, login_url, sample
from tests.helpers.backends import SqliteBackend
from tests.helpers.daemon import Daemon, running_daemon
from tests.helpers.json_stub import JsonStub, StubRequest, serving
from tests.helpers.memory_rows import execute

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

ALICE = "claude-code:alice-session"
BOB = "claude-code:bob-session"
PEOPLE = {ALICE: ("alice", "alice-laptop"), BOB: ("bob", "bob-desktop")}
KEY = "memq_k1_not-a-real-secret"
TEAM_TITLE = "TEAM ONLY: bob fixed the deploy script"
TEAM_HIT = {
    "record_type": "observation",
    "id": 1,  # the id of the laptop's own first record too
    "kind": "bugfix",
    "title": TEAM_TITLE,
    "snippet": "the [hello] of the team",
    "score": 1000.0,
    "author": "bob",
    "machine": "bob-desktop",
    "project": "github.com/acme/repo",
    "session_key": "claude-code:bob-team-session",
    "created_at": "2026-12-04T12:00:00+00:00",
}

# The record as the server's records route gives it: no snippet or score, its full text.
TEAM_RECORD = {
    **{name: value for name, value in TEAM_HIT.items() if name not in ("snippet", "score")},
    "ref": "#1",
    "narrative": "bob's own words",
}
# A hit whose record the server no longer gives (deleted since, or out of the key's reach).
GONE_HIT = {**TEAM_HIT, "id": 2, "title": "TEAM GONE: deleted on the server", "score": 999.0}


def visit(page: Page, view: str) -> None:
    page.evaluate("view => { location.hash = view; }", view)


def texts(page: Page, selector: str) -> list[str]:
    found: list[str] = page.locator(selector).all_inner_texts()
    return found


def new_page(browser: Browser, daemon: Daemon) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    opened = context.new_page()
    opened.set_default_timeout(10_000)  # each step here takes well under a second
    opened.goto(login_url(daemon))
    opened.wait_for_selector("body[data-ready=true]")
    try:
        yield opened
    finally:
        context.close()


# ---- a team server's memory: records of alice and bob -------------------------------------


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon holding alice's and bob's sessions, as a team server's memory holds them
    (the origin a team server's intake stamps is written on the rows: a laptop's event
    intake drops it)."""
    with running_daemon(tmp_path_factory.mktemp("team-viewer") / "home") as running:
        with running.client() as client:
            for key in PEOPLE:
                for name in SEED:
                    event = sample(name, session_id=key.split(":", 1)[1])
                    assert client.post("/api/events", json=event).is_success
        running.wait_idle()
        backend = SqliteBackend(running.home / "memq.db")
        for key, (author, machine) in PEOPLE.items():
            for table in ("prompts", "observations", "summaries"):
                execute(
                    backend,
                    f"UPDATE {table} SET author = ?, machine = ? WHERE session_key = ?",
                    author,
                    machine,
                    key,
                )
        yield running


class TestAuthors:
    def test_search_labels_each_hit_with_its_author_and_filters_by_author(self, page: Page) -> None:
        visit(page, "search")
        page.fill("#search-q", "hello")
        page.locator("#search-form button[type=submit]").click()
        page.locator("#search-results li .author").first.wait_for()
        assert set(texts(page, "#search-results .author")) == {"[alice]", "[bob]"}
        # Every hit is someone's, and the machine shows on hover.
        items = page.locator("#search-results li").count()
        assert page.locator("#search-results li .author").count() == items
        alice = page.locator("#search-results .author", has_text="[alice]").first
        assert alice.get_attribute("title") == "machine: alice-laptop"
        page.fill("#search-author", "bob")
        page.locator("#search-form button[type=submit]").click()
        page.wait_for_function(
            "() => [...document.querySelectorAll('#search-results .author')]"
            ".every(e => e.textContent === '[bob]')"
        )
        assert set(texts(page, "#search-results .author")) == {"[bob]"}
        page.fill("#search-author", "")

    def test_an_opened_record_names_its_author_and_machine(self, page: Page) -> None:
        visit(page, "search")
        page.fill("#search-q", "hello")
        page.locator("#search-form button[type=submit]").click()
        page.locator("#search-results li .author").first.wait_for()
        page.locator("#search-results li", has_text="[alice]").first.locator("button").click()
        record = page.locator("#record")
        record.locator("h3 .author").wait_for()
        assert record.locator("h3 .author").inner_text() == "[alice]"
        assert "alice-laptop" in record.locator("dl").inner_text()
        # A local record (a team server's own) keeps its timeline; it is no team record.
        assert record.locator("h3 .team").count() == 0
        record.locator("#timeline li").first.wait_for()
        assert set(texts(page, "#timeline .author")) == {"[alice]"}

    def test_the_sessions_filter_by_author_and_a_session_shows_whose_it_is(
        self, page: Page
    ) -> None:
        visit(page, "feed")
        visit(page, "sessions")
        page.locator(f'#session-list li[data-key="{BOB}"]').wait_for()
        page.fill("#sessions-author", "alice")
        page.locator("#sessions-filter button[type=submit]").click()
        page.locator(f'#session-list li[data-key="{BOB}"]').wait_for(state="detached")
        keys = page.locator("#session-list li[data-key]").evaluate_all(
            "items => items.map(item => item.dataset.key)"
        )
        assert keys == [ALICE]
        page.fill("#sessions-author", "")
        page.locator(f'#session-list li[data-key="{ALICE}"] a').click()
        page.locator("#session-records li .author").first.wait_for()
        assert page.locator("#session-authors").inner_text() == "[alice]"
        records = page.locator("#session-records li").count()
        assert texts(page, "#session-records .author") == ["[alice]"] * records

    def test_the_feed_labels_and_filters_by_author(self, page: Page) -> None:
        visit(page, "feed")
        page.fill("#feed-author", "")
        page.locator("#feed-filter button[type=submit]").click()
        page.wait_for_function(
            "() => new Set([...document.querySelectorAll('#feed-list .author')]"
            ".map(e => e.textContent)).size === 2"
        )
        assert set(texts(page, "#feed-list .author")) == {"[alice]", "[bob]"}
        page.fill("#feed-author", "bob")
        page.locator("#feed-filter button[type=submit]").click()
        page.wait_for_function("() => document.getElementById('feed-state').textContent === 'live'")
        page.locator("#feed-list li").first.wait_for()
        assert set(texts(page, "#feed-list .author")) == {"[bob]"}
        assert page.locator("#feed-list li").count() == page.locator("#feed-list .author").count()
        page.fill("#feed-author", "")

    def test_the_context_preview_can_keep_one_persons_records(self, page: Page) -> None:
        visit(page, "context")
        page.fill("#context-project", "/home/dev/project")
        page.fill("#context-author", "")
        page.locator("#context-form button[type=submit]").click()
        page.wait_for_function(
            "() => document.getElementById('context-text').textContent.includes('[alice]')"
        )
        assert "[bob]" in page.locator("#context-text").inner_text()
        page.fill("#context-author", "bob")
        page.locator("#context-form button[type=submit]").click()
        page.wait_for_function(
            "() => !document.getElementById('context-text').textContent.includes('[alice]')"
        )
        assert "[bob]" in page.locator("#context-text").inner_text()


# ---- a laptop: the team's hits in its search ----------------------------------------------


def team_answer(request: StubRequest) -> tuple[int, Any]:
    """A team server's search and records routes: one hit, its record; anything else (the
    outbox's forwarding) a 503, so it retries later."""
    if request.method == "POST":
        return 503, {"error": "a stub takes in nothing"}
    if request.path == "/api/team/v1/search":
        return 200, {"items": [TEAM_HIT, GONE_HIT], "total": 2}
    if request.path == "/api/team/v1/records" and request.query.get("ref") == ["#1"]:
        return 200, {"items": [TEAM_RECORD], "missing": [], "total": 1}
    return 404, {"error": "not here"}


@pytest.fixture(scope="module")
def stub() -> Iterator[JsonStub]:
    with serving(team_answer) as made:
        yield made


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clone of github.com/acme/repo: the project the team server knows."""
    directory = tmp_path_factory.mktemp("clone") / "repo"
    directory.mkdir()
    for args in (["init", "-q"], ["remote", "add", "origin", "git@github.com:acme/repo.git"]):
        subprocess.run(["git", *args], cwd=directory, check=True, capture_output=True)
    return directory


@pytest.fixture(scope="module")
def laptop(
    tmp_path_factory: pytest.TempPathFactory, stub: JsonStub, repo: Path
) -> Iterator[Daemon]:
    """A laptop's daemon with the stub as its team server, holding its own record #1."""
    home = tmp_path_factory.mktemp("laptop") / "home"
    home.mkdir(mode=0o700)
    key = home / "upstream.key"
    key.write_text(f"{KEY}\n")
    key.chmod(0o600)
    with running_daemon(home, env={"MEMQ_UPSTREAM": stub.url}) as running:
        with running.client() as client:
            for name in SEED:
                event = sample(name, session_id="laptop-session", cwd=str(repo))
                assert client.post("/api/events", json=event).is_success
        running.wait_idle()
        yield running


@pytest.fixture(scope="module")
def page(browser: Browser, daemon: Daemon) -> Iterator[Page]:
    yield from new_page(browser, daemon)


@pytest.fixture(scope="module")
def laptop_page(browser: Browser, laptop: Daemon) -> Iterator[Page]:
    yield from new_page(browser, laptop)


class TestTeamHits:
    def test_a_team_hit_is_labelled_and_opens_the_teams_record(
        self, laptop_page: Page, laptop: Daemon, stub: JsonStub, repo: Path
    ) -> None:
        page = laptop_page
        with laptop.client() as client:
            local = client.get("/api/records", params={"ids": "#1"}).json()["items"][0]
        assert local["title"] != TEAM_TITLE  # the laptop's own #1 is another record
        visit(page, "search")
        page.fill("#search-q", "hello")
        page.fill("#search-project", str(repo))
        page.locator("#search-form button[type=submit]").click()
        hit = page.locator('#search-results li[data-ref="team#1"]')
        hit.wait_for()
        assert hit.locator(".team").inner_text() == "team"
        assert hit.locator(".author").inner_text() == "[bob]"
        assert hit.locator(".author").get_attribute("title") == "machine: bob-desktop"
        assert "team#1" in hit.locator(".meta").inner_text()
        # The laptop's own hits are there too, unlabelled: made here, by this machine's user.
        own = page.locator("#search-results li:not(.team-hit)")
        assert own.count() >= 1
        assert own.locator(".author, .team").count() == 0
        hit.locator("button").click()
        record = page.locator("#record")
        record.locator("h3").wait_for()
        heading = record.locator("h3").inner_text()
        assert TEAM_TITLE in heading
        assert "team#1" in heading
        assert record.locator("h3 .team").inner_text() == "team"
        assert "bob's own words" in record.inner_text()
        assert str(local["title"]) not in record.inner_text()
        assert "team server" in record.inner_text()
        assert record.locator("#timeline").count() == 0  # the server's session, not ours
        assert ("/api/team/v1/records", {"ref": ["#1"]}) in [(a.path, a.query) for a in stub.asked]

    def test_a_team_record_the_server_does_not_give_is_an_error_not_a_local_record(
        self, laptop_page: Page, repo: Path
    ) -> None:
        page = laptop_page
        visit(page, "search")
        page.fill("#search-q", "hello")
        page.fill("#search-project", str(repo))
        page.locator("#search-form button[type=submit]").click()
        hit = page.locator('#search-results li[data-ref="team#2"]')
        hit.wait_for()
        page.evaluate("() => { document.getElementById('record').hidden = true; }")
        hit.locator("button").click()
        error = page.locator("#error")
        error.wait_for()
        assert "team#2" in error.inner_text()
        assert "team key may not read" in error.inner_text()
        assert page.locator("#record").is_hidden()  # nothing opened: no local #2 either
