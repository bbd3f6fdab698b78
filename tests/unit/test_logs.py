from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from memq.logs import _RotatingFileHandler, configure_logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put structlog and the root logger back as they were."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    structlog.reset_defaults()


@pytest.mark.usefixtures("restore_logging")
class TestLogFile:
    def test_events_are_json_lines_with_their_bound_ids(self, tmp_path: Path) -> None:
        """A log line is data: the event name and bound ids as JSON fields."""
        log_file = tmp_path / "logs" / "memq.log"
        configure_logging(log_file=log_file, console=False, level="info")
        structlog.get_logger("memq.test").bind(session_id="s", message_id=7).info(
            "message.processed", attempt=1
        )
        structlog.get_logger("memq.test").debug("too.chatty")
        (line,) = log_file.read_text().splitlines()
        record = json.loads(line)
        assert record["event"] == "message.processed"
        assert (record["session_id"], record["message_id"], record["level"]) == ("s", 7, "info")
        assert "timestamp" in record

    def test_the_file_rotates_by_size(self, tmp_path: Path) -> None:
        """Past its size the file moves to .1 and a new one starts."""
        path = tmp_path / "x.log"
        handler = _RotatingFileHandler(path, maxBytes=200, backupCount=2)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger = logging.getLogger("memq.test.rotation")
        logger.addHandler(handler)
        logger.propagate = False
        try:
            for i in range(20):
                logger.warning("line %d %s", i, "x" * 30)
        finally:
            logger.removeHandler(handler)
            handler.close()
        assert (tmp_path / "x.log.1").exists()
        assert (tmp_path / "x.log.2").exists()
        assert path.stat().st_size < 400
