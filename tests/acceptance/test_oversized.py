"""Oversized events through the real ``memq hook``: cut to MEMQ_BODY_LIMIT on every path (over
HTTP, the direct write, the spool), with bounded memory, and never lost.

Seen before: a tool answer of 1.1 million short strings cost the hook seconds and hundreds of
MB, and the direct write stored a 50 MB row. Memory is asserted with room to spare (the
target, in scripts/bench_oversized.py, is 100 MB); time is not asserted here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.faults.kit import keep_hooks_from_spawning
from tests.faults.oversized import (
    BODY_LIMIT,
    SHAPES,
    daemon_down,
    daemon_up,
    measured_hook,
    payload,
    stored_sizes,
)
from tests.helpers.daemon import free_port
from tests.helpers.rows import table

# Parsing the 50 MB input whole, as the hook did, peaks far above this.
RSS_BOUND_MB = 150


def stored_payload(database: Path, key: str) -> dict[str, Any]:
    rows = table(database, "SELECT payload FROM pending_messages WHERE dedupe_key = ?", key)
    assert len(rows) == 1
    found: dict[str, Any] = json.loads(rows[0]["payload"])
    return found


class TestEveryShape:
    def test_the_direct_write_stores_each_within_the_limit(self, tmp_path: Path) -> None:
        report = daemon_down(tmp_path)
        assert report.acknowledged == report.sent == len(SHAPES)
        assert report.lost == 0
        assert report.kept == len(SHAPES)
        for size in report.stored_bytes:
            assert size is not None
            assert size <= BODY_LIMIT
        assert report.worst_rss_mb < RSS_BOUND_MB

    def test_the_daemon_takes_each_without_a_refusal(self, tmp_path: Path) -> None:
        """A body over the limit would be answered 413 and the hook would fall back."""
        report = daemon_up(tmp_path)
        assert report.acknowledged == report.sent == len(SHAPES)
        assert report.kept == len(SHAPES)
        assert not report.fell_back
        assert report.worst_rss_mb < RSS_BOUND_MB


class TestWhatIsKept:
    def test_the_first_lines_and_a_note_saying_how_much_is_gone(self, tmp_path: Path) -> None:
        home = tmp_path / "home"
        keep_hooks_from_spawning(home)
        env = {"MEMQ_HOME": str(home), "MEMQ_PORT": str(free_port())}
        run = measured_hook(payload("short_strings", "lines"), env)
        assert run.exit_code == 0
        stored = stored_payload(home / "memq.db", "tool:lines")
        assert stored["session_id"] == "oversized-fault"
        assert stored["tool_use_id"] == "lines"  # sent after the 50 MB: kept whole
        lines = stored["tool_response"]["lines"]
        assert lines[0] == "line 0000000 of the tool output, 44 bytes"
        assert lines[-2] == f"line {len(lines) - 2:07d} of the tool output, 44 bytes"
        assert lines[-1].startswith("[memq: ")
        assert lines[-1].endswith(" more bytes of this list not kept]")

    def test_a_smaller_limit_holds_for_the_direct_write(self, tmp_path: Path) -> None:
        home = tmp_path / "home"
        keep_hooks_from_spawning(home)
        limit = 64 * 1024
        env = {
            "MEMQ_HOME": str(home),
            "MEMQ_PORT": str(free_port()),
            "MEMQ_BODY_LIMIT": str(limit),
        }
        for shape in SHAPES:
            assert measured_hook(payload(shape, shape, size=5_000_000), env).exit_code == 0
            size = stored_sizes(home / "memq.db", f"tool:{shape}")[0]
            assert size is not None
            assert size <= limit

    def test_the_spool_never_holds_more_than_the_limit(self, tmp_path: Path) -> None:
        """With no database to write to (a text file at its path), the event is spooled: cut
        like any other."""
        home = tmp_path / "home"
        keep_hooks_from_spawning(home)
        (home / "memq.db").write_text("this is not a database\n" * 100)
        env = {"MEMQ_HOME": str(home), "MEMQ_PORT": str(free_port())}
        assert measured_hook(payload("short_strings", "spooled"), env).exit_code == 0
        spooled = [path for path in (home / "spool").iterdir() if path.is_file()]
        assert len(spooled) == 1
        header, _, body = spooled[0].read_bytes().partition(b"\n")
        assert json.loads(header)["body_bytes"] == len(body)
        assert len(body) <= BODY_LIMIT
        assert json.loads(body)["tool_use_id"] == "spooled"


@pytest.mark.parametrize("shape", SHAPES)
def test_a_broken_oversized_event_is_refused_without_quoting_it(tmp_path: Path, shape: str) -> None:
    """A 50 MB event cut off mid-way is not JSON: nothing is stored, hook.log says why in
    one short line, the hook still exits 0."""
    home = tmp_path / "home"
    keep_hooks_from_spawning(home)
    env = {"MEMQ_HOME": str(home), "MEMQ_PORT": str(free_port())}
    data = payload(shape, "broken", size=5_000_000)
    run = measured_hook(data[: len(data) // 2], env)
    assert run.exit_code == 0
    assert run.stdout == b""
    assert not (home / "memq.db").exists()
    log = (home / "logs" / "hook.log").read_text()
    assert "not valid JSON" in log
    assert len(log) < 1000
