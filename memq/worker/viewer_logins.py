"""The viewer's logins, kept in the daemon's memory only: one-time login codes (``memq open``
asks for one with the bearer token) and the browser sessions a code is exchanged for.

A code lives ``CODE_LIFETIME`` seconds and is good once; a session lives
``SESSION_LIFETIME`` seconds and carries its own CSRF token. Both are random; only their
SHA-256 digests are kept as keys, so a lookup's timing says nothing about a stored secret.
A restart of the daemon forgets them all: the user runs ``memq open`` again.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Final, TypeVar

from memq.queue import SYSTEM_CLOCK, Clock

CODE_LIFETIME: Final = 60.0  # seconds: long enough for a browser to start
SESSION_LIFETIME: Final = 12 * 3600.0  # seconds: a working day
# Caps so that a client with the token cannot grow the daemon's memory without end; the
# oldest goes first.
MAX_CODES: Final = 64
MAX_SESSIONS: Final = 256

_V = TypeVar("_V")


def cookie_name(port: int) -> str:
    """The session cookie's name: a browser keeps cookies per host, not per port, so two
    daemons on one machine (two MEMQ_HOMEs) must not overwrite each other's."""
    return f"memq_session_{port}"


@dataclass(frozen=True, slots=True)
class ViewerSession:
    """A logged-in browser: its CSRF token and when it expires (``clock.monotonic()``)."""

    csrf: str
    expires: float


def _key(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


class ViewerLogins:
    """Login codes and sessions, on ``clock``'s monotonic seconds."""

    def __init__(
        self,
        *,
        clock: Clock = SYSTEM_CLOCK,
        code_lifetime: float = CODE_LIFETIME,
        session_lifetime: float = SESSION_LIFETIME,
    ) -> None:
        self._clock = clock
        self.code_lifetime = code_lifetime
        self.session_lifetime = session_lifetime
        self._codes: dict[bytes, float] = {}  # digest of a code -> when it expires
        self._sessions: dict[bytes, ViewerSession] = {}  # digest of a session id -> it

    def new_code(self) -> str:
        """A fresh one-time login code."""
        self._forget_expired()
        code = secrets.token_urlsafe(24)
        self._codes[_key(code)] = self._clock.monotonic() + self.code_lifetime
        _cap(self._codes, MAX_CODES)
        return code

    def redeem(self, code: str) -> str | None:
        """A new session's id for a valid code, which is then used up; None for a code that
        is unknown, used or expired."""
        self._forget_expired()
        if self._codes.pop(_key(code), None) is None:
            return None
        session_id = secrets.token_urlsafe(32)
        self._sessions[_key(session_id)] = ViewerSession(
            csrf=secrets.token_urlsafe(32),
            expires=self._clock.monotonic() + self.session_lifetime,
        )
        _cap(self._sessions, MAX_SESSIONS)
        return session_id

    def session(self, session_id: str) -> ViewerSession | None:
        """The live session with this id, or None."""
        found = self._sessions.get(_key(session_id))
        if found is None:
            return None
        if found.expires <= self._clock.monotonic():
            del self._sessions[_key(session_id)]
            return None
        return found

    def csrf_matches(self, session_id: str, presented: str) -> bool:
        """Whether ``presented`` is the live session's CSRF token."""
        found = self.session(session_id)
        return found is not None and hmac.compare_digest(
            found.csrf.encode(), presented.encode("utf-8", "surrogatepass")
        )

    def end(self, session_id: str) -> bool:
        """Log the session out; whether it was live."""
        return self._sessions.pop(_key(session_id), None) is not None

    def _forget_expired(self) -> None:
        now = self._clock.monotonic()
        for key in [k for k, expires in self._codes.items() if expires <= now]:
            del self._codes[key]
        for key in [k for k, s in self._sessions.items() if s.expires <= now]:
            del self._sessions[key]


def _cap(entries: dict[bytes, _V], limit: int) -> None:
    """Drop the oldest entries (dicts keep insertion order) beyond ``limit``."""
    while len(entries) > limit:
        del entries[next(iter(entries))]
