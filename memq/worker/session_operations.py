"""What can be done to a session as a whole: delete, revert, transfer, fork, import, retitle.

    result = await delete_session(services, "claude-code:abc")    # -> Deleted
    result = await revert_session(services, key, last=2)           # -> Reverted
    result = await transfer_session(services, key, to_key)         # -> Transferred

Each operation is one sequence over the daemon's services: stop the session's generator,
move or forget its queue rows, change memory in one transaction of the queue's writer, forget
its settings and activity, wake whatever has work left. The HTTP routes (and so the CLI) and
an MCP server in the daemon run these, never the steps one by one. The arguments are checked
already (session keys normalized); the rules of the operation itself are checked here.

Errors (``memq.exceptions``):
    SessionNotFoundError      memq has no such session
    MessageNotFoundError      a revert's cut names a message the session does not have
    SameSessionError          a session transferred or forked into itself
    InvalidSettingValueError  a title that is empty, too long or not printable
    ForkParentNotFoundError, ForkTargetExistsError   a fork's parent is missing, its id taken
    InvalidArchiveError       an import file that is not a memq export (its first bad line)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Final

import anyio
import structlog

from memq.events import normalize_session_key
from memq.exceptions import (
    InvalidSettingValueError,
    MessageNotFoundError,
    SameSessionError,
    SessionNotFoundError,
)
from memq.memory.archive import ImportResult, import_effect
from memq.memory.fork import ForkResult, fork_effect
from memq.worker.forks import log_fork
from memq.worker.services import Services

log = structlog.get_logger("memq.session_operations")

MAX_TITLE_CHARS: Final = 200

__all__ = [
    "MAX_TITLE_CHARS",
    "Deleted",
    "Reverted",
    "Titled",
    "Transferred",
    "delete_session",
    "fork_session",
    "import_session",
    "revert_session",
    "set_title",
    "transfer_session",
]


@dataclass(frozen=True, slots=True)
class Deleted:
    """A session deleted: how many queue rows and memory rows went with it."""

    session_id: str
    queue_rows: int
    memory_rows: int

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready values."""
        return {
            "deleted": self.session_id,
            "queue_rows": self.queue_rows,
            "memory_rows": self.memory_rows,
        }


@dataclass(frozen=True, slots=True)
class Reverted:
    """A revert made: its messages from ``from_message_id`` on were forgotten (None: the
    session had nothing to forget)."""

    session_id: str
    from_message_id: int | None
    queue_rows: int
    memory_rows: int

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready values."""
        return {
            "session_id": self.session_id,
            "from_message_id": self.from_message_id,
            "queue_rows": self.queue_rows,
            "memory_rows": self.memory_rows,
        }


@dataclass(frozen=True, slots=True)
class Transferred:
    """A transfer made: ``records`` moved; ``merged`` were the source's copies of records
    the target held already; of the queue rows, ``queue_rows`` moved and ``dropped`` were
    events the target had queued already (the same dedupe key)."""

    from_key: str
    to_key: str
    records: int
    merged: int
    queue_rows: int
    dropped: int

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready values."""
        return {
            "from": self.from_key,
            "to": self.to_key,
            "records": self.records,
            "merged": self.merged,
            "queue_rows": self.queue_rows,
            "dropped": self.dropped,
        }


@dataclass(frozen=True, slots=True)
class Titled:
    """A title set (``edited``), or given back from the first prompt."""

    session_id: str
    title: str | None
    edited: bool

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready values."""
        return {"session_id": self.session_id, "title": self.title, "title_edited": self.edited}


async def delete_session(services: Services, key: str) -> Deleted:
    """Stop the session's generator, then forget its queue rows, its memory, its settings
    and its activity. ``SessionNotFoundError`` when neither the queue nor memory had any of
    it (its settings and activity are gone all the same)."""
    await services.sessions.forget(key)
    queue_rows = await services.queue.forget_session(key)
    memory_rows = await services.queue.run_in_transaction(services.store.forget_effect(key))
    await services.configs.forget(key)
    await services.activity.forget(key)
    await services.usage.forget_session(key)  # its injections and the queries it made
    if not queue_rows and not memory_rows:
        raise SessionNotFoundError(f"no session {key}")
    log.info("session.deleted", session_id=key, queue_rows=queue_rows, memory_rows=memory_rows)
    return Deleted(key, queue_rows, memory_rows)


async def revert_session(
    services: Services, key: str, *, after: int | None = None, last: int | None = None
) -> Reverted:
    """Forget what the session learned after a point, as after rewinding a conversation:
    everything after message ``after`` (it and what came before stay), or its ``last``
    newest messages that left memory. Give exactly one of the two.

    The generator stops while rows go, and is woken again when queued messages remain."""
    if (after is None) == (last is None):
        raise TypeError("give exactly one of 'after' and 'last'")
    if not await services.store.has_session(key):
        raise SessionNotFoundError(f"no session {key}")
    from_id: int | None
    if last is not None:
        from_id = await services.store.revert_cutoff(key, last)
    elif after is not None and await services.store.has_message(key, after):
        from_id = after + 1
    else:
        # A cut after a message the session does not have would be a guess at what to keep.
        raise MessageNotFoundError(
            f"{key} has no message {after} (memq history and memq search show its ids)"
        )
    queue_rows = memory_rows = 0
    if from_id is not None:
        await services.sessions.forget(key)  # stop its generator; rescheduled below
        queue_rows = await services.queue.forget_session_from(key, from_id)
        memory_rows = await services.queue.run_in_transaction(
            services.store.revert_effect(key, from_id)
        )
        if await services.queue.has_pending(key):
            services.sessions.notify(key)
    log.info(
        "session.reverted",
        session_id=key,
        from_message_id=from_id,
        queue_rows=queue_rows,
        memory_rows=memory_rows,
    )
    return Reverted(key, from_id, queue_rows, memory_rows)


async def transfer_session(services: Services, key: str, to_key: str) -> Transferred:
    """Move the session's memory and queue rows to ``to_key`` (an existing target is merged
    into), then forget the source's settings and activity: they were its own, not the
    target's. Neither session processes while rows move."""
    if to_key == key:
        raise SameSessionError("a session cannot be transferred to itself")
    if not await services.store.has_session(key):
        raise SessionNotFoundError(f"no session {key}")
    for session in (key, to_key):
        await services.sessions.forget(session)
    moved, dropped = await services.queue.move_session(key, to_key)
    result = await services.queue.run_in_transaction(services.store.transfer_effect(key, to_key))
    await services.configs.forget(key)
    await services.activity.forget(key)
    await services.usage.move_session(key, to_key)  # its injections and the reads it made
    services.activity.touch(to_key)
    if await services.queue.has_pending(to_key):
        services.sessions.notify(to_key)
    log.info(
        "session.transferred",
        session_id=key,
        to=to_key,
        records=result.records,
        merged=result.merged,
        queue_rows=moved,
    )
    return Transferred(key, to_key, result.records, result.merged, moved, dropped)


async def fork_session(services: Services, key: str, to_key: str | None = None) -> ForkResult:
    """Fork the session into ``to_key`` (None: a new random id) with a copy of its memory.
    ``ForkParentNotFoundError`` when memory has no such session, ``ForkTargetExistsError``
    when the target exists (in memory or in the queue)."""
    child = to_key if to_key is not None else normalize_session_key(str(uuid.uuid4()))
    if child == key:
        raise SameSessionError("a session cannot be forked into itself")
    result = await services.queue.run_in_transaction(fork_effect(key, child))
    services.forks.mark_seen(child)  # its events must not be linked again
    log_fork(result)
    return result


async def import_session(services: Services, export: bytes) -> ImportResult:
    """Import a ``memq export`` file: every line is checked before anything is written
    (``InvalidArchiveError`` naming the first bad one), then one transaction writes it all."""
    # Checking every line of a large file takes a moment: off the event loop.
    effect = await anyio.to_thread.run_sync(import_effect, export)
    result = await services.queue.run_in_transaction(effect)
    log.info(
        "session.imported",
        session_id=result.session_key,
        created=result.session_created,
        imported=result.imported,
        skipped=result.skipped,
        remapped=result.remapped,
    )
    return result


async def set_title(services: Services, key: str, title: str | None) -> Titled:
    """Set the session's title (a revert keeps it; blanks are collapsed), or with None give
    it back the one from its first prompt."""
    cleaned = _clean_title(title)
    stored = await services.queue.run_in_transaction(services.store.title_effect(key, cleaned))
    return Titled(key, stored, cleaned is not None)


def _clean_title(value: object) -> str | None:
    """The title with its blanks collapsed; ``InvalidSettingValueError`` for one that is not
    a non-empty printable string of at most ``MAX_TITLE_CHARS`` (the value comes from JSON)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidSettingValueError("'title' must be a non-empty string, or null")
    title = " ".join(value.split())
    if len(title) > MAX_TITLE_CHARS or not title.isprintable():
        raise InvalidSettingValueError(
            f"'title' must be printable and at most {MAX_TITLE_CHARS} characters"
        )
    return title
