"""The processors a daemon uses: its default one, and those sessions ask for by name and
model (``memq config SESSION processor|model``), each created once and closed at shutdown.

A processor that cannot be created (its API key is missing from the daemon's environment) is
remembered with the reason: the environment is read once, so it stays unavailable until the
daemon restarts, and the sessions that ask for it pause instead of failing their messages.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import structlog

from memq.env import Variable
from memq.exceptions import ProcessorUnavailableError, SettingError, UnknownProcessorError
from memq.processors import get_processor, processor_names
from memq.processors.base import Processor

log = structlog.get_logger("memq.processors")

ProcessorKey = tuple[str, str | None]  # (name, model); model None: the one MEMQ_MODEL names


class ProcessorPool:
    """Processors by ``(name, model)``; ``model`` None means the one ``MEMQ_MODEL`` names.

    Args:
        default: the name of the daemon's processor (``MEMQ_PROCESSOR``).
        env: the settings a model-based processor reads (``os.environ`` when None), read
            once: a key added to the environment later is seen after a restart.
    """

    def __init__(self, default: str, env: Mapping[str, str] | None = None) -> None:
        self._env = dict(os.environ if env is None else env)
        self._processors: dict[ProcessorKey, Processor] = {}
        self._unavailable: dict[ProcessorKey, str] = {}  # why each one cannot be created
        self.default = self.get(default)  # a bad default fails the start, naming the setting

    @property
    def names(self) -> tuple[str, ...]:
        """Every processor name a session may ask for."""
        return processor_names()

    def get(self, name: str | None = None, model: str | None = None) -> Processor:
        """The processor ``name`` (the default when None) asking ``model``; created on first
        use. ``ProcessorUnavailableError`` (a ``ValueError``) when it cannot be configured,
        naming the missing setting."""
        key = (name or self.default.name, model)
        found = self._processors.get(key)
        if found is not None:
            return found
        reason = self._unavailable.get(key)
        if reason is None:
            try:
                found = self._processors[key] = self._create(*key)
            except (UnknownProcessorError, SettingError) as exc:
                reason = self._unavailable[key] = str(exc)
                log.warning("processor.unavailable", processor=key[0], model=model, reason=reason)
            else:
                log.debug("processor.created", processor=key[0], model=model)
                return found
        raise ProcessorUnavailableError(reason)

    def unavailable(self, name: str | None = None, model: str | None = None) -> str | None:
        """Why the processor ``name`` asking ``model`` cannot be created, or None when it
        can (it is created now if it was not yet)."""
        try:
            self.get(name, model)
        except ProcessorUnavailableError as exc:
            return str(exc)
        return None

    def _create(self, name: str, model: str | None) -> Processor:
        env = self._env if model is None else {**self._env, Variable.MODEL: model}
        return get_processor(name, env)

    async def aclose(self) -> None:
        """Close every processor that holds a connection pool."""
        for processor in self._processors.values():
            aclose = getattr(processor, "aclose", None)
            if aclose is not None:
                await aclose()
        self._processors.clear()
