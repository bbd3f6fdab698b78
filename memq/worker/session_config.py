"""Per-session settings: which processor and model handle a session, and whether it is paused.

They live in the ``session_config`` table and in memory: the daemon loads them all at start
(a handful of rows: only sessions someone configured) and every change goes through it, so
the worker reads a session's settings on each message without touching the database.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import structlog

from memq.exceptions import InvalidSettingValueError
from memq.memory.rows import first_column
from memq.queue import QueueBase, Transaction
from memq.storage.sqlfile import load_queries

log = structlog.get_logger("memq.session_config")

QUERIES: Final = load_queries("session_config")
MAX_MODEL_CHARS: Final = 200
_TRUE: Final = frozenset({"true", "yes", "on", "1"})
_FALSE: Final = frozenset({"false", "no", "off", "0"})


class ConfigName(StrEnum):
    """The settings a session can have."""

    PROCESSOR = "processor"  # a processor name (memq.processors), instead of MEMQ_PROCESSOR
    MODEL = "model"  # the model a model-based processor asks, instead of MEMQ_MODEL
    PAUSED = "paused"  # true: the session's events queue but are not processed


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """One session's settings; None means "the daemon's default"."""

    processor: str | None = None
    model: str | None = None
    paused: bool = False

    def value(self, name: ConfigName) -> str | bool | None:
        """The value of one setting."""
        value: str | bool | None = getattr(self, name.value)
        return value

    def to_dict(self) -> dict[str, Any]:
        """``{"processor": ..., "model": ..., "paused": ...}``."""
        return {name.value: self.value(name) for name in ConfigName}


DEFAULT_CONFIG: Final = SessionConfig()


def config_name(text: str) -> ConfigName:
    """The setting called ``text``; ``InvalidSettingValueError`` naming the known ones."""
    try:
        return ConfigName(text)
    except ValueError:
        known = ", ".join(name.value for name in ConfigName)
        raise InvalidSettingValueError(f"unknown setting {text!r} (known: {known})") from None


def parse_value(name: ConfigName, value: object, processors: tuple[str, ...]) -> str | bool:
    """``value`` checked for the setting ``name``: a known processor name, a model name, or a
    boolean (JSON true/false or true/false, yes/no, on/off, 1/0 as text)."""
    if name is ConfigName.PAUSED:
        if isinstance(value, bool):
            return value
        text = value.strip().lower() if isinstance(value, str) else None
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise InvalidSettingValueError("'paused' must be true or false")
    if not isinstance(value, str) or not value.strip():
        raise InvalidSettingValueError(f"{name.value!r} must be a non-empty string")
    text = value.strip()
    if name is ConfigName.PROCESSOR and text not in processors:
        raise InvalidSettingValueError(
            f"unknown processor {text!r} (known: {', '.join(processors)})"
        )
    if len(text) > MAX_MODEL_CHARS or not text.isprintable():
        raise InvalidSettingValueError(
            f"{name.value!r} must be printable and at most {MAX_MODEL_CHARS} characters"
        )
    return text


class SessionConfigs:
    """Every session's settings, in memory and in the database; see the module docstring.

    Listeners registered with ``on_change`` are called with the session key after each
    change (the daemon schedules a session that was resumed).
    """

    def __init__(self, queue: QueueBase, values: Mapping[str, Mapping[ConfigName, Any]]) -> None:
        self._queue = queue
        # Only what was set explicitly: deleting a setting brings the default back.
        self._values = {key: dict(named) for key, named in values.items() if named}
        self._listeners: list[Callable[[str], Awaitable[None]]] = []

    @classmethod
    async def load(cls, queue: QueueBase) -> SessionConfigs:
        """Read every session's settings (once, at start)."""
        rows = await queue.run_in_transaction(_read_all)
        values: dict[str, dict[ConfigName, Any]] = {}
        for key, name, raw in rows:
            try:
                values.setdefault(key, {})[ConfigName(name)] = json.loads(raw)
            except ValueError:
                continue  # the table's CHECKs rule this out; a newer memq's setting is skipped
        return cls(queue, values)

    def on_change(self, listener: Callable[[str], Awaitable[None]]) -> None:
        """Call ``listener(session_key)`` after every change."""
        self._listeners.append(listener)

    def get(self, session_key: str) -> SessionConfig:
        """The session's settings (the defaults when it has none)."""
        named = self._values.get(session_key)
        return DEFAULT_CONFIG if named is None else _config(named)

    def is_paused(self, session_key: str) -> bool:
        """Whether the session is paused."""
        return self.get(session_key).paused

    @property
    def paused_sessions(self) -> list[str]:
        """Every paused session."""
        return sorted(key for key, named in self._values.items() if _config(named).paused)

    @property
    def configured_sessions(self) -> list[str]:
        """Every session that has a setting of its own."""
        return sorted(self._values)

    async def is_known(self, session_key: str) -> bool:
        """Whether memq knows the session: it has memory, queued events or settings. A
        setting for any other id would configure a session nobody will ever send."""
        if session_key in self._values:
            return True

        async def read(tx: Transaction) -> bool:
            rows = await tx.fetchall(QUERIES["session_known"], {"session_key": session_key})
            return bool(first_column(rows[0]))

        return await self._queue.run_in_transaction(read)

    def explicit(self, session_key: str) -> list[str]:
        """The names of the settings this session has set (the others are defaults)."""
        return sorted(name.value for name in self._values.get(session_key, {}))

    async def set(self, session_key: str, name: ConfigName, value: str | bool) -> None:
        """Store one setting (durably) and apply it from the session's next message."""
        params = {"session_key": session_key, "name": name.value, "value": json.dumps(value)}

        async def write(tx: Transaction) -> None:
            await tx.execute(QUERIES["set_config"], {**params, "now": tx.now_ms})

        await self._queue.run_in_transaction(write)
        self._values.setdefault(session_key, {})[name] = value
        log.info("session.config_set", session_id=session_key, name=name.value, value=value)
        await self._changed(session_key)

    async def delete(self, session_key: str, name: ConfigName) -> bool:
        """Return one setting to its default; False when it was not set."""
        named = self._values.get(session_key, {})
        if name not in named:
            return False
        params = {"session_key": session_key, "name": name.value}

        async def write(tx: Transaction) -> None:
            await tx.execute(QUERIES["delete_config"], params)

        await self._queue.run_in_transaction(write)
        del named[name]
        if not named:
            del self._values[session_key]
        log.info("session.config_deleted", session_id=session_key, name=name.value)
        await self._changed(session_key)
        return True

    async def forget(self, session_key: str) -> None:
        """Delete every setting of a session that is being deleted or moved away."""
        if session_key not in self._values:
            return
        params = {"session_key": session_key}

        async def write(tx: Transaction) -> None:
            await tx.execute(QUERIES["delete_session_config"], params)

        await self._queue.run_in_transaction(write)
        del self._values[session_key]
        await self._changed(session_key)

    async def _changed(self, session_key: str) -> None:
        for listener in self._listeners:
            await listener(session_key)


def _config(named: Mapping[ConfigName, Any]) -> SessionConfig:
    processor, model = named.get(ConfigName.PROCESSOR), named.get(ConfigName.MODEL)
    return SessionConfig(
        processor=processor if isinstance(processor, str) else None,
        model=model if isinstance(model, str) else None,
        paused=named.get(ConfigName.PAUSED) is True,
    )


async def _read_all(tx: Transaction) -> list[tuple[str, str, str]]:
    rows = await tx.fetchall(QUERIES["all_config"], {})
    return [(str(row["session_key"]), str(row["name"]), str(row["value"])) for row in rows]
