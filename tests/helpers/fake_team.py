"""A stand-in for the team server's intake (``POST /api/team/v1/events``), as the contract in
the team design states it, for the laptop's forwarder to talk to: per event accepted,
duplicate (by ``memq.team.intake.origin_key(name, machine, local_id)``, as the real
server: the key's name, so a re-send after the key's rotation is a duplicate) or refused; 401
for a key it does not know. ``TeamIntake.handle`` is the logic (tests call it through httpx's
MockTransport); ``TeamServer`` serves it over real HTTP on loopback, and can be stopped and
started again on the same port. Faults on demand: ``down`` (503), ``drop_answers`` (stored,
then the connection closed before any answer), ``refuse_projects``."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from memq.team.intake import origin_key, parse_origin_key

EVENTS_PATH = "/api/team/v1/events"
KEY = "memq_k1k1k1k1k1k1_" + "s" * 43  # the key it knows, as `memq keys create` prints one
ROTATED = "memq_k2k2k2k2k2k2_" + "t" * 43  # alice's next key (``rotate``)


@dataclass
class TeamIntake:
    """The intake's state: every event stored, in commit order."""

    keys: dict[str, str] = field(default_factory=lambda: {KEY: "alice"})  # token: name
    stored: list[dict[str, Any]] = field(default_factory=list)
    dedupe: dict[str, int] = field(default_factory=dict)  # origin_key: stored id
    requests: list[list[int]] = field(default_factory=list)  # local ids per request seen
    duplicates: int = 0
    down: bool = False  # answer 503
    status_override: int | None = None  # answer this status to every request
    drop_answers: int = 0  # commit, then give no answer (this many times)
    refuse_projects: set[str] = field(default_factory=set)
    max_events_bytes: int | None = None  # a request whose body is larger: 413
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(  # noqa: PLR0911 - one answer per case of the contract
        self, authorization: str, body: bytes
    ) -> tuple[int, dict[str, Any] | None]:
        """The answer to one request: (status, JSON body); None as the body: drop it."""
        with self.lock:
            if self.down:
                return 503, {"error": "down for maintenance"}
            if self.status_override is not None:
                return self.status_override, {"error": "as told"}
            token = authorization.removeprefix("Bearer ").strip()
            if token not in self.keys:
                return 401, {"error": "unknown or revoked key"}
            if self.max_events_bytes is not None and len(body) > self.max_events_bytes:
                return 413, {"error": "body too large"}
            try:
                request = json.loads(body)
                machine = str(request["machine"])
                events = list(request["events"])
            except (ValueError, KeyError, TypeError):
                return 422, {"error": "malformed body"}
            name = self.keys[token]
            self.requests.append([int(e["local_id"]) for e in events])
            results = [self._take(event, name, machine) for event in events]
            if self.drop_answers > 0:
                self.drop_answers -= 1
                return 200, None
            return 200, {"results": results}

    def _take(self, event: dict[str, Any], name: str, machine: str) -> dict[str, Any]:
        local_id = int(event["local_id"])
        if event["project"] in self.refuse_projects:
            return {"local_id": local_id, "status": "refused", "error": "project out of scope"}
        origin = origin_key(name, machine, local_id)
        if origin in self.dedupe:
            self.duplicates += 1
            return {"local_id": local_id, "status": "duplicate", "id": self.dedupe[origin]}
        self.stored.append({**event, "machine": machine})
        self.dedupe[origin] = len(self.stored)
        return {"local_id": local_id, "status": "accepted", "id": len(self.stored)}

    def transport(self) -> httpx.MockTransport:
        """httpx's transport answering as this intake (a dropped answer: a read error)."""

        def answer(request: httpx.Request) -> httpx.Response:
            if request.url.path != EVENTS_PATH or request.method != "POST":
                return httpx.Response(404)
            status, body = self.handle(request.headers.get("Authorization", ""), request.content)
            if body is None:
                raise httpx.ReadError("connection closed before the answer", request=request)
            return httpx.Response(status, json=body)

        return httpx.MockTransport(answer)

    def local_ids(self) -> list[int]:
        with self.lock:
            return [int(e["local_id"]) for e in self.stored]

    def origins(self) -> list[tuple[str, str, int]]:
        """Each stored event's (key name, machine, local id), in the order stored, as read
        back from its dedupe key."""
        with self.lock:
            in_order = sorted(self.dedupe.items(), key=lambda item: item[1])
            found = [parse_origin_key(key) for key, _ in in_order]
        assert None not in found, found
        return [origin for origin in found if origin is not None]

    def rotate(self, old: str, new: str) -> None:
        """A rotation (``old`` revoked, a new key of its name made): ``new`` stands for the
        same person, and ``old`` is refused from now on."""
        with self.lock:
            self.keys[new] = self.keys.pop(old)


class TeamServer:
    """``intake`` served over HTTP on 127.0.0.1:``port`` in a thread; ``stop`` and ``start``
    again keep the port and what the intake stored."""

    def __init__(self, intake: TeamIntake, port: int) -> None:
        self.intake = intake
        self.port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        intake = self.intake

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if self.path != EVENTS_PATH:
                    self.send_error(404)
                    return
                status, answer = intake.handle(self.headers.get("Authorization", ""), body)
                if answer is None:
                    self.close_connection = True
                    return  # committed, and no answer at all
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            assert self._thread is not None
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None
