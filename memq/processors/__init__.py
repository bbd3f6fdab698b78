"""Processors turn queued hook events into memory records.

from memq.processors import get_processor

processor = get_processor("extract")
result = await processor.process(message, await store.context_for(message.session_id))
"""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType
from typing import Final

from memq.processors.base import Processor, ProcessResult, SessionContext
from memq.processors.extract import ExtractProcessor

__all__ = ["ExtractProcessor", "ProcessResult", "Processor", "SessionContext", "get_processor"]

_PROCESSORS: Final[MappingProxyType[str, Callable[[], Processor]]] = MappingProxyType(
    {"extract": ExtractProcessor}
)


def get_processor(name: str) -> Processor:
    """A new processor of the kind ``name``; ``ValueError`` names the known ones otherwise."""
    factory = _PROCESSORS.get(name)
    if factory is None:
        known = ", ".join(sorted(_PROCESSORS))
        raise ValueError(f"unknown processor {name!r} (known: {known})")
    return factory()
