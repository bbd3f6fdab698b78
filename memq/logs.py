"""Structured logging: JSON lines to a rotating file, readable lines on the console.

Every memq log line is an event with a stable name (``event.accepted``, ``message.processed``,
``recovery.reset``, ...) and bound ids (``session_id``, ``message_id``); a line is data, not
prose. Third-party loggers (uvicorn) go through the same formatters, and no line is written
with a secret in it (``memq.redact``: its strings are redacted as events are).
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path
from typing import Any, Final

import structlog

from memq.redact import BUILT_IN, Redactor

MAX_LOG_BYTES: Final = 10 * 1024 * 1024
LOG_BACKUPS: Final = 5

_SHARED: Final[list[Any]] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure_logging(
    *,
    log_file: Path | None,
    console: bool = True,
    level: str = "info",
    redactor: Redactor | None = BUILT_IN,
) -> None:
    """Send structlog and stdlib logging to ``log_file`` (JSON) and/or stderr (readable),
    each line's strings redacted by ``redactor`` (None: MEMQ_REDACT=off)."""
    numeric = logging.getLevelName(level.upper())
    handlers: list[logging.Handler] = []
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        file_handler = _RotatingFileHandler(
            log_file, maxBytes=MAX_LOG_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
        )
        file_handler.setFormatter(_formatter(structlog.processors.JSONRenderer(), redactor))
        handlers.append(file_handler)
    if console:
        stream = logging.StreamHandler(sys.stderr)
        colors = sys.stderr.isatty()
        stream.setFormatter(_formatter(structlog.dev.ConsoleRenderer(colors=colors), redactor))
        handlers.append(stream)

    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(numeric)
    # uvicorn's and httpx's own lines (one per request) are noise next to ours; keep their
    # warnings and errors.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "httpx", "httpcore"):
        third = logging.getLogger(name)
        third.setLevel(max(numeric, logging.WARNING))
        # Through our handlers only (redacted, one format): a logging config applied before
        # (uvicorn's default one) may have given them handlers of their own.
        for old in list(third.handlers):
            third.removeHandler(old)
        third.propagate = True

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_SHARED,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


class _RotatingFileHandler(logging.handlers.RotatingFileHandler):
    """Rotates on the file's size alone. The standard check formats every record a second
    time to see whether it would fit, which doubled the cost of each log line."""

    def shouldRollover(self, record: logging.LogRecord) -> bool:
        if self.stream is None:
            self.stream = self._open()
        return self.maxBytes > 0 and self.stream.tell() >= self.maxBytes


def _formatter(renderer: Any, redactor: Redactor | None) -> structlog.stdlib.ProcessorFormatter:
    processors: list[Any] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if redactor is not None:
        processors.append(RedactSecrets(redactor))
    return structlog.stdlib.ProcessorFormatter(
        processors=[*processors, renderer], foreign_pre_chain=_SHARED
    )


class RedactSecrets:
    """A structlog processor: every string in the event (an error's text, a formatted
    traceback, a value) with its secrets replaced by markers, as events' are."""

    __slots__ = ("_redactor",)

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor

    def __call__(self, _logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        redact = self._redactor.redact_value
        for key, value in event_dict.items():
            if isinstance(value, str | dict | list):
                event_dict[key] = redact(value)[0]
        return event_dict
