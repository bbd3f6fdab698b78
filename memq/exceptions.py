"""Every error memq raises on purpose, in one tree.

    MemqError
    ├── SettingError             a MEMQ_* variable memq cannot use (also a ValueError)
    ├── StartupError             the daemon cannot start (port taken, already running, ...)
    │   └── DatabaseDamagedError the database failed its check: memq repair rebuilds it
    ├── ControlError             memq start or stop could not do what was asked
    ├── RepairError              memq repair must not run now, or could not finish
    ├── UnsafeFileError          a file in MEMQ_HOME is not one memq may trust (a symlink,
    │                            someone else's, writable by others, not a token)
    ├── SpoolFileError           a file in MEMQ_HOME/spool that is not a complete spooled event
    ├── InstallError             Claude Code's settings cannot be changed safely (left untouched)
    ├── InvalidQueryError        a search the user typed that memq cannot run (HTTP 400)
    ├── InvalidSettingValueError a per-session setting with an unknown name or bad value (422)
    ├── ForkError                a session cannot be forked
    │   ├── ForkParentNotFoundError  memory has no session to fork (HTTP 404)
    │   └── ForkTargetExistsError    the new session's id is taken, in memory or the queue (409)
    ├── SessionNotFoundError     memq has no session by that id (HTTP 404)
    ├── MessageNotFoundError     the session has no message by that id (HTTP 404)
    ├── ProcessorError           a processor could not turn a message into memory
    │   ├── TransientProcessorError  rate limit, server error, timeout: try again later
    │   ├── ProcessorAuthError       the model API refused the credentials: pause everything
    │   ├── ProcessorUnavailableError  a session's processor cannot be created (no API key):
    │   │                              its session pauses (also a ValueError)
    │   └── InvalidOutputError       the model answered something that is not a valid record
    ├── EventError               a hook payload memq cannot accept
    │   ├── MalformedEventError  not JSON, not UTF-8, too deep, NaN, lone surrogates (HTTP 400)
    │   └── InvalidEventError    JSON of the wrong shape or with unusable values (HTTP 422)
    └── QueueError
        ├── QueueLockedError     another process (or another Queue here) has the database open
        ├── QueueClosedError     the queue was closed
        ├── SchemaError          the database was written by a newer memq, or is not memq's
        ├── StorageError         SQLite failed: disk full, I/O error, locked past the busy timeout
        │   └── DiskFullError    out of space (SQLITE_FULL, ENOSPC): memq's disk reserve handles it
        ├── InvalidMessageError  a message that cannot be stored (bad session id, kind, payload)
        ├── SessionBusyError     a second consumer for a session that already has one
        └── ClaimError
            ├── ClaimSettledError  the claim was already acked, failed or released
            ├── ClaimLostError     the lease ran out and the message was handed back
            └── LeaseExpiredError  the consumer ran past the lease (recorded as the failure)

Callers catch these, never ``sqlite3`` errors. An exception's docstring is its default message.
"""

from __future__ import annotations


class MemqError(Exception):
    """memq failed."""

    def __init__(self, message: str | None = None) -> None:
        default = (type(self).__doc__ or "").strip().splitlines()
        super().__init__(message if message is not None else (default[0] if default else ""))


class SettingError(MemqError, ValueError):
    """An environment variable holds a value memq cannot use."""


class StartupError(MemqError):
    """The daemon could not start."""


class DatabaseDamagedError(StartupError):
    """The database is damaged: memq repair rebuilds it from what can be read.

    ``database`` is the damaged file's path.
    """

    def __init__(self, message: str | None = None, *, database: str = "") -> None:
        super().__init__(message)
        self.database = database


class ControlError(MemqError):
    """A daemon command could not do what was asked; the message says why."""


class RepairError(MemqError):
    """The database cannot be repaired now; the message says why and what to do."""


class UnsafeFileError(MemqError):
    """A file in the data directory is not one memq may trust."""


class SpoolFileError(MemqError):
    """A file in the spool is not a complete spooled event."""


class InstallError(MemqError):
    """The settings file cannot be changed safely, so it was left as it was."""


class InvalidQueryError(MemqError):
    """The search query cannot be run."""


class InvalidSettingValueError(MemqError):
    """The session setting or its value is not one memq knows."""


class ForkError(MemqError):
    """The session cannot be forked."""


class ForkParentNotFoundError(ForkError):
    """Memory has no session to fork."""


class ForkTargetExistsError(ForkError):
    """The fork's session already exists (in memory or in the queue)."""


class SessionNotFoundError(MemqError):
    """memq has no such session."""


class MessageNotFoundError(MemqError):
    """The session has no such message."""


class ProcessorError(MemqError):
    """The processor could not turn the message into memory."""


class TransientProcessorError(ProcessorError):
    """The processor failed for a reason that passes: retry later.

    ``retry_after`` is the delay the service asked for (seconds), when it said one.
    """

    def __init__(self, message: str | None = None, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProcessorAuthError(ProcessorError):
    """The model API refused memq's credentials."""


class ProcessorUnavailableError(ProcessorError, ValueError):
    """The processor cannot be created: a setting it needs is missing or wrong."""


class InvalidOutputError(ProcessorError):
    """The model's answer is not a valid memory record."""


class EventError(MemqError):
    """The hook event cannot be accepted."""


class MalformedEventError(EventError):
    """The request body is not a JSON document memq can read."""


class InvalidEventError(EventError):
    """The hook event is JSON but not a usable hook payload."""


class QueueError(MemqError):
    """The queue failed."""


class QueueLockedError(QueueError):
    """The queue's database is already open in another process."""


class QueueClosedError(QueueError):
    """The queue is closed."""


class SchemaError(QueueError):
    """The database schema is not one this version of memq understands."""


class StorageError(QueueError):
    """SQLite could not complete the operation."""


class DiskFullError(StorageError):
    """The disk is full: SQLite could not write."""


class InvalidMessageError(QueueError):
    """The message cannot be stored."""


class SessionBusyError(QueueError):
    """The session already has an active consumer."""


class ClaimError(QueueError):
    """The claim cannot be settled."""


class ClaimSettledError(ClaimError):
    """The claim was already settled."""


class ClaimLostError(ClaimError):
    """The claim's lease ran out and its message was handed back to the queue."""


class LeaseExpiredError(ClaimError, TimeoutError):
    """The consumer did not settle the claim before its lease ran out."""
