"""``memq.file_sync``: a directory synced, strictly or as best it can be."""

from __future__ import annotations

from pathlib import Path

import pytest

from memq.file_sync import sync_directory


def test_a_directory_is_synced(tmp_path: Path) -> None:
    (tmp_path / "new").write_text("x")
    sync_directory(tmp_path)  # no error: it opened and synced
    sync_directory(str(tmp_path), best_effort=True)


def test_what_cannot_be_opened_raises_unless_best_effort(tmp_path: Path) -> None:
    missing = tmp_path / "gone"
    with pytest.raises(FileNotFoundError):
        sync_directory(missing)
    sync_directory(missing, best_effort=True)


def test_a_file_is_no_directory(tmp_path: Path) -> None:
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(NotADirectoryError):
        sync_directory(file)
