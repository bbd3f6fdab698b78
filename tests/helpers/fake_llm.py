"""A fake model API: a real HTTP server on a free loopback port that answers from a script.

    with FakeLLM.running() as fake:
        fake.script(anthropic_text('{"kind": ...}'), Reply(status=429, headers=...))
        ...                                  # point MEMQ_BASE_URL at fake.url
        fake.requests[0].json()["model"]     # what the server was sent

It serves Starlette on uvicorn in a thread with its own event loop, so no task group of the
test's loop is held across a fixture's ``yield``. Every request, on any path, is recorded and
answered with the next scripted :class:`Reply`; with none left it answers 418, which no
processor takes for success. A reply with a ``delay`` waits before answering (past a client's
timeout); :meth:`FakeLLM.reset` and shutdown cut such waits short.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from memq.processors.llm import AnthropicProcessor, ModelProcessor, OpenAIProcessor
from tests.helpers.app_server import ThreadedServer


@dataclass(frozen=True)
class Reply:
    """One scripted answer: a status, a JSON (or raw text) body, headers, and a delay."""

    status: int = 200
    json: Any = None
    text: str | None = None  # sent as is instead of ``json`` when set
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering


@dataclass(frozen=True)
class SeenRequest:
    """A request as the server received it."""

    method: str
    path: str
    headers: Mapping[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


# -- answers in each API's shape ---------------------------------------------------------------


def anthropic_text(text: str, *, stop_reason: str = "end_turn") -> Reply:
    """A Messages API answer whose content is one text block."""
    return Reply(
        json={
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": "claude-fake",
            "content": [{"type": "text", "text": text}],
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": 120, "output_tokens": 40},
        }
    )


def openai_text(text: str, *, finish_reason: str = "stop") -> Reply:
    """A Chat Completions answer with one choice."""
    return Reply(
        json={
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": "gpt-fake",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "finish_reason": finish_reason,
                }
            ],
            "usage": {"prompt_tokens": 120, "completion_tokens": 40, "total_tokens": 160},
        }
    )


def anthropic_error(
    status: int, kind: str, message: str, headers: Mapping[str, str] | None = None
) -> Reply:
    """An error in the Messages API's shape."""
    body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_1"}
    return Reply(status=status, json=body, headers=dict(headers or {}))


def openai_error(
    status: int, kind: str, message: str, headers: Mapping[str, str] | None = None
) -> Reply:
    """An error in the Chat Completions API's shape."""
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return Reply(status=status, json=body, headers=dict(headers or {}))


def text_reply(provider: str, text: str) -> Reply:
    """A successful answer holding ``text``, in the shape of ``provider``'s API."""
    return anthropic_text(text) if provider == "anthropic" else openai_text(text)


def error_reply(
    provider: str, status: int, kind: str, text: str, headers: Mapping[str, str] | None = None
) -> Reply:
    """An error in the shape of ``provider``'s API."""
    make = anthropic_error if provider == "anthropic" else openai_error
    return make(status, kind, text, headers)


# -- processors pointed at the server ----------------------------------------------------------

PROVIDERS: Final[Mapping[str, type[ModelProcessor]]] = MappingProxyType(
    {"anthropic": AnthropicProcessor, "openai": OpenAIProcessor}
)
KEY: Final = "sk-test-0123456789"
MODELS: Final[Mapping[str, str]] = MappingProxyType(
    {"anthropic": "claude-test-model", "openai": "gpt-test-model"}
)


def base_url(provider: str, server: str) -> str:
    """Each vendor's convention: Anthropic's root has no /v1, OpenAI's has it."""
    return server if provider == "anthropic" else f"{server}/v1"


def settings_env(provider: str, server: str, **extra: str) -> dict[str, str]:
    """The settings of a ``provider`` processor calling the server at ``server``: its key,
    its model (``MODELS``), a 5 s timeout, and ``extra``."""
    return {
        "MEMQ_BASE_URL": base_url(provider, server),
        "MEMQ_API_KEY": KEY,
        "MEMQ_MODEL": MODELS[provider],
        "MEMQ_LLM_TIMEOUT": "5",
        **extra,
    }


# -- the server --------------------------------------------------------------------------------


class FakeLLM:
    """The server, its script and what it was sent."""

    def __init__(self) -> None:
        self._replies: deque[Reply] = deque()
        self._lock = threading.Lock()
        # Set (from any thread) to end the waits of delayed replies; lives on the server's loop.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._release: asyncio.Event | None = None
        self.requests: list[SeenRequest] = []
        self.port = 0
        self._served: ThreadedServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with ``replies``, in order."""
        with self._lock:
            self._replies.extend(replies)

    def reset(self) -> None:
        """Forget the script and the requests; cut short any reply still waiting."""
        with self._lock:
            self._replies.clear()
            self.requests.clear()
        self._release_waits()

    def _release_waits(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._new_release)

    def _new_release(self) -> None:
        """On the server's loop: end every wait so far, and start a new set of waits."""
        if self._release is not None:
            self._release.set()
        self._release = asyncio.Event()

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        with self._lock:
            self.requests.append(
                SeenRequest(
                    method=request.method,
                    path=request.url.path,
                    headers={k.lower(): v for k, v in request.headers.items()},
                    body=body,
                )
            )
            reply = self._replies.popleft() if self._replies else None
        if reply is None:
            return JSONResponse({"error": {"message": "fake: no scripted reply"}}, status_code=418)
        if reply.delay:
            if self._loop is None:
                self._loop = asyncio.get_running_loop()
                self._new_release()
            assert self._release is not None
            with suppress(TimeoutError):
                await asyncio.wait_for(self._release.wait(), reply.delay)
        if reply.text is not None:
            return Response(
                reply.text, status_code=reply.status, headers=dict(reply.headers), media_type=None
            )
        return JSONResponse(reply.json, status_code=reply.status, headers=dict(reply.headers))

    def start(self) -> None:
        app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["GET", "POST"])])
        self._served = ThreadedServer(app, "fake-llm")
        self._served.start()
        self.port = self._served.port

    def stop(self) -> None:
        self._release_waits()
        if self._served is not None:
            self._served.stop()

    @classmethod
    @contextmanager
    def running(cls) -> Iterator[FakeLLM]:
        """A started server, stopped on exit."""
        fake = cls()
        fake.start()
        try:
            yield fake
        finally:
            fake.stop()


def closed_port_url() -> str:
    """The URL of a loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"
