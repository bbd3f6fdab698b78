"""A fake OpenAI Responses API (``POST /v1/responses``, streamed as server-sent events) for
running the Codex CLI offline:

    with FakeResponses.running(ShellThenAnswer("echo hi > hi.txt", "Done.")) as fake:
        ...  # point a Codex model provider's base_url at fake.url + "/v1"
        fake.requests[0]["input"]  # what the CLI sent

Each request's JSON body is recorded and answered with the output items the ``Script``
returns, streamed as the API streams them: ``response.created``, one
``response.output_item.done`` per item, ``response.completed``. Other paths get 404 (recorded
too, in ``paths``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeAlias

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.helpers.app_server import ThreadedServer

Json: TypeAlias = dict[str, Any]
Script: TypeAlias = Callable[[Json], list[Json]]  # a request body -> the output items


def message(text: str) -> Json:
    """An assistant message item holding ``text``."""
    return {
        "type": "message",
        "role": "assistant",
        "id": "msg_fake",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def function_call(name: str, arguments: Json, call_id: str) -> Json:
    """A function call item (Codex's shell tool is ``exec_command`` with ``{"cmd": ...}``)."""
    return {
        "type": "function_call",
        "id": f"fc_{call_id}",
        "status": "completed",
        "name": name,
        "arguments": json.dumps(arguments),
        "call_id": call_id,
    }


def input_texts(request: Json) -> list[str]:
    """Every text of the request's ``input`` items (messages' content, tool outputs)."""
    texts: list[str] = []
    for item in request.get("input") or []:
        if not isinstance(item, dict):
            continue
        content = item.get("content")
        if isinstance(content, list):
            texts += [c["text"] for c in content if isinstance(c, dict) and "text" in c]
        elif isinstance(item.get("output"), str):
            texts.append(item["output"])
    return texts


class ShellThenAnswer:
    """A turn that runs one shell command, then answers ``answer``: a request whose input
    ends with the user's message gets the call, one after the call's output the answer.
    Call ids count up (``call_fake_1``, ...) across the turns of a run."""

    def __init__(self, command: str, answer: str) -> None:
        self.command = command
        self.answer = answer
        self.calls = 0

    def __call__(self, request: Json) -> list[Json]:
        items = [i for i in request.get("input") or [] if isinstance(i, dict)]
        if items and items[-1].get("type") == "function_call_output":
            return [message(self.answer)]
        self.calls += 1
        call = function_call("exec_command", {"cmd": self.command}, f"call_fake_{self.calls}")
        return [call]


class FakeResponses:
    """The server, its script and what it was sent."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[Json] = []
        self.paths: list[str] = []
        self._lock = threading.Lock()
        self._served: ThreadedServer | None = None
        self._count = 0

    @property
    def url(self) -> str:
        assert self._served is not None
        return f"http://127.0.0.1:{self._served.port}"

    async def _responses(self, request: Request) -> Response:
        body = await request.json()
        with self._lock:
            self.paths.append(request.url.path)
            self.requests.append(body)
            self._count += 1
            response_id = f"resp_fake_{self._count}"
            items = self.script(body)
        return Response(_stream(response_id, items), media_type="text/event-stream")

    async def _other(self, request: Request) -> Response:
        with self._lock:
            self.paths.append(request.url.path)
        return JSONResponse({"error": {"message": "not faked"}}, status_code=404)

    @classmethod
    @contextmanager
    def running(cls, script: Script) -> Iterator[FakeResponses]:
        fake = cls(script)
        app = Starlette(
            routes=[
                Route("/v1/responses", fake._responses, methods=["POST"]),
                Route("/{path:path}", fake._other, methods=["GET", "POST"]),
            ]
        )
        fake._served = ThreadedServer(app, "fake-responses")
        fake._served.start()
        try:
            yield fake
        finally:
            fake._served.stop()


def _stream(response_id: str, items: list[Json]) -> str:
    usage = {
        "input_tokens": 100,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 10,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 110,
    }
    events: list[Json] = [
        {"type": "response.created", "response": {"id": response_id, "status": "in_progress"}}
    ]
    for index, item in enumerate(items):
        events.append({"type": "response.output_item.done", "output_index": index, "item": item})
    events.append(
        {
            "type": "response.completed",
            "response": {"id": response_id, "status": "completed", "usage": usage},
        }
    )
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)
