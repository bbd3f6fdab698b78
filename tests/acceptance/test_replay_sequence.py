"""The whole captured Claude Code run through the real ``memq hook``, every event it sent.

``hooks.sequence.jsonl`` holds what Claude Code sent when every hook event was routed to one
command (another hook, or a plugin that routes everything): memq's own events and many it does
not subscribe to, among them ``InstructionsLoaded`` with a throw-away session id after each
resume, and with the fork's own id just before the fork's first prompt. Replayed with the
daemon up, and with the daemon down (every event through the hook's fallback), memq must link
the fork to its parent, list only the two real sessions, and keep every event it accepted.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from memq.env import DEFAULT_SKIP_TOOLS
from memq.events import SUBSCRIBED_EVENTS
from memq.privacy import is_skipped
from tests.acceptance.conftest import FIXTURES
from tests.acceptance.test_hook import hook, no_spawn
from tests.helpers.daemon import Daemon, free_port
from tests.helpers.rows import table

PARENT = "claude-code:c2c6f4bc-4c27-401e-9856-1cd43eb344f3"
CHILD = "claude-code:75d813a0-9e31-4855-b2a6-54f62d4cd8ba"
FORK_STEP = "fork"
# The hook waits this long for the daemon: on a busy test machine the defaults (a fraction of
# a second) could send an event through the fallback and make the daemon-up replay another test.
PATIENT_HOOK = {"MEMQ_HOOK_CONNECT_TIMEOUT": "5", "MEMQ_HOOK_TIMEOUT": "10"}


def steps() -> list[tuple[str, dict[str, Any]]]:
    """Each captured payload with the name of its step, in the order Claude Code sent them."""
    lines = (FIXTURES / "hooks.sequence.jsonl").read_text().splitlines()
    return [(item["step"], item["payload"]) for item in map(json.loads, lines) if item]


def key(payload: dict[str, Any]) -> str:
    return f"claude-code:{payload['session_id']}"


def accepted(payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The payloads memq stores: all but the calls of tools it skips."""
    return [p for p in payloads if not is_skipped(p, DEFAULT_SKIP_TOOLS)]


def send(home: Path, port: int, payload: dict[str, Any], **env: str) -> None:
    result = hook(home, port, payload, **env)
    assert (result.returncode, result.stderr) == (0, b""), payload["hook_event_name"]


def hook_log(home: Path) -> list[dict[str, Any]]:
    path = home / "logs" / "hook.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def own_rows(home: Path) -> list[dict[str, Any]]:
    """The queue rows of hook events (not the ids a fork reserved for its copies)."""
    return table(
        home / "memq.db",
        "SELECT * FROM pending_messages WHERE dedupe_key IS NULL OR dedupe_key NOT LIKE 'fork:%'"
        " ORDER BY id",
    )


def check_replayed(daemon: Daemon, payloads: list[dict[str, Any]]) -> None:
    """The fork is linked with a copy of its parent's memory; ``memq sessions`` lists the two
    real sessions and nothing else; every accepted event is one processed queue row of its
    session, unsubscribed ones included."""
    listed = daemon.memq("sessions", "--json")
    assert listed.returncode == 0, listed.stderr
    body = json.loads(listed.stdout)
    assert {item["key"] for item in body["items"]} == {PARENT, CHILD}
    assert body["total"] == 2
    text = daemon.memq("sessions")
    assert "(2 sessions)" in text.stdout
    assert f"(fork of {PARENT})" in text.stdout

    with daemon.client() as client:
        parent = client.get(f"/api/sessions/{PARENT}").json()
        fork = client.get(f"/api/sessions/{CHILD}").json()
        parent_prompts = [
            p["prompt"]
            for p in payloads
            if key(p) == PARENT and p["hook_event_name"] == "UserPromptSubmit"
        ]
        assert [p["text"] for p in parent["prompts"]] == parent_prompts
        assert fork["parent_key"] == PARENT
        assert [p["text"] for p in fork["prompts"]] == [*parent_prompts, "FAKE:text forked"]
        parent_observations = client.get(f"/api/sessions/{PARENT}/observations?limit=500")
        fork_observations = client.get(f"/api/sessions/{CHILD}/observations?limit=500")
        titles = [o["title"] for o in parent_observations.json()["items"]]
        assert len(titles) >= 5
        assert [o["title"] for o in fork_observations.json()["items"]] == titles
        # A throw-away id is no session, for every reader.
        for throwaway in {key(p) for p in payloads} - {PARENT, CHILD}:
            assert client.get(f"/api/sessions/{throwaway}").status_code == 404

    flags = table(
        daemon.home / "memq.db",
        "SELECT inherited FROM prompts WHERE session_key = ? ORDER BY number",
        CHILD,
    )
    assert [r["inherited"] for r in flags] == [1] * len(parent_prompts) + [0]

    stored = accepted(payloads)
    rows = own_rows(daemon.home)
    assert Counter(r["session_id"] for r in rows) == Counter(key(p) for p in stored)
    assert {r["status"] for r in rows} == {"processed"}
    unsubscribed = [p for p in stored if p["hook_event_name"] not in SUBSCRIBED_EVENTS]
    assert len(unsubscribed) > 20
    assert sum(r["kind"] == "unsubscribed" for r in rows) == len(unsubscribed)


def check_reachable_later(daemon: Daemon, **env: str) -> None:
    """A session that had only lifecycle events (the first run's) shows up with its first
    prompt, as any new session does."""
    first_run = next(p for step, p in steps() if step == "init")
    prompt = {
        **first_run,
        "hook_event_name": "UserPromptSubmit",
        "prompt": "now with a prompt",
        "prompt_id": "later-prompt",
    }
    send(daemon.home, daemon.port, prompt, **env)
    if daemon.process is None:
        daemon.start()
    daemon.wait_idle()
    (found,) = [i for i in sessions(daemon) if i["key"] == key(first_run)]
    assert (found["prompt_count"], found["title"], found["parent_key"]) == (
        1,
        "now with a prompt",
        None,
    )


def sessions(daemon: Daemon) -> list[dict[str, Any]]:
    listed = daemon.memq("sessions", "--json")
    assert listed.returncode == 0, listed.stderr
    items: list[dict[str, Any]] = json.loads(listed.stdout)["items"]
    return items


class TestReplayWithTheDaemonUp:
    def test_every_event_through_the_hook_links_the_fork_and_lists_real_sessions(
        self, daemon: Daemon
    ) -> None:
        """Each captured event is one ``memq hook`` process, as Claude Code runs it. Before the
        fork the worker catches up: in a real session the parent's last run ended well before
        it was forked, and a fork copies what memory holds."""
        payloads: list[dict[str, Any]] = []
        for step, payload in steps():
            if step == FORK_STEP and not any(key(p) == CHILD for p in payloads):
                daemon.wait_idle()
            send(daemon.home, daemon.port, payload, **PATIENT_HOOK)
            payloads.append(payload)
        daemon.wait_idle()
        assert hook_log(daemon.home) == []  # every event went to the daemon, none failed

        check_replayed(daemon, payloads)
        forked = [
            json.loads(line)
            for line in (daemon.home / "logs" / "memq.log").read_text().splitlines()
            if '"session.forked"' in line
        ]
        assert [(f["session_id"], f["parent"], f["automatic"]) for f in forked] == [
            (CHILD, PARENT, True)
        ]
        check_reachable_later(daemon, **PATIENT_HOOK)


class TestReplayWithTheDaemonDown:
    def test_every_event_through_the_fallback_links_the_fork_and_lists_real_sessions(
        self, tmp_path: Path
    ) -> None:
        """No daemon answers any event: the hook writes each one itself. The daemon runs only
        in between, to turn the parent's runs into memory before the fork (as above); the
        fork's events are written by the fallback too, which links it as the daemon would."""
        daemon = Daemon(tmp_path / "home", port=free_port())
        payloads: list[dict[str, Any]] = []
        try:
            for step, payload in steps():
                if step == FORK_STEP and not any(key(p) == CHILD for p in payloads):
                    daemon.start()
                    daemon.wait_idle()
                    daemon.stop()
                no_spawn(daemon.home)  # the test starts the daemon itself
                send(daemon.home, daemon.port, payload)
                payloads.append(payload)

            fell_back = [e for e in hook_log(daemon.home) if e["event"] == "hook.fallback"]
            assert len(fell_back) == len(accepted(payloads))
            assert [e.get("forked_from") for e in fell_back if e.get("forked_from")] == [PARENT]
            (linked,) = table(
                daemon.home / "memq.db",
                "SELECT parent_key FROM sessions WHERE key = ?",
                CHILD,
            )
            assert linked["parent_key"] == PARENT  # before the daemon saw the fork at all

            daemon.start()
            daemon.wait_idle()
            check_replayed(daemon, payloads)
            daemon.stop()
            no_spawn(daemon.home)
            check_reachable_later(daemon)
        finally:
            daemon.kill()
