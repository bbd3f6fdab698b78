"""The daemon: one task group owning the HTTP server, the session manager and maintenance.

Start-up order matters: the queue's instance lock is taken first (so "already running" is the
error a second daemon gets), then the port is bound (so a port held by another program is
named), then the queue recovers and the sessions with a backlog are scheduled.
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
from typing import Final

import anyio
import structlog
import uvicorn
from starlette.types import ASGIApp

from memq import __version__
from memq.config import HOST, Settings, settings_report
from memq.exceptions import StartupError
from memq.memory.context import ContextBuilder
from memq.memory.search import MemorySearch
from memq.memory.store import MemoryStore
from memq.memory.transfer import SessionExporter
from memq.processors.base import Processor
from memq.processors.pool import ProcessorPool
from memq.queue import Queue, QueueSettings, Synchronous
from memq.worker.activity import ActivityTracker
from memq.worker.api import Services, create_app
from memq.worker.forks import ForkLinker
from memq.worker.pidfile import DaemonRecord, remove_record, write_record
from memq.worker.processing import ClaimHandler
from memq.worker.security import load_or_create_token
from memq.worker.session_config import SessionConfigs
from memq.worker.session_pauses import SessionPauses
from memq.worker.sessions import SessionManager

log = structlog.get_logger("memq.daemon")

BACKLOG: Final = 2048  # connections waiting to be accepted: a burst of hooks at once


class DaemonState(StrEnum):
    """The daemon's life, as ``/api/status`` and ``memq status`` report it."""

    STARTING = "starting"  # taking the lock, recovering, binding the port
    RUNNING = "running"  # accepting events and processing them
    STOPPING = "stopping"  # refusing new connections, finishing in-flight messages
    STOPPED = "stopped"  # not running (what ``memq status`` says when no daemon answers)


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

    def request_stop(self) -> None:
        """Begin a graceful shutdown."""
        self._stop.set()

    async def run(self) -> None:
        """Start everything, serve until asked to stop, then shut down in order."""
        settings = self.settings
        paths = settings.paths
        paths.create_home()
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
            queue = await Queue.open(
                database,
                QueueSettings(
                    max_attempts=settings.max_attempts,
                    lease=settings.lease,
                    synchronous=Synchronous(settings.synchronous),
                ),
            )
            self._locked = True
            resources.push_async_callback(_shielded, queue.close)
            sock = bind_listener(settings.port)
            resources.callback(sock.close)
            self.port = sock.getsockname()[1]
            store = await MemoryStore.open(database)
            resources.push_async_callback(_shielded, store.close)
            context = await ContextBuilder.open(database)
            resources.push_async_callback(_shielded, context.close)
            search = await MemorySearch.open(database)
            resources.push_async_callback(_shielded, search.close)
            exporter = await SessionExporter.open(database)
            resources.push_async_callback(_shielded, exporter.close)
            await self._serve(
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
    ) -> None:
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
            skip_tools=settings.skip_tools,
            ephemeral=settings.ephemeral,
            settings_report=settings_report(settings.environment or os.environ),
        )
        app = create_app(services, token=token, body_limit=settings.body_limit)
        server = _EmbeddedServer(server_config(app))
        async with anyio.create_task_group() as tg:
            await tg.start(sessions.run)
            await tg.start(activity.run)
            tg.start_soon(queue.run_maintenance)
            tg.start_soon(self._watch_signals)
            server_done = anyio.Event()

            async def serve_http() -> None:
                try:
                    await server.serve(sockets=[sock])
                finally:
                    server_done.set()
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
            self.state = DaemonState.RUNNING
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
            await self._stop.wait()
            self.state = DaemonState.STOPPING
            log.info("daemon.stopping", grace=settings.shutdown_grace)
            server.should_exit = True
            await server_done.wait()
            await activity.close()  # no more touches: write the last ones before the queue does
            await sessions.stop(settings.shutdown_grace)
            tg.cancel_scope.cancel()

    async def _watch_signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async for signum in signals:
                log.info("daemon.signal", signal=signal.Signals(signum).name)
                self.request_stop()


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
