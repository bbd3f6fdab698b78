"""The daily token budget (``daily_tokens``, ``MEMQ_DAILY_TOKENS``; off by default).

While the tokens spent since the UTC day began are under the budget, a session's model-based
processor runs as usual. Once they reach it, the messages that would have asked a model (tool
calls, summaries) are processed by ``extract`` instead, until 00:00 UTC: never failed, never
paused, and marked (a ``model_usage`` row with ``fallback = 'budget'``). A call in flight when
the budget is reached finishes, so a day may end a few calls over it.

The spend is read from the database once per UTC day (the daemon's restart, the first message
after midnight) and counted up after each ack; the daemon is the only writer of those rows.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

import structlog

from memq.memory.records import ModelUsage, ProcessResult, SessionContext
from memq.model_cost import DAY_MS, day_start
from memq.processors.base import Processor
from memq.processors.extract import ExtractProcessor
from memq.queue import Clock, EpochMs, Message, MessageKind

log = structlog.get_logger("memq.budget")

# The kinds a model-based processor asks a model for; other kinds cost nothing.
MODEL_KINDS: Final = frozenset({MessageKind.OBSERVATION, MessageKind.SUMMARIZE})
BUDGET_FALLBACK: Final = "budget"


def asks_a_model(processor: Processor, kind: MessageKind) -> bool:
    """Whether ``processor`` spends model tokens on a message of ``kind``: every processor but
    ``extract`` on a tool call or a summary, except a tool call when it batches turns (its
    record is extract's until the turn's summary)."""
    if kind not in MODEL_KINDS or isinstance(processor, ExtractProcessor):
        return False
    return not (kind is MessageKind.OBSERVATION and getattr(processor, "batch_turns", False))


class TokenBudget:
    """Tokens spent today against ``limit``.

    Args:
        limit: tokens a UTC day may spend; None: no budget (nothing is read or counted).
        spent_since: reads the tokens the database counts from an instant on.
        clock: its wall clock says which day it is.
    """

    def __init__(
        self,
        limit: int | None,
        spent_since: Callable[[EpochMs], Awaitable[int]],
        *,
        clock: Clock,
    ) -> None:
        if limit is not None and limit < 1:
            raise ValueError("a daily token budget must be >= 1 (None: no budget)")
        self.limit = limit
        self._spent_since = spent_since
        self._clock = clock
        self._day: int | None = None  # the UTC day ``_spent`` counts, by its start
        self._spent = 0
        self._told = False  # the budget's end was logged for this day

    async def spent(self) -> bool:
        """Whether today's budget is used up."""
        if self.limit is None:
            return False
        today = day_start(self._clock.now())
        if today != self._day:
            self._spent = await self._spent_since(EpochMs(today))
            self._day, self._told = today, False
        over = self._spent >= self.limit
        if over and not self._told:
            self._told = True
            log.warning(
                "budget.spent",
                tokens=self._spent,
                daily_tokens=self.limit,
                resets_at_ms=today + DAY_MS,
            )
        return over

    def add(self, tokens: int) -> None:
        """``tokens`` more were spent (their row committed) today."""
        if self.limit is None or tokens <= 0:
            return
        if self._day == day_start(self._clock.now()):
            self._spent += tokens
        # Else the day's first read counts them from the database.

    @property
    def tokens_today(self) -> int:
        """The tokens counted for the current day (0 before the first check)."""
        return self._spent


class Budgeted:
    """Runs a session's processor, or ``extract`` in its place once the budget is spent."""

    def __init__(self, budget: TokenBudget) -> None:
        self.budget = budget
        self._fallback = ExtractProcessor()

    async def process(
        self, processor: Processor, message: Message, context: SessionContext
    ) -> ProcessResult:
        """``processor``'s result for ``message``; ``extract``'s, marked, when ``processor``
        would ask a model and today's budget is spent."""
        if asks_a_model(processor, message.kind) and await self.budget.spent():
            result = await self._fallback.process(message, context)
            mark = ModelUsage(
                processor=self._fallback.name,
                model=str(getattr(processor, "model", processor.name)),
                calls=0,
                fallback=BUDGET_FALLBACK,
            )
            return ProcessResult(observation=result.observation, summary=result.summary, usage=mark)
        return await processor.process(message, context)

    def spent_now(self, result: ProcessResult) -> None:
        """The ack of ``result`` committed: count its tokens."""
        if result.usage is not None:
            self.budget.add(result.usage.tokens)
