"""A hypothesis state machine over enqueue, claim, ack, fail, release and crash-and-reopen.

Invariants checked after every step: no accepted message is lost, none is acked twice, each
session's acks follow its enqueue order (failed messages aside), attempts never exceed the
maximum, and what the database says matches the model.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from memq.queue import Claim, MessageStatus, Queue, QueueSettings, Transaction
from memq.queue.testing import simulate_crash
from tests.helpers.rows import all_rows, table

pytestmark = pytest.mark.slow

MAX_ATTEMPTS = 3
SESSIONS = st.sampled_from(["a", "b", "c"])
SETTINGS = QueueSettings(max_attempts=MAX_ATTEMPTS, retry_delay=0, change_check_interval=3600)


class QueueMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="memq-sm-"))
        self.db = self.dir / "q.db"
        conn = sqlite3.connect(self.db)
        conn.execute("CREATE TABLE results (message_id INTEGER NOT NULL UNIQUE)")
        conn.close()
        self.stack = ExitStack()
        self.portal: BlockingPortal = self.stack.enter_context(start_blocking_portal())
        self.queue: Queue = self.portal.call(Queue.open, self.db, SETTINGS)
        self.enqueued: dict[str, list[int]] = {"a": [], "b": [], "c": []}
        self.keys: dict[tuple[str, str], int] = {}
        self.held: dict[str, Claim] = {}
        self.acked: dict[str, list[int]] = {"a": [], "b": [], "c": []}
        self.failed: set[int] = set()
        self.attempts: dict[int, int] = {}  # counted attempts: claims, less releases

    def teardown(self) -> None:
        try:
            self.portal.call(self.queue.close)
        finally:
            self.stack.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    def head(self, session: str) -> int | None:
        done = set(self.acked[session]) | self.failed
        return next((m for m in self.enqueued[session] if m not in done), None)

    @rule(session=SESSIONS, key=st.none() | st.sampled_from(["k1", "k2"]))
    def enqueue(self, session: str, key: str | None) -> None:
        result = self.portal.call(self.queue.enqueue, session, "observation", {"s": session}, key)
        if key is not None and (session, key) in self.keys:
            assert result == (self.keys[(session, key)], False)
            return
        assert result.created
        self.enqueued[session].append(result.message_id)
        if key is not None:
            self.keys[(session, key)] = result.message_id

    @rule(session=SESSIONS)
    def claim(self, session: str) -> None:
        if session in self.held:
            return
        stream = self.queue.stream(session, linger=0)
        try:
            claim = self.portal.call(stream.__anext__)
        except StopAsyncIteration:
            assert self.head(session) is None, "a pending message was not claimable"
            return
        assert claim.message.id == self.head(session), "claims must follow enqueue order"
        self.attempts[claim.message.id] = self.attempts.get(claim.message.id, 0) + 1
        assert claim.message.attempts == self.attempts[claim.message.id]
        assert 1 <= claim.message.attempts <= MAX_ATTEMPTS
        self.held[session] = claim

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def ack(self, data: Any) -> None:
        session = data.draw(st.sampled_from(sorted(self.held)))
        claim = self.held.pop(session)
        message_id = claim.message.id

        async def record(tx: Transaction) -> None:
            await tx.execute("INSERT INTO results VALUES (?)", (message_id,))

        self.portal.call(claim.ack, record)
        assert message_id not in self.acked[session], "acked twice"
        self.acked[session].append(message_id)

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def fail(self, data: Any) -> None:
        session = data.draw(st.sampled_from(sorted(self.held)))
        claim = self.held.pop(session)
        status = self.portal.call(claim.fail, "boom")
        exhausted = claim.message.attempts >= MAX_ATTEMPTS
        assert status is (MessageStatus.FAILED if exhausted else MessageStatus.PENDING)
        if exhausted:
            self.failed.add(claim.message.id)

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def release(self, data: Any) -> None:
        session = data.draw(st.sampled_from(sorted(self.held)))
        claim = self.held.pop(session)
        self.portal.call(claim.release)
        self.attempts[claim.message.id] -= 1  # handed back unprocessed: not an attempt

    @rule()
    def crash_and_reopen(self) -> None:
        self.portal.call(simulate_crash, self.queue)
        for claim in self.held.values():
            if claim.message.attempts >= MAX_ATTEMPTS:
                self.failed.add(claim.message.id)  # the crash used up its last attempt
        self.held.clear()
        self.queue = self.portal.call(Queue.open, self.db, SETTINGS)

    def rows(self) -> dict[int, dict[str, Any]]:
        return {r["id"]: r for r in all_rows(self.db)}

    def result_ids(self) -> list[int]:
        return [r["message_id"] for r in table(self.db, "SELECT message_id FROM results")]

    @invariant()
    def nothing_lost_nothing_twice_order_kept_attempts_bounded(self) -> None:
        rows = self.rows()
        accepted = {m for ids in self.enqueued.values() for m in ids}
        assert set(rows) == accepted, "an accepted message is missing (or one appeared)"
        acked = [m for ids in self.acked.values() for m in ids]
        assert sorted(self.result_ids()) == sorted(acked), "results and acks disagree"
        assert {m for m, r in rows.items() if r["status"] == "processed"} == set(acked)
        assert {m for m, r in rows.items() if r["status"] == "failed"} == self.failed
        for ids in self.acked.values():
            assert ids == sorted(ids), "a session's acks left enqueue order"
        assert all(r["attempts"] <= MAX_ATTEMPTS for r in rows.values())
        assert {m: r["attempts"] for m, r in rows.items()} == {
            m: self.attempts.get(m, 0) for m in rows
        }, "attempts counted wrongly"
        held = {c.message.id for c in self.held.values()}
        assert {m for m, r in rows.items() if r["status"] == "processing"} == held


TestQueueStateMachine = QueueMachine.TestCase
TestQueueStateMachine.settings = settings(
    max_examples=40,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
