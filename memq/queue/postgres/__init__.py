"""The durable per-session queue on PostgreSQL: ``PgQueue``, ``memq.queue.Queue``'s twin for
several daemons sharing one database (``MEMQ_DATABASE_URL``).

Modules, one job each: ``settings`` (heartbeat, expiry, wake-up timings), ``writer`` (group
commit on one connection), ``leases`` (which sessions this daemon holds), ``listener``
(LISTEN/NOTIFY with a slow-poll fallback), ``heartbeat`` (register, beat, sweep expired
daemons), ``queue`` (``PgQueue``: the public API). Importing it needs the ``postgres`` extra.
"""

from __future__ import annotations

from memq.queue.postgres.queue import PgQueue
from memq.queue.postgres.settings import PgSettings
from memq.queue.postgres.writer import PgTransaction

__all__ = ["PgQueue", "PgSettings", "PgTransaction"]
