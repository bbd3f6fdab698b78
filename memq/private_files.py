"""The files in ``MEMQ_HOME`` that only the user may read: the token, the database, the logs.

Standard library only and cheap to import: ``memq hook`` reads the token on every tool call.

The token file is opened without following a symlink and accepted only as a regular file
that the user owns, holding a token of memq's own alphabet and length. Its mode is checked
and repaired through the open descriptor, so nothing swapped in at the path between a check
and a use is touched. No error here ever quotes what a file holds.
"""

from __future__ import annotations

import os
import stat

from memq.env import Variable
from memq.exceptions import UnsafeFileError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

# secrets.token_urlsafe(32): 32 random bytes in URL-safe base64 without padding.
TOKEN_BYTES: Final = 32
TOKEN_LENGTH: Final = 43
TOKEN_ALPHABET: Final = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
)
PRIVATE_MODE: Final = 0o600
HOME_MODE: Final = 0o700
_NOFOLLOW: Final = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC: Final = getattr(os, "O_CLOEXEC", 0)


def new_token() -> str:
    """A fresh bearer token."""
    import secrets  # noqa: PLC0415 - hashlib and hmac cost the hook, which only reads, 5 ms

    return secrets.token_urlsafe(TOKEN_BYTES)


def is_token(text: str) -> bool:
    """Whether ``text`` has the shape of a memq token (alphabet and length)."""
    return len(text) == TOKEN_LENGTH and all(ch in TOKEN_ALPHABET for ch in text)


def read_token(path: str) -> str:
    """The token in ``path``. Raises ``FileNotFoundError`` when there is none yet and
    ``UnsafeFileError`` (naming the path and the reason, never the contents) when the file
    is not one memq wrote for this user."""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if os.path.islink(path):
            raise UnsafeFileError(
                f"{path} is a symbolic link; memq uses only its own file"
            ) from None
        raise UnsafeFileError(f"{path} cannot be opened: {exc.strerror}") from None
    try:
        check_private_fd(fd, path)
        raw = os.read(fd, TOKEN_LENGTH + 2)  # the token and a newline; more is not a token
    finally:
        os.close(fd)
    text = raw.decode("ascii", errors="replace").strip()
    if not is_token(text):
        raise UnsafeFileError(
            f"{path} does not hold a memq token; delete it and restart the daemon"
        )
    return text


def check_private_fd(fd: int, path: str) -> bool:
    """Refuse an open file that is not a regular file owned by the user; tighten its mode
    to 0600 (through ``fd``) when others could read it. Returns whether it did."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise UnsafeFileError(f"{path} is not a regular file")
    uid = os.geteuid()
    if info.st_uid != uid:
        raise UnsafeFileError(f"{path} is owned by uid {info.st_uid}, not by you (uid {uid})")
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.fchmod(fd, PRIVATE_MODE)
        return True
    return False


def create_token(path: str) -> str:
    """Write a new token to ``path`` (0600), which must not exist; returns it."""
    token = new_token()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, PRIVATE_MODE)
    try:
        os.write(fd, (token + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    return token


def load_or_create_token(path: str) -> str:
    """The daemon's token: read, or created on first start. An empty file (a crash between
    create and write) is replaced; anything else unusable is refused with the reason."""
    for _ in range(3):
        try:
            return read_token(path)
        except FileNotFoundError:
            pass
        except UnsafeFileError:
            if not _is_empty_regular_file(path):
                raise
            os.unlink(path)
        try:
            return create_token(path)
        except FileExistsError:
            continue  # another process created it meanwhile: read theirs
    raise UnsafeFileError(f"{path} keeps changing; is another memq writing it?")


def _is_empty_regular_file(path: str) -> bool:
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_size == 0 and info.st_uid == os.geteuid()


def check_home(path: str) -> None:
    """Refuse a data directory that is not the user's own or that others can write to: they
    could plant files memq would trust (a token, a database, a spool)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return  # memq creates it, 0700
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeFileError(f"{Variable.HOME} {path} is not a directory")
    uid = os.geteuid()
    if info.st_uid != uid:
        raise UnsafeFileError(f"{Variable.HOME} {path} is owned by uid {info.st_uid}, not by you")
    if stat.S_IMODE(info.st_mode) & 0o022:
        raise UnsafeFileError(
            f"{Variable.HOME} {path} can be written by other users (mode "
            f"{stat.S_IMODE(info.st_mode):03o}); run: chmod 700 {path}"
        )


def make_private(path: str) -> bool:
    """Set an existing file of the user's to 0600 without following a symlink; returns
    whether its mode changed."""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise UnsafeFileError(f"{path} cannot be opened: {exc.strerror}") from None
    try:
        return check_private_fd(fd, path)
    finally:
        os.close(fd)


def make_tree_private(directory: str, subdirectories: tuple[str, ...] = ()) -> list[str]:
    """Make every regular file of the user's in ``directory`` and in its ``subdirectories``
    (names relative to it) 0600, and those subdirectories 0700; returns the paths changed.

    A file only looked at (``lstat``) when its mode is already private: the database is
    opened here only to repair it, so this must run before any SQLite connection to it in
    this process (closing a descriptor drops the process's locks on the file). Symlinks and
    files of other users are left alone: memq does not follow or take them.
    """
    changed: list[str] = []
    uid = os.geteuid()
    for name in ("", *subdirectories):
        folder = os.path.join(directory, name) if name else directory
        try:
            info = os.lstat(folder)
        except FileNotFoundError:
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid:
            continue  # a link (not followed) or not the user's
        if name and stat.S_IMODE(info.st_mode) & 0o077:
            os.chmod(folder, HOME_MODE)
            changed.append(folder)
        for entry in os.scandir(folder):
            try:
                entry_info = entry.stat(follow_symlinks=False)
                loose = stat.S_IMODE(entry_info.st_mode) & 0o077
                ours = stat.S_ISREG(entry_info.st_mode) and entry_info.st_uid == uid
                if ours and loose and make_private(entry.path):
                    changed.append(entry.path)
            except (OSError, UnsafeFileError):
                continue  # replaced by a link or removed meanwhile: not ours to repair
    return changed
