"""The team server's API keys: made, listed, revoked, and checked on every request.

A token is ``memq_<key_id>_<secret>``: ``key_id`` is 12 lowercase hex characters, public
(lists, logs, the audit log); the secret is 32 random bytes in URL-safe base64. Only the
secret's SHA-256 is stored: a token is high-entropy, so a fast hash is right, and it is
compared in constant time. The token is returned once, by ``create_key``, and never stored.

A key may use the projects (repository identities, ``memq.team.identity``) it names, or
every project when made with ``all_projects`` (never implied by an empty list).

Every function runs its statements in one transaction of ``queue.run_in_transaction``
(``Queue``, ``PgQueue``, or the CLI's ``memq.team.direct`` database), stamped with that
transaction's clock (``tx.now_ms``). ``authenticate`` reads the key's row at every call
(nothing cached, so a revocation holds from the next request on), counts the request in
the key's hour (``key_use``, one row per key and hour), and audits a refusal in the same
transaction; the error is raised after it commits.

The audit log stays bounded. A refused token (malformed, unknown key, revoked key, wrong
secret) is counted, not logged a row each: one row per client address, key id and reason
per minute, with ``times`` (an unknown key's id is not kept: whoever made it up names
nobody, and keeping it would give a row per guess). Creations, revocations, projects out of
a key's scope and deletions stay one exact row each. ``prune_audit`` deletes what is older
than the retention (``memq.team.audit_retention``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, Protocol, TypeVar

from memq.exceptions import (
    ApiKeyNameTakenError,
    ApiKeyNotFoundError,
    AuthenticationError,
    ForbiddenProjectError,
    InvalidRequestError,
)
from memq.queue import Transaction
from memq.storage.sqlfile import load_queries
from memq.team.identity import project_identity

T = TypeVar("T")

QUERIES: Final = load_queries("team")
TOKEN_PREFIX: Final = "memq_"  # noqa: S105 - the tokens' prefix, no password
KEY_ID_HEX_BYTES: Final = 6  # 12 hex characters
SECRET_BYTES: Final = 32
MAX_NAME_CHARS: Final = 100
HOUR_MS: Final = 3_600_000
MINUTE_MS: Final = 60_000  # a refused token's audit row counts the tries of one minute
PRUNE_CHUNK: Final = 1000  # audit rows deleted per statement (``prune_audit``)
# ``list_keys``' ``recent_requests``: the current hour and the 23 before it.
RECENT_HOURS: Final = 24
_KEY_ID: Final = re.compile(r"^[0-9a-f]{12}$")
_TOKEN: Final = re.compile(r"^memq_([0-9a-f]{12})_([A-Za-z0-9_-]{1,200})$")


class RunsTransactions(Protocol):
    """Where keys are read and written: the queue's writer (``Queue``, ``PgQueue``)."""

    async def run_in_transaction(self, fn: Callable[[Transaction], Awaitable[T]]) -> T:
        """Run ``fn`` in one transaction and return its result."""


class AuditAction(StrEnum):
    """What an audit row records."""

    CREATE = "create"  # a key was made
    REVOKE = "revoke"  # a key was revoked
    REFUSED = "refused"  # a request's token was refused, or its project was not the key's
    DELETE = "delete"  # something was deleted through the team API


class Refusal(StrEnum):
    """Why ``authenticate`` refused (the audit row's detail)."""

    MALFORMED = "malformed token"
    UNKNOWN = "unknown key"
    REVOKED = "revoked key"
    WRONG_SECRET = "wrong secret"  # noqa: S105 - a reason, no password
    PROJECT = "project not allowed"


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as stored, without its secret's hash."""

    key_id: str
    name: str
    projects: tuple[str, ...]  # empty with ``all_projects``
    all_projects: bool
    created_at: int  # epoch ms
    revoked_at: int | None
    last_used_at: int | None
    recent_requests: int = 0  # in the last RECENT_HOURS hours (``list_keys`` only)

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def may_use(self, project: str) -> bool:
        """Whether the key may read and write ``project`` (a repository identity)."""
        return not self.revoked and (self.all_projects or project in self.projects)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "name": self.name,
            "projects": list(self.projects),
            "all_projects": self.all_projects,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
            "last_used_at": self.last_used_at,
            "recent_requests": self.recent_requests,
        }


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A new key and its token, which exists only here: show it once, store it nowhere."""

    key: ApiKey
    token: str


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One row of the audit log."""

    id: int
    at: int
    key_id: str | None
    key_name: str | None
    action: str
    target: str | None
    detail: str | None
    address: str | None = None  # the client's, where the server knew it
    times: int = 1  # refusals the row stands for (a refused token's row counts a minute's)


def parse_token(token: str) -> tuple[str, str] | None:
    """``(key_id, secret)`` of a token of memq's form; None for anything else."""
    match = _TOKEN.match(token)
    return None if match is None else (match.group(1), match.group(2))


def secret_hash(secret: str) -> str:
    """What is stored of a secret: its SHA-256, hex."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def check_name(name: str) -> str:
    """``name`` if it may name a key: printable, 1 to 100 characters, no outer whitespace,
    not shaped like a key id (``revoke`` takes either); else ``InvalidRequestError``."""
    if not name or len(name) > MAX_NAME_CHARS or not name.isprintable() or name != name.strip():
        raise InvalidRequestError(
            f"a key's name must be 1 to {MAX_NAME_CHARS} printable characters, without "
            "spaces at either end"
        )
    if _KEY_ID.match(name):
        raise InvalidRequestError(f"{name!r} looks like a key id; choose another name")
    return name


def check_projects(projects: Iterable[str], *, all_projects: bool) -> tuple[str, ...]:
    """The projects a new key may use, each a repository identity (a remote URL given is
    normalised), sorted and without repeats; ``InvalidRequestError`` for none without
    ``all_projects``, some with it, or one that names no repository."""
    given = list(projects)
    if all_projects:
        if given:
            raise InvalidRequestError("a key for all projects names no projects")
        return ()
    if not given:
        raise InvalidRequestError("name the projects the key may use, or make it for all")
    found = set()
    for text in given:
        identity = project_identity(text)
        if identity is None:
            raise InvalidRequestError(
                f"{text!r} names no repository: give its git remote URL or an identity "
                "such as github.com/owner/repo"
            )
        found.add(identity)
    return tuple(sorted(found))


async def create_key(
    queue: RunsTransactions,
    name: str,
    *,
    projects: Sequence[str] = (),
    all_projects: bool = False,
) -> CreatedKey:
    """Make a key; its token is in the result and nowhere else.

    Raises:
        InvalidRequestError: a name or projects ``check_name`` / ``check_projects`` refuse.
        ApiKeyNameTakenError: an unrevoked key has the name.
    """
    name = check_name(name)
    allowed = check_projects(projects, all_projects=all_projects)
    key_id = secrets.token_hex(KEY_ID_HEX_BYTES)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    params = {
        "key_id": key_id,
        "name": name,
        "secret_hash": secret_hash(secret),
        "projects": json.dumps(list(allowed)),
        "all_projects": int(all_projects),
    }

    async def create(tx: Transaction) -> int | None:
        inserted = await tx.fetchall(QUERIES["create_key"], {**params, "now": tx.now_ms})
        if not inserted:
            return None
        detail = "all projects" if all_projects else ", ".join(allowed)
        await _audit(tx, AuditAction.CREATE, key_id, name, detail=detail)
        return tx.now_ms

    created_at = await queue.run_in_transaction(create)
    if created_at is None:
        raise ApiKeyNameTakenError(f"a key named {name!r} exists: revoke it first, or pick another")
    key = ApiKey(key_id, name, allowed, all_projects, created_at, None, None)
    return CreatedKey(key, f"{TOKEN_PREFIX}{key_id}_{secret}")


async def list_keys(queue: RunsTransactions) -> list[ApiKey]:
    """Every key, revoked ones too, oldest first, each with its recent requests."""

    async def read(tx: Transaction) -> list[ApiKey]:
        since = _hour_of(tx.now_ms) - (RECENT_HOURS - 1) * HOUR_MS
        rows = await tx.fetchall(QUERIES["list_keys"], {"since": since})
        return [_key(row, recent=int(row["recent_requests"])) for row in rows]

    return await queue.run_in_transaction(read)


async def revoke_key(queue: RunsTransactions, name_or_id: str) -> ApiKey:
    """Revoke the unrevoked key with that name or key id, from its next request on.

    Raises:
        ApiKeyNotFoundError: no unrevoked key has it (the message says when one was
            revoked already).
    """

    async def revoke(tx: Transaction) -> ApiKey | str:
        rows = await tx.fetchall(QUERIES["revoke_key"], {"key": name_or_id, "now": tx.now_ms})
        if rows:
            key = _key(rows[0])
            await _audit(tx, AuditAction.REVOKE, key.key_id, key.name)
            return key
        earlier = await tx.fetchall(QUERIES["revoked_key"], {"key": name_or_id})
        if earlier:
            return f"the key {name_or_id!r} ({earlier[0]['key_id']}) is revoked already"
        return f"no key is named {name_or_id!r} or has that id"

    outcome = await queue.run_in_transaction(revoke)
    if isinstance(outcome, str):
        raise ApiKeyNotFoundError(outcome)
    return outcome


async def authenticate(
    queue: RunsTransactions, token: str, project: str | None, *, address: str | None = None
) -> ApiKey:
    """The key ``token`` belongs to, if it may be used for ``project`` (None: a request
    about no project); the request is counted in the key's hour. ``address``: the client's
    (for the audit log).

    Raises:
        AuthenticationError: the token is malformed, its key unknown or revoked, or its
            secret wrong (counted in the minute's ``refused`` audit row of the address,
            key id and reason).
        ForbiddenProjectError: the key may not use ``project`` (an exact ``refused`` row).
    """
    parsed = parse_token(token)

    async def check(tx: Transaction) -> ApiKey | AuthenticationError | ForbiddenProjectError:
        if parsed is None:
            await _audit_refused_token(tx, None, None, Refusal.MALFORMED, address)
            return _refused(Refusal.MALFORMED, None)
        key_id, secret = parsed
        rows = await tx.fetchall(QUERIES["key_by_id"], {"key_id": key_id})
        if not rows:
            await _audit_refused_token(tx, None, None, Refusal.UNKNOWN, address)
            return _refused(Refusal.UNKNOWN, key_id)
        key = _key(rows[0])
        refusal = None
        # The secret first: only the key's holder hears that it was revoked.
        if not hmac.compare_digest(str(rows[0]["secret_hash"]), secret_hash(secret)):
            refusal = Refusal.WRONG_SECRET
        elif key.revoked:
            refusal = Refusal.REVOKED
        elif project is not None and not key.may_use(project):
            refusal = Refusal.PROJECT
        if refusal is Refusal.PROJECT:
            await _audit(
                tx,
                AuditAction.REFUSED,
                key_id,
                key.name,
                target=project,
                detail=refusal,
                address=address,
            )
            return ForbiddenProjectError(f"the key {key.name!r} may not use {project}")
        if refusal is not None:
            await _audit_refused_token(tx, key_id, key.name, refusal, address)
            return _refused(refusal, key_id)
        params = {"key_id": key_id, "hour": _hour_of(tx.now_ms), "now": tx.now_ms}
        await tx.execute(QUERIES["count_use"], params)
        await tx.execute(QUERIES["mark_used"], params)
        return key

    outcome = await queue.run_in_transaction(check)
    if isinstance(outcome, ApiKey):
        return outcome
    raise outcome


def audit_write(
    action: AuditAction,
    key: ApiKey | None,
    *,
    target: str | None = None,
    detail: str | None = None,
) -> Callable[[Transaction], Awaitable[None]]:
    """A write of one audit row, to run in the transaction of what it records (a deletion
    through the team API: ``queue.run_in_transaction``, or inside another write)."""

    async def write(tx: Transaction) -> None:
        key_id, name = (key.key_id, key.name) if key is not None else (None, None)
        await _audit(tx, action, key_id, name, target=target, detail=detail)

    return write


async def key_use(queue: RunsTransactions, key_id: str) -> list[tuple[int, int]]:
    """``(hour, requests)`` of the key, oldest hour first (``hour``: epoch ms at its start)."""

    async def read(tx: Transaction) -> list[tuple[int, int]]:
        rows = await tx.fetchall(QUERIES["key_use"], {"key_id": key_id})
        return [(int(row["hour"]), int(row["requests"])) for row in rows]

    return await queue.run_in_transaction(read)


async def audit_entries(queue: RunsTransactions, *, limit: int = 100) -> list[AuditEntry]:
    """The newest ``limit`` rows of the audit log, newest first."""

    async def read(tx: Transaction) -> list[AuditEntry]:
        rows = await tx.fetchall(QUERIES["audit_entries"], {"limit": limit})
        return [
            AuditEntry(
                int(row["id"]),
                int(row["at"]),
                row["key_id"],
                row["key_name"],
                str(row["action"]),
                row["target"],
                row["detail"],
                row["address"],
                int(row["times"]),
            )
            for row in rows
        ]

    return await queue.run_in_transaction(read)


async def prune_audit(queue: RunsTransactions, before: int) -> int:
    """Delete the audit rows, and the hours of ``key_use``, older than ``before`` (epoch
    ms); the audit rows deleted. A chunk per transaction, so a long backlog never holds
    the writer for long."""

    async def chunk(tx: Transaction) -> int:
        return await tx.execute(QUERIES["prune_audit"], {"before": before, "chunk": PRUNE_CHUNK})

    total = 0
    while True:
        deleted = await queue.run_in_transaction(chunk)
        total += deleted
        if deleted < PRUNE_CHUNK:
            break

    async def hours(tx: Transaction) -> int:
        return await tx.execute(QUERIES["prune_key_use"], {"before": before})

    await queue.run_in_transaction(hours)
    return total


async def _audit(
    tx: Transaction,
    action: AuditAction,
    key_id: str | None,
    key_name: str | None,
    *,
    target: str | None = None,
    detail: str | None = None,
    address: str | None = None,
) -> None:
    params = {
        "now": tx.now_ms,
        "key_id": key_id,
        "key_name": key_name,
        "action": action.value,
        "target": target,
        # Plain text: psycopg would write an Enum by its name.
        "detail": None if detail is None else str(detail),
        "address": address,
    }
    await tx.execute(QUERIES["audit"], params)


async def _audit_refused_token(
    tx: Transaction,
    key_id: str | None,
    key_name: str | None,
    refusal: Refusal,
    address: str | None,
) -> None:
    params = {
        "now": tx.now_ms,
        "minute": tx.now_ms - tx.now_ms % MINUTE_MS,
        "key_id": key_id,
        "key_name": key_name,
        "detail": refusal.value,
        "address": address,
    }
    if not await tx.execute(QUERIES["count_refused_token"], params):
        await tx.execute(QUERIES["audit_refused_token"], params)


def _refused(reason: Refusal, key_id: str | None) -> AuthenticationError:
    # Whether a key id exists is not the client's business; that the key was revoked is
    # its holder's (the secret matched).
    message = "the API key was revoked" if reason is Refusal.REVOKED else "invalid API key"
    return AuthenticationError(message, reason=reason.value, key_id=key_id)


def _hour_of(now: int) -> int:
    return now - now % HOUR_MS


def _key(row: Any, *, recent: int = 0) -> ApiKey:
    projects = json.loads(str(row["projects"]))
    return ApiKey(
        key_id=str(row["key_id"]),
        name=str(row["name"]),
        projects=tuple(str(p) for p in projects),
        all_projects=bool(row["all_projects"]),
        created_at=int(row["created_at"]),
        revoked_at=None if row["revoked_at"] is None else int(row["revoked_at"]),
        last_used_at=None if row["last_used_at"] is None else int(row["last_used_at"]),
        recent_requests=recent,
    )
