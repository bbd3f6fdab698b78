"""What ``Claim`` and ``SessionStream`` call on their queue: the hooks that both backends
(``memq.queue.Queue`` on SQLite, ``memq.queue.postgres.PgQueue``) provide through their base,
``memq.queue._core.QueueBase``, so mypy checks that it still does."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from memq.queue._claim import Claim, Effect
    from memq.queue._clock import Clock
    from memq.queue._models import MessageStatus
    from memq.queue._settings import QueueSettings
    from memq.queue._stream import SessionStream
    from memq.queue._wakeup import Wakeups


class ChangeWatcher(Protocol):
    """How an idle stream looks for rows no wake-up announced."""

    interval: float

    async def poll(self) -> None: ...


class QueueHooks(Protocol):
    """The queue as its claims and streams see it."""

    settings: QueueSettings
    clock: Clock
    _session_owners: dict[str, SessionStream]
    _wakeups: Wakeups

    @property
    def closed(self) -> bool: ...

    @property
    def _changes(self) -> ChangeWatcher: ...

    async def _claim(self, session_id: str) -> tuple[Claim | None, float | None]: ...

    async def _ack(self, claim: Claim, write: Effect | None) -> bool: ...

    async def _fail(self, claim: Claim, error: str) -> MessageStatus | None: ...

    async def _defer(self, claim: Claim, delay: float, reason: str) -> bool: ...

    async def _release(self, claim: Claim) -> bool: ...

    def _unsettled(self, claim: Claim) -> None: ...

    def _claim_settled(self, claim: Claim) -> None: ...

    async def _stream_closed(self, stream: SessionStream) -> None: ...
