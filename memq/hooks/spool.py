"""The spool: where a hook leaves an event that neither the daemon nor the database took.

One file per event in ``MEMQ_HOME/spool/`` (directory 0700, files 0600). A file is written
under a temporary name in the same directory, fsynced, then renamed to its final name and the
directory fsynced: a name without the leading dot is always a complete event, and once the
hook returns the event survives a crash. The daemon takes the files in
(``memq.worker.spool_intake``) with the same dedupe key the direct write would have used, so
an event that reached both the database and the spool is stored once.

A file is one header line of JSON (what the queue needs besides the payload: session key,
kind, dedupe key, the hook event, and the body's length) followed by the event's JSON body,
byte for byte the text the hook would have posted or written into the pending table.

Standard library only: ``memq hook`` writes here.
"""

from __future__ import annotations

import errno
import json
import os
import stat

from memq.exceptions import SpoolFileError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final

    from memq.events import Route

SPOOL_DIR: Final = "spool"
REJECTED_DIR: Final = "rejected"  # inside the spool: files that could not be taken in
SUFFIX: Final = ".event"
TEMP_PREFIX: Final = "."  # a temporary name: never read as an event until renamed
TEMP_SUFFIX: Final = ".tmp"
FORMAT_VERSION: Final = 1
# A header holds a few ids (the session key and the event's name are bounded by
# memq.limits.MAX_SESSION_ID_CHARS), JSON escaped: far below this.
MAX_HEADER_BYTES: Final = 16 * 1024
_HEADER_KEYS: Final = frozenset(
    {"memq_spool", "session_key", "kind", "dedupe_key", "event", "spooled_at", "body_bytes"}
)
_NOFOLLOW: Final = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC: Final = getattr(os, "O_CLOEXEC", 0)
_DIRECTORY: Final = getattr(os, "O_DIRECTORY", 0)


class SpooledEvent:
    """One event read back from the spool."""

    __slots__ = ("body", "dedupe_key", "event", "kind", "session_key", "spooled_at")

    def __init__(
        self,
        *,
        session_key: str,
        kind: str,
        dedupe_key: str | None,
        event: str,
        body: bytes,
        spooled_at: int,
    ) -> None:
        self.session_key = session_key
        self.kind = kind
        self.dedupe_key = dedupe_key
        self.event = event  # hook_event_name, for the fork link
        self.body = body  # the payload as compact JSON, as the hook would have posted it
        self.spooled_at = spooled_at  # epoch milliseconds

    def __repr__(self) -> str:
        return (
            f"SpooledEvent(session_key={self.session_key!r}, kind={self.kind!r}, "
            f"dedupe_key={self.dedupe_key!r}, event={self.event!r}, "
            f"body_bytes={len(self.body)})"
        )


def spool_dir(home: str) -> str:
    """``MEMQ_HOME/spool``."""
    return os.path.join(home, SPOOL_DIR)


def rejected_dir(home: str) -> str:
    """``MEMQ_HOME/spool/rejected``."""
    return os.path.join(home, SPOOL_DIR, REJECTED_DIR)


def make_private_dir(path: str) -> None:
    """Create directory ``path`` (0700) if missing; refuse anything else at the path (a
    symlink could send the events elsewhere)."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            raise SpoolFileError(f"{path} is not a directory") from None


def write_event(home: str, route: Route, body: bytes, *, now_ms: int) -> str:
    """Put one event in ``home``'s spool, durably; returns the file's path.

    Raises ``OSError`` when it cannot be written (nothing is left behind but, at worst, a
    temporary file), ``SpoolFileError`` when the spool's path is not a directory.
    """
    directory = spool_dir(home)
    os.makedirs(home, mode=0o700, exist_ok=True)
    make_private_dir(directory)
    # Names sort in arrival order, so the daemon takes a session's events in the order the
    # hooks spooled them; the pid and random part keep concurrent hooks apart.
    name = f"{now_ms:013d}-{os.getpid()}-{os.urandom(4).hex()}{SUFFIX}"
    final = os.path.join(directory, name)
    temporary = os.path.join(directory, f"{TEMP_PREFIX}{name}{TEMP_SUFFIX}")
    header = {
        "memq_spool": FORMAT_VERSION,
        "session_key": route.session_key,
        "kind": route.kind,
        "dedupe_key": route.dedupe_key,
        "event": route.event,
        "spooled_at": now_ms,
        "body_bytes": len(body),
    }
    data = json.dumps(header, separators=(",", ":")).encode("utf-8") + b"\n" + body
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temporary, final)
    except BaseException:
        _discard(temporary)
        raise
    sync_dir(directory)
    return final


def _discard(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        return  # nothing to clean up, or it cannot be: the write's own error says more


def sync_dir(path: str) -> None:
    """fsync a directory, so that a rename or a new file in it survives a crash."""
    fd = os.open(path, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_event(path: str, *, max_body_bytes: int) -> SpooledEvent:
    """The event in the spool file ``path``.

    Raises ``SpoolFileError`` (saying what is wrong, never quoting the file) for a file that is
    not a complete spooled event or whose body exceeds ``max_body_bytes``, ``OSError`` when it
    cannot be read (``FileNotFoundError``: someone else took it in).
    """
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SpoolFileError("a symbolic link, not a file a hook wrote") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SpoolFileError("not a regular file")
        if info.st_size > MAX_HEADER_BYTES + max_body_bytes:
            raise SpoolFileError(
                f"{info.st_size} bytes: larger than the body limit ({max_body_bytes} bytes)"
            )
        with open(fd, "rb", closefd=False) as handle:
            data = handle.read(MAX_HEADER_BYTES + max_body_bytes + 1)
    finally:
        os.close(fd)
    return parse_event(data, max_body_bytes=max_body_bytes)


def parse_event(data: bytes, *, max_body_bytes: int) -> SpooledEvent:
    """The event in a spool file's bytes; ``SpoolFileError`` for anything else."""
    line, newline, body = data.partition(b"\n")
    if not newline or len(line) > MAX_HEADER_BYTES:
        raise SpoolFileError("no header line")
    try:
        header = json.loads(line)
    except ValueError:
        raise SpoolFileError("the header is not JSON") from None
    if not isinstance(header, dict) or set(header) != _HEADER_KEYS:
        raise SpoolFileError("the header is not a memq spool header")
    if header["memq_spool"] != FORMAT_VERSION:
        raise SpoolFileError(f"spool format {header['memq_spool']!r}, not {FORMAT_VERSION}")
    session_key = _text(header, "session_key")
    kind = _text(header, "kind")
    event = _text(header, "event")
    dedupe_key = header["dedupe_key"]
    if dedupe_key is not None:
        dedupe_key = _text(header, "dedupe_key")
    spooled_at = header["spooled_at"]
    length = header["body_bytes"]
    if not _is_int(spooled_at) or not _is_int(length):
        raise SpoolFileError("the header's spooled_at and body_bytes must be whole numbers")
    if length > max_body_bytes:
        raise SpoolFileError(f"a {length}-byte body: over the body limit ({max_body_bytes})")
    if len(body) != length:
        raise SpoolFileError(f"the body has {len(body)} bytes, the header says {length}")
    return SpooledEvent(
        session_key=session_key,
        kind=kind,
        dedupe_key=dedupe_key,
        event=event,
        body=body,
        spooled_at=spooled_at,
    )


def _text(header: dict[str, Any], key: str) -> str:
    value = header[key]
    if not isinstance(value, str) or not value:
        raise SpoolFileError(f"the header's {key} is not a non-empty string")
    return value


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def is_event_name(name: str) -> bool:
    """Whether a file name in the spool is a complete event's."""
    return name.endswith(SUFFIX) and not name.startswith(TEMP_PREFIX)


def is_temporary_name(name: str) -> bool:
    """Whether a file name in the spool is a hook's temporary (maybe half-written) file."""
    return name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)


def count_waiting(home: str) -> int:
    """How many events wait in ``home``'s spool (0 when there is none): one directory scan."""
    return _count(spool_dir(home), is_event_name)


def count_rejected(home: str) -> int:
    """How many files the daemon put aside in ``spool/rejected`` as unusable."""
    return _count(rejected_dir(home), lambda name: not name.startswith(TEMP_PREFIX))


def _count(directory: str, wanted: Any) -> int:
    try:
        with os.scandir(directory) as entries:
            return sum(1 for entry in entries if wanted(entry.name))
    except (FileNotFoundError, NotADirectoryError):
        return 0
