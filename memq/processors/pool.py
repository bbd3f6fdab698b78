"""The processors a daemon uses: its default one, and those sessions ask for by name and
model (``memq config SESSION processor|model``), each created once and closed at shutdown."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final

import structlog

from memq.processors import get_processor, processor_names
from memq.processors.base import Processor

log = structlog.get_logger("memq.processors")

MODEL_VARIABLE: Final = "MEMQ_MODEL"


class ProcessorPool:
    """Processors by ``(name, model)``; ``model`` None means the one ``MEMQ_MODEL`` names.

    Args:
        default: the name of the daemon's processor (``MEMQ_PROCESSOR``).
        env: the settings a model-based processor reads (``os.environ`` when None).
    """

    def __init__(self, default: str, env: Mapping[str, str] | None = None) -> None:
        self._env = dict(os.environ if env is None else env)
        self._processors: dict[tuple[str, str | None], Processor] = {}
        self.default = self.get(default)  # a bad default fails the start, naming the setting

    @property
    def names(self) -> tuple[str, ...]:
        """Every processor name a session may ask for."""
        return processor_names()

    def get(self, name: str | None = None, model: str | None = None) -> Processor:
        """The processor ``name`` (the default when None) asking ``model``; created on first
        use. ``ValueError`` when it cannot be configured (naming the missing setting)."""
        name = name or self.default.name
        key = (name, model)
        found = self._processors.get(key)
        if found is None:
            env = self._env if model is None else {**self._env, MODEL_VARIABLE: model}
            found = self._processors[key] = get_processor(name, env)
            log.debug("processor.created", processor=name, model=model)
        return found

    async def aclose(self) -> None:
        """Close every processor that holds a connection pool."""
        for processor in self._processors.values():
            aclose = getattr(processor, "aclose", None)
            if aclose is not None:
                await aclose()
        self._processors.clear()
