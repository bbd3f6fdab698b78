"""Daemons' lives: register, beat, and sweep the daemons whose heartbeat expired.

Heartbeats and their expiry are read on the database server's clock only, so clock skew
between hosts never expires a live daemon. The sweep (any daemon's, every interval) deletes
expired daemons, their session leases, and hands their claims back: pending again, or
failed when out of attempts. A daemon whose beat finds its own row gone was declared dead:
``beat`` says so and the queue stops everything it held (``daemon.fenced``), then registers
again under a new id.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
import psycopg_pool
import structlog
from psycopg.rows import dict_row

from memq.queue._clock import EpochMs
from memq.queue.postgres.settings import PgSettings
from memq.queue.postgres.writer import notify_payload
from memq.storage.postgres.connection import storage_errors

log = structlog.get_logger("memq.queue")
# As SQLite says of a claim its dead process held (memq.queue._queue.INTERRUPTED).
LOST: str = "interrupted: its daemon died (heartbeat expired) while this message was processing"


@dataclass(frozen=True, slots=True)
class SweepReport:
    """What one sweep did: the daemons declared dead, and their claims handed back."""

    daemons: tuple[int, ...] = ()
    claims: tuple[dict[str, Any], ...] = ()
    leases: int = 0


class Heartbeat:
    """Registering, beating and sweeping, on pool connections."""

    def __init__(
        self,
        pool: psycopg_pool.AsyncConnectionPool[psycopg.AsyncConnection[Any]],
        queries: Mapping[str, str],
        settings: PgSettings,
        *,
        url: str,
        channel: str,
    ) -> None:
        self._pool = pool
        self._channel = channel
        self._q = queries
        self._settings = settings
        self._url = url
        self.daemon_id = 0
        self.missed = 0  # beats in a row that got no answer
        self._failed_at = -float("inf")  # time.monotonic() of the last beat without answer

    async def register(self) -> int:
        """Register this daemon; its new id (also kept as ``daemon_id``)."""
        settings = self._settings
        params = {
            "host": settings.host or socket.gethostname(),
            "pid": settings.pid or os.getpid(),
            "port": settings.port,
        }
        rows = await self._fetch(self._q["register_daemon"], params)
        self.daemon_id = int(rows[0]["id"])
        self.missed = 0
        log.info("daemon.registered", daemon_id=self.daemon_id, **params)
        return self.daemon_id

    async def unregister(self) -> None:
        """Leave: this daemon's leases and row go (its claims must have been settled)."""
        with storage_errors(self._url):
            async with self._pool.connection() as conn, conn.transaction():
                await conn.execute(self._q["drop_daemon_leases"], {"daemon": self.daemon_id})
                await conn.execute(self._q["unregister_daemon"], {"daemon": self.daemon_id})

    async def beat(self) -> bool:
        """One heartbeat; False when this daemon's row is gone (it was declared dead).
        Raises ``StorageError`` when the server does not answer (``missed`` counts those)."""
        try:
            rows = await self._fetch(self._q["beat"], {"daemon": self.daemon_id})
        except BaseException:
            self.missed += 1
            self._failed_at = time.monotonic()
            raise
        self.missed = 0
        return bool(rows)

    @property
    def may_sweep(self) -> bool:
        """Whether this daemon's own beats went through for a whole expiry period: after an
        outage of the server (or of this host's network), every daemon's beat is old, and
        the first to sweep would declare the others dead before they could beat again."""
        return time.monotonic() - self._failed_at > self._settings.expiry

    async def sweep(self, *, max_attempts: int, now: EpochMs) -> SweepReport:
        """Declare expired daemons dead and hand back what they held, in one transaction."""
        expiry_ms = round(self._settings.expiry * 1000)
        with storage_errors(self._url):
            async with (
                self._pool.connection() as conn,
                conn.transaction(),
                conn.cursor(row_factory=dict_row) as cur,
            ):
                await cur.execute(self._q["expire_daemons"], {"expiry_ms": expiry_ms})
                dead = await cur.fetchall()
                await cur.execute(self._q["drop_orphan_leases"])
                dropped = [str(row["session_id"]) for row in await cur.fetchall()]
                await cur.execute(
                    self._q["recover_orphan_claims"],
                    {"max_attempts": max_attempts, "now": now, "error": LOST},
                )
                claims = await cur.fetchall()
                # Whoever has room takes those sessions now, not at their next enqueue.
                woken = sorted({*dropped, *(str(row["session_id"]) for row in claims)})
                if woken:
                    payload = notify_payload(woken)
                    await cur.execute(
                        self._q["notify"], {"channel": self._channel, "payload": payload}
                    )
        leases = len(dropped)
        for daemon in dead:
            log.warning(
                "daemon.expired", daemon_id=daemon["id"], host=daemon["host"], pid=daemon["pid"]
            )
        for row in claims:
            log.warning(
                "recovery.reset",
                session_id=row["session_id"],
                message_id=row["id"],
                status=row["status"],
                attempt=row["attempts"],
                reason=LOST,
            )
        return SweepReport(tuple(int(d["id"]) for d in dead), tuple(claims), leases)

    async def _fetch(self, query: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        with storage_errors(self._url):
            async with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(query, params)
                return await cur.fetchall()
