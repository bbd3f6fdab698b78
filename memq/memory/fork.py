"""Forks: a new session that starts with a copy of another's memory and records its parent.

    result = await queue.run_in_transaction(fork_effect(parent_key, child_key))
    linked = await queue.run_in_transaction(link_effect(child_key, cwd, window=...))

A fork copies the parent's prompts, observations and summaries as the child's, marked
``inherited``: a session's own reads (its detail, lists, history, a search filtered to it)
include them; the readers that look across sessions (search, the SessionStart context, the
timeline of an own record) leave them out, so each record shows once, as the parent's. The
child's own records follow, numbered after the copied prompts. Each copy names its original
(``origin_id``, the ``copy_origins`` migration; a copy of a copy names the first original):
a transfer within the family keeps a record once, and a delete or revert of the original
hands it on to a copy (``memq.memory.store``). The child's title is the parent's, marked as a fork's
(``memq.memory.store.fork_title``).

Copies need message ids of their own (memory's ``message_id`` is UNIQUE): each message of the
parent gets a settled queue row of the child (status processed, no payload, dedupe key
``fork:<original id>``) in message order, as an import reserves ids, so the copies keep the
parent's order and precede every record of the child's own. The search index follows by
itself (migration 0003's triggers).

``link_effect`` is the automatic link (``memq.worker.forks``): Claude Code's
``--fork-session`` sends SessionStart (source ``resume``) with the parent's id and every later
event with the new one, so a session memq does not know, whose first event comes shortly after
a resume in the same directory, is taken as that session's fork (see ``fork_find_parent`` in
``queries/fork.sql``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from memq.exceptions import ForkParentNotFoundError, ForkTargetExistsError, SameSessionError
from memq.memory.records import from_epoch_ms, isoformat_utc
from memq.memory.store import split_session_key
from memq.queue import QueueBase, SpanMs, Transaction, earlier
from memq.storage.sqlfile import load_queries

QUERIES: Final = load_queries("fork")


@dataclass(frozen=True, slots=True)
class ForkResult:
    """A fork made: the two sessions and what the child inherited."""

    child: str
    parent: str
    prompts: int
    observations: int
    summaries: int
    forked_at: datetime

    @property
    def records(self) -> int:
        """Every record copied."""
        return self.prompts + self.observations + self.summaries

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (the time as ISO-8601 UTC text)."""
        return {
            "child": self.child,
            "parent": self.parent,
            "prompts": self.prompts,
            "observations": self.observations,
            "summaries": self.summaries,
            "forked_at": isoformat_utc(self.forked_at),
        }


def fork_effect(parent_key: str, child_key: str) -> Callable[[Transaction], Awaitable[ForkResult]]:
    """The write that forks ``parent_key`` into the new session ``child_key``; run it with
    ``queue.run_in_transaction``.

    It raises ``ForkParentNotFoundError`` when memory has no ``parent_key`` and
    ``ForkTargetExistsError`` when ``child_key`` has a memory row or any queue row, having
    written nothing.
    """
    if parent_key == child_key:
        raise SameSessionError(f"a session cannot be forked into itself: {parent_key}")

    async def fork(tx: Transaction) -> ForkResult:
        if not await tx.fetchall(QUERIES["fork_parent_exists"], {"parent": parent_key}):
            raise ForkParentNotFoundError(f"no session {parent_key}")
        if await _known(tx, child_key):
            raise ForkTargetExistsError(f"session {child_key} already exists")
        return await copy_session(tx, parent_key, child_key)

    return fork


async def may_link(queue: QueueBase, child_key: str, cwd: str | None, *, window: SpanMs) -> bool:
    """Whether ``link_effect`` could find a parent for ``child_key``: a session resumed in
    ``cwd`` within ``window``. Read without the writer; False spares it the look-up."""
    if not cwd:
        return False
    rows = await queue.read(
        QUERIES["fork_recent_resume"],
        {"child": child_key, "cwd": cwd, "since": earlier(queue.clock.now(), window)},
    )
    return bool(rows[0]["found"])


def link_effect(
    child_key: str, cwd: str | None, *, window: SpanMs
) -> Callable[[Transaction], Awaitable[ForkResult | None]]:
    """The write that links an unknown session to the session it was forked from, if any:
    None when memq knows ``child_key`` already or no parent is found (see
    ``fork_find_parent``), else the fork it made. A parent resumed more than ``window``
    ago is not considered."""

    async def link(tx: Transaction) -> ForkResult | None:
        if not cwd or await _known(tx, child_key):
            return None
        rows = await tx.fetchall(
            QUERIES["fork_find_parent"],
            {"child": child_key, "cwd": cwd, "since": earlier(tx.now_ms, window)},
        )
        if not rows:
            return None
        return await copy_session(tx, str(rows[0]["session_key"]), child_key)

    return link


async def copy_session(tx: Transaction, parent_key: str, child_key: str) -> ForkResult:
    """Create ``child_key`` as a fork of ``parent_key`` with a copy of its memory. The caller
    has checked that the parent exists and the child does not."""
    assistant, external_id = split_session_key(child_key)
    params = {
        "parent": parent_key,
        "child": child_key,
        "assistant": assistant,
        "external_id": external_id,
        "now": tx.now_ms,
    }
    # Set-based: a handful of statements whatever the parent holds (each costs a trip to
    # aiosqlite's thread, and the writer is shared). The session first: records reference it.
    if not await tx.execute(QUERIES["fork_insert_session"], params):
        raise ForkParentNotFoundError(f"no session {parent_key}")
    await tx.execute(QUERIES["fork_reserve_ids"], params)
    prompts = await tx.execute(QUERIES["fork_copy_prompts"], params)
    observations = await tx.execute(QUERIES["fork_copy_observations"], params)
    summaries = await tx.execute(QUERIES["fork_copy_summaries"], params)
    return ForkResult(
        child=child_key,
        parent=parent_key,
        prompts=prompts,
        observations=observations,
        summaries=summaries,
        forked_at=from_epoch_ms(tx.now_ms),
    )


async def _known(tx: Transaction, session_key: str) -> bool:
    rows = await tx.fetchall(QUERIES["fork_child_known"], {"child": session_key})
    return bool(rows[0]["known"])
