"""The pure parts of issue 19 items 3 and 8: what an exception is told as, what a daemon's
stderr says, which status means a problem, how a database file is judged."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from memq import startup_error
from memq.cli.daemon_process import DAEMON_STDERR_FILE, exit_reason
from memq.cli.status_gather import database_check
from memq.cli.status_lines import problem_lines, status_problems
from memq.config import Paths
from memq.exceptions import DatabaseDamagedError, StorageError
from memq.repair import _partial_where
from memq.storage import integrity

GROUP_TRACEBACK = """\
  + Exception Group Traceback (most recent call last):
  |   File "/x/memq/worker/daemon.py", line 202, in _serve
  |     async with anyio.create_task_group() as tg:
  | ExceptionGroup: unhandled errors in a TaskGroup (1 sub-exception)
  +-+---------------- 1 ----------------
    | Traceback (most recent call last):
    |   File "/x/memq/worker/pidfile.py", line 40, in write_record
    |     tmp.write_text(json.dumps(asdict(record)), encoding="utf-8")
    | IsADirectoryError: [Errno 21] Is a directory: '/h/memq.pid.tmp'
    +------------------------------------
"""


class TestDescribe:
    def test_an_exception_group_is_its_leaves(self) -> None:
        group = ExceptionGroup(
            "unhandled errors in a TaskGroup",
            [
                IsADirectoryError(21, "Is a directory", "/h/memq.pid.tmp"),
                ExceptionGroup("inner", [StorageError("disk I/O error")]),
            ],
        )
        text = startup_error.describe(group)
        assert text == "Is a directory: /h/memq.pid.tmp; disk I/O error"

    def test_memq_errors_by_their_message_others_by_type(self) -> None:
        assert startup_error.describe(DatabaseDamagedError("the database x is damaged")) == (
            "the database x is damaged"
        )
        assert startup_error.describe(KeyError("port")) == "KeyError: 'port'"
        assert startup_error.describe(RuntimeError()) == "RuntimeError"


class TestExitReason:
    def test_the_recorded_reason_of_that_daemon_wins(self, tmp_path: Path) -> None:
        paths = Paths(tmp_path)
        paths.create_home()
        startup_error.record(str(tmp_path), "port 1 is in use")
        assert exit_reason(paths, os.getpid(), 1) == "port 1 is in use"
        # Another process's record is not this daemon's reason.
        (paths.logs / DAEMON_STDERR_FILE).write_text(GROUP_TRACEBACK)
        assert "Is a directory" in exit_reason(paths, os.getpid() + 1, 1)

    def test_a_traceback_gives_its_last_words_not_its_frame(self, tmp_path: Path) -> None:
        paths = Paths(tmp_path)
        paths.create_home()
        (paths.logs / DAEMON_STDERR_FILE).write_text(GROUP_TRACEBACK)
        reason = exit_reason(paths, 0, 1)
        assert reason == "IsADirectoryError: [Errno 21] Is a directory: '/h/memq.pid.tmp'"

    def test_the_daemon_s_own_line_is_taken(self, tmp_path: Path) -> None:
        paths = Paths(tmp_path)
        paths.create_home()
        (paths.logs / DAEMON_STDERR_FILE).write_text(
            GROUP_TRACEBACK + "memq: cannot start: the database /h/memq.db is damaged\n"
        )
        assert exit_reason(paths, 0, 1) == "the database /h/memq.db is damaged"

    def test_silence_is_told_by_the_exit_status(self, tmp_path: Path) -> None:
        paths = Paths(tmp_path)
        paths.create_home()
        assert exit_reason(paths, 0, -9) == "it was killed by signal 9 and said nothing"


class TestStatusProblems:
    def test_a_damaged_database_is_a_problem_naming_the_file_and_repair(self) -> None:
        status = {
            "state": "stopped",
            "database_check": {"state": "damaged", "path": "/h/memq.db", "detail": "malformed"},
        }
        (problem,) = status_problems(status)
        assert "/h/memq.db is damaged (malformed)" in problem
        assert "memq repair" in problem
        assert problem_lines(status)[0].startswith("DAMAGED   the database /h/memq.db")

    def test_a_failed_start_and_a_read_only_home_are_problems(self) -> None:
        status = {
            "state": "stopped",
            "database_check": {"state": "ok", "path": "/h/memq.db"},
            "startup_error": {"time": "T", "phase": "start", "reason": "port 1 is in use"},
            "home_problem": "MEMQ_HOME /h is on a read-only file system",
        }
        assert status_problems(status) == [
            "the daemon could not start at T: port 1 is in use",
            "MEMQ_HOME /h is on a read-only file system",
        ]

    def test_a_whole_database_and_nothing_else_is_no_problem(self) -> None:
        status = {"state": "running", "database_check": {"state": "ok", "path": "/h/memq.db"}}
        assert status_problems(status) == []
        assert problem_lines(status) == []


def small_database(path: Path, rows: int = 2000) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x TEXT)")
    conn.executemany("INSERT INTO t VALUES (?)", [("x" * 100,) for _ in range(rows)])
    conn.commit()
    conn.close()


class TestIntegrity:
    def test_what_is_no_database(self, tmp_path: Path) -> None:
        assert integrity.check(str(tmp_path / "none")).verdict == integrity.Verdict.MISSING
        empty = tmp_path / "empty"
        empty.write_bytes(b"")
        assert integrity.check(str(empty)).verdict == integrity.Verdict.OK
        short = tmp_path / "short"
        short.write_bytes(integrity.HEADER)
        assert integrity.check(str(short)).damaged
        text = tmp_path / "text"
        text.write_text("hello\n" * 100)
        assert integrity.check(str(text)).damaged
        assert integrity.check(str(tmp_path)).damaged  # a directory

    def test_a_check_out_of_time_is_unchecked_not_ok(self, tmp_path: Path) -> None:
        path = tmp_path / "db"
        small_database(path)
        found = integrity.check(str(path), budget_seconds=0)
        assert found.verdict == integrity.Verdict.UNCHECKED
        assert integrity.check(str(path), budget_seconds=5).verdict == integrity.Verdict.OK

    def test_the_daemon_s_finding_fills_what_status_had_no_time_for(self, tmp_path: Path) -> None:
        home = tmp_path
        (home / "logs").mkdir()
        path = home / "memq.db"
        small_database(path)
        startup_error.record(
            str(home), "damaged", kind=startup_error.Kind.DATABASE_DAMAGED, database=str(path)
        )
        checked = database_check(str(path), str(home), budget_seconds=0)
        assert checked["state"] == "damaged"
        # The same name, another file (repaired, replaced): the finding is not about it.
        path.rename(home / "old.db")
        small_database(path)
        checked = database_check(str(path), str(home), budget_seconds=0)
        assert checked["state"] == "unchecked"

    def test_damage_is_found_through_the_causes(self) -> None:
        with pytest.raises(sqlite3.Error) as plain:
            sqlite3.connect(":memory:").execute("SELECT * FROM nowhere").fetchall()
        assert not integrity.is_damage(plain.value)
        corrupt = sqlite3.DatabaseError("database disk image is malformed")
        corrupt.sqlite_errorcode = 11
        wrapped = StorageError("cannot open")
        wrapped.__cause__ = corrupt
        assert integrity.is_damage(wrapped)


def test_a_partial_index_s_where() -> None:
    sql = "CREATE INDEX i\n    ON t (session_id, id) WHERE status = 'pending'"
    assert _partial_where(sql) == "status = 'pending'"
    assert _partial_where("CREATE INDEX i ON t (a)") is None
    assert _partial_where(None) is None


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through directory modes")
def test_a_home_without_write_permission_is_named(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o555)
    try:
        problem = startup_error.home_write_problem(str(home))
    finally:
        home.chmod(0o700)
    assert problem is not None
    assert f"MEMQ_HOME {home} is read-only" in problem
