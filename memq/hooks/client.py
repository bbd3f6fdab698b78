"""One HTTP request to the daemon over a plain socket.

``http.client`` costs more to import than this whole request takes, and the hook pays its
import time on every tool call. The daemon is ours and on loopback, so a request with
``Connection: close`` and a response read up to its ``Content-Length`` is all that is needed.
"""

from __future__ import annotations

import json
import socket
import time

from memq.exceptions import DaemonUnavailableError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final

MAX_RESPONSE_BYTES: Final = 4 * 1024 * 1024


def post_json(
    port: int,
    path: str,
    token: str,
    body: bytes,
    *,
    connect_timeout: float,
    read_timeout: float,
    deadline: float | None = None,
) -> tuple[int, Any]:
    """POST ``body`` to ``127.0.0.1:port``; return the status and the decoded JSON answer.

    ``connect_timeout`` bounds the connection, ``read_timeout`` each send and receive, and
    ``deadline`` (a ``time.monotonic()`` value) the whole request: a daemon that trickles its
    answer, or takes the body slowly, cannot hold the hook past it.
    Raises ``DaemonUnavailableError`` for anything but a complete answer.
    """
    head = (
        f"POST {path} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode("ascii")
    try:
        sock = socket.create_connection(
            ("127.0.0.1", port), timeout=_time_left(connect_timeout, deadline)
        )
    except OSError as exc:
        raise DaemonUnavailableError(f"connect: {exc}") from None
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(_time_left(read_timeout, deadline))
        sock.sendall(head + body)
        return _read_response(sock, read_timeout, deadline)
    except OSError as exc:
        raise DaemonUnavailableError(f"request: {exc}") from None
    finally:
        sock.close()


def _time_left(timeout: float, deadline: float | None) -> float:
    """``timeout``, cut to what is left before ``deadline``; ``DaemonUnavailableError`` when
    nothing is."""
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise DaemonUnavailableError("no time left in the hook's budget")
    return min(timeout, left)


def _read_response(
    sock: socket.socket, read_timeout: float, deadline: float | None
) -> tuple[int, Any]:
    data = b""
    while b"\r\n\r\n" not in data:
        sock.settimeout(_time_left(read_timeout, deadline))
        chunk = sock.recv(65536)
        if not chunk:
            raise DaemonUnavailableError("connection closed before the response head")
        data += chunk
        if len(data) > MAX_RESPONSE_BYTES:
            raise DaemonUnavailableError("response head too large")
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise DaemonUnavailableError(f"malformed status line {lines[0]!r}")
    status = int(parts[1])
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length" and value.strip().isdigit():
            length = int(value.strip())
    while length is None or len(rest) < length:
        sock.settimeout(_time_left(read_timeout, deadline))
        chunk = sock.recv(65536)
        if not chunk:
            break  # Connection: close ends the body when no length was given
        rest += chunk
        if len(rest) > MAX_RESPONSE_BYTES:
            raise DaemonUnavailableError("response too large")
    if length is not None and len(rest) < length:
        raise DaemonUnavailableError("connection closed mid-response")
    try:
        answer = json.loads(rest[:length] if length is not None else rest) if rest else None
    except ValueError:
        raise DaemonUnavailableError("response is not JSON") from None
    return status, answer
