"""``memq serve --team``: the team server's listener and what it serves.

The team server is a daemon on PostgreSQL (``MEMQ_DATABASE_URL``: a clear error without
it) with a second listener, ``MEMQ_TEAM_LISTEN`` (default 127.0.0.1:37780), for the
laptops. Its own API stays where every daemon's is, on 127.0.0.1:MEMQ_PORT behind the
loopback token (``memq status``, ``memq stop``, the viewer, on the server's host).

The team listener serves only this, and nothing of the loopback API (whose token and Host
checks are for one machine), so no unauthenticated or loopback-token route reaches the
network:

- ``GET /api/team/v1/health``: 200 ``{"status": "ok", "state": ...}``, no key needed,
  nothing else said (for a load balancer's checks).
- ``POST /api/team/v1/events``: a laptop's batch (``memq.team.intake``), with
  ``Authorization: Bearer <key>`` (``memq.team.keys``). 401 for a missing, unknown,
  revoked or wrong key (the whole request; audited); 429 with ``Retry-After`` past the
  key's rate (``memq.team.rate_limit``: MEMQ_TEAM_RATE per second, MEMQ_TEAM_BURST at
  once); 413 over 4 MiB; 422 for a body that is no batch; else 200 with a result per
  event. The key is checked before the body is read, and read again at every request (a
  revocation holds from the next one).
- ``GET /api/team/v1/context?project=P&budget=N&exclude_machine=M`` and
  ``GET /api/team/v1/search?project=P&q=...&limit=N&exclude_machine=M``: what the team's
  memory holds of project P (a repository identity, ``github.com/o/r``; the intake files
  each laptop's sessions under it): the context as the builder makes it, each line of
  someone else's record (not the key's own) naming that person, and search hits with ``author`` and
  ``machine``. ``exclude_machine`` leaves out the caller's own records from that machine
  (this key's name and that machine), which a laptop processing its events itself (mode
  ``both``) shows already. The same key checks as the events (401, 429), and 403 for a
  project out of the key's scope (audited).
- anything else: 404 (405 for another method), as JSON ``{"error": ...}``.

Beyond loopback the listener needs TLS (MEMQ_TLS_CERT and MEMQ_TLS_KEY, served by uvicorn)
or MEMQ_TLS_PROXY=1 (a TLS-terminating proxy in front): plain HTTP would carry keys and
memory in the clear, so the daemon refuses to start without one (``team_listener``).
"""

from __future__ import annotations

import errno
import math
import socket
import ssl
from dataclasses import dataclass
from typing import Final

import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from memq.config import Settings
from memq.env import Variable
from memq.exceptions import (
    AuthenticationError,
    BodyTooLargeError,
    InvalidRequestError,
    MemqError,
    StartupError,
)
from memq.limits import (
    DEFAULT_CONTEXT_BUDGET,
    DEFAULT_SEARCH_RESULTS,
    MAX_CONTEXT_BUDGET,
    MAX_SEARCH_RESULTS,
)
from memq.memory.answers import search_answer
from memq.queue import Clock
from memq.team.identity import project_identity
from memq.team.intake import MAX_BODY_BYTES, BatchIntake, parse_batch
from memq.team.keys import ApiKey, authenticate
from memq.team.listen import is_loopback, parse_listen
from memq.team.rate_limit import RateLimiter
from memq.worker.services import Services

log = structlog.get_logger("memq.team")

API: Final = "/api/team/v1"
BACKLOG: Final = 1024


@dataclass(frozen=True, slots=True)
class TeamListener:
    """Where and how the team API listens (checked by ``team_listener``)."""

    host: str
    port: int
    cert: str = ""  # TLS certificate and key files; "" for plain HTTP
    key: str = ""
    proxy: bool = False  # a TLS-terminating proxy is in front

    @property
    def tls(self) -> bool:
        return bool(self.cert)

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def team_listener(settings: Settings) -> TeamListener:
    """The team listener ``settings`` ask for, or ``StartupError`` saying which settings
    to change: no PostgreSQL, half of TLS, TLS files that cannot be used, or plain HTTP
    beyond loopback without a proxy."""
    if settings.ephemeral or not settings.database_url:
        raise StartupError(
            f"memq serve --team needs PostgreSQL: set {Variable.DATABASE_URL} "
            "(postgresql://user@host/db; the team's memory, keys and audit log live there)"
            + (", without --ephemeral" if settings.ephemeral else "")
        )
    host, port = parse_listen(settings.team_listen)  # checked by memq.config already
    listener = TeamListener(host, port, settings.tls_cert, settings.tls_key, settings.tls_proxy)
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise StartupError(
            f"set both {Variable.TLS_CERT} and {Variable.TLS_KEY} (the certificate and its "
            "private key), or neither"
        )
    if listener.tls:
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(listener.cert, listener.key)
        except (OSError, ssl.SSLError) as exc:
            raise StartupError(
                f"{Variable.TLS_CERT}={listener.cert} with {Variable.TLS_KEY}={listener.key} "
                f"cannot be used: {exc}"
            ) from None
    if not listener.tls and not listener.proxy and not is_loopback(host):
        raise StartupError(
            f"{Variable.TEAM_LISTEN}={listener.address} is reachable from other machines, and "
            "plain HTTP would carry API keys and memory in the clear: set "
            f"{Variable.TLS_CERT} and {Variable.TLS_KEY}, or {Variable.TLS_PROXY}=1 behind a "
            "TLS-terminating proxy, or listen on 127.0.0.1"
        )
    return listener


def bind_team_socket(listener: TeamListener) -> socket.socket:
    """The team listener's socket, or ``StartupError`` naming the setting."""
    family = socket.AF_INET6 if ":" in listener.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # see memq.worker.daemon
    try:
        sock.bind((listener.host, listener.port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            problem = "is in use by another program"
        else:
            problem = f"cannot be listened on: {exc.strerror or exc}"
        raise StartupError(
            f"{Variable.TEAM_LISTEN}={listener.address} {problem}; set it to a free address"
        ) from None
    sock.listen(BACKLOG)
    sock.setblocking(False)
    return sock


def create_team_app(services: Services, limiter: RateLimiter) -> Starlette:
    """The team listener's application (see the module docstring)."""
    app = Starlette(
        routes=[
            Route(f"{API}/health", health, methods=["GET"]),
            Route(f"{API}/events", post_events, methods=["POST"]),
            Route(f"{API}/context", get_context, methods=["GET"]),
            Route(f"{API}/search", get_search, methods=["GET"]),
        ],
        exception_handlers={
            HTTPException: _http_error,
            MemqError: _memq_error,
            Exception: _internal_error,
        },
    )
    app.state.services = services
    app.state.limiter = limiter
    return app


def rate_limiter(settings: Settings, clock: Clock) -> RateLimiter:
    """Each key's request rate, as MEMQ_TEAM_RATE and MEMQ_TEAM_BURST say."""
    return RateLimiter(settings.team_rate, settings.team_burst, clock=clock)


async def health(request: Request) -> Response:
    services: Services = request.app.state.services
    return JSONResponse({"status": "ok", "state": services.state()})


async def post_events(request: Request) -> Response:
    """A laptop's batch of events: a result per event (``memq.team.intake``)."""
    services: Services = request.app.state.services
    limiter: RateLimiter = request.app.state.limiter
    key = await authenticate(services.queue, _bearer(request), None)
    wait = limiter.take(key.key_id)
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        log.info("team.rate_limited", key_id=key.key_id, retry_after=seconds)
        return JSONResponse(
            {"error": f"too many requests for this key: try again in {seconds} s"},
            status_code=429,
            headers={"Retry-After": str(seconds)},
        )
    batch = parse_batch(await _read_body(request))
    intake = BatchIntake(services, key)
    results = await intake.take(batch)
    accepted = sum(1 for r in results if r["status"] == "accepted")
    refused = sum(1 for r in results if r["status"] == "refused")
    log.debug(
        "team.batch",
        key_id=key.key_id,
        machine=batch.machine,
        events=len(results),
        accepted=accepted,
        refused=refused,
    )
    return JSONResponse({"results": results})


async def get_context(request: Request) -> Response:
    """The context of the project the key may read (see the module docstring)."""
    services: Services = request.app.state.services
    key, project, exclude = await _read_request(request)
    budget = _int_param(request, "budget", DEFAULT_CONTEXT_BUDGET, MAX_CONTEXT_BUDGET)
    text = await services.context.build(
        project,
        budget_tokens=budget,
        viewer=key.name,  # the caller's own records need no name on them
        exclude_origin=None if exclude is None else (key.name, exclude),
    )
    return JSONResponse({"project": project, "context": text})


async def get_search(request: Request) -> Response:
    """Search hits in the project the key may read (see the module docstring)."""
    services: Services = request.app.state.services
    key, project, exclude = await _read_request(request)
    query = request.query_params.get("q", "")
    limit = _int_param(request, "limit", DEFAULT_SEARCH_RESULTS, MAX_SEARCH_RESULTS)
    # The caller's own records are dropped after the search: read enough more to fill it.
    wanted = limit if exclude is None else min(limit * 3, MAX_SEARCH_RESULTS)
    hits = await services.search.search(query, project=project, limit=wanted)
    kept = [h for h in hits if exclude is None or (h.author, h.machine) != (key.name, exclude)]
    return JSONResponse(search_answer(kept[:limit]))


async def _read_request(request: Request) -> tuple[ApiKey, str, str | None]:
    """A read's key (checked for its project, rate limited), the project's identity and
    the machine whose records to leave out (None: none)."""
    limiter: RateLimiter = request.app.state.limiter
    params = request.query_params
    project = project_identity(params.get("project", ""))
    if project is None:
        raise InvalidRequestError("project must name a repository (github.com/owner/repo)")
    key = await authenticate(request.app.state.services.queue, _bearer(request), project)
    wait = limiter.take(key.key_id)
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        raise HTTPException(
            429,
            f"too many requests for this key: try again in {seconds} s",
            headers={"Retry-After": str(seconds)},
        )
    return key, project, params.get("exclude_machine") or None


def _int_param(request: Request, name: str, default: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= high:
        raise InvalidRequestError(f"{name} must be a whole number from 1 to {high}")
    return int(raw)


def _bearer(request: Request) -> str:
    """The request's bearer token; "" for none (refused and audited as malformed)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


async def _read_body(request: Request) -> bytes:
    """The body, refused (413) past MAX_BODY_BYTES before or while it is read."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BodyTooLargeError(f"body larger than the limit of {MAX_BODY_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BodyTooLargeError(f"body larger than the limit of {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _memq_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MemqError)
    status = exc.http_status
    if status is None:
        raise exc
    if isinstance(exc, AuthenticationError):
        log.info("team.refused", reason=exc.reason, key_id=exc.key_id)
        return JSONResponse(
            {"error": str(exc)}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
        )
    if status == 503:
        log.warning("team.unavailable", path=request.url.path, error=str(exc))
        return JSONResponse({"error": f"memq cannot store this now: {exc}"}, status_code=503)
    return JSONResponse({"error": str(exc)}, status_code=status)


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("team.error", path=request.url.path, exc_info=exc)
    return JSONResponse({"error": "internal error (see the memq log)"}, status_code=500)
