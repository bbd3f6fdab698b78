"""What a processor is: an async function of one message and its session's context.

Processors are stateless: given the same message and context they give a comparable result, so
a message replayed after a crash adds the same memory. A processor that cannot handle its input
raises ``InvalidInputError`` with a clear message; the worker records it as the attempt's
error.
"""

from __future__ import annotations

from typing import Protocol

from memq.memory.records import ProcessResult, SessionContext
from memq.queue import Message

__all__ = ["ProcessResult", "Processor", "SessionContext"]


class Processor(Protocol):
    """Turns one claimed message into memory records."""

    name: str  # what MEMQ_PROCESSOR selects it by

    async def process(self, message: Message, context: SessionContext) -> ProcessResult:
        """The records ``message`` adds to memory (often none)."""
        ...
