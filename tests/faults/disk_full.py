"""A full disk under a running daemon: the reserve is released, then spent, then room returns.

    reserve_released_then_spent   events, then the disk fills, twice, then room comes back
    ack_on_full_disk              a message whose processing outlasts the room: its ack
                                  cannot be written, nor can its hand-back

The daemon runs as a real process with ``MEMQ_HOME`` on a real 16 MiB tmpfs (root only; the
driver raises ``FaultSkipped`` otherwise) and a 2 MiB reserve. Events go through the real
``memq hook`` command, one process each; a few "probe" events are posted straight to the API
to see its answers. The disk is filled by a filler file, twice:

    1. filled: the next write runs out of space, the daemon deletes its reserve and goes on.
       Every event is still taken (the hook exits 0 having stored it), probes get 202, and
       ``memq status`` (text and --json) and ``/api/health`` say "disk full".
    2. the daemon frozen a moment (SIGSTOP): hooks store their events in the database
       themselves; the disk is filled again, the reserve's room eaten too; the daemon wakes
       to a backlog it cannot claim: writes fail again, so it refuses new events (a probe
       gets 503 with ``reason: disk_full``), and says so. A hook then has nowhere to keep
       its event: not acknowledged (nothing stored), not lost.
    3. the fillers deleted: within seconds the daemon makes its reserve again and processes
       every acknowledged event, the backlog whose claims failed on the full disk included
       (before, a failed claim left its session unscheduled until another event came, and a
       failed ack left it claimed until the lease ran out, minutes later).

``ack_on_full_disk`` processes with a model API (a fake one in this process) whose answer
for one message takes a few seconds; meanwhile the disk fills up entirely, so neither the
ack nor the deferral after it can be written. The session must be given back at once and the
message processed within seconds of room returning (before, the claim stayed held until the
lease watchdog took it back, minutes later, every new stream of the session meeting
``SessionBusyError``).

An event counts as acknowledged when, once its hook has exited, it is in the database or the
spool: what memq took, whatever the assistant saw (a hook always exits 0). ``kept`` counts the
acknowledged events found exactly once in the queue, processed, after recovery. A check that
does not hold raises ``AssertionError`` saying what was seen.
"""

from __future__ import annotations

import contextlib
import json
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.faults import FaultReport, FaultSkipped
from tests.faults.kit import queue_statuses, run_hook, tool_call
from tests.helpers.daemon import Daemon
from tests.helpers.fake_llm import FakeLLM, Reply, anthropic_text, settings_env
from tests.helpers.tmpfs import MIB, TmpfsUnavailable, fill_disk, mounted_tmpfs

DISK_BYTES = 16 * MIB
RESERVE_BYTES = 2 * MIB
SESSION_ID = "disk-full"
EVENTS_BEFORE = 3
EVENTS_WHILE_RELEASED = 5
EVENTS_WHILE_FROZEN = 3
MODEL_ANSWER_SECONDS = 4.0  # the slow answer, during which the disk fills
OBSERVATION = {
    "kind": "command",
    "title": "Ran echo",
    "subtitle": "",
    "narrative": "The assistant ran echo.",
    "facts": [],
    "concepts": [],
    "files_read": [],
    "files_modified": [],
}
MAX_EVENTS_TO_FILL = 40  # hooks sent, at most, before the daemon must notice the full disk
RECOVERY_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class DiskFullReport(FaultReport):
    """A ``FaultReport`` with what this scenario also saw.

    Args:
        probes: each probe posted to the API: (the disk state ``/api/health`` gave just
            before, the HTTP status it got).
        refused: hook events that found nowhere to be stored once the reserve was spent.
        status_exit: ``memq status``'s exit status while the disk was full (non-zero).
        status_text: what ``memq status`` printed then.
    """

    probes: tuple[tuple[str, int], ...] = ()
    refused: int = 0
    status_exit: int = 0
    status_text: str = field(default="", repr=False)


def event(name: str) -> dict[str, Any]:
    """One tool call's hook payload; its dedupe key is ``tool:<name>``."""
    return tool_call(
        SESSION_ID, name, cwd="/tmp/disk-full-project", echo=name, stdout=f"{name}\n" * 20
    )


class _Scenario:
    """One run: the daemon, what was sent, and what memq took."""

    def __init__(self, disk: Path, daemon: Daemon) -> None:
        self.disk = disk
        self.daemon = daemon
        self.home = daemon.home
        self.sent = 0
        self.acknowledged: list[str] = []  # dedupe keys of the events memq took
        self.refused = 0
        self.probes: list[tuple[str, int]] = []
        self.fillers: list[Path] = []

    # -- sending ----------------------------------------------------------------------------

    def hook(self, name: str) -> bool:
        """Send one event through ``memq hook``; whether memq took it (database or spool)."""
        # Kept from spawning: the daemon is up, a hook that falls back must not start another.
        result = run_hook(self.home, self.daemon.port, event(name))
        assert result.returncode == 0, f"memq hook exited {result.returncode}"
        self.sent += 1
        key = f"tool:{name}"
        taken = self.stored([key])[key] > 0 or self.spooled(name)
        if taken:
            self.acknowledged.append(key)
        return taken

    def probe(self, name: str) -> httpx.Response:
        """Post one event straight to the API (as the hook does); note the disk state first."""
        state = self.disk_state()
        with self.daemon.client() as client:
            response = client.post("/api/events", json=event(name))
        self.sent += 1
        if response.status_code in (200, 202):
            self.acknowledged.append(f"tool:{name}")
        self.probes.append((state, response.status_code))
        return response

    # -- looking ----------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        answer: dict[str, Any] = httpx.get(f"{self.daemon.url}/api/health", timeout=5).json()
        return answer

    def disk_state(self) -> str:
        return str(self.health()["disk"]["state"])

    def stored(self, keys: list[str]) -> dict[str, int]:
        """Rows per dedupe key in the queue (read-only, beside the running daemon)."""
        return {key: n for key, (n, _) in self.rows(keys).items()}

    def rows(self, keys: list[str]) -> dict[str, tuple[int, set[str]]]:
        """(rows, their statuses) per dedupe key."""
        found = queue_statuses(self.home / "memq.db", SESSION_ID)
        return {key: (len(found.get(key, [])), set(found.get(key, []))) for key in keys}

    def spooled(self, name: str) -> bool:
        spool = self.home / "spool"
        if not spool.is_dir():
            return False
        return any(
            name.encode() in path.read_bytes()
            for path in spool.glob("*.event")
            if not path.name.startswith(".")
        )

    def reserve_ready(self) -> bool:
        path = self.home / "reserve"
        try:
            info = path.stat()
        except FileNotFoundError:
            return False
        return info.st_size == RESERVE_BYTES and info.st_blocks * 512 >= RESERVE_BYTES

    def status(self) -> tuple[int, str, dict[str, Any]]:
        text = self.daemon.memq("status")
        as_json = self.daemon.memq("status", "--json")
        return text.returncode, text.stdout + text.stderr, json.loads(as_json.stdout)

    # -- the phases -------------------------------------------------------------------------

    def fill(self) -> None:
        filler = self.disk / f"filler-{len(self.fillers)}"
        self.fillers.append(filler)
        fill_disk(filler)

    def wait_for_state(self, state: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while (seen := self.disk_state()) != state:
            if time.monotonic() > deadline:
                raise AssertionError(f"the disk still {seen!r}, not {state!r}, after {timeout} s")
            time.sleep(0.05)

    def frozen_then_filled(self) -> None:
        """SIGSTOP the daemon, let hooks store events themselves, fill the disk, SIGCONT."""
        process = self.daemon.process
        assert process is not None
        process.send_signal(signal.SIGSTOP)
        try:
            for index in range(EVENTS_WHILE_FROZEN):
                assert self.hook(f"frozen-{index}"), "a hook could not store its event"
            self.fill()
        finally:
            process.send_signal(signal.SIGCONT)

    def send_until(self, phase: str, state: str) -> int:
        """Send hook events until ``/api/health`` gives ``state``; returns how many."""
        for index in range(MAX_EVENTS_TO_FILL):
            if not self.hook(f"{phase}-{index}") and state != "full":
                raise AssertionError(f"{phase}-{index} was not stored, the reserve not yet spent")
            seen = self.disk_state()
            if seen == state:
                return index + 1
            if state != "full" and seen == "full":
                raise AssertionError(f"the disk went {seen!r} before {state!r}")
        raise AssertionError(f"{MAX_EVENTS_TO_FILL} events sent and the daemon still not {state}")

    def run(self) -> DiskFullReport:
        daemon = self.daemon
        assert self.reserve_ready(), "no reserve of really allocated blocks at start"
        assert self.disk_state() == "ok"
        for index in range(EVENTS_BEFORE):
            assert self.hook(f"before-{index}"), "an event was not stored on an empty disk"
        daemon.wait_idle()

        # 1. Full: the reserve goes, memq goes on. The event that meets the full disk
        # first is taken too (202), not refused.
        self.fill()
        first = self.probe("probe-first")
        assert first.status_code == 202, f"the first write on a full disk got {first.text}"
        self.send_until("filled", "reserve_released")
        assert not (self.home / "reserve").exists(), "the reserve was not deleted"
        for index in range(EVENTS_WHILE_RELEASED):
            assert self.hook(f"released-{index}"), "an event was refused with the reserve free"
        for index in range(2):
            answer = self.probe(f"probe-released-{index}")
            assert answer.status_code == 202, f"reserve released, yet {answer.status_code}"
        health = self.health()
        assert health["status"] == "disk_full", health
        code, text, as_json = self.status()
        assert code != 0, "memq status exited 0 on a full disk"
        assert "disk full" in text, text
        assert as_json["disk"]["state"] == "reserve_released", as_json["disk"]

        # 2. Full again, the reserve's room eaten too, and a backlog it cannot claim: new
        # events are refused.
        self.frozen_then_filled()
        self.wait_for_state("full", timeout=10)  # the failed claims alone say so
        before = len(self.acknowledged)
        sent = self.send_until("spent", "full")
        self.refused = sent - (len(self.acknowledged) - before)
        refused = self.probe("probe-spent")
        body = refused.json()
        assert refused.status_code == 503, f"the reserve spent, yet {refused.status_code}"
        assert body.get("reason") == "disk_full", body
        assert "disk full" in body.get("error", ""), body
        status_exit, status_text, as_json = self.status()
        assert status_exit != 0, "memq status exited 0 on a full disk"
        assert "disk full" in status_text, status_text
        assert as_json["disk"]["state"] == "full", as_json["disk"]
        waiting = as_json["counts"]["pending"] + as_json["counts"]["processing"]
        assert waiting >= EVENTS_WHILE_FROZEN, as_json["counts"]
        assert all(status == 503 for state, status in self.probes if state == "full")
        assert all(status == 202 for state, status in self.probes if state != "full")

        # 3. Room again.
        started = time.monotonic()
        for filler in self.fillers:
            filler.unlink()
        recovery = self.wait_recovered(started)

        for index in range(3):
            assert self.hook(f"after-{index}"), "an event was not stored after recovery"
        daemon.wait_idle()
        counts = self.rows(self.acknowledged)
        kept = sum(
            1 for count, statuses in counts.values() if count == 1 and statuses == {"processed"}
        )
        return DiskFullReport(
            scenario="disk full: reserve released, spent, room back",
            sent=self.sent,
            acknowledged=len(self.acknowledged),
            kept=kept,
            recovery_seconds=recovery,
            probes=tuple(self.probes),
            refused=self.refused,
            status_exit=status_exit,
            status_text=status_text,
        )

    def wait_recovered(self, started: float) -> float:
        """Seconds from the room coming back until the disk is OK again, the reserve made,
        and every acknowledged event processed once."""
        deadline = started + RECOVERY_TIMEOUT_SECONDS
        seen: Any = None
        while time.monotonic() < deadline:
            rows = self.rows(self.acknowledged)
            done = all(n == 1 and statuses == {"processed"} for n, statuses in rows.values())
            state = self.disk_state()
            seen = (state, self.reserve_ready(), {k: v for k, v in rows.items() if v[0] != 1})
            if done and state == "ok" and self.reserve_ready():
                return time.monotonic() - started
            time.sleep(0.1)
        raise AssertionError(f"not recovered {RECOVERY_TIMEOUT_SECONDS:g} s after: {seen}")


class _SlowAck(_Scenario):
    """``ack_on_full_disk``: see the module docstring."""

    def __init__(self, disk: Path, daemon: Daemon, fake: FakeLLM) -> None:
        super().__init__(disk, daemon)
        self.fake = fake

    def wait_for_model_requests(self, count: int, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while len(self.fake.requests) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.fake.requests)} model requests, not {count}")
            time.sleep(0.02)

    def run(self) -> DiskFullReport:
        assert self.reserve_ready(), "no reserve of really allocated blocks at start"
        assert self.hook("before-0"), "an event was not stored on an empty disk"
        self.daemon.wait_idle()
        self.fill()
        # Its enqueue releases the reserve; its model answer takes MODEL_ANSWER_SECONDS.
        assert self.hook("in-flight"), "an event was refused with the reserve free"
        assert self.disk_state() == "reserve_released"
        self.wait_for_model_requests(2)
        self.fill()  # the released room too: the ack, and its hand-back, cannot be written
        self.wait_for_state("full", timeout=MODEL_ANSWER_SECONDS + 10)
        (count, statuses) = self.rows(["tool:in-flight"])["tool:in-flight"]
        assert count == 1
        assert statuses <= {"processing", "pending"}, statuses
        status_exit, status_text, _ = self.status()
        started = time.monotonic()
        for filler in self.fillers:
            filler.unlink()
        recovery = self.wait_recovered(started)
        counts = self.rows(self.acknowledged)
        return DiskFullReport(
            scenario="disk full under an ack (slow model answer)",
            sent=self.sent,
            acknowledged=len(self.acknowledged),
            kept=sum(1 for n, statuses in counts.values() if n == 1 and statuses == {"processed"}),
            recovery_seconds=recovery,
            status_exit=status_exit,
            status_text=status_text,
        )


def small_disk(stack: contextlib.ExitStack, scratch: Path) -> Path:
    """A tmpfs of ``DISK_BYTES`` mounted for the scenario (``stack`` unmounts it);
    ``FaultSkipped`` without root or tmpfs."""
    try:
        return stack.enter_context(mounted_tmpfs(scratch / "disk", DISK_BYTES))
    except TmpfsUnavailable as why:
        raise FaultSkipped(str(why)) from None


def daemon_on(stack: contextlib.ExitStack, disk: Path, env: dict[str, str] | None = None) -> Daemon:
    """A real daemon started with its home on ``disk`` and a reserve of ``RESERVE_BYTES``
    (``stack`` kills it)."""
    daemon = Daemon(disk / "home", env={"MEMQ_RESERVE_BYTES": str(RESERVE_BYTES), **(env or {})})
    daemon.start()
    stack.callback(daemon.kill)
    return daemon


def ack_on_full_disk(scratch: Path) -> DiskFullReport:
    """The ack scenario (see the module docstring); ``FaultSkipped`` without root or tmpfs."""
    with contextlib.ExitStack() as stack:
        disk = small_disk(stack, scratch)
        fake = stack.enter_context(FakeLLM.running())
        answer = anthropic_text(json.dumps(OBSERVATION))
        slow = Reply(status=answer.status, json=answer.json, delay=MODEL_ANSWER_SECONDS)
        fake.script(answer, slow, *[answer] * 10)
        env = {
            "MEMQ_PROCESSOR": "anthropic",
            **settings_env("anthropic", fake.url, MEMQ_LLM_TIMEOUT="30"),
        }
        return _SlowAck(disk, daemon_on(stack, disk, env), fake).run()


def reserve_released_then_spent(scratch: Path) -> DiskFullReport:
    """The scenario (see the module docstring); ``FaultSkipped`` without root or tmpfs."""
    with contextlib.ExitStack() as stack:
        disk = small_disk(stack, scratch)
        return _Scenario(disk, daemon_on(stack, disk)).run()


SCENARIOS = [reserve_released_then_spent, ack_on_full_disk]
