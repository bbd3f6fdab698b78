"""The team server's intake of a laptop's batch: ``POST /api/team/v1/events``' work.

The body (the contract in the team design, and ``memq.team.upstream_client``)::

    {"machine": "laptop-1", "events": [{"local_id": 12, "session_id": "claude-code:<uuid>",
      "kind": "observation", "dedupe_key": "..." | null, "project": "github.com/o/r",
      "created_at": <ms>, "payload": {...}}, ...]}

A body that is not that shape (no machine, no list of events, an event without a whole
``local_id``) is refused as a whole (``InvalidRequestError``: 422). Otherwise each event,
in order, is one of:

- ``accepted`` (stored now) or ``duplicate`` (stored before), with the queue's ``id``. The
  queue's dedupe key is ``origin:<length of name>.<name>:<machine>:<local_id>``
  (``origin_key``): a batch sent again because its answer was lost is a duplicate, events
  without a dedupe key of their own too, and so is one sent again with the person's
  rotated key (the key's name, not its id, stands for the person: one unrevoked key per
  name, and a new key of a revoked key's name takes over its sessions).
- ``refused``, with its ``error``: a project the key may not use (audited as ``refused``),
  a project that names no repository, a session another key owns (the first key to send a
  session owns it: ``team_sessions``), a kind or session id the queue refuses, a payload
  that is not an object. A session whose owning key was revoked passes to the live key
  of the same name (a rotated key: the same person's open sessions go on).

An accepted event is enqueued through the queue's public API as ``/api/events`` does, so
processing, wake-up and dedupe work as for a local event; its payload gains
``memq_origin`` (key name, machine, local id, project, the laptop's created_at). Each
enqueue is durable when it returns: everything answered ``accepted`` is committed before
the 200. The server's own redaction rules run over the payload too (the laptop's may be
off, or older).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import structlog

from memq.events import ORIGIN_FIELD, parse_event_body
from memq.exceptions import EventError, InvalidMessageError, InvalidRequestError, MemqError
from memq.kinds import MessageKind
from memq.queue import Transaction
from memq.storage.sqlfile import load_queries
from memq.team.identity import project_identity
from memq.team.keys import ApiKey, AuditAction, Refusal, audit_write
from memq.worker.services import Services

log = structlog.get_logger("memq.team")

QUERIES: Final = load_queries("team_intake")
MAX_BODY_BYTES: Final = 4 * 1024 * 1024
MAX_EVENTS: Final = 1000
MAX_MACHINE_CHARS: Final = 200
_KINDS: Final = frozenset(kind.value for kind in MessageKind)


@dataclass(frozen=True, slots=True)
class Batch:
    """A request's body, its shape checked; each event still a mapping to check."""

    machine: str
    events: list[dict[str, Any]]


def parse_batch(raw: bytes) -> Batch:
    """The batch in ``raw``; ``InvalidRequestError`` (422) for a body that is not one."""
    try:
        # As strict as a hook's body: no NaN, NUL, lone surrogate or 65-bit integer gets in.
        body = parse_event_body(raw)
    except EventError as exc:
        raise InvalidRequestError(str(exc)) from None
    machine = body.get("machine")
    if not isinstance(machine, str) or not machine.strip() or len(machine) > MAX_MACHINE_CHARS:
        raise InvalidRequestError(f"machine must be a name of 1 to {MAX_MACHINE_CHARS} characters")
    if "\x00" in machine:
        raise InvalidRequestError("machine must not hold a NUL character")
    events = body.get("events")
    if not isinstance(events, list) or len(events) > MAX_EVENTS:
        raise InvalidRequestError(f"events must be a list of at most {MAX_EVENTS} events")
    for number, event in enumerate(events):
        if not isinstance(event, dict) or not _is_local_id(event.get("local_id")):
            raise InvalidRequestError(
                f"event {number} must be an object with a whole local_id above 0"
            )
    return Batch(machine, events)


def origin_key(name: str, machine: str, local_id: int) -> str:
    """The queue's dedupe key of a forwarded event: the sending key's name (the person,
    the same across a rotation of their key), the machine and the laptop's id. The name
    goes with its length and local ids have no colon, so no two origins make the same key
    whatever colons a name or machine holds; at most 7 + 3 + 1 + 100 + 1 + 200 + 1 + 19 =
    332 characters, within the queue's 512. The PostgreSQL and SQLite migrations
    ``*_team_auth_limits`` rewrote the older ``origin:<key_id>:...`` keys to this form."""
    return f"origin:{len(name)}.{name}:{machine}:{local_id}"


def parse_origin_key(key: str) -> tuple[str, str, int] | None:
    """``origin_key``'s (name, machine, local id), or None for a dedupe key of another form
    (a local event's, or an older ``origin:<key_id>:...``)."""
    prefix, _, named = key.partition(":")
    length, dot, rest = named.partition(".")
    if prefix != "origin" or not dot or not length.isdigit():
        return None
    name, sep, rest = (
        rest[: int(length)],
        rest[int(length) : int(length) + 1],
        rest[int(length) + 1 :],
    )
    machine, colon, local_text = rest.rpartition(":")
    if sep != ":" or not colon or not local_text.isdigit():
        return None
    return name, machine, int(local_text)


class _Refused(Exception):
    """One event refused: its error, for the answer."""


class BatchIntake:
    """Takes one authenticated request's batch into the queue; see the module docstring.

    Args:
        services: the daemon's (queue, session manager, activity, redactor).
        key: the request's key, authenticated (``memq.team.keys.authenticate``).
    """

    def __init__(self, services: Services, key: ApiKey) -> None:
        self._services = services
        self._key = key
        self._owners: dict[str, str] = {}  # session id -> its owner's key id
        self._projects: dict[str, str | None] = {}  # as sent -> its identity
        self.refused_projects: set[str] = set()  # out of the key's scope (audited)

    async def take(self, batch: Batch) -> list[dict[str, Any]]:
        """Each event's result, in order (the answer's ``results``)."""
        services = self._services
        gate = services.sessions.intake
        results: list[dict[str, Any]] = []
        gate.arrived()  # taking events in comes before processing (memq.worker.intake_gate)
        try:
            for event in batch.events:
                results.append(await self._take_one(event, batch.machine))
        finally:
            gate.departed()
            if self.refused_projects:
                await self._audit_refusals()
        return results

    async def _take_one(self, event: Mapping[str, Any], machine: str) -> dict[str, Any]:
        local_id = int(event["local_id"])
        try:
            session_id, kind, project, payload = self._checked(event)
            await self._check_owner(session_id)
        except _Refused as exc:
            return {"local_id": local_id, "status": "refused", "error": str(exc)}
        origin = {
            "key": self._key.name,
            "machine": machine,
            "local_id": local_id,
            "project": project,
        }
        created_at = event.get("created_at")
        if isinstance(created_at, int) and not isinstance(created_at, bool):
            origin["created_at"] = created_at
        payload = {**payload, ORIGIN_FIELD: origin}
        redactor = self._services.redactor
        if redactor is not None and not redactor.applied_to(payload):
            payload, _ = redactor.redact_value(payload)
        services = self._services
        services.activity.touch(session_id)
        try:
            message_id, created = await services.queue.enqueue(
                session_id, kind, payload, origin_key(self._key.name, machine, local_id)
            )
        except InvalidMessageError as exc:
            return {"local_id": local_id, "status": "refused", "error": str(exc)}
        if created:
            services.sessions.notify(session_id)
        status = "accepted" if created else "duplicate"
        return {"local_id": local_id, "status": status, "id": message_id}

    def _checked(self, event: Mapping[str, Any]) -> tuple[str, str, str, dict[str, Any]]:
        """The event's session id, kind, project (its identity) and payload; ``_Refused``
        for one that cannot be taken."""
        session_id, kind, payload = event.get("session_id"), event.get("kind"), event.get("payload")
        if not isinstance(session_id, str) or not session_id:
            raise _Refused("session_id must be a non-empty string")
        if kind not in _KINDS:
            raise _Refused(f"unknown kind {kind!r}")
        if not isinstance(payload, dict):
            raise _Refused("payload must be a JSON object")
        sent = event.get("project")
        if not isinstance(sent, str) or not sent:
            raise _Refused("project must name a repository (github.com/owner/repo)")
        if sent not in self._projects:
            self._projects[sent] = project_identity(sent)
        project = self._projects[sent]
        if project is None:
            raise _Refused(f"project {sent!r} names no repository")
        if not self._key.may_use(project):
            self.refused_projects.add(project)
            raise _Refused(f"the key {self._key.name!r} may not use {project}")
        return session_id, str(kind), project, payload

    async def _check_owner(self, session_id: str) -> None:
        """Claim the session for the key if nobody has; ``_Refused`` if another key has."""
        owner = self._owners.get(session_id)
        if owner is None:
            params = {"session_id": session_id, "key_id": self._key.key_id}

            async def claim(tx: Transaction) -> str:
                await tx.execute(QUERIES["claim_session"], {**params, "now": tx.now_ms})
                rows = await tx.fetchall(QUERIES["session_owner"], {"session_id": session_id})
                owner = str(rows[0]["key_id"])
                if owner != self._key.key_id:
                    # A revoked key's sessions follow its name to the new key (rotation).
                    await tx.execute(
                        QUERIES["take_over_session"], {**params, "name": self._key.name}
                    )
                    rows = await tx.fetchall(QUERIES["session_owner"], {"session_id": session_id})
                    owner = str(rows[0]["key_id"])
                return owner

            owner = self._owners[session_id] = await self._services.queue.run_in_transaction(claim)
        if owner != self._key.key_id:
            raise _Refused(f"session {session_id} belongs to another key")

    async def _audit_refusals(self) -> None:
        """One ``refused`` audit row per project out of the key's scope in this request."""
        writes = [
            audit_write(AuditAction.REFUSED, self._key, target=project, detail=Refusal.PROJECT)
            for project in sorted(self.refused_projects)
        ]

        async def write_all(tx: Transaction) -> None:
            for write in writes:
                await write(tx)

        try:
            await self._services.queue.run_in_transaction(write_all)
        except MemqError as exc:
            # The answer still goes out: the events it names were settled already.
            log.warning("team.audit_failed", error=str(exc), key_id=self._key.key_id)


def _is_local_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
