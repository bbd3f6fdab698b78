"""Session leases: which sessions this daemon may claim in (see 0003_session_leases.sql).

A stream takes its session's lease with its first claim and keeps it until it ends; the
claims it makes name the lease's token, so once another daemon's sweep has dropped the lease
(this daemon's heartbeat expired) no claim of this daemon goes through in that session.
``LeaseBook`` is this daemon's memory of what it holds; it changes only after the commit
that took or dropped a lease (a rolled-back take took nothing).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg


class LeaseBook:
    """Session -> the token of the lease this daemon holds on it."""

    def __init__(self) -> None:
        self._tokens: dict[str, int] = {}

    def token(self, session_id: str) -> int | None:
        return self._tokens.get(session_id)

    def held(self) -> dict[str, int]:
        return dict(self._tokens)

    def took(self, session_id: str, token: int) -> None:
        self._tokens[session_id] = token

    def forget(self, session_id: str, token: int | None = None) -> int | None:
        """Forget the session's lease (only if it is ``token``, when given); its token."""
        held = self._tokens.get(session_id)
        if held is None or (token is not None and held != token):
            return None
        del self._tokens[session_id]
        return held

    def clear(self) -> None:
        self._tokens.clear()


async def drop(
    conn: psycopg.AsyncConnection[Any], queries: Mapping[str, str], session_id: str, token: int
) -> None:
    """Drop the lease ``token`` on the session (nothing if it is not that lease any more)."""
    await conn.execute(queries["drop_lease"], {"session_id": session_id, "token": token})
