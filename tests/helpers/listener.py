"""A stand-in for whatever listens on MEMQ_PORT: it records every request it receives (the raw
head and body) and answers each with a fixed JSON body. A test checks what memq sent it."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class RecordingListener:
    """A loopback HTTP listener in a thread; ``requests`` holds the raw bytes of each one."""

    def __init__(self, port: int = 0) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)
        self.port: int = self.sock.getsockname()[1]
        self.requests: list[bytes] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self.sock.close()
        self._thread.join(timeout=5)

    def received(self) -> bytes:
        """Everything received so far, one request after another."""
        with self._lock:
            return b"".join(self.requests)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed
            with conn:
                conn.settimeout(2)
                data = b""
                record = b""
                try:
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    head, _, body = data.partition(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n")[1:]:
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value.strip() or b"0")
                    while len(body) < length:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        body += chunk
                    record = head + b"\r\n\r\n" + body
                    answer = b'{"error": "not memq"}'
                    conn.sendall(
                        b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json"
                        b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                        % len(answer)
                        + answer
                    )
                except OSError:
                    record = record or data
                with self._lock:
                    self.requests.append(record or data)


@contextmanager
def recording_listener(port: int = 0) -> Iterator[RecordingListener]:
    """A started ``RecordingListener`` on ``port`` (0: a free one), closed at the end."""
    listener = RecordingListener(port)
    listener.start()
    try:
        yield listener
    finally:
        listener.close()
