"""A real HTTP server on 127.0.0.1, answering JSON from a function: it stands in for a remote
service (a team server's routes) in tests that need only a few of its answers."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


@dataclass(frozen=True, slots=True)
class StubRequest:
    """One request the stub took: its method, path, query and headers (names lower case)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


Answer = Callable[[StubRequest], tuple[int, Any]]  # a request -> (status, JSON body)


class JsonStub:
    """Answers every request with ``answer(request)``; ``asked`` holds the requests taken,
    in order. Use it as a context manager (``serving``)."""

    def __init__(self, answer: Answer) -> None:
        self.asked: list[StubRequest] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._reply("GET")

            def do_POST(self) -> None:
                self._reply("POST")

            def _reply(self, method: str) -> None:
                url = urlparse(self.path)
                request = StubRequest(
                    method,
                    url.path,
                    parse_qs(url.query),
                    {name.lower(): value for name, value in self.headers.items()},
                )
                stub.asked.append(request)
                status, body = answer(request)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@contextmanager
def serving(answer: Answer) -> Iterator[JsonStub]:
    """A ``JsonStub`` of ``answer`` serving in a thread until the block ends."""
    stub = JsonStub(answer)
    thread = threading.Thread(target=stub.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        stub.server.shutdown()
        stub.server.server_close()
        thread.join(timeout=5)
