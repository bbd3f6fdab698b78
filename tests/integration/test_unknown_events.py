"""Events memq's hooks do not subscribe to, and sessions without a prompt or a tool call, on
real SQLite files (issue 10, item 4).

Which events create a session (``memq.memory.store``): a prompt, a tool call or a summary;
a SessionStart or a session end only update a session memory knows; an unsubscribed event
touches none. The fork link (``queries/fork.sql``) does not count an unsubscribed row as a
session's or a parent's activity, and the hook's fallback (``memq.hooks.fork_link``) links a
fork exactly as the daemon does.
"""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import pytest

from memq.events import route_event
from memq.hooks import fork_link, run
from memq.memory import MemoryStore, ObservationKind, ObservationRecord, ProcessResult
from memq.memory.fork import link_effect
from memq.memory.records import SummaryRecord, from_epoch_ms
from memq.queue import Queue, span
from memq.storage import schema
from memq.worker.forks import ForkLinker
from tests.helpers.daemon import free_port
from tests.helpers.memory import Item, Prompt
from tests.helpers.memory import settle as settle_session
from tests.helpers.memory import write as write_items
from tests.helpers.rows import table

PARENT_ID = "c2c6f4bc-4c27-401e-9856-1cd43eb344f3"
CHILD_ID = "75d813a0-9e31-4855-b2a6-54f62d4cd8ba"
OTHER_ID = "c9f4e45b-5385-44d4-9035-1094a42f7f3f"
PARENT = f"claude-code:{PARENT_ID}"
CHILD = f"claude-code:{CHILD_ID}"
OTHER = f"claude-code:{OTHER_ID}"
CWD = "/home/dev/project"
PARENT_ITEMS: list[Item] = [
    Prompt("Fix the flaky retry logic"),
    ObservationRecord(kind=ObservationKind.DISCOVERY, title="Read src/policy.py"),
    (
        ObservationRecord(kind=ObservationKind.CHANGE, title="Capped the backoff"),
        SummaryRecord(request="Fix the retry", completed="Capped the backoff"),
    ),
    Prompt("Now document the setting"),
]


def body(session_id: str, event: str, **extra: Any) -> dict[str, Any]:
    return {"session_id": session_id, "hook_event_name": event, "cwd": CWD, **extra}


async def deliver(
    queue: Queue, linker: ForkLinker, session_id: str, event: str, **extra: Any
) -> int:
    """What ``POST /api/events`` does with an event the hook sent: the linker, then the
    queue, with the hook's event id (so the row keeps a dedupe key once processed)."""
    payload = body(session_id, event, memq_event_id=f"{event}-{anyio.current_time()}", **extra)
    route = route_event(payload)
    await linker.before_enqueue(route.session_key, route.event, payload)
    return (
        await queue.enqueue(route.session_key, route.kind, payload, route.dedupe_key)
    ).message_id


async def settle(queue: Queue, store: MemoryStore, session: str) -> None:
    await settle_session(queue, store, session, project="project")


def session_rows(db_path: Path) -> list[dict[str, Any]]:
    return table(db_path, "SELECT * FROM sessions ORDER BY key")


def created_at(db_path: Path, message_id: int) -> int:
    (found,) = table(db_path, "SELECT created_at FROM pending_messages WHERE id = ?", message_id)
    return int(found["created_at"])


class TestSessionCreation:
    async def test_lifecycle_and_unsubscribed_events_alone_make_no_session(
        self, queue: Queue, store: MemoryStore, db_path: Path
    ) -> None:
        """Claude Code's setup run (Setup, SessionStart, InstructionsLoaded, SessionEnd) and
        throw-away ids leave no session to list; every event stays in the queue, processed."""
        linker = ForkLinker(queue)
        for event in ("Setup", "SessionStart", "InstructionsLoaded", "SessionEnd"):
            await deliver(queue, linker, OTHER_ID, event, source="startup")
        await deliver(queue, linker, CHILD_ID, "InstructionsLoaded")
        for session in (OTHER, CHILD):
            await settle(queue, store, session)
        assert session_rows(db_path) == []
        assert (await store.list_sessions()).total == 0
        assert await store.get_session(OTHER) is None
        kept = table(db_path, "SELECT session_id, kind, status FROM pending_messages ORDER BY id")
        assert [(r["session_id"], r["kind"]) for r in kept] == [
            (OTHER, "unsubscribed"),
            (OTHER, "event"),
            (OTHER, "unsubscribed"),
            (OTHER, "session_end"),
            (CHILD, "unsubscribed"),
        ]
        assert {r["status"] for r in kept} == {"processed"}

    async def test_the_first_prompt_creates_the_session_started_at_its_session_start(
        self, queue: Queue, store: MemoryStore, db_path: Path
    ) -> None:
        """A session that only started is reachable once it has real activity: its first
        prompt creates it, with its start time from its SessionStart."""
        linker = ForkLinker(queue)
        started = await deliver(queue, linker, OTHER_ID, "SessionStart", source="startup")
        await deliver(queue, linker, OTHER_ID, "InstructionsLoaded")
        await settle(queue, store, OTHER)
        await anyio.sleep(0.01)
        prompted = await deliver(
            queue, linker, OTHER_ID, "UserPromptSubmit", prompt="at last", prompt_id="p1"
        )
        await settle(queue, store, OTHER)
        detail = await store.get_session(OTHER)
        assert detail is not None
        assert (detail.title, detail.prompt_count, detail.ended_at) == ("at last", 1, None)
        assert detail.started_at == from_epoch_ms(created_at(db_path, started))
        assert detail.updated_at == from_epoch_ms(created_at(db_path, prompted))
        assert [s.key for s in (await store.list_sessions()).items] == [OTHER]

    @pytest.mark.parametrize(
        ("kind", "result"),
        [
            ("observation", ProcessResult()),
            ("summarize", ProcessResult()),
            (
                "event",
                ProcessResult(
                    observation=ObservationRecord(
                        kind=ObservationKind.OTHER, title="made by a processor"
                    )
                ),
            ),
        ],
    )
    async def test_a_tool_call_a_turn_or_a_record_creates_the_session(
        self, queue: Queue, store: MemoryStore, db_path: Path, kind: str, result: ProcessResult
    ) -> None:
        await queue.enqueue(OTHER, kind, body(OTHER_ID, "Any"))
        await settle_session(queue, store, OTHER, {1: result}, project="project")
        assert [r["key"] for r in session_rows(db_path)] == [OTHER]

    async def test_an_unsubscribed_event_leaves_a_known_session_alone(
        self, queue: Queue, store: MemoryStore, db_path: Path
    ) -> None:
        """Its time and directory stay; lifecycle events still end and reopen it."""
        linker = ForkLinker(queue)
        await deliver(queue, linker, OTHER_ID, "UserPromptSubmit", prompt="hi", prompt_id="p1")
        await settle(queue, store, OTHER)
        (before,) = session_rows(db_path)
        await anyio.sleep(0.01)
        await deliver(queue, linker, OTHER_ID, "CwdChanged", cwd="/elsewhere")
        await settle(queue, store, OTHER)
        assert session_rows(db_path) == [before]

        ended = await deliver(queue, linker, OTHER_ID, "SessionEnd")
        await settle(queue, store, OTHER)
        (after_end,) = session_rows(db_path)
        assert after_end["ended_at"] == created_at(db_path, ended)
        await deliver(queue, linker, OTHER_ID, "SessionStart", source="resume")
        await settle(queue, store, OTHER)
        (reopened,) = session_rows(db_path)
        assert reopened["ended_at"] is None
        assert reopened["started_at"] == before["started_at"]


async def resume_parent(queue: Queue, store: MemoryStore, linker: ForkLinker) -> None:
    """The parent has memory, then is resumed: its resuming SessionStart processed."""
    await write_items(queue, store, PARENT_ITEMS, session=PARENT, project="project", cwd=CWD)
    await deliver(queue, linker, PARENT_ID, "SessionStart", source="resume")
    await settle(queue, store, PARENT)


def parent_of(db_path: Path, key: str) -> str | None:
    rows = table(db_path, "SELECT parent_key FROM sessions WHERE key = ?", key)
    return rows[0]["parent_key"] if rows else None


class TestForkLink:
    async def test_the_forks_instructions_loaded_before_its_prompt(
        self, queue: Queue, store: MemoryStore, db_path: Path
    ) -> None:
        """The captured fork: InstructionsLoaded with the fork's id, processed, then its
        first prompt, even from a daemon restarted in between (nothing seen): linked."""
        linker = ForkLinker(queue)
        await resume_parent(queue, store, linker)
        await deliver(queue, linker, CHILD_ID, "InstructionsLoaded")
        await settle(queue, store, CHILD)
        restarted = ForkLinker(queue)
        await deliver(queue, restarted, CHILD_ID, "UserPromptSubmit", prompt="x", prompt_id="p")
        assert parent_of(db_path, CHILD) == PARENT

    async def test_unsubscribed_events_of_the_parent_after_its_resume(
        self, queue: Queue, store: MemoryStore, db_path: Path
    ) -> None:
        """Claude Code may send InstructionsLoaded with the parent's own id after the resume;
        the resume is still the parent's latest activity."""
        linker = ForkLinker(queue)
        await resume_parent(queue, store, linker)
        await deliver(queue, linker, PARENT_ID, "InstructionsLoaded")
        await deliver(queue, linker, CHILD_ID, "UserPromptSubmit", prompt="x", prompt_id="p")
        assert parent_of(db_path, CHILD) == PARENT

    async def test_a_subscribed_event_of_the_parent_after_its_resume_still_prevents_it(
        self, queue: Queue, store: MemoryStore, db_path: Path
    ) -> None:
        linker = ForkLinker(queue)
        await resume_parent(queue, store, linker)
        await deliver(queue, linker, PARENT_ID, "UserPromptSubmit", prompt="on", prompt_id="p0")
        await deliver(queue, linker, CHILD_ID, "UserPromptSubmit", prompt="x", prompt_id="p")
        assert parent_of(db_path, CHILD) is None

    async def test_the_fallback_links_as_the_daemon_does(
        self, queue: Queue, store: MemoryStore, db_path: Path
    ) -> None:
        """One parent, linked once by the daemon (``link_effect``) and once by the hook's
        fallback (``fork_link``, its own sqlite3 connection): the same session row, the same
        copies, in the same order, each before the fork's own event."""
        linker = ForkLinker(queue)
        await resume_parent(queue, store, linker)
        daemon_link = link_effect(CHILD, CWD, window=span(3600))
        assert (await queue.run_in_transaction(daemon_link)) is not None
        route = route_event(body(OTHER_ID, "PostToolUse", tool_use_id="t1"))
        assert fork_link.link_before_storing(str(db_path.parent), route, CWD, 2.0) == PARENT
        # Linked once: known now, to the fallback and to the daemon alike.
        assert fork_link.link_before_storing(str(db_path.parent), route, CWD, 2.0) is None
        assert (await queue.run_in_transaction(link_effect(OTHER, CWD, window=span(1)))) is None

        def shape(key: str) -> dict[str, Any]:
            (session,) = table(db_path, "SELECT * FROM sessions WHERE key = ?", key)
            ignored = {"key", "external_id", "started_at", "updated_at", "created_at", "forked_at"}
            copies = {
                name: [
                    {k: v for k, v in r.items() if k not in ("id", "message_id", "session_key")}
                    for r in table(
                        db_path,
                        f"SELECT * FROM {name} WHERE session_key = ? ORDER BY message_id",
                        key,
                    )
                ]
                for name in ("prompts", "observations", "summaries")
            }
            reserved = table(
                db_path,
                "SELECT kind, status, dedupe_key FROM pending_messages WHERE session_id = ?"
                " ORDER BY id",
                key,
            )
            return {
                "session": {k: v for k, v in session.items() if k not in ignored},
                **copies,
                "reserved": reserved,
            }

        assert shape(OTHER) == shape(CHILD)
        assert shape(CHILD)["session"]["parent_key"] == PARENT
        assert len(shape(CHILD)["prompts"]) == 2

    @pytest.mark.parametrize(
        ("event", "cwd"),
        [("SessionStart", CWD), ("InstructionsLoaded", CWD), ("UserPromptSubmit", None)],
    )
    def test_the_fallback_does_not_look_for_events_that_cannot_link(
        self, tmp_path: Path, event: str, cwd: str | None
    ) -> None:
        """Nothing is opened (no database is even created) for a SessionStart, an
        unsubscribed event, or an event without a directory."""
        route = route_event(body(CHILD_ID, event))
        assert fork_link.link_before_storing(str(tmp_path), route, cwd, 2.0) is None
        assert list(tmp_path.iterdir()) == []


class TestFallbackLinkFailure:
    def test_a_failed_link_costs_only_the_link(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The hook, the daemon away: the link raises, the event is stored all the same, and
        hook.log says why."""
        home = tmp_path / "home"
        home.mkdir()
        (home / "spawn.stamp").write_text("0\n")  # start no daemon

        def broken(*args: object) -> str | None:
            raise OSError("disk on fire")

        monkeypatch.setattr(fork_link, "link_before_storing", broken)
        monkeypatch.setenv("MEMQ_HOME", str(home))
        monkeypatch.setenv("MEMQ_PORT", str(free_port()))
        payload = body(CHILD_ID, "UserPromptSubmit", prompt="x", prompt_id="p")
        assert run.main([], stdin=io.BytesIO(json.dumps(payload).encode())) == 0
        (stored,) = table(home / "memq.db", "SELECT session_id, kind FROM pending_messages")
        assert stored == {"session_id": CHILD, "kind": "prompt"}
        lines = [json.loads(line) for line in (home / "logs" / "hook.log").read_text().splitlines()]
        (fell_back,) = [line for line in lines if line["event"] == "hook.fallback"]
        assert fell_back["fork_link_error"] == "OSError: disk on fire"


class TestEmptySessionsFromEarlierVersions:
    def test_the_migration_drops_record_less_sessions_and_keeps_the_rest(
        self, tmp_path: Path
    ) -> None:
        """Rows an earlier memq made for throwaway ids and setup runs go; a session with a
        prompt, a set title, settings or a fork stays."""
        path = tmp_path / "old.db"
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            schema.migrate(conn, schema.available_migrations()[:8])
            keys = ["empty-1", "empty-2", "prompted", "titled", "configured", "parent", "fork"]
            for key in keys:
                conn.execute(
                    "INSERT INTO sessions (key, assistant, external_id, started_at, updated_at,"
                    " created_at) VALUES (?, 'claude-code', ?, 1, 1, 1)",
                    (f"claude-code:{key}", key),
                )
            conn.execute(
                "INSERT INTO prompts (message_id, session_key, number, text, created_at)"
                " VALUES (1, 'claude-code:prompted', 1, 'hello', 1)"
            )
            conn.execute(
                "UPDATE sessions SET title = 'mine', title_edited = 1"
                " WHERE key = 'claude-code:titled'"
            )
            conn.execute(
                "INSERT INTO session_config (session_key, name, value, updated_at)"
                " VALUES ('claude-code:configured', 'paused', 'true', 1)"
            )
            conn.execute(
                "UPDATE sessions SET parent_key = 'claude-code:parent', forked_at = 1"
                " WHERE key = 'claude-code:fork'"
            )
            conn.execute(
                "INSERT INTO pending_messages (session_id, kind, payload, available_at,"
                " created_at) VALUES ('claude-code:empty-1', 'event', '{}', 1, 1)"
            )
            schema.migrate(conn)
        finally:
            conn.close()
        kept = {row["key"] for row in table(path, "SELECT key FROM sessions")}
        assert kept == {
            f"claude-code:{key}" for key in ("prompted", "titled", "configured", "parent")
        }
        assert len(table(path, "SELECT id FROM pending_messages")) == 1  # the queue is untouched
