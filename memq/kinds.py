"""The kinds of message the queue holds: what each asks the processor to do.

Standard library only: the hook (``memq.events``) routes every event to one of them without
loading the queue, which names them in ``memq.queue.MessageKind``.
"""

from __future__ import annotations

from enum import StrEnum


class MessageKind(StrEnum):
    """What a message asks the processor to do. Stored as text in ``pending_messages.kind``."""

    PROMPT = "prompt"  # the user's prompt, numbered per session
    OBSERVATION = "observation"  # a tool call and its result
    SUMMARIZE = "summarize"  # summarize the batch; ends the session's stream
    SESSION_END = "session_end"  # the session ended once its queue drains
    EVENT = "event"  # another event memq's hooks subscribe to (SessionStart), as it came
    # An event memq's hooks do not subscribe to (another hook or a plugin routed it to memq):
    # recorded as it came, never memory, a session or a fork's link (memq.events).
    UNSUBSCRIBED = "unsubscribed"

    @classmethod
    def parse(cls, value: str) -> MessageKind:
        """The kind named ``value``; kinds this version does not know are plain events."""
        try:
            return cls(value)
        except ValueError:
            return cls.EVENT
