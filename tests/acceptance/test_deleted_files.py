"""The database or its WAL deleted under a running daemon (issue 19.4), on a real daemon
process and real files: every acknowledged event is there exactly once after a SIGKILL or a
stop, and the daemon said what happened in its log. Scenarios: ``tests/faults/deleted_files``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.faults import deleted_files
from tests.faults.deleted_files import DeletedFilesReport

pytestmark = pytest.mark.slow


def _check(report: DeletedFilesReport) -> None:
    assert report.sent > 0
    assert report.acknowledged == report.sent, report
    assert report.lost == 0, report
    assert report.duplicates == 0, report
    assert report.replaced_logged, "no database.replaced error in the daemon's log"


@pytest.mark.parametrize(
    "scenario",
    [
        deleted_files.wal_deleted_then_killed,
        deleted_files.database_deleted_then_killed,
        deleted_files.wal_deleted_then_stopped,
        deleted_files.database_deleted_then_stopped,
    ],
    ids=lambda driver: driver.__name__,
)
def test_events_after_the_deletion_survive_the_end_of_the_daemon(
    tmp_path: Path, scenario: Callable[[Path], DeletedFilesReport]
) -> None:
    """Events acknowledged before and after the files were deleted are all there once the
    daemon was killed or stopped and started again."""
    report = scenario(tmp_path)
    _check(report)
    (line,) = report.replaced_lines
    assert line["found"], line
    assert line["path"].endswith("memq.db")


def test_an_idle_daemon_saves_what_it_holds_within_seconds(tmp_path: Path) -> None:
    """With no event after the deletion, the periodic check alone saves what the daemon held
    before it is killed."""
    report = deleted_files.wal_deleted_while_idle(tmp_path)
    _check(report)
    (line,) = report.replaced_lines
    assert "WAL file missing" in line["found"]


def test_a_fresh_database_made_at_the_path_is_kept_aside_and_taken_in(tmp_path: Path) -> None:
    """A hook that found no daemon made a new memq.db for its event while the daemon's was
    gone: that file is renamed aside, never deleted, and its event is taken in once."""
    report = deleted_files.fresh_database_at_the_path(tmp_path)
    _check(report)
    assert report.kept_aside, "the fresh database was not kept aside"
    assert any(name.startswith("memq.db.replaced-") for name in report.kept_aside)
    (line,) = report.replaced_lines
    assert line["kept_aside"], line
    assert line["taken_in"] == 1, line  # the fresh file's one event
