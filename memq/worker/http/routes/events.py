"""The intake: ``POST /api/events``, one hook payload in, 202 once it is durable.

The hot path: every hook event passes here, so it does its few steps in line (no layers),
skips what an event does not need (the ``<private>`` pass over a body without a ``<``, a
debug line's formatting), and writes its small answer without a JSON encoder. From its parsed
body until it is queued, the event holds processing back (``SessionManager.intake``, see
``memq.worker.intake_gate``): on two cores, taking events in comes first.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from memq import events
from memq.assistants import adapter, canonical_name
from memq.assistants.base import ASSISTANT_FIELD
from memq.events import drop_origin, parse_event_body, route_event
from memq.exceptions import DiskFullError, InvalidRequestError
from memq.privacy import is_skipped, strip_private
from memq.queue import Enqueued
from memq.worker import injection
from memq.worker.http.request import get_services, read_body
from memq.worker.services import Services

log = structlog.get_logger("memq.api")
_debug = logging.getLogger("memq.api").isEnabledFor  # cached by logging: a cheap check

# JSON writes a "<" as itself or escaped: a body with none of these has none in any string.
_LT: Final = b"<"
_LT_ESCAPED: Final = (b"\\u003c", b"\\u003C")
# The answer to an accepted event, as JSONResponse would write it (compact, same keys).
_QUEUED: Final = '{"status":"queued","message_id":%d}'


async def post_event(request: Request) -> Response:
    """Accept one hook payload: 202 once it is durable, 200 for a duplicate.

    The payload is memq's (what ``memq hook`` posts), or with ``?assistant=NAME`` the
    assistant's own, mapped here by its adapter (``memq.assistants``)."""
    services = get_services(request)
    raw = await read_body(request)
    payload = parse_event_body(raw)
    assistant = request.query_params.get("assistant")
    mapped = assistant is not None and _map_native(payload, assistant)
    forged = drop_origin(payload)  # only the team intake says who sent an event
    # The body's own text is stored (checked by parse_event_body), unless <private> parts
    # had to be taken out of it: encoding the payload again cost as much as routing it.
    text: str | None = None
    if _LT in raw or _LT_ESCAPED[0] in raw or _LT_ESCAPED[1] in raw:
        payload = strip_private(payload)
    elif not mapped and not forged:
        text = raw.decode("utf-8")
    redactor = services.redactor
    if (
        redactor is not None
        and not redactor.applied_to(payload)  # the hook redacted it with the same rules
        and redactor.may_hold_secret(raw)  # a cheap screen of the bytes
    ):
        payload, found = redactor.redact_value(payload)
        if found:
            text = None  # stored without its secrets (memq.redact), encoded again
    # Routed only now: the session id and the dedupe key (from the ids) are stored and
    # forwarded upstream, so they come from the payload without its <private> parts and
    # secrets, as the hook routes it (memq.hooks.run.handle). Both steps give the same
    # result for the same event, so an event sent again still dedupes.
    route = route_event(payload)
    services.activity.touch(route.session_key)  # in memory; written in batches
    if services.team is not None:  # a session's first event warms its team context
        services.team.first_event(route.session_key, payload.get("cwd"))
    if is_skipped(payload, services.skip_tools):
        return JSONResponse({"status": "skipped"}, status_code=200)
    intake = services.sessions.intake
    intake.arrived()
    try:
        message_id, created = await _store_event(services, route, payload, text)
    finally:
        intake.departed()
    if created:
        services.sessions.notify(route.session_key)
    if _debug(logging.DEBUG):
        # Debug level: at info, formatting and writing this line cost more than storing
        # the event. The queue row is the record of what was accepted.
        log.debug(
            "event.accepted" if created else "event.duplicate",
            session_id=route.session_key,
            message_id=message_id,
            hook_event=route.event,
        )
    answers = injection.answers(services, route.event)  # SessionStart; prompts with recall
    if created and not answers:
        return Response(_QUEUED % message_id, status_code=202, media_type="application/json")
    body: dict[str, Any] = {
        "status": "queued" if created else "duplicate",
        "message_id": message_id,
    }
    if answers:  # only now, with the event stored: its context never costs it
        body["additionalContext"] = await injection.additional_context(services, route, payload)
    return JSONResponse(body, status_code=200)


def _map_native(payload: dict[str, Any], name: str) -> bool:
    """Map an assistant's own payload into memq's, in place; False when it already is
    memq's for that assistant (what the hook posts), which is then stored as it came."""
    assistant = canonical_name(name)
    tagged = payload.get(ASSISTANT_FIELD)
    if tagged is not None:
        if tagged != assistant:
            raise InvalidRequestError(f"the payload is {tagged!r}'s, not {assistant!r}'s")
        return False
    adapter(assistant).to_memq(payload)
    return True


async def _store_event(
    services: Services, route: events.Route, payload: Any, text: str | None
) -> Enqueued:
    """Enqueue the event (a forked session's first one after its copy of the parent's
    memory), stored as ``text`` when that is its JSON. On a full disk the first out-of-space
    error releases the reserve, so the event is tried once more; with the reserve spent it is
    refused (``DiskFullError``: 503)."""
    disk = services.disk
    retried = False
    while True:
        if not disk.accepting:
            raise DiskFullError(disk.message())
        try:
            await services.forks.before_enqueue(route.session_key, route.event, payload)
            return await services.queue.enqueue(
                route.session_key, route.kind, payload, route.dedupe_key, payload_json=text
            )
        except DiskFullError:
            if retried or not disk.accepting:
                raise
            retried = True  # this very error released the reserve: there is room now
