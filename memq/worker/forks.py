"""The automatic link of a forked session to its parent, on the way into the queue.

Claude Code's ``--fork-session`` sends SessionStart (source ``resume``) with the parent's id
and every later event with the fork's new id. ``post_event`` calls ``before_enqueue`` for every
accepted event before it is queued; the first event of a session memq does not know, shortly
after a resume in the same directory, makes that session a fork of the resumed one
(``memq.memory.fork.link_effect``), with a copy of its memory, before its own events.

This is the hot path: a session seen in this daemon's life costs one lookup in a bounded set
(least recently used out first). A session's SessionStart marks it seen and does nothing else:
a session that starts itself is not a fork. Only the events memq's hooks subscribe to can link
(``memq.events.may_link_fork``); the others neither link nor mark their session seen: Claude
Code sends InstructionsLoaded with throw-away ids around a resume, and with the fork's own id
just before its first prompt. Their queue rows (kind ``unsubscribed``) do not make a session
known either (``fork_child_known``).

Events the hook's fallback writes straight into SQLite while the daemon is down never pass
here: the fallback links them itself (``memq.hooks.fork_link``). Not linked: a fork whose
parent memq never stored. Two sessions resumed in one directory within the window, the
later one without events yet, are ambiguous: the newest is taken.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Final

import structlog

from memq.events import HookEvent, may_link_fork
from memq.exceptions import StorageError
from memq.hooks.fork_link import LINK_WINDOW_SECONDS
from memq.memory.fork import ForkResult, link_effect, may_link
from memq.queue import QueueBase, span

log = structlog.get_logger("memq.forks")

SEEN_CAPACITY: Final = 10_000  # sessions remembered as seen


class ForkLinker:
    """Links each new session's first event to the session it was forked from, if any."""

    def __init__(
        self,
        queue: QueueBase,
        *,
        window_seconds: float = LINK_WINDOW_SECONDS,
        capacity: int = SEEN_CAPACITY,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1 (got {capacity})")
        self._queue = queue
        self._window = span(window_seconds)
        self._capacity = capacity
        self._seen: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, session_key: object) -> bool:
        """Whether the session was seen (and will not be looked up again)."""
        return session_key in self._seen

    def mark_seen(self, session_key: str) -> None:
        """Never link ``session_key`` from now on (an explicit fork, a known session)."""
        self._seen[session_key] = None
        self._seen.move_to_end(session_key)
        if len(self._seen) > self._capacity:
            self._seen.popitem(last=False)

    def forget(self, session_key: str) -> None:
        """The session went idle: drop it (its next event looks it up again, and finds it
        known)."""
        self._seen.pop(session_key, None)

    async def before_enqueue(self, session_key: str, event: str, payload: dict[str, Any]) -> None:
        """Link the session to its parent if this is the first event of a fork; call it for
        every accepted event before it is queued."""
        if session_key in self._seen:
            self._seen.move_to_end(session_key)
            return
        if not may_link_fork(event, session_key):
            if event == HookEvent.SESSION_START:
                self.mark_seen(session_key)  # a session that starts itself is not a fork
            return
        given = payload.get("cwd")
        cwd = given if isinstance(given, str) else None
        try:
            result = None
            # Nearly every new session is no fork: a read on the reader says so without a
            # transaction that would queue behind the writer's batch (and hold up this event).
            if await may_link(self._queue, session_key, cwd, window=self._window):
                result = await self._queue.run_in_transaction(
                    link_effect(session_key, cwd, window=self._window)
                )
        except StorageError as exc:
            # The event still goes in (or fails on its own); only the link is lost.
            log.warning("session.fork_link_failed", session_id=session_key, error=str(exc))
            result = None
        # Concurrent first events of one session may each have looked; the writer ran their
        # look-ups one after the other, so only the first could link.
        self.mark_seen(session_key)
        if result is not None:
            log_fork(result, automatic=True)


def log_fork(result: ForkResult, *, automatic: bool = False) -> None:
    """Log a fork: an explicit one (``POST .../fork``) or an automatic link, alike."""
    log.info(
        "session.forked",
        session_id=result.child,
        parent=result.parent,
        automatic=automatic,
        records=result.records,
    )
