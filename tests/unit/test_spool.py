"""The spool's file format, the hook's budget and its tolerance of bad setting values, and the
status lines about the spool (issue 19.1)."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from memq import env as memq_env
from memq.cli.status_lines import spool_lines, status_problems
from memq.events import Route
from memq.exceptions import DaemonUnavailableError, NoTimeLeftError, SpoolFileError
from memq.hooks import fallback, spool
from memq.hooks.client import _time_left
from memq.hooks.run import HookSettings, is_disabled

ROUTE = Route("PostToolUse", "claude-code:s1", "observation", "tool:t1")
BODY = json.dumps({"hook_event_name": "PostToolUse", "session_id": "s1", "text": "é\n"}).encode()
LIMIT = 1024 * 1024


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def header(**changes: Any) -> dict[str, Any]:
    fields = {
        "memq_spool": 1,
        "session_key": "claude-code:s1",
        "kind": "observation",
        "dedupe_key": "tool:t1",
        "event": "PostToolUse",
        "spooled_at": 1,
        "body_bytes": len(BODY),
    }
    fields.update(changes)
    return fields


def file_bytes(head: dict[str, Any], body: bytes = BODY) -> bytes:
    return json.dumps(head).encode() + b"\n" + body


class TestWriting:
    def test_an_event_is_one_private_file_that_reads_back_whole(self, tmp_path: Path) -> None:
        path = Path(spool.write_event(str(tmp_path), ROUTE, BODY, now_ms=1234))
        assert path.parent == tmp_path / "spool"
        assert mode(tmp_path / "spool") == 0o700
        assert mode(path) == 0o600
        assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left
        read = spool.read_event(str(path), max_body_bytes=LIMIT)
        assert (read.session_key, read.kind, read.dedupe_key, read.event) == (
            ROUTE.session_key,
            ROUTE.kind,
            ROUTE.dedupe_key,
            ROUTE.event,
        )
        assert read.body == BODY
        assert read.spooled_at == 1234

    def test_names_sort_in_the_order_events_were_spooled(self, tmp_path: Path) -> None:
        names = [
            Path(spool.write_event(str(tmp_path), ROUTE, BODY, now_ms=ms)).name
            for ms in (1_700_000_000_999, 999, 1_700_000_001_000)
        ]
        assert sorted(names) == [names[1], names[0], names[2]]

    def test_a_spool_path_that_is_a_symlink_is_refused(self, tmp_path: Path) -> None:
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        home = tmp_path / "home"
        home.mkdir()
        (home / "spool").symlink_to(elsewhere)
        with pytest.raises(SpoolFileError, match="not a directory"):
            spool.write_event(str(home), ROUTE, BODY, now_ms=1)
        assert list(elsewhere.iterdir()) == []

    def test_a_failed_write_leaves_no_temporary_file(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def full(fd: int) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "fsync", full)
        with pytest.raises(OSError, match="No space"):
            spool.write_event(str(tmp_path), ROUTE, BODY, now_ms=1)
        assert list((tmp_path / "spool").iterdir()) == []

    def test_counts_see_only_complete_events_and_rejected_files(self, tmp_path: Path) -> None:
        home = str(tmp_path)
        assert (spool.count_waiting(home), spool.count_rejected(home)) == (0, 0)
        spool.write_event(home, ROUTE, BODY, now_ms=1)
        spool.write_event(home, ROUTE, BODY, now_ms=2)
        (tmp_path / "spool" / ".3-1-aa.event.tmp").write_bytes(b"half")
        (tmp_path / "spool" / "rejected").mkdir()
        (tmp_path / "spool" / "rejected" / "4-1-bb.event").write_bytes(b"bad")
        assert (spool.count_waiting(home), spool.count_rejected(home)) == (2, 1)


class TestReading:
    @pytest.mark.parametrize(
        ("data", "problem"),
        [
            (b"", "no header line"),
            (BODY, "no header line"),
            (b"not json\n" + BODY, "not JSON"),
            (file_bytes({"memq_spool": 1}), "not a memq spool header"),
            (file_bytes(header(memq_spool=2)), "spool format 2"),
            (file_bytes(header(session_key="")), "session_key"),
            (file_bytes(header(kind=3)), "kind"),
            (file_bytes(header(dedupe_key=[])), "dedupe_key"),
            (file_bytes(header(body_bytes="7")), "whole numbers"),
            (file_bytes(header(spooled_at=True)), "whole numbers"),
            (file_bytes(header(), BODY[:-1]), "header says"),
            (file_bytes(header(), BODY + b" "), "header says"),
            (file_bytes(header(body_bytes=LIMIT + 1), b"x" * (LIMIT + 1)), "body limit"),
        ],
    )
    def test_anything_but_a_complete_event_is_refused(self, data: bytes, problem: str) -> None:
        with pytest.raises(SpoolFileError, match=problem):
            spool.parse_event(data, max_body_bytes=LIMIT)

    def test_an_event_without_a_dedupe_key_reads_back(self) -> None:
        read = spool.parse_event(file_bytes(header(dedupe_key=None)), max_body_bytes=LIMIT)
        assert read.dedupe_key is None

    def test_a_symlink_or_a_directory_is_no_event(self, tmp_path: Path) -> None:
        target = tmp_path / "target.event"
        target.write_bytes(file_bytes(header()))
        link = tmp_path / "link.event"
        link.symlink_to(target)
        with pytest.raises(SpoolFileError, match="symbolic link"):
            spool.read_event(str(link), max_body_bytes=LIMIT)
        (tmp_path / "dir.event").mkdir()
        with pytest.raises(SpoolFileError, match="regular file"):
            spool.read_event(str(tmp_path / "dir.event"), max_body_bytes=LIMIT)

    def test_a_file_larger_than_the_limit_is_not_read_whole(self, tmp_path: Path) -> None:
        path = tmp_path / "big.event"
        path.write_bytes(file_bytes(header(body_bytes=3 * 1024 * 1024), b"x" * 3 * 1024 * 1024))
        with pytest.raises(SpoolFileError, match="larger than the body limit"):
            spool.read_event(str(path), max_body_bytes=LIMIT)


class TestBudget:
    def test_a_lock_wait_is_cut_to_the_deadline(self) -> None:
        now = time.monotonic()
        assert fallback.busy_timeout_left(1.0, None) == 1.0
        assert fallback.busy_timeout_left(1.0, now + 10) == 1.0
        assert 0 < fallback.busy_timeout_left(1.0, now + 0.3) <= 0.3
        with pytest.raises(NoTimeLeftError):
            fallback.busy_timeout_left(1.0, now - 0.01)

    def test_a_socket_wait_is_cut_to_the_deadline(self) -> None:
        now = time.monotonic()
        assert _time_left(0.5, None) == 0.5
        assert 0 < _time_left(0.5, now + 0.2) <= 0.2
        with pytest.raises(DaemonUnavailableError, match="budget"):
            _time_left(0.5, now - 0.01)


class TestSpawnStamp:
    def test_a_stamp_from_the_future_does_not_stop_the_daemon_from_starting(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The clock was stepped back after a spawn: the stamp is stale, not fresh."""
        spawned: list[list[str]] = []
        monkeypatch.setattr(os, "posix_spawn", lambda path, argv, *a, **k: spawned.append(argv))
        stamp = tmp_path / fallback.SPAWN_STAMP_FILE
        stamp.write_text("1\n")
        future = time.time() + 3600
        os.utime(stamp, (future, future))
        assert fallback.start_daemon(str(tmp_path)) is True
        assert len(spawned) == 1
        assert fallback.start_daemon(str(tmp_path)) is False  # a fresh stamp now


class TestBadSettingValues:
    @pytest.mark.parametrize(
        ("env", "field", "default"),
        [
            ({"MEMQ_PORT": "abc"}, "port", 37778),
            ({"MEMQ_PORT": "70000"}, "port", 37778),
            ({"MEMQ_HOOK_TIMEOUT": "soon"}, "read_timeout", 0.5),
            ({"MEMQ_HOOK_CONNECT_TIMEOUT": "-1"}, "connect_timeout", 0.2),
            ({"MEMQ_BODY_LIMIT": "1k"}, "body_limit", 1024 * 1024),
        ],
    )
    def test_a_value_the_hook_cannot_use_falls_back_to_its_default(
        self, env: dict[str, str], field: str, default: object
    ) -> None:
        settings = HookSettings(env)
        assert getattr(settings, field) == default
        (problem,) = settings.problems
        assert next(iter(env)) in problem

    def test_good_values_are_used_and_no_problem_is_reported(self) -> None:
        settings = HookSettings({"MEMQ_PORT": "40001", "MEMQ_HOOK_TIMEOUT": "0.3"})
        assert (settings.port, settings.read_timeout, settings.problems) == (40001, 0.3, [])

    def test_a_disabled_switch_that_is_no_text_is_taken_as_no(self, tmp_path: Path) -> None:
        (tmp_path / "settings.toml").write_text("disabled = { yes = true }\n")
        env = memq_env.environment({"MEMQ_HOME": str(tmp_path)})
        assert is_disabled(env) is False
        (line,) = (tmp_path / "logs" / "hook.log").read_text().splitlines()
        assert json.loads(line)["event"] == "hook.setting_ignored"


class TestStatusLines:
    def test_nothing_is_said_about_an_empty_spool(self) -> None:
        status = {"state": "stopped", "spool": {"waiting": 0, "rejected": 0}}
        assert spool_lines(status, "/h") == []
        assert status_problems(status) == []

    def test_waiting_events_with_no_daemon_are_a_problem(self) -> None:
        status = {"state": "stopped", "spool": {"waiting": 2, "rejected": 0}}
        assert spool_lines(status, "/h") == [
            "SPOOL     2 events waiting in /h/spool: memq start takes them in"
        ]
        assert status_problems(status) == [
            "2 events waiting in the spool with no daemon to take them in"
        ]

    def test_waiting_events_with_a_running_daemon_are_not(self) -> None:
        status = {"state": "running", "spool": {"waiting": 1, "rejected": 0}}
        assert spool_lines(status, "/h") == [
            "spool     1 event waiting in /h/spool; the daemon takes them in"
        ]
        assert status_problems(status) == []

    def test_a_daemon_that_does_not_answer_is_named(self) -> None:
        status = {"state": "starting", "spool": {"waiting": 1, "rejected": 0}}
        (line,) = spool_lines(status, "/h")
        assert "does not answer" in line
        assert status_problems(status)

    def test_rejected_files_are_shown(self) -> None:
        status = {"state": "running", "spool": {"waiting": 0, "rejected": 3}}
        (line,) = spool_lines(status, "/h")
        assert "3 file(s) could not be taken in; kept in /h/spool/rejected" in line
