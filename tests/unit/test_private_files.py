"""The token file and the data directory: only memq's own files, never followed, never quoted."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from memq.exceptions import UnsafeFileError
from memq.private_files import (
    TOKEN_LENGTH,
    check_home,
    is_token,
    load_or_create_token,
    make_private,
    make_tree_private,
    read_token,
)

SECRET = "the target's own secret contents"


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def token_path(tmp_path: Path) -> Path:
    return tmp_path / "token"


class TestTheToken:
    def test_a_new_token_is_created_0600_with_its_shape(self, token_path: Path) -> None:
        token = load_or_create_token(str(token_path))
        assert is_token(token)
        assert len(token) == TOKEN_LENGTH
        assert mode(token_path) == 0o600
        assert load_or_create_token(str(token_path)) == token

    def test_a_symlink_is_refused_and_its_target_left_alone(
        self, token_path: Path, tmp_path: Path
    ) -> None:
        """The planted link's target keeps its mode and its contents appear in no error."""
        target = tmp_path / "elsewhere"
        target.write_text(SECRET)
        target.chmod(0o644)
        token_path.symlink_to(target)
        with pytest.raises(UnsafeFileError, match="symbolic link") as caught:
            load_or_create_token(str(token_path))
        assert SECRET not in str(caught.value)
        assert mode(target) == 0o644
        assert target.read_text() == SECRET

    def test_a_symlink_to_a_valid_looking_token_is_refused_too(
        self, token_path: Path, tmp_path: Path
    ) -> None:
        target = tmp_path / "other-token"
        target.write_text("A" * TOKEN_LENGTH)
        token_path.symlink_to(target)
        with pytest.raises(UnsafeFileError, match="symbolic link"):
            read_token(str(token_path))

    @pytest.mark.parametrize(
        "contents",
        [SECRET, "x" * TOKEN_LENGTH + "!", "A" * (TOKEN_LENGTH - 1), "A" * 10_000_000],
        ids=["prose", "bad-character", "too-short", "huge"],
    )
    def test_contents_that_are_not_a_token_are_refused_unquoted(
        self, token_path: Path, contents: str
    ) -> None:
        token_path.write_text(contents)
        token_path.chmod(0o600)
        with pytest.raises(UnsafeFileError, match="does not hold a memq token") as caught:
            load_or_create_token(str(token_path))
        assert contents[:20] not in str(caught.value)
        assert token_path.read_text() == contents  # not replaced: a person should look

    def test_a_loosened_mode_is_repaired(self, token_path: Path) -> None:
        token = load_or_create_token(str(token_path))
        token_path.chmod(0o644)
        assert read_token(str(token_path)) == token
        assert mode(token_path) == 0o600

    def test_an_empty_file_left_by_a_crash_is_replaced(self, token_path: Path) -> None:
        token_path.touch(mode=0o600)
        assert is_token(load_or_create_token(str(token_path)))

    def test_a_fifo_is_refused_without_blocking(self, token_path: Path) -> None:
        os.mkfifo(token_path)
        with pytest.raises(UnsafeFileError, match="not a regular file"):
            read_token(str(token_path))

    def test_a_directory_is_refused(self, token_path: Path) -> None:
        token_path.mkdir()
        with pytest.raises(UnsafeFileError):
            read_token(str(token_path))

    @pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
    def test_a_file_owned_by_someone_else_is_refused(self, token_path: Path) -> None:
        token_path.write_text("A" * TOKEN_LENGTH)
        os.chown(token_path, 12345, 12345)
        with pytest.raises(UnsafeFileError, match="owned by uid 12345"):
            read_token(str(token_path))

    def test_no_file_is_file_not_found(self, token_path: Path) -> None:
        with pytest.raises(FileNotFoundError):
            read_token(str(token_path))


class TestTheHome:
    def test_a_private_or_missing_home_is_fine(self, tmp_path: Path) -> None:
        home = tmp_path / "home"
        check_home(str(home))
        home.mkdir(mode=0o700)
        check_home(str(home))

    @pytest.mark.parametrize("loose", [0o777, 0o770, 0o702])
    def test_a_home_others_can_write_is_refused_with_the_fix(
        self, tmp_path: Path, loose: int
    ) -> None:
        home = tmp_path / "home"
        home.mkdir()
        home.chmod(loose)
        with pytest.raises(UnsafeFileError, match=r"can be written by other users.*chmod 700"):
            check_home(str(home))

    def test_a_file_is_not_a_home(self, tmp_path: Path) -> None:
        (tmp_path / "home").write_text("")
        with pytest.raises(UnsafeFileError, match="not a directory"):
            check_home(str(tmp_path / "home"))


class TestMakePrivate:
    def test_a_file_becomes_0600(self, tmp_path: Path) -> None:
        path = tmp_path / "memq.db"
        path.write_text("")
        path.chmod(0o644)
        assert make_private(str(path)) is True
        assert mode(path) == 0o600
        assert make_private(str(path)) is False  # already private

    def test_a_symlink_is_refused_and_not_followed(self, tmp_path: Path) -> None:
        target = tmp_path / "target"
        target.write_text(SECRET)
        target.chmod(0o644)
        (tmp_path / "memq.db").symlink_to(target)
        with pytest.raises(UnsafeFileError):
            make_private(str(tmp_path / "memq.db"))
        assert mode(target) == 0o644

    def test_a_missing_file_is_nothing_to_do(self, tmp_path: Path) -> None:
        make_private(str(tmp_path / "absent"))


class TestMakeTreePrivate:
    def test_loose_files_and_directories_become_private(self, tmp_path: Path) -> None:
        home = tmp_path / "home"
        (home / "logs").mkdir(parents=True)
        (home / "logs").chmod(0o755)
        loose = [home / "memq.db", home / "memq.db-wal", home / "logs" / "memq.log"]
        for path in loose:
            path.write_text("")
            path.chmod(0o644)
        private = home / "token"
        private.write_text("")
        private.chmod(0o600)
        changed = make_tree_private(str(home), ("logs", "spool"))
        assert sorted(changed) == sorted(str(path) for path in [*loose, home / "logs"])
        assert all(mode(path) == 0o600 for path in [*loose, private])
        assert mode(home / "logs") == 0o700
        assert make_tree_private(str(home), ("logs",)) == []  # nothing left to do

    def test_links_are_not_followed(self, tmp_path: Path) -> None:
        home = tmp_path / "home"
        home.mkdir()
        outside = tmp_path / "outside"
        outside.mkdir()
        target = outside / "file"
        target.write_text(SECRET)
        target.chmod(0o644)
        outside.chmod(0o755)
        (home / "memq.log").symlink_to(target)
        (home / "logs").symlink_to(outside)  # a linked directory is not walked either
        assert make_tree_private(str(home), ("logs",)) == []
        assert mode(target) == 0o644
        assert mode(outside) == 0o755

    def test_a_missing_home_is_nothing_to_do(self, tmp_path: Path) -> None:
        assert make_tree_private(str(tmp_path / "absent"), ("logs",)) == []
