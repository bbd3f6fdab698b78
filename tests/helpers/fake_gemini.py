"""A fake Gemini API (``generativelanguage``'s ``v1beta``) for a real Gemini CLI: a loopback
server answering ``POST /v1beta/models/<model>:streamGenerateContent?alt=sse`` with the
turn a test function decides, as server-sent events: a text part in pieces of about 24
characters cut after a space (as the API streams), any other part whole.

    def model(request: dict) -> list[dict]:        # the parts of the model's answer
        if function_responses(request):
            return [{"text": "done"}]
        return [{"functionCall": {"name": "run_shell_command", "args": {"command": "ls"}}}]

    with FakeGemini.running(model) as fake:
        ...                    # GOOGLE_GEMINI_BASE_URL=fake.url GEMINI_API_KEY=x gemini -p ...
        fake.requests          # every request's JSON body, in order

``:generateContent`` (the CLI's side calls) gets the same function's answer as one JSON
response, ``:countTokens`` a plausible count; any other path a 404, so an unexpected call
shows in the CLI's output rather than as a hang. An exception in the test's function becomes
a 500 and is kept in ``errors``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.helpers.app_server import ThreadedServer

Json = dict[str, Any]
Model = Callable[[Json], list[Json]]
CHUNK_CHARS = 24  # about what the real API streams per chunk


def contents(request: Json) -> list[Json]:
    found = request.get("contents")
    return [c for c in found if isinstance(c, dict)] if isinstance(found, list) else []


def parts(content: Json) -> list[Json]:
    found = content.get("parts")
    return [p for p in found if isinstance(p, dict)] if isinstance(found, list) else []


def function_responses(request: Json) -> list[Json]:
    """The function responses in the request's last content (the tool results just sent)."""
    turns = contents(request)
    last = parts(turns[-1]) if turns else []
    return [p["functionResponse"] for p in last if isinstance(p.get("functionResponse"), dict)]


def request_text(request: Json) -> str:
    """Every text part of the request's contents, joined: what the model was given."""
    return "\n".join(
        p["text"] for c in contents(request) for p in parts(c) if isinstance(p.get("text"), str)
    )


def last_user_text(request: Json) -> str:
    """The text of the last user content that holds text (the prompt of the turn)."""
    for content in reversed(contents(request)):
        texts = [p["text"] for p in parts(content) if isinstance(p.get("text"), str)]
        if content.get("role") == "user" and texts:
            return "\n".join(texts)
    return ""


def _response(answer: list[Json], *, final: bool) -> Json:
    candidate: Json = {"content": {"role": "model", "parts": answer}, "index": 0}
    if final:
        candidate["finishReason"] = "STOP"
    usage = {"promptTokenCount": 100, "candidatesTokenCount": 10, "totalTokenCount": 110}
    return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": "fake"}


def _chunks(part: Json, size: int = CHUNK_CHARS) -> list[Json]:
    """A text part as the API streams it: pieces of about ``size`` characters, each cut
    after a space; any other part whole."""
    text = part.get("text")
    if not isinstance(text, str) or len(text) <= size:
        return [part]
    pieces: list[Json] = []
    while text:
        cut = len(text)
        if cut > size:
            cut = text.rfind(" ", 0, size) + 1 or cut  # no space: the rest in one piece
        pieces.append({"text": text[:cut]})
        text = text[cut:]
    return pieces


class FakeGemini:
    """The server; ``url`` is its base URL once started."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.requests: list[Json] = []
        self.paths: list[str] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._server = ThreadedServer(
            Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST", "GET"])]),
            "fake-gemini",
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.port}"

    @classmethod
    @contextmanager
    def running(cls, model: Model) -> Iterator[FakeGemini]:
        fake = cls(model)
        fake._server.start()
        try:
            yield fake
        finally:
            fake._server.stop()

    async def _handle(self, request: Request) -> Response:
        path = request.url.path
        with self._lock:
            self.paths.append(path)
        if request.method != "POST" or ":" not in path:
            return JSONResponse({"error": {"code": 404, "message": f"no {path}"}}, 404)
        verb = path.rsplit(":", 1)[1]
        body = await request.json()
        if verb == "countTokens":
            return JSONResponse({"totalTokens": 100})
        if verb not in ("streamGenerateContent", "generateContent"):
            return JSONResponse({"error": {"code": 404, "message": f"no {verb}"}}, 404)
        with self._lock:
            self.requests.append(body)
        try:
            answer = self.model(body)
        except Exception as exc:
            with self._lock:
                self.errors.append(f"{type(exc).__name__}: {exc}")
            return JSONResponse({"error": {"code": 500, "message": str(exc)}}, 500)
        if verb == "generateContent":
            return JSONResponse(_response(answer, final=True))

        pieces = [piece for part in answer for piece in _chunks(part)]

        async def events() -> Any:
            for i, piece in enumerate(pieces):
                chunk = _response([piece], final=i == len(pieces) - 1)
                yield f"data: {json.dumps(chunk)}\r\n\r\n"

        return StreamingResponse(events(), media_type="text/event-stream")
