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
  ``GET /api/team/v1/search?project=P&q=...&limit=N&author=A&exclude_machine=M``: what the
  team's memory holds of project P (a repository identity, ``github.com/o/r``; the intake
  files each laptop's sessions under it): the context as the builder makes it, each line of
  someone else's record (not the key's own) naming that person, and search hits with
  ``author`` and ``machine``; ``author`` (repeatable) keeps those people's hits only.
  ``exclude_machine`` (repeatable, at most 64: every name a laptop went by, as
  ``MEMQ_MACHINE_NAME`` may change) leaves out the caller's own records from those machines
  (this key's name and those machines), which a laptop processing its events itself (mode
  ``both``) shows already. The same key checks as the events (401, 429), and 403 for a
  project out of the key's scope (audited). The context's references carry the prefix
  ``team`` (``team#12``, ``memq.memory.refs``): a laptop shows them next to its own.
- ``GET /api/team/v1/records?ref=#12&ref=#S5``: the server's records by reference (at most
  ``MAX_TEAM_REFS``), as the loopback ``GET /api/records`` answers them, but only those of
  the key's projects: any other is ``missing``, as a record that does not exist (its
  existence is not told), and 404 when none is left. The same key checks (401, 429).
- anything else: 404 (405 for another method), as JSON ``{"error": ...}``.

Failed authentication is limited per client address (``AuthGuard``): past
MEMQ_TEAM_AUTH_FAILURES failures at once (then that many per MEMQ_TEAM_AUTH_WINDOW
seconds), the address's requests get 429 with ``Retry-After`` before any key is looked at,
so a token sprayer neither tries keys nor writes audit rows at its own pace (and the
refused tokens' audit rows are counted per minute: ``memq.team.keys``). The address is the
connection's peer (an IPv6 one by its /64, which one host commonly holds whole), except
with MEMQ_TLS_PROXY=1: then every connection comes from the proxy, one bucket for everyone
(one sprayer would lock all laptops out), so the address is the last one of
``X-Forwarded-For``, the one the proxy itself appended. Without the proxy setting that header
is ignored: any client could write it and pick a fresh bucket per try. The audit log is
kept MEMQ_TEAM_AUDIT_DAYS days (``memq.team.audit_retention``: pruned hourly, idle or not).

Beyond loopback the listener needs TLS (MEMQ_TLS_CERT and MEMQ_TLS_KEY, served by uvicorn)
or MEMQ_TLS_PROXY=1 (a TLS-terminating proxy in front): plain HTTP would carry keys and
memory in the clear, so the daemon refuses to start without one (``team_listener``).
"""

from __future__ import annotations

import errno
import ipaddress
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
    RecordNotFoundError,
    StartupError,
)
from memq.limits import (
    DEFAULT_CONTEXT_BUDGET,
    DEFAULT_SEARCH_RESULTS,
    MAX_CONTEXT_BUDGET,
    MAX_SEARCH_RESULTS,
    MAX_TEAM_REFS,
)
from memq.memory.answers import search_answer
from memq.memory.lookup import Lookup, no_records
from memq.memory.refs import TEAM_PREFIX, parse_refs
from memq.queue import Clock
from memq.team.audit_retention import AuditRetention
from memq.team.identity import project_identity
from memq.team.intake import MAX_BODY_BYTES, BatchIntake, parse_batch
from memq.team.keys import ApiKey, authenticate
from memq.team.listen import is_loopback, parse_listen
from memq.team.rate_limit import FailureLimiter, RateLimiter
from memq.worker.http.routes.records import ref_values
from memq.worker.services import Services

log = structlog.get_logger("memq.team")

API: Final = "/api/team/v1"
BACKLOG: Final = 1024
MAX_ADDRESS_CHARS: Final = 100  # an address that is no IP address is kept to this many
MAX_EXCLUDED_MACHINES: Final = 64  # names a laptop may have gone by (renames are rare)


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


@dataclass(frozen=True, slots=True)
class AuthGuard:
    """What stands before the key check: failed authentications per client address,
    where that address is read, and the audit log's retention (see the module docstring)."""

    failures: FailureLimiter
    proxy: bool  # MEMQ_TLS_PROXY: the address is X-Forwarded-For's last
    retention: AuditRetention


def auth_guard(settings: Settings, services: Services) -> AuthGuard:
    """The guard MEMQ_TEAM_AUTH_FAILURES, MEMQ_TEAM_AUTH_WINDOW, MEMQ_TLS_PROXY and
    MEMQ_TEAM_AUDIT_DAYS ask for, on the services' queue and clock."""
    clock = services.queue.clock
    return AuthGuard(
        FailureLimiter(settings.team_auth_failures, settings.team_auth_window, clock=clock),
        settings.tls_proxy,
        AuditRetention(services.queue, clock, days=settings.team_audit_days),
    )


def client_address(request: Request, *, proxy: bool) -> str:
    """The address a request's failed authentications count against (see the module
    docstring): an IPv4 address, an IPv6 /64, or the text as given (cut short)."""
    address = request.client.host if request.client is not None else ""
    if proxy:
        forwarded = ",".join(request.headers.getlist("x-forwarded-for"))
        last = forwarded.rsplit(",", 1)[-1].strip()
        address = last or address
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:MAX_ADDRESS_CHARS] or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def create_team_app(services: Services, limiter: RateLimiter, guard: AuthGuard) -> Starlette:
    """The team listener's application (see the module docstring)."""
    app = Starlette(
        routes=[
            Route(f"{API}/health", health, methods=["GET"]),
            Route(f"{API}/events", post_events, methods=["POST"]),
            Route(f"{API}/context", get_context, methods=["GET"]),
            Route(f"{API}/search", get_search, methods=["GET"]),
            Route(f"{API}/records", get_records, methods=["GET"]),
        ],
        exception_handlers={
            HTTPException: _http_error,
            MemqError: _memq_error,
            Exception: _internal_error,
        },
    )
    app.state.services = services
    app.state.limiter = limiter
    app.state.guard = guard
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
    key = await _admitted(request, None)
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
        exclude_origin=(key.name, sorted(exclude)) if exclude else None,
        # Rendered here, where the references are known as such: the laptop shows this
        # text as it is, and ``team#12`` never reads as its own record #12.
        ref_prefix=TEAM_PREFIX,
    )
    return JSONResponse({"project": project, "context": text})


async def get_search(request: Request) -> Response:
    """Search hits in the project the key may read (see the module docstring)."""
    services: Services = request.app.state.services
    key, project, exclude = await _read_request(request)
    query = request.query_params.get("q", "")
    limit = _int_param(request, "limit", DEFAULT_SEARCH_RESULTS, MAX_SEARCH_RESULTS)
    authors = [name for name in request.query_params.getlist("author") if name] or None
    # The caller's own records are dropped after the search: read enough more to fill it.
    wanted = min(limit * 3, MAX_SEARCH_RESULTS) if exclude else limit
    hits = await services.search.search(query, project=project, limit=wanted, authors=authors)
    kept = [h for h in hits if not (h.author == key.name and h.machine in exclude)]
    return JSONResponse(search_answer(kept[:limit]))


async def get_records(request: Request) -> Response:
    """The records ``ref`` names, of the key's projects only (see the module docstring)."""
    services: Services = request.app.state.services
    key = await _admitted(request, None)
    refs = parse_refs(tuple(ref_values(request, "ref")))
    if not refs:
        raise InvalidRequestError("query parameter 'ref' is required (e.g. ref=%2312)")
    if len(refs) > MAX_TEAM_REFS:
        raise InvalidRequestError(f"at most {MAX_TEAM_REFS} records at a time (got {len(refs)})")
    found = (await services.lookup.records(refs)).found
    # Another project's record answers as one that does not exist: its existence is not told.
    shown = [r for r in found if key.all_projects or (r.project and key.may_use(r.project))]
    missing = [ref for ref in refs if ref not in {r.ref for r in shown}]
    if len(shown) < len(found):
        log.info("team.records_out_of_scope", key_id=key.key_id, records=len(found) - len(shown))
    if not shown:
        raise RecordNotFoundError(no_records(missing))
    return JSONResponse(Lookup(tuple(shown), tuple(missing)).to_dict())


async def _read_request(request: Request) -> tuple[ApiKey, str, frozenset[str]]:
    """A read's key (checked for its project, rate limited), the project's identity and
    the machines whose records of the key's to leave out (``exclude_machine``,
    repeatable: every name the laptop went by; none: nothing left out)."""
    params = request.query_params
    project = project_identity(params.get("project", ""))
    if project is None:
        raise InvalidRequestError("project must name a repository (github.com/owner/repo)")
    key = await _admitted(request, project)
    if len(params.getlist("exclude_machine")) > MAX_EXCLUDED_MACHINES:
        raise InvalidRequestError(
            f"at most {MAX_EXCLUDED_MACHINES} exclude_machine parameters "
            f"(got {len(params.getlist('exclude_machine'))})"
        )
    return key, project, frozenset(name for name in params.getlist("exclude_machine") if name)


async def _admitted(request: Request, project: str | None) -> ApiKey:
    """The request's key (``_authenticate``), within its rate: else 429 with
    ``Retry-After`` (``memq.team.rate_limit``)."""
    key = await _authenticate(request, project)
    limiter: RateLimiter = request.app.state.limiter
    wait = limiter.take(key.key_id)
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        log.info("team.rate_limited", key_id=key.key_id, retry_after=seconds)
        raise HTTPException(
            429,
            f"too many requests for this key: try again in {seconds} s",
            headers={"Retry-After": str(seconds)},
        )
    return key


async def _authenticate(request: Request, project: str | None) -> ApiKey:
    """The request's key (``memq.team.keys.authenticate``), unless its address failed
    too often (429 first: see the module docstring); a failure counts against it."""
    guard: AuthGuard = request.app.state.guard
    address = client_address(request, proxy=guard.proxy)
    wait = guard.failures.wait(address)
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        log.debug("team.auth_limited", address=address, retry_after=seconds)
        raise HTTPException(
            429,
            f"too many failed authentications from this address: try again in {seconds} s",
            headers={"Retry-After": str(seconds)},
        )
    await guard.retention.prune_if_due()
    queue = request.app.state.services.queue
    try:
        return await authenticate(queue, _bearer(request), project, address=address)
    except AuthenticationError:
        guard.failures.failed(address)
        if guard.failures.wait(address) > 0:
            # Not a line per try: a locked-out address gets 429 before it may fail again,
            # so this is at most once per window / failures seconds per address.
            log.warning("team.auth_locked_out", address=address, failures=guard.failures.failures)
        raise


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
