"""A fake Anthropic Messages API for a real Claude Code CLI: a loopback HTTP server that
answers every ``POST /v1/messages`` with the turn a test function decides, streamed as
server-sent events when the request asks for ``stream`` (Claude Code always does for its
main loop) and as one JSON message otherwise.

    def model(request: dict) -> Turn:
        if tool_results(request):
            return Turn([Text("done")])
        return Turn([ToolUse("mcp__memq__search", {"query": "sqlite"})])

    with FakeAnthropic.running(model) as fake:
        ...                        # ANTHROPIC_BASE_URL=fake.url claude -p ...
        fake.requests              # every request's JSON body, in order

It serves Starlette on uvicorn in a thread (as ``tests.helpers.fake_llm`` does). Token
counting (``/v1/messages/count_tokens``) gets a plausible count; any other path a 404 in the
API's error shape, so an unexpected call shows up in the CLI's output, not as a hang. An
exception in the test's function becomes a 500 and is kept in ``errors``.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.helpers.app_server import ThreadedServer

Json = dict[str, Any]


@dataclass(frozen=True)
class Text:
    """A text block of the model's answer."""

    text: str


@dataclass(frozen=True)
class ToolUse:
    """A tool call of the model's answer; ``id`` is made up when not given."""

    name: str
    input: Json
    id: str = ""


Block = Text | ToolUse


@dataclass(frozen=True)
class Turn:
    """One answer of the model: its blocks, and why it stopped (``tool_use`` when it calls a
    tool and no reason is given, else ``end_turn``)."""

    blocks: list[Block]
    stop_reason: str | None = None

    @property
    def reason(self) -> str:
        if self.stop_reason is not None:
            return self.stop_reason
        calls = any(isinstance(block, ToolUse) for block in self.blocks)
        return "tool_use" if calls else "end_turn"


Model = Callable[[Json], Turn]


# -- reading what the client sent --------------------------------------------------------------


def tool_names(request: Json) -> list[str]:
    """The names of the tools the request offers the model."""
    return [tool.get("name", "") for tool in request.get("tools") or [] if isinstance(tool, dict)]


def tool_results(request: Json) -> list[Json]:
    """Every ``tool_result`` block in the request's messages, oldest first."""
    found: list[Json] = []
    for message in request.get("messages") or []:
        content = message.get("content")
        if isinstance(content, list):
            found.extend(
                block
                for block in content
                if isinstance(block, dict) and block.get("type") == "tool_result"
            )
    return found


def result_text(result: Json) -> str:
    """The text of a ``tool_result`` block, whether its content is a string or text blocks."""
    content = result.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            block.get("text", "")
            for block in content
            if isinstance(block, dict) and block.get("type") == "text"
        )
    return ""


def prompt_text(request: Json) -> str:
    """All the text of the request's user messages, joined (to tell requests apart)."""
    parts: list[str] = []
    for message in request.get("messages") or []:
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(
                block.get("text", "")
                for block in content
                if isinstance(block, dict) and block.get("type") == "text"
            )
    return "\n".join(parts)


# -- answering in the API's shape --------------------------------------------------------------


def _usage(request: Json) -> Json:
    tokens = max(1, len(json.dumps(request.get("messages", []))) // 4)
    return {
        "input_tokens": tokens,
        "output_tokens": 1,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def _content(blocks: list[Block], ids: Iterator[int]) -> list[Json]:
    content: list[Json] = []
    for block in blocks:
        if isinstance(block, Text):
            content.append({"type": "text", "text": block.text})
        else:
            tool_id = block.id or f"toolu_fake{next(ids):06d}"
            content.append(
                {"type": "tool_use", "id": tool_id, "name": block.name, "input": block.input}
            )
    return content


def message(request: Json, turn: Turn, message_id: str, ids: Iterator[int]) -> Json:
    """The whole answer as one Messages API JSON object (for a request without ``stream``)."""
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": request.get("model", "claude-fake"),
        "content": _content(turn.blocks, ids),
        "stop_reason": turn.reason,
        "stop_sequence": None,
        "usage": {**_usage(request), "output_tokens": 20},
    }


def sse_events(request: Json, turn: Turn, message_id: str, ids: Iterator[int]) -> Iterator[str]:
    """The answer as the Messages API streams it: ``message_start``; per block
    ``content_block_start``, its deltas (``text_delta``, or ``input_json_delta`` for a tool's
    input) and ``content_block_stop``; then ``message_delta`` with the stop reason and
    ``message_stop``. Each event is ``event: NAME`` and one ``data:`` line of JSON."""

    def event(name: str, data: Json) -> str:
        return f"event: {name}\ndata: {json.dumps(data)}\n\n"

    start = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": request.get("model", "claude-fake"),
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": _usage(request),
    }
    yield event("message_start", {"type": "message_start", "message": start})
    yield event("ping", {"type": "ping"})
    for index, block in enumerate(_content(turn.blocks, ids)):
        if block["type"] == "text":
            opening: Json = {"type": "text", "text": ""}
            delta: Json = {"type": "text_delta", "text": block["text"]}
        else:
            opening = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        yield event(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": opening},
        )
        yield event(
            "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        )
        yield event("content_block_stop", {"type": "content_block_stop", "index": index})
    yield event(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": turn.reason, "stop_sequence": None},
            "usage": {"output_tokens": 20},
        },
    )
    yield event("message_stop", {"type": "message_stop"})


def api_error(status: int, kind: str, text: str) -> JSONResponse:
    return JSONResponse(
        {"type": "error", "error": {"type": kind, "message": text}}, status_code=status
    )


# -- the server --------------------------------------------------------------------------------


@dataclass
class FakeAnthropic:
    """The server, the model function that decides its answers, and what it was sent."""

    model: Model
    requests: list[Json] = field(default_factory=list)  # /v1/messages bodies, in order
    paths: list[str] = field(default_factory=list)  # every request's method and path
    errors: list[str] = field(default_factory=list)  # the model function's exceptions
    port: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._served: ThreadedServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _messages(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return api_error(400, "invalid_request_error", "the body is not JSON")
        with self._lock:
            self.paths.append(f"POST {request.url.path}")
            self.requests.append(body)
            message_id = f"msg_fake{next(self._ids):06d}"
        try:
            turn = self.model(body)
        except Exception as exc:  # reported to the test through `errors`
            with self._lock:
                self.errors.append(f"{type(exc).__name__}: {exc}")
            return api_error(500, "api_error", f"fake model failed: {exc}")
        if body.get("stream"):
            return StreamingResponse(
                sse_events(body, turn, message_id, self._ids),
                media_type="text/event-stream",
                headers={"cache-control": "no-cache", "request-id": f"req_{message_id}"},
            )
        return JSONResponse(message(body, turn, message_id, self._ids))

    async def _count_tokens(self, request: Request) -> Response:
        with self._lock:
            self.paths.append(f"POST {request.url.path}")
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = {}
        return JSONResponse({"input_tokens": _usage(body)["input_tokens"]})

    async def _other(self, request: Request) -> Response:
        with self._lock:
            self.paths.append(f"{request.method} {request.url.path}")
        return api_error(404, "not_found_error", f"fake: nothing at {request.url.path}")

    def start(self) -> None:
        app = Starlette(
            routes=[
                Route("/v1/messages", self._messages, methods=["POST"]),
                Route("/v1/messages/count_tokens", self._count_tokens, methods=["POST"]),
                Route("/{path:path}", self._other, methods=["GET", "POST", "HEAD"]),
            ]
        )
        self._served = ThreadedServer(app, "fake-anthropic")
        self._served.start()
        self.port = self._served.port

    def stop(self) -> None:
        if self._served is not None:
            self._served.stop()

    @classmethod
    @contextmanager
    def running(cls, model: Model) -> Iterator[FakeAnthropic]:
        """A started server answering with ``model``, stopped on exit."""
        fake = cls(model)
        fake.start()
        try:
            yield fake
        finally:
            fake.stop()
