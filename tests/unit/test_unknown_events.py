"""Events memq's hooks do not subscribe to (issue 10, item 4): how they are classified, and
that they neither link a fork nor mark a session seen.

Claude Code sends them when another hook or a plugin routes every event to ``memq hook``:
InstructionsLoaded with a throw-away session id after each resume, and with a fork's own id
just before the fork's first prompt.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import pytest

from memq.events import SUBSCRIBED_EVENTS, kind_of, may_link_fork, route_event
from memq.queue import MessageKind, Queue
from memq.queue.testing import ManualClock
from memq.worker.forks import ForkLinker

FIXTURES = Path(__file__).parents[1] / "fixtures" / "claude-code"
SEQUENCE = [
    json.loads(line)["payload"]
    for line in (FIXTURES / "hooks.sequence.jsonl").read_text().splitlines()
    if line.strip()
]
CAPTURED = sorted({payload["hook_event_name"] for payload in SEQUENCE})
UNSUBSCRIBED = [name for name in CAPTURED if name not in SUBSCRIBED_EVENTS]
FORK_ID = "75d813a0-9e31-4855-b2a6-54f62d4cd8ba"


class TestClassification:
    def test_the_captured_run_holds_many_events_memq_does_not_install(self) -> None:
        """The fixture is the whole run: what these tests rely on is in it."""
        assert set(SUBSCRIBED_EVENTS) <= set(CAPTURED)
        assert {"InstructionsLoaded", "PreToolUse", "Setup", "MessageDisplay"} <= set(UNSUBSCRIBED)

    @pytest.mark.parametrize("name", UNSUBSCRIBED)
    def test_an_unsubscribed_event_is_kept_as_unsubscribed(self, name: str) -> None:
        """Each captured event memq does not install routes to its session as kind
        unsubscribed, with a dedupe key of its own when the hook tagged it."""
        payload = next(p for p in SEQUENCE if p["hook_event_name"] == name)
        route = route_event({**payload, "memq_event_id": "e-1"})
        assert route.kind == MessageKind.UNSUBSCRIBED.value
        assert route.session_key == f"claude-code:{payload['session_id']}"
        assert route.dedupe_key is not None
        assert route.dedupe_key.startswith(f"{name}:")
        assert (route.subscribed, route.may_link_fork) == (False, False)

    @pytest.mark.parametrize(
        ("name", "kind"),
        [
            ("SessionStart", MessageKind.EVENT),
            ("UserPromptSubmit", MessageKind.PROMPT),
            ("PostToolUse", MessageKind.OBSERVATION),
            ("PostToolUseFailure", MessageKind.OBSERVATION),
            ("Stop", MessageKind.SUMMARIZE),
            ("SessionEnd", MessageKind.SESSION_END),
        ],
    )
    def test_a_subscribed_event_keeps_its_kind(self, name: str, kind: MessageKind) -> None:
        assert kind_of(name) == kind.value
        assert route_event({"hook_event_name": name, "session_id": "s"}).subscribed

    @pytest.mark.parametrize("name", ["", "sessionstart", "Stop ", "Notification", "X" * 200])
    def test_a_name_memq_never_heard_of_is_unsubscribed(self, name: str) -> None:
        """Matching is exact: a new or misspelt event is never taken for one of memq's."""
        assert kind_of(name) == MessageKind.UNSUBSCRIBED
        assert not may_link_fork(name, "claude-code:s")

    def test_only_subscribed_events_after_a_sessions_start_may_link_a_fork(self) -> None:
        """A fork's first event may be any of memq's events but SessionStart (a session
        that starts itself is not a fork); no unsubscribed event may."""
        names = [*SUBSCRIBED_EVENTS, *UNSUBSCRIBED]
        linking = {name for name in names if may_link_fork(name, "claude-code:s")}
        assert linking == set(SUBSCRIBED_EVENTS) - {"SessionStart"}

    @pytest.mark.parametrize("assistant", ["codex", "gemini-cli", "cursor", "opencode"])
    def test_only_claude_code_sessions_may_be_linked_as_forks(self, assistant: str) -> None:
        """The others resume under the session's own id: a new session of theirs beside a
        resumed session is no fork of it."""
        assert not any(may_link_fork(name, f"{assistant}:s") for name in SUBSCRIBED_EVENTS)

    def test_the_event_argument_decides_the_kind(self) -> None:
        """``memq hook InstructionsLoaded`` writes the name into the payload it routes."""
        payload = {**SEQUENCE[0], "hook_event_name": "InstructionsLoaded"}
        assert route_event(payload).kind == "unsubscribed"


class FakeQueue:
    """Records the look-ups the linker makes: its read on the reader (which finds a resume
    nearby, so the writer is asked) and the transactions it asks the writer to run."""

    def __init__(self) -> None:
        self.clock = ManualClock()
        self.reads: list[Any] = []
        self.transactions: list[Callable[[Any], Awaitable[Any]]] = []

    async def read(self, sql: str, parameters: Any = ()) -> list[dict[str, int]]:
        self.reads.append(parameters)
        return [{"found": 1}]

    async def run_in_transaction(self, fn: Callable[[Any], Awaitable[Any]]) -> None:
        self.transactions.append(fn)  # a look-up that finds no parent


def linker_on(fake: FakeQueue) -> ForkLinker:
    return ForkLinker(cast(Queue, fake))


def deliver(linker: ForkLinker, name: str, session_id: str = FORK_ID) -> Awaitable[None]:
    payload = {"session_id": session_id, "hook_event_name": name, "cwd": "/home/dev/project"}
    route = route_event(payload)
    return linker.before_enqueue(route.session_key, route.event, payload)


class TestForkLinker:
    @pytest.mark.parametrize("name", UNSUBSCRIBED)
    async def test_an_unsubscribed_first_event_leaves_the_session_unseen(self, name: str) -> None:
        """The fork's InstructionsLoaded comes before its first prompt: it must neither look
        for a parent nor mark the fork seen, so that the prompt still links it."""
        fake = FakeQueue()
        linker = linker_on(fake)
        await deliver(linker, name)
        assert (fake.reads, fake.transactions) == ([], [])
        assert f"claude-code:{FORK_ID}" not in linker
        await deliver(linker, "UserPromptSubmit")
        assert len(fake.transactions) == 1
        assert f"claude-code:{FORK_ID}" in linker

    async def test_a_session_start_marks_its_session_seen_without_a_look_up(self) -> None:
        fake = FakeQueue()
        linker = linker_on(fake)
        await deliver(linker, "SessionStart")
        await deliver(linker, "UserPromptSubmit")
        assert fake.transactions == []
        assert f"claude-code:{FORK_ID}" in linker

    async def test_unsubscribed_events_of_a_seen_session_change_nothing(self) -> None:
        fake = FakeQueue()
        linker = linker_on(fake)
        await deliver(linker, "UserPromptSubmit")
        for name in UNSUBSCRIBED:
            await deliver(linker, name)
        assert len(fake.transactions) == 1
