"""The daemon: one task group owning the HTTP server, the session manager and maintenance.

Start-up order matters: the queue's instance lock is taken first (so "already running" is the
error a second daemon gets), then the database is checked (a damaged one is not started on:
``memq repair`` rebuilds it), then the port is bound (so a port held by another program is
named), then the queue recovers and the sessions with a backlog are scheduled. Why a daemon
could not start is recorded for ``memq start``, ``memq status`` and the hook
(``memq.worker.startup_error``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import Final, TypeVar

import anyio
import structlog
import uvicorn
from starlette.types import ASGIApp

from memq import __version__
from memq.config import HOST, Settings, settings_report
from memq.exceptions import DatabaseDamagedError, MemqError, StartupError
from memq.memory.context import ContextBuilder
from memq.memory.search import MemorySearch
from memq.memory.store import MemoryStore
from memq.memory.transfer import SessionExporter
from memq.processors.base import Processor
from memq.processors.pool import ProcessorPool
from memq.queue import Queue, QueueSettings, Synchronous
from memq.queue._lock import InstanceLock, lock_path_for
from memq.storage import integrity
from memq.worker import startup_error
from memq.worker.activity import ActivityTracker
from memq.worker.api import Services, create_app
from memq.worker.disk import DiskMonitor, Reserve
from memq.worker.file_modes import secure_home
from memq.worker.forks import ForkLinker
from memq.worker.pidfile import DaemonRecord, remove_record, write_record
from memq.worker.processing import ClaimHandler
from memq.worker.security import load_or_create_token
from memq.worker.session_config import SessionConfigs
from memq.worker.session_pauses import SessionPauses
from memq.worker.sessions import SessionManager
from memq.worker.spool_intake import QueueTarget, SpoolIntake

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

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state = DaemonState.STARTING
        self._stop = anyio.Event()
        self.started_at = time.time()
        self.port = settings.port
        # Set once the queue's instance lock is ours: a second daemon that finds the lock
        # taken never ran, so it logs nothing about stopping.
        self._locked = False
        self._served = False  # reached RUNNING at least once
        # An ephemeral daemon's database is not on the home's disk: it keeps no reserve there.
        reserve_size = 0 if settings.ephemeral else settings.reserve_bytes
        self.disk = DiskMonitor(Reserve(settings.paths.reserve, reserve_size))

    def request_stop(self) -> None:
        """Begin a graceful shutdown."""
        self._stop.set()

    async def run(self) -> None:
        """Start everything, serve until asked to stop, then shut down in order."""
        settings = self.settings
        paths = settings.paths
        # Before any connection to the database: a home others can write to is refused, and
        # files an earlier memq left readable by others are made the user's alone.
        made_private = secure_home(paths.home)
        if made_private:
            log.warning("files.made_private", files=made_private)
        paths.create_home()
        if not settings.ephemeral:
            await self.disk.prepare()  # before the database grows: the reserve comes first
        database = settings.database_path
        token = load_or_create_token(paths.token)
        # The model-based processors read their keys from the same environment and file.
        processors = ProcessorPool(settings.processor, env=settings.environment)
        async with contextlib.AsyncExitStack() as resources:
            # Registered first so it runs last: "stopped" means everything is closed.
            resources.callback(self._stopped, paths.pidfile)
            # Closed in reverse order, shielded: a shutdown by cancellation still closes the
            # database cleanly and hands back unsettled claims.
            resources.push_async_callback(_shielded, processors.aclose)
            # Just before the queue takes the lock for good: a daemon started at the same
            # moment is "already running" to the one that checks second.
            await anyio.to_thread.run_sync(check_database, database)
            queue = await Queue.open(
                database,
                QueueSettings(
                    max_attempts=settings.max_attempts,
                    lease=settings.lease,
                    synchronous=Synchronous(settings.synchronous),
                ),
            )
            self._locked = True
            queue.on_storage_error(self.disk.storage_failed)
            current = [queue]  # reopened when its files are replaced: close the latest

            async def close_queue() -> None:
                await current[0].close()

            resources.push_async_callback(_shielded, close_queue)
            sock = bind_listener(settings.port)
            resources.callback(sock.close)
            self.port = sock.getsockname()[1]
            while True:
                async with contextlib.AsyncExitStack() as readers:
                    store = await MemoryStore.open(database)
                    readers.push_async_callback(_shielded, store.close)
                    context = await ContextBuilder.open(database)
                    readers.push_async_callback(_shielded, context.close)
                    search = await MemorySearch.open(database)
                    readers.push_async_callback(_shielded, search.close)
                    exporter = await SessionExporter.open(database)
                    readers.push_async_callback(_shielded, exporter.close)
                    served = await self._serve(
                        settings,
                        queue=queue,
                        store=store,
                        context=context,
                        search=search,
                        exporter=exporter,
                        processors=processors,
                        token=token,
                        sock=sock,
                    )
                if served is not Served.REPLACED:
                    break
                # The database's files were deleted or swapped and the queue saved what it
                # held at the path (memq.queue._files). Every connection to the old files is
                # closed now; serve again on the file at the path, same port, same lock.
                queue = current[0] = await queue.reopen()
                log.info("daemon.restarted", database=str(database))

    def _mark_running(self) -> None:
        self.state = DaemonState.RUNNING
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

    async def _serve(
        self,
        settings: Settings,
        *,
        queue: Queue,
        store: MemoryStore,
        context: ContextBuilder,
        search: MemorySearch,
        exporter: SessionExporter,
        processors: ProcessorPool,
        token: str,
        sock: socket.socket,
    ) -> Served:
        def pause(reason: str) -> None:
            sessions.pause(reason)  # bound late: the manager needs the handler first

        configs = await SessionConfigs.load(queue)

        def processor_for(session_key: str) -> Processor:
            config = configs.get(session_key)
            return processors.get(config.processor, config.model)

        handler = ClaimHandler(processor_for, store, pause=pause)
        sessions = SessionManager(
            queue,
            handler,
            capacity=settings.capacity,
            linger=settings.linger,
            is_paused=SessionPauses(configs, processors).is_paused,
        )
        configs.on_change(sessions.setting_changed)
        forks = ForkLinker(queue)
        activity = ActivityTracker(
            queue,
            ttl=settings.session_ttl,
            flush_every_events=settings.activity_flush_events,
            flush_interval=settings.activity_flush_interval,
            clock=queue.clock,
        )
        activity.on_expire(sessions.expire)
        activity.on_expire(forks.forget)
        # Events hooks spooled when neither this daemon nor the database took them.
        spool = SpoolIntake(
            settings.paths.home,
            QueueTarget(queue, forks, sessions.notify),
            max_body_bytes=settings.body_limit,
        )
        spool.prepare()
        services = Services(
            queue=queue,
            store=store,
            sessions=sessions,
            state=lambda: self.state.value,
            port=self.port,
            started_at=self.started_at,
            pid=os.getpid(),
            context=context,
            search=search,
            exporter=exporter,
            configs=configs,
            processors=processors,
            forks=forks,
            activity=activity,
            disk=self.disk,
            skip_tools=settings.skip_tools,
            ephemeral=settings.ephemeral,
            settings_report=settings_report(settings.environment or os.environ),
            spool=spool,
        )
        app = create_app(services, token=token, body_limit=settings.body_limit)
        server = _EmbeddedServer(server_config(app))
        async with anyio.create_task_group() as tg:
            await tg.start(sessions.run)
            await tg.start(activity.run)
            await spool.take_in_safely()  # before serving: spooled events come first
            await tg.start(spool.run)
            tg.start_soon(queue.run_maintenance)
            tg.start_soon(self.disk.run)
            tg.start_soon(self._watch_signals)
            server_done = anyio.Event()

            async def serve_http() -> None:
                try:
                    # uvicorn closes the sockets it serves: a duplicate keeps the port bound
                    # (connections wait in its backlog) while the daemon serves again.
                    await server.serve(sockets=[sock.dup()])
                finally:
                    server_done.set()
                    if queue.replaced is None:
                        self.request_stop()

            tg.start_soon(serve_http)
            # uvicorn offers no event for "listening"; its flag is set within milliseconds.
            while not server.started and not server_done.is_set():  # noqa: ASYNC110
                await anyio.sleep(0.01)
            write_record(
                settings.paths.pidfile,
                DaemonRecord(
                    os.getpid(),
                    self.port,
                    self.started_at,
                    __version__,
                    database=str(settings.database) if settings.database else None,
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
                database=str(settings.database_path),
            )
            if settings.ephemeral:
                log.warning("daemon.ephemeral", database=str(settings.database_path))
            served = await self._until_stopped_or_replaced(queue, settings.shutdown_grace)
            server.should_exit = True
            await server_done.wait()
            await activity.close()  # no more touches: write the last ones before the queue does
            # A replaced queue takes no more acks: in-flight claims go back at the reopen.
            await sessions.stop(0 if served is Served.REPLACED else settings.shutdown_grace)
            tg.cancel_scope.cancel()
        return served

    async def _until_stopped_or_replaced(self, queue: Queue, grace: float) -> Served:
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


async def _shielded(close: Callable[[], Awaitable[None]]) -> None:
    with anyio.CancelScope(shield=True):
        await close()


def server_config(app: ASGIApp) -> uvicorn.Config:
    """uvicorn's settings for the API (the benchmark's "store nothing" floor uses them too):
    no logging or lifespan of its own, the C HTTP parser."""
    return uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="off",
        http="httptools",
        server_header=False,
        timeout_graceful_shutdown=5,
        backlog=BACKLOG,
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
