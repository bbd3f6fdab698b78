"""Why a session's messages wait instead of being processed.

Two causes, both leaving the events queued with no attempt spent:

- its ``paused`` setting (``memq config SESSION paused true``);
- its processor cannot be created: the session asks for a model-based processor whose API
  key is not in the daemon's environment (it was when the setting was made; the daemon was
  restarted without it). Failing its messages would lose them for a reason that is not
  theirs, so the session pauses until the daemon restarts with the key or its setting
  changes (``memq config SESSION processor extract``).

Nothing here is stored: both answers follow from the settings and the processor pool, so a
restart or a new setting changes them at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from memq.processors.pool import ProcessorPool
from memq.worker.session_config import SessionConfigs


class PauseCause(StrEnum):
    """Why a session is paused."""

    SETTING = "setting"  # its own ``paused`` setting
    PROCESSOR = "processor"  # its processor cannot be created (an API key is missing)


@dataclass(frozen=True, slots=True)
class SessionPause:
    """A session's pause: its cause and a reason a person can act on."""

    cause: PauseCause
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"cause": self.cause.value, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class PausedProcessor:
    """A processor that cannot be created, and the sessions waiting for it."""

    processor: str
    model: str | None
    reason: str
    sessions: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "processor": self.processor,
            "model": self.model,
            "reason": self.reason,
            "sessions": list(self.sessions),
        }


SETTING_REASON = "paused by its setting (memq config SESSION paused false)"


class SessionPauses:
    """Answers "is this session paused, and why" from its settings and the processors."""

    def __init__(self, configs: SessionConfigs, processors: ProcessorPool) -> None:
        self._configs = configs
        self._processors = processors

    def of(self, session_key: str) -> SessionPause | None:
        """The session's pause, or None when its next message would be processed."""
        config = self._configs.get(session_key)
        if config.paused:
            return SessionPause(PauseCause.SETTING, SETTING_REASON)
        reason = self._processors.unavailable(config.processor, config.model)
        if reason is not None:
            return SessionPause(PauseCause.PROCESSOR, reason)
        return None

    def is_paused(self, session_key: str) -> bool:
        """Whether the session's messages wait (for either cause)."""
        return self.of(session_key) is not None

    def paused_processors(self) -> list[PausedProcessor]:
        """Every processor some session asks for that cannot be created, with those sessions
        (only sessions with settings can ask for one: the default processor always works, or
        the daemon would not have started)."""
        waiting: dict[tuple[str, str | None], list[str]] = {}
        reasons: dict[tuple[str, str | None], str] = {}
        for key in self._configs.configured_sessions:
            config = self._configs.get(key)
            name = config.processor or self._processors.default.name
            reason = self._processors.unavailable(name, config.model)
            if reason is not None:
                waiting.setdefault((name, config.model), []).append(key)
                reasons[(name, config.model)] = reason
        return [
            PausedProcessor(name, model, reasons[(name, model)], tuple(sessions))
            for (name, model), sessions in sorted(waiting.items(), key=_by_name_and_model)
        ]


def paused_processors(configs: SessionConfigs, processors: ProcessorPool) -> list[dict[str, Any]]:
    """``SessionPauses.paused_processors`` as JSON, for ``/api/status``."""
    return [paused.to_dict() for paused in SessionPauses(configs, processors).paused_processors()]


def _by_name_and_model(item: tuple[tuple[str, str | None], list[str]]) -> tuple[str, str]:
    (name, model), _ = item
    return name, model or ""
