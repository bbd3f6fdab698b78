"""A hypothesis state machine over enqueue, claim, ack, fail, release and crash-and-reopen.

Invariants checked after every step: no accepted message is lost, none is acked twice, each
session's acks follow its enqueue order (failed messages aside), attempts never exceed the
maximum, and what the database says matches the model.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from memq.queue import Claim, MessageStatus, QueueSettings, Transaction
from tests.helpers.backends import SQLITE, Backend, PgBackend, make_backend

pytestmark = pytest.mark.slow

MAX_ATTEMPTS = 3
SESSIONS = st.sampled_from(["a", "b", "c"])
SETTINGS = QueueSettings(max_attempts=MAX_ATTEMPTS, retry_delay=0, change_check_interval=3600)
RESULTS_TABLE = "CREATE TABLE IF NOT EXISTS results (message_id INTEGER NOT NULL UNIQUE)"
# PostgreSQL: one schema for the whole run, emptied once each example's queue is open (a
# fresh schema's migrations would cost more than the example). Daemons that closed have
# unregistered; a crashed one's row is swept by the next open.
EMPTY = "TRUNCATE pending_messages, session_leases, results RESTART IDENTITY"


class QueueMachine(RuleBasedStateMachine):
    def __init__(self, shared: PgBackend | None = None) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="memq-sm-"))
        self.backend: Backend = shared or make_backend(SQLITE, self.dir)
        self.stack = ExitStack()
        self.portal: BlockingPortal = self.stack.enter_context(start_blocking_portal())
        self.queue: Any = self.portal.call(self.backend.open, SETTINGS)
        self.portal.call(self.queue.run_in_transaction, lambda tx: tx.execute(RESULTS_TABLE))
        if shared is not None:
            self.backend.table(EMPTY)
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
            await tx.execute(self.backend.sql("INSERT INTO results VALUES (?)"), (message_id,))

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
        self.portal.call(self.backend.crash, self.queue)
        for claim in self.held.values():
            if claim.message.attempts >= MAX_ATTEMPTS:
                self.failed.add(claim.message.id)  # the crash used up its last attempt
        self.held.clear()
        self.queue = self.portal.call(self.backend.open, SETTINGS)

    def rows(self) -> dict[int, dict[str, Any]]:
        return {r["id"]: r for r in self.backend.rows()}

    def result_ids(self) -> list[int]:
        return [r["message_id"] for r in self.backend.table("SELECT message_id FROM results")]

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


RUN = settings(
    max_examples=40,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
# A step costs a few round trips to the server: half the examples keep the run near
# SQLite's (about 14 s each on a 2-core machine).
RUN_POSTGRES = settings(RUN, max_examples=20)


@pytest.fixture
def shared_schema(backend_name: str) -> Iterator[PgBackend | None]:
    """On PostgreSQL, the schema every example of the run empties and uses."""
    if backend_name == SQLITE:
        yield None
        return
    shared = PgBackend.create()
    try:
        yield shared
    finally:
        shared.drop()


def test_queue_state_machine(shared_schema: PgBackend | None) -> None:
    class Machine(QueueMachine):
        def __init__(self) -> None:
            super().__init__(shared_schema)

    run_state_machine_as_test(Machine, settings=RUN if shared_schema is None else RUN_POSTGRES)
