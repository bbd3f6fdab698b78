"""The daemon: one task group owning the HTTP server, the session manager and maintenance.

Start-up order matters: the queue's instance lock is taken first (so "already running" is the
error a second daemon gets), then the database is checked (a damaged one is not started on:
``memq repair`` rebuilds it), then the port is bound (so a port held by another program is
named), then the queue recovers and the sessions with a backlog are scheduled. Why a daemon
could not start is recorded for ``memq start``, ``memq status`` and the hook
(``memq.startup_error``).

What runs is built and wired in ``memq.worker.composition``; this module owns the order in
which it starts and stops.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import signal
import socket
import time
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypeVar

import anyio
import structlog
import uvicorn
from anyio.abc import TaskGroup
from starlette.types import ASGIApp

from memq import __version__, startup_error
from memq.config import HOST, Settings
from memq.exceptions import DatabaseDamagedError, MemqError, StartupError
from memq.processors.pool import ProcessorPool
from memq.queue import InstanceLock, Queue, QueueBase, lock_path_for
from memq.storage import integrity
from memq.storage.postgres.url import shown_url
from memq.worker import heap
from memq.worker.composition import (
    Built,
    disk_monitor,
    on_postgres,
    open_pg_queue,
    open_services,
    processor_pool,
    queue_settings,
    shielded,
)
from memq.worker.file_modes import secure_home
from memq.worker.http import create_app
from memq.worker.pidfile import DaemonRecord, remove_record, write_record
from memq.worker.security import load_or_create_token
from memq.worker.services import Services

if TYPE_CHECKING:
    from memq.team.audit_retention import AuditRetention
    from memq.team.server import TeamListener

log = structlog.get_logger("memq.daemon")

E = TypeVar("E", bound=BaseException)

BACKLOG: Final = 2048  # connections waiting to be accepted: a burst of hooks at once


class DaemonState(StrEnum):
    """The daemon's life, as ``/api/status`` and ``memq status`` report it."""

    STARTING = "starting"  # taking the lock, recovering, binding the port
    RUNNING = "running"  # accepting events and processing them
    STOPPING = "stopping"  # refusing new connections, finishing in-flight messages
    STOPPED = "stopped"  # not running (what ``memq status`` says when no daemon answers)


class Served(StrEnum):
    """How one round of serving ended."""

    STOPPED = "stopped"  # a signal, ``request_stop`` or the HTTP server ending
    REPLACED = "replaced"  # the queue's files were replaced: serve again on the new file


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the daemon owns signals and shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Daemon:
    """Runs memq until a signal or ``request_stop``."""

    def __init__(self, settings: Settings, *, team: bool = False) -> None:
        self.settings = settings
        # ``memq serve --team``: the team API on its own listener (memq.team.server).
        self.team = team
        self._team: tuple[TeamListener, socket.socket] | None = None
        self.state = DaemonState.STARTING
        self._stop = anyio.Event()
        self.started_at = time.time()
        self.port = settings.port
        # Set once the queue's instance lock is ours: a second daemon that finds the lock
        # taken never ran, so it logs nothing about stopping.
        self._locked = False
        self._served = False  # reached RUNNING at least once
        self._queue: QueueBase | None = (
            None  # reopened when its files are replaced: close the latest
        )
        self.disk = disk_monitor(settings)

    def request_stop(self) -> None:
        """Begin a graceful shutdown."""
        self._stop.set()

    async def run(self) -> None:
        """Start everything, serve until asked to stop, then shut down in order."""
        settings = self.settings
        listener = self._team_listener()  # before anything: a refused setting starts nothing
        await self._prepare_home()
        token = load_or_create_token(settings.paths.token)
        processors = processor_pool(settings)
        async with contextlib.AsyncExitStack() as resources:
            # Registered first so it runs last: "stopped" means everything is closed.
            resources.callback(self._stopped, settings.paths.pidfile)
            # Closed in reverse order, shielded: a shutdown by cancellation still closes the
            # database cleanly and hands back unsettled claims.
            resources.push_async_callback(shielded, processors.aclose)
            # On SQLite the instance lock comes before the port ("already running" is the
            # error a second daemon gets); PostgreSQL has none, and registers the daemon
            # in the shared database with its port.
            sock = self._bind(resources) if on_postgres(settings) else None
            if listener is not None:
                self._team = (listener, self._bind_team(resources, listener))
            queue = await self._open_queue()
            resources.push_async_callback(shielded, self._close_queue)
            if sock is None:
                sock = self._bind(resources)
            while await self._serve_round(queue, processors, token, sock) is Served.REPLACED:
                # The database's files were deleted or swapped and the queue saved what it
                # held at the path (memq.queue._files). Every connection to the old files is
                # closed now; serve again on the file at the path, same port, same lock.
                queue = self._queue = await queue.reopen()
                log.info("daemon.restarted", database=str(settings.database_path))

    def _bind(self, resources: contextlib.AsyncExitStack) -> socket.socket:
        """The listening socket (closed with ``resources``); its port becomes the daemon's."""
        sock = bind_listener(self.settings.port)
        resources.callback(sock.close)
        self.port = sock.getsockname()[1]
        return sock

    def _team_listener(self) -> TeamListener | None:
        """``--team``'s listener, checked (``StartupError`` naming the settings); None
        without ``--team``."""
        if not self.team:
            return None
        from memq.team.server import team_listener  # noqa: PLC0415 - the team server only

        return team_listener(self.settings)

    def _bind_team(
        self, resources: contextlib.AsyncExitStack, listener: TeamListener
    ) -> socket.socket:
        from memq.team.server import bind_team_socket  # noqa: PLC0415

        sock = bind_team_socket(listener)
        resources.callback(sock.close)
        return sock

    async def _prepare_home(self) -> None:
        paths = self.settings.paths
        # Before any connection to the database: a home others can write to is refused, and
        # files an earlier memq left readable by others are made the user's alone.
        made_private = secure_home(paths.home)
        if made_private:
            log.warning("files.made_private", files=made_private)
        paths.create_home()
        if not self.settings.ephemeral:
            await self.disk.prepare()  # before the database grows: the reserve comes first

    async def _open_queue(self) -> QueueBase:
        """Check the database, then open the queue: from here its instance lock is ours.
        On PostgreSQL (``on_postgres``): open the shared queue (``open_pg_queue``)."""
        if on_postgres(self.settings):
            queue = self._queue = await open_pg_queue(self.settings, port=self.port)
            self._locked = True  # the pid file and the log are this daemon's
            queue.on_storage_error(self.disk.storage_failed)
            return queue
        database = self.settings.database_path
        # Just before the queue takes the lock for good: a daemon started at the same
        # moment is "already running" to the one that checks second.
        await anyio.to_thread.run_sync(check_database, database)
        queue = self._queue = await Queue.open(database, queue_settings(self.settings))
        self._locked = True
        queue.on_storage_error(self.disk.storage_failed)
        return queue

    async def _close_queue(self) -> None:
        if self._queue is not None:
            await self._queue.close()

    async def _serve_round(
        self, queue: QueueBase, processors: ProcessorPool, token: str, sock: socket.socket
    ) -> Served:
        """Build the services on ``queue`` and serve with them; they close before the next."""
        async with open_services(
            self.settings,
            queue,
            processors=processors,
            disk=self.disk,
            state=lambda: self.state.value,
            port=self.port,
            started_at=self.started_at,
        ) as built:
            return await self._serve(built, token=token, sock=sock)

    def _mark_running(self) -> None:
        self.state = DaemonState.RUNNING
        if not self._served:
            heap.settle()  # no collection pauses under a burst of events
        if not self._served and not self.settings.ephemeral:
            startup_error.clear(str(self.settings.paths.home))  # why an earlier start failed
        self._served = True

    def failed(self, exc: BaseException) -> str:
        """Say why the daemon could not start, or stopped on an error: log it, record it
        where ``memq start``, ``memq status`` and the hook look, and return the line for
        stderr. An ExceptionGroup is told as its leaf exceptions' messages."""
        home = str(self.settings.paths.home)
        kind, database = startup_error.Kind.ERROR, None
        damaged = _leaf_of(exc, DatabaseDamagedError)
        problem = startup_error.home_write_problem(home)
        if damaged is not None:
            kind, database, reason = (
                startup_error.Kind.DATABASE_DAMAGED,
                damaged.database,
                str(damaged),
            )
        elif problem is not None:
            # Whatever failed first, memq cannot work in a home it cannot write.
            kind = startup_error.Kind.HOME_NOT_WRITABLE
            reason = f"{problem} ({startup_error.describe(exc)})"
        else:
            reason = startup_error.describe(exc)
        phase = startup_error.Phase.RUN if self._served else startup_error.Phase.START
        if not self.settings.ephemeral:
            startup_error.record(home, reason, kind=kind, phase=phase, database=database)
        event = "daemon.start_failed" if phase == startup_error.Phase.START else "daemon.crashed"
        log.error(event, reason=reason, kind=kind)
        if _leaf_of(exc, MemqError) is None:
            # Where in memq an unexpected error came from, for MEMQ_LOG_LEVEL=debug: the
            # reason above is what a person reads (a traceback of a group is mostly +--- lines).
            log.debug("daemon.traceback", exc_info=exc)
        if phase == startup_error.Phase.START:
            return f"cannot start: {reason}"
        return f"stopped on an error: {reason}"

    def _stopped(self, pidfile: Path) -> None:
        self.state = DaemonState.STOPPED
        if not self._locked:
            return  # another daemon holds the database: its pid file and log are its own
        remove_record(pidfile, os.getpid())
        log.info("daemon.stopped", pid=os.getpid())

    async def _serve(self, built: Built, *, token: str, sock: socket.socket) -> Served:
        """One round: start the services, serve HTTP until a stop request or replaced
        database files, then stop in order (HTTP, activity, sessions, the rest)."""
        settings, services = self.settings, built.services
        app = create_app(services, token=token, body_limit=settings.body_limit)
        server = _EmbeddedServer(server_config(app))
        server_done = anyio.Event()
        team, retention = self._team_server(services)
        team_done = anyio.Event()
        async with anyio.create_task_group() as tg:
            await self._start_services(tg, built)
            tg.start_soon(self._serve_http, server, sock, services.queue, server_done)
            if team is not None and self._team is not None:
                tg.start_soon(self._serve_http, team, self._team[1], services.queue, team_done)
            if retention is not None:  # pruned while no request comes too
                await tg.start(retention.run)
            # uvicorn offers no event for "listening"; its flag is set within milliseconds.
            while not server.started and not server_done.is_set():  # noqa: ASYNC110
                await anyio.sleep(0.01)
            while team is not None and not team.started and not team_done.is_set():  # noqa: ASYNC110
                await anyio.sleep(0.01)
            self._started(services.processors)
            served = await self._until_stopped_or_replaced(services.queue, settings.shutdown_grace)
            if team is not None:
                team.should_exit = True  # the laptops first: they retry what was not answered
                await team_done.wait()
            if services.feed is not None:
                services.feed.close()  # open streams end: the server's shutdown waits for them
            server.should_exit = True
            await server_done.wait()
            # No more touches: write the last ones before the queue does.
            await services.activity.close()
            await services.usage.close()
            # A replaced queue takes no more acks: in-flight claims go back at the reopen.
            await services.sessions.stop(
                0 if served is Served.REPLACED else settings.shutdown_grace
            )
            tg.cancel_scope.cancel()
        return served

    def _team_server(
        self, services: Services
    ) -> tuple[uvicorn.Server | None, AuditRetention | None]:
        """The team listener's server (``--team``), on this round's services, and its audit
        log's retention (pruned on its requests' path and in the background); Nones without."""
        if self._team is None:
            return None, None
        from memq.team.server import (  # noqa: PLC0415 - the team server only
            auth_guard,
            create_team_app,
            rate_limiter,
        )

        listener = self._team[0]
        services.team_listener = listener  # memq status shows it
        limiter = rate_limiter(self.settings, services.queue.clock)
        guard = auth_guard(self.settings, services)
        app = create_team_app(services, limiter, guard)
        log.info(
            "team.listening",
            address=listener.address,
            tls=listener.tls,
            proxy=listener.proxy,
            rate=self.settings.team_rate,
            burst=self.settings.team_burst,
        )
        tls = {"ssl_certfile": listener.cert or None, "ssl_keyfile": listener.key or None}
        return _EmbeddedServer(server_config(app, **tls)), guard.retention

    async def _start_services(self, tg: TaskGroup, built: Built) -> None:
        """Start what runs beside the HTTP server, each ready before the next."""
        services = built.services
        # Before any event is taken in: from now on (and while this daemon is down, for the
        # hook's direct inserts) stored events fill the outbox only when forwarding is set.
        await built.outbox.set_enabled(built.upstream is not None)
        await tg.start(services.sessions.run)
        await tg.start(services.activity.run)
        await tg.start(services.usage.run)
        if services.feed is not None:
            await tg.start(services.feed.run)
        await built.spool.take_in_safely()  # before serving: spooled events come first
        await tg.start(built.spool.run)
        if built.upstream is not None:
            forward = functools.partial(
                built.upstream.run, foreign_rows=services.queue.wait_for_foreign_rows
            )
            await tg.start(forward)
        if services.team is not None:
            await tg.start(services.team.run)
        tg.start_soon(services.queue.run_maintenance)
        tg.start_soon(self.disk.run)
        tg.start_soon(self._watch_signals)

    async def _serve_http(
        self, server: uvicorn.Server, sock: socket.socket, queue: QueueBase, done: anyio.Event
    ) -> None:
        try:
            # uvicorn closes the sockets it serves: a duplicate keeps the port bound
            # (connections wait in its backlog) while the daemon serves again.
            await server.serve(sockets=[sock.dup()])
        finally:
            done.set()
            if queue.replaced is None:
                self.request_stop()

    def _started(self, processors: ProcessorPool) -> None:
        """The server listens: record the daemon for the CLI and the hook, and say so."""
        settings = self.settings
        write_record(
            settings.paths.pidfile,
            DaemonRecord(
                os.getpid(),
                self.port,
                self.started_at,
                __version__,
                database=str(settings.database) if settings.database else None,
                database_url=shown_url(settings.database_url) if on_postgres(settings) else None,
            ),
        )
        self._mark_running()
        log.info(
            "daemon.started",
            pid=os.getpid(),
            port=self.port,
            home=str(settings.home),
            processor=processors.default.name,
            ephemeral=settings.ephemeral,
            database=shown_url(settings.database_url)
            if on_postgres(settings)
            else str(settings.database_path),
        )
        if settings.ephemeral:
            log.warning("daemon.ephemeral", database=str(settings.database_path))

    async def _until_stopped_or_replaced(self, queue: QueueBase, grace: float) -> Served:
        """Wait for a stop request, or for the queue to report its files replaced."""
        async with anyio.create_task_group() as tg:

            async def replaced() -> None:
                await queue.wait_replaced()
                tg.cancel_scope.cancel()

            tg.start_soon(replaced)
            await self._stop.wait()
            tg.cancel_scope.cancel()
        if self._stop.is_set():
            self.state = DaemonState.STOPPING
            log.info("daemon.stopping", grace=grace)
            return Served.STOPPED
        self.state = DaemonState.STARTING
        log.info("daemon.reopening", reason="the database's files were replaced")
        return Served.REPLACED

    async def _watch_signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async for signum in signals:
                log.info("daemon.signal", signal=signal.Signals(signum).name)
                self.request_stop()


def check_database(database: Path) -> None:
    """Check the whole database file before the daemon starts on it; ``DatabaseDamagedError``
    naming the file and ``memq repair`` when it is damaged. Holds the instance lock while it
    checks, so a second daemon is told "already running" (``QueueLockedError``) first, and a
    running ``memq repair`` is not raced."""
    path = database.expanduser().resolve()
    lock = InstanceLock.acquire(lock_path_for(path))
    try:
        found = integrity.check(str(path))
    finally:
        lock.release()
    if found.damaged:
        log.error("database.damaged", database=str(path), detail=found.detail)
        raise DatabaseDamagedError(
            integrity.damage_message(str(path), found.detail), database=str(path)
        )
    log.info("database.checked", database=str(path), state=found.verdict, seconds=found.seconds)


def _leaf_of(exc: BaseException, kind: type[E]) -> E | None:
    """The first leaf of ``exc`` (itself, or inside ExceptionGroups) that is a ``kind``."""
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _leaf_of(inner, kind)
            if found is not None:
                return found
    return None


def server_config(
    app: ASGIApp, *, ssl_certfile: str | None = None, ssl_keyfile: str | None = None
) -> uvicorn.Config:
    """uvicorn's settings for the API and the team listener (with its TLS files; the
    benchmark's "store nothing" floor uses them too): no logging or lifespan of its own, the
    C HTTP parser."""
    return uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="off",
        http="httptools",
        server_header=False,
        # The client's address is the connection's: memq.team.server reads X-Forwarded-For
        # itself, and only behind MEMQ_TLS_PROXY (uvicorn would trust it from any local process).
        proxy_headers=False,
        timeout_graceful_shutdown=5,
        backlog=BACKLOG,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
    )


def bind_listener(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1:``port``, or ``StartupError`` naming the setting."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this. uvicorn writes a response's head and body
    # separately; with Nagle on, the body waits for the client's delayed ACK (~40 ms).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((HOST, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(
                f"port {port} on {HOST} is in use by another program; set MEMQ_PORT to a free port"
            ) from None
        raise StartupError(f"cannot listen on {HOST}:{port}: {exc.strerror}") from None
    sock.listen(BACKLOG)
    sock.setblocking(False)
    return sock
