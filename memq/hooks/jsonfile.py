"""Changing a JSON file that another program owns, without losing anything of it.

Claude Code keeps its settings (``~/.claude/settings.json``) and its own state
(``~/.claude.json``, with the user's MCP servers) in JSON files it rewrites itself. memq changes
them in place: every other key stays as it was, in the same order; a changed file is first
copied to ``<name>.memq-backup-YYYYmmddHHMMSS`` beside it, then replaced atomically (a
temporary file beside it, fsync, ``os.replace``) with its permissions kept; a file that is not a
JSON object is refused untouched. When the file changes between memq reading it and replacing
it (Claude Code writing at the same moment), memq reads it again and redoes its change rather
than overwrite the other writer's.

Standard library only: this runs from ``memq install``, next to the hook path.
"""

from __future__ import annotations

import functools
import json
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeAlias, TypeVar

from memq.events import json_type
from memq.exceptions import InstallError
from memq.file_sync import sync_directory

BACKUP_INFIX: Final = ".memq-backup-"
ATTEMPTS: Final = 3  # reads and rewrites before giving up on a file that keeps changing

Json: TypeAlias = dict[str, Any]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Update:
    """What :func:`update` did to a file."""

    path: Path  # the file (symlinks followed)
    existed: bool  # there was a file before
    changed: bool  # False: the change left the content as it was, nothing was written
    backup: Path | None  # a copy of the previous file, when there was one and it changed


_ANY: Final = object()  # what _write expects of a file it need not check


def real_path(path: str | os.PathLike[str]) -> Path:
    """``path`` made absolute with symlinks followed, so a linked file stays linked."""
    return Path(os.path.realpath(path))


def read_object(path: Path) -> tuple[Json, bytes] | None:
    """The JSON object in ``path`` and the exact bytes it came from; None if there is no
    file. An empty (or blank) file counts as ``{}``.

    Raises:
        InstallError: the file cannot be read, or is not a UTF-8 JSON object.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InstallError(f"{path}: cannot read it ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InstallError(f"{path}: not UTF-8 text; left unchanged") from None
    if not text.strip():
        return {}, raw
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}: {exc.msg}"
        raise InstallError(f"{path}: not valid JSON ({where}); left unchanged") from None
    if not isinstance(data, dict):
        raise InstallError(f"{path}: holds {json_type(data)}, not a JSON object; left unchanged")
    return data, raw


def naming(path: Path, compute: Callable[[], T]) -> T:
    """Run a pure step on a file's content, naming the file in its refusal."""
    try:
        return compute()
    except InstallError as exc:
        raise InstallError(f"{path}: {exc}; left unchanged") from None


def dump(data: Json, *, newline: bool = True) -> str:
    """``data`` as memq writes it: two-space indents, non-ASCII kept as it is."""
    return json.dumps(data, indent=2, ensure_ascii=False) + ("\n" if newline else "")


def preview(path: str | os.PathLike[str], change: Callable[[Json], Json]) -> bool:
    """Whether :func:`update` with ``change`` would write ``path``; writes nothing.

    Raises:
        InstallError: as for :func:`update`.
    """
    target = real_path(path)
    loaded = read_object(target)
    data = {} if loaded is None else loaded[0]
    return naming(target, lambda: change(data)) != data


def update(
    path: str | os.PathLike[str],
    change: Callable[[Json], Json],
    *,
    now: float | None = None,
    new_mode: int | None = None,
) -> Update:
    """Apply ``change`` (a pure function of the file's object) to the JSON file at ``path``.

    A missing file counts as ``{}`` and is created only when the change gives something else.
    Nothing is written when the change gives the content back as it was.

    Args:
        path: the file.
        change: the new object from the current one; it must not modify its argument, and
            raises InstallError for content it cannot work with.
        now: the time stamped on the backup's name; the current time by default.
        new_mode: the permissions of a file this creates (0666 less the umask by default).

    Raises:
        InstallError: the file cannot be read, is not a JSON object, the change refuses it,
            it cannot be written, or it kept changing under memq. It is then unchanged.
    """
    target = real_path(path)
    for _ in range(ATTEMPTS):
        loaded = read_object(target)
        data, raw = ({}, None) if loaded is None else loaded
        new = naming(target, functools.partial(change, data))
        if new == data:
            return Update(target, existed=raw is not None, changed=False, backup=None)
        if raw is None:
            if _write(target, dump(new), mode=new_mode, expected=None):
                return Update(target, existed=False, changed=True, backup=None)
            continue  # someone created it meanwhile: read theirs
        text = dump(new, newline=raw.endswith(b"\n") or not raw.strip())
        backup = _replace(target, raw, text, now)
        if backup is not None:
            return Update(target, existed=True, changed=True, backup=backup)
    raise InstallError(
        f"{target}: kept changing while memq tried to update it (is Claude Code writing it?); "
        "left unchanged, try again"
    )


def write_new(path: Path, text: str) -> None:
    """Write ``path`` whole, atomically, whatever was there (a file memq owns outright).

    Raises:
        InstallError: it cannot be written.
    """
    _write(path, text, mode=None, expected=_ANY)


# -- writing -----------------------------------------------------------------------------------


def _replace(path: Path, raw: bytes, text: str, now: float | None) -> Path | None:
    """Back up ``raw`` (the file's bytes as read) beside ``path``, then put ``text`` in its
    place; returns the backup. None when the file no longer holds ``raw``: it is then left
    as the other writer made it, and the backup is removed.

    Both files keep the permissions of the original: settings can hold secrets in ``env``.
    """
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        backup = _backup(path, raw, mode, now)
    except OSError as exc:
        raise InstallError(
            f"{path}: cannot write a backup ({exc.strerror}); left unchanged"
        ) from None
    try:
        written = _write(path, text, mode=mode, expected=raw)
    except BaseException:
        backup.unlink(missing_ok=True)
        raise
    if not written:
        backup.unlink(missing_ok=True)
        return None
    return backup


def _backup(path: Path, raw: bytes, mode: int, now: float | None) -> Path:
    stamp = time.strftime("%Y%m%d%H%M%S", time.localtime(now))
    base = f"{path.name}{BACKUP_INFIX}{stamp}"
    n = 1
    while True:
        candidate = path.with_name(base if n == 1 else f"{base}-{n}")
        n += 1
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "wb") as file:
            file.write(raw)
            file.flush()
            os.fchmod(file.fileno(), mode)
            os.fsync(file.fileno())
        return candidate


def _swap(temporary: Path, path: Path, expected: object) -> bool:
    """Rename ``temporary`` over ``path`` if ``path`` still holds ``expected`` (None: still
    no file; :data:`_ANY`: whatever it holds); whether it did."""
    if expected is not _ANY:
        try:
            current: bytes | None = path.read_bytes()
        except FileNotFoundError:
            current = None
        if current != expected:
            return False
    os.replace(temporary, path)
    return True


def _write(path: Path, text: str, *, mode: int | None, expected: object) -> bool:
    """Write ``text`` to ``path`` atomically: a temporary file beside it, fsync, ``os.replace``.
    Returns False, writing nothing, when ``path`` no longer holds ``expected``.

    ``mode`` None creates the file as any new file is (0666 less the umask). ``expected`` is
    what the file must still hold right before the rename (bytes; None: still no file;
    :data:`_ANY`: no check). The check narrows the window in which another writer's change
    could be lost to the rename itself.
    """
    temporary = path.with_name(f".{path.name}.memq-{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.unlink(missing_ok=True)
        fd = os.open(
            temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if mode is None else 0o600
        )
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(text.encode("utf-8"))
                file.flush()
                if mode is not None:
                    os.fchmod(file.fileno(), mode)
                os.fsync(file.fileno())
            swapped = _swap(temporary, path, expected)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        if not swapped:
            temporary.unlink(missing_ok=True)
            return False
    except OSError as exc:
        raise InstallError(f"{path}: cannot write it ({exc.strerror or exc})") from None
    sync_directory(path.parent, best_effort=True)
    return True
