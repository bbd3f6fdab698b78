"""Structured logging: JSON lines to a rotating file, readable lines on the console.

Every memq log line is an event with a stable name (``event.accepted``, ``message.processed``,
``recovery.reset``, ...) and bound ids (``session_id``, ``message_id``); a line is data, not
prose. Third-party loggers (uvicorn) go through the same formatters.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path
from typing import Any, Final

import structlog

MAX_LOG_BYTES: Final = 10 * 1024 * 1024
LOG_BACKUPS: Final = 5

_SHARED: Final[list[Any]] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure_logging(*, log_file: Path | None, console: bool = True, level: str = "info") -> None:
    """Send structlog and stdlib logging to ``log_file`` (JSON) and/or stderr (readable)."""
    numeric = logging.getLevelName(level.upper())
    handlers: list[logging.Handler] = []
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        file_handler = _RotatingFileHandler(
            log_file, maxBytes=MAX_LOG_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
        )
        file_handler.setFormatter(_formatter(structlog.processors.JSONRenderer()))
        handlers.append(file_handler)
    if console:
        stream = logging.StreamHandler(sys.stderr)
        colors = sys.stderr.isatty()
        stream.setFormatter(_formatter(structlog.dev.ConsoleRenderer(colors=colors)))
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
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))

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


def _formatter(renderer: Any) -> structlog.stdlib.ProcessorFormatter:
    return structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        foreign_pre_chain=_SHARED,
    )
