"""Every error memq raises on purpose, in one tree, each with the HTTP status it answers.

    MemqError
    ├── SettingError             a MEMQ_* variable memq cannot use (also a ValueError)
    ├── StartupError             the daemon cannot start (port taken, already running, ...)
    │   └── DatabaseDamagedError the database failed its check: memq repair rebuilds it
    ├── ControlError             memq start or stop could not do what was asked
    ├── RepairError              memq repair must not run now, or could not finish
    ├── RepairInProgressError    memq repair is rebuilding the database: nothing writes it
    ├── UnsafeFileError          a file in MEMQ_HOME is not one memq may trust (a symlink,
    │                            someone else's, writable by others, not a token)
    ├── SpoolFileError           a file in MEMQ_HOME/spool that is not a complete spooled event
    ├── InstallError             Claude Code's settings cannot be changed safely (left untouched)
    ├── DaemonUnavailableError   the hook could not hand its event to the daemon (no answer in
    │                            time, no token, an error answer): it writes the event itself
    ├── NoTimeLeftError          the hook's time budget ran out before the database was written
    ├── RequestError             a request (HTTP, CLI, MCP) memq cannot carry out as asked (400)
    │   ├── MalformedRequestError    a body that is not a JSON document memq can read (400)
    │   ├── BodyTooLargeError        a body over the size limit (413)
    │   ├── InvalidRequestError      a body or argument of the wrong shape or value (422)
    │   │   ├── SameSessionError     a session transferred or forked into itself (422)
    │   │   └── UnknownAssistantError  an assistant memq has no adapter for (422)
    │   ├── InvalidQueryError        a search the user typed that memq cannot run (400)
    │   ├── InvalidSettingValueError a per-session setting with an unknown name or bad value (422)
    │   └── InvalidArchiveError      a file to import that is not a memq export: its first bad
    │                                line (400)
    ├── SessionNotFoundError     memq has no session by that id (404)
    ├── MessageNotFoundError     the session has no message by that id (404)
    ├── MessageNotFailedError    a retry of a message that has not failed (409)
    ├── OutboxEventStateError    a retry or drop of an outbox event in the wrong state (409)
    ├── SettingNotSetError       the session has no value of its own for that setting (404)
    ├── RecordNotFoundError      memory has no record by that reference (#12, #S3, #P7) (404)
    ├── ApiKeyError              a team server's API key cannot be made, found or used
    │   ├── AuthenticationError  no usable key: none, malformed, unknown, revoked, or a wrong
    │   │                        secret (401)
    │   ├── ForbiddenProjectError  the key may not use that project (403)
    │   ├── ApiKeyNotFoundError  no unrevoked key has that name or id (404)
    │   └── ApiKeyNameTakenError an unrevoked key has that name already (409)
    ├── ForkError                a session cannot be forked
    │   ├── ForkParentNotFoundError  memory has no session to fork (404)
    │   └── ForkTargetExistsError    the new session's id is taken, in memory or the queue (409)
    ├── ProcessorError           a processor could not turn a message into memory
    │   ├── TransientProcessorError  rate limit, server error, timeout: try again later
    │   ├── ProcessorAuthError       the model API refused the credentials: pause everything
    │   ├── ProcessorUnavailableError  a session's processor cannot be created (no API key):
    │   │   │                          its session pauses (also a ValueError)
    │   │   └── UnknownProcessorError  no processor has that name
    │   ├── InvalidInputError        the message holds nothing to process (no tool call)
    │   └── InvalidOutputError       the model answered something that is not a valid record
    ├── ModelRequestError        the model API refused the request itself (a 4xx that is no
    │                            rate limit or credentials): a plain failure of the message
    ├── UpstreamError            the team server did not take a batch of forwarded events
    │   ├── UpstreamUnavailableError  unreachable, timed out, 5xx or 429: back off, try again
    │   ├── UpstreamAuthError    the server refused the key, a 401: forwarding pauses
    │   ├── UpstreamRefusedError the server refused the request as a whole: a 400, 413, 422
    │   └── TeamReadError        a read of the team server's records got no usable answer (502)
    ├── EventError               a hook payload memq cannot accept (400)
    │   ├── MalformedEventError  not JSON, not UTF-8, too deep, NaN, lone surrogates (400)
    │   └── InvalidEventError    JSON of the wrong shape or with unusable values (422)
    ├── StorageError             SQLite failed: I/O error, locked past the busy timeout (503)
    │   └── DiskFullError        out of space (SQLITE_FULL, ENOSPC): memq's disk reserve
    │                            handles it (503, "reason": "disk_full")
    ├── SchemaError              the database was written by a newer memq, or is not memq's
    │   ├── SQLiteTooOldError    this Python's SQLite is older than memq's schema needs
    │   └── SchemaUpgradeError   the hook found an older schema: the daemon upgrades it
    └── QueueError
        ├── QueueLockedError     another process (or another Queue here) has the database open
        ├── QueueClosedError     the queue was closed (503)
        ├── InvalidMessageError  a message that cannot be stored (bad session id, kind, payload)
        │                        (422)
        ├── SessionBusyError     a second consumer for a session that already has one
        └── ClaimError
            ├── ClaimSettledError  the claim was already acked, failed or released
            ├── ClaimLostError     the lease ran out and the message was handed back
            └── LeaseExpiredError  the consumer ran past the lease (recorded as the failure)

Callers catch these, never ``sqlite3`` errors. An exception's docstring is its default message.
Its ``http_status`` is what the daemon's API answers when a route lets it through (a subclass
inherits its parent's); None is an internal error, 500.

The hook imports this module: it stays standard library only, and imports nothing.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import ClassVar


class MemqError(Exception):
    """memq failed."""

    http_status: ClassVar[int | None] = None

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


class RepairInProgressError(MemqError):
    """memq repair is rebuilding the database: it is not written until the repair is done."""


class UnsafeFileError(MemqError):
    """A file in the data directory is not one memq may trust."""


class SpoolFileError(MemqError):
    """A file in the spool is not a complete spooled event."""


class InstallError(MemqError):
    """The settings file cannot be changed safely, so it was left as it was."""


class DaemonUnavailableError(MemqError):
    """The daemon did not answer in time, refused the connection, or answered with an error."""


class NoTimeLeftError(MemqError):
    """The hook's deadline passed before the database could be written."""


class RequestError(MemqError):
    """The request cannot be carried out as asked."""

    http_status = 400


class BodyTooLargeError(RequestError):
    """The request's body is larger than the limit."""

    http_status = 413


class MalformedRequestError(RequestError):
    """The request body is not a JSON document memq can read."""


class InvalidRequestError(RequestError):
    """The request is JSON, or arguments, of the wrong shape or with unusable values."""

    http_status = 422


class SameSessionError(InvalidRequestError):
    """A session cannot be transferred or forked into itself."""


class UnknownAssistantError(InvalidRequestError):
    """memq has no adapter for that assistant."""


class InvalidQueryError(RequestError):
    """The search query cannot be run."""


class InvalidSettingValueError(RequestError):
    """The session setting or its value is not one memq knows."""

    http_status = 422


class InvalidArchiveError(RequestError):
    """The file is not a memq export memq can import; the message names its first bad line."""


class SessionNotFoundError(MemqError):
    """memq has no such session."""

    http_status = 404


class MessageNotFoundError(MemqError):
    """The session has no such message."""

    http_status = 404


class MessageNotFailedError(MemqError):
    """Only failed messages can be retried."""

    http_status = 409


class OutboxEventStateError(MemqError):
    """Only events the team server refused can be retried, and only those that will not
    be sent (refused, or kept local) dropped."""

    http_status = 409


class SettingNotSetError(MemqError):
    """The session has no value of its own for that setting."""

    http_status = 404


class RecordNotFoundError(MemqError):
    """Memory holds no record by that reference (``#12``, ``#S3``, ``#P7``)."""

    http_status = 404


class ApiKeyError(MemqError):
    """The API key cannot be made, found or used."""


class AuthenticationError(ApiKeyError):
    """The request carries no valid API key.

    ``reason`` says why for the audit log and the server's own log (the answer to the
    client says less); ``key_id`` is the token's key id when it had one.
    """

    http_status = 401

    def __init__(
        self, message: str | None = None, *, reason: str = "", key_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.key_id = key_id


class ForbiddenProjectError(ApiKeyError):
    """The API key may not use that project."""

    http_status = 403


class ApiKeyNotFoundError(ApiKeyError):
    """No unrevoked API key has that name or id."""

    http_status = 404


class ApiKeyNameTakenError(ApiKeyError):
    """An unrevoked API key has that name already."""

    http_status = 409


class ForkError(MemqError):
    """The session cannot be forked."""


class ForkParentNotFoundError(ForkError):
    """Memory has no session to fork."""

    http_status = 404


class ForkTargetExistsError(ForkError):
    """The fork's session already exists (in memory or in the queue)."""

    http_status = 409


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


class UnknownProcessorError(ProcessorUnavailableError):
    """No processor has that name."""


class InvalidInputError(ProcessorError):
    """The message holds nothing the processor can turn into a record."""


class InvalidOutputError(ProcessorError):
    """The model's answer is not a valid memory record."""


class ModelRequestError(MemqError):
    """The model API refused the request itself: sending it again would not help.

    Not a ``ProcessorError``: nothing is paused or retried, the attempt simply fails.
    """


class UpstreamError(MemqError):
    """The team server did not take the forwarded events."""


class UpstreamUnavailableError(UpstreamError):
    """The team server cannot be reached or failed (timeout, 5xx, 429): try again later.

    ``retry_after`` is the delay the server asked for (seconds), when it said one.
    """

    def __init__(self, message: str | None = None, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UpstreamAuthError(UpstreamError):
    """The team server refused the key."""


class UpstreamRefusedError(UpstreamError):
    """The team server refused the request as a whole: sending it again would not help.

    ``status`` is the HTTP status it answered.
    """

    def __init__(self, message: str | None = None, *, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class TeamReadError(UpstreamError):
    """The team server gave no usable answer to a read of its records (``team#12``)."""

    http_status = 502


class EventError(MemqError):
    """The hook event cannot be accepted."""

    http_status = 400


class MalformedEventError(EventError):
    """The request body is not a JSON document memq can read."""


class InvalidEventError(EventError):
    """The hook event is JSON but not a usable hook payload."""

    http_status = 422


class StorageError(MemqError):
    """SQLite could not complete the operation."""

    http_status = 503


class DiskFullError(StorageError):
    """The disk is full: SQLite could not write."""


class SchemaError(MemqError):
    """The database schema is not one this version of memq understands."""


class SQLiteTooOldError(SchemaError):
    """This Python's SQLite library is too old for memq's schema."""


class SchemaUpgradeError(SchemaError):
    """The database needs an upgrade that the daemon makes when it starts."""


class QueueError(MemqError):
    """The queue failed."""


class QueueLockedError(QueueError):
    """The queue's database is already open in another process."""


class QueueClosedError(QueueError):
    """The queue is closed."""

    http_status = 503


class InvalidMessageError(QueueError):
    """The message cannot be stored."""

    http_status = 422


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
