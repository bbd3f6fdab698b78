"""Model tokens per session: what the model-based processors send now against one call per
event with the raw payload (issue 13, "fewer, smaller calls").

Replays the sample sessions (``tests/fixtures/claude-code/*.jsonl`` and every
``../shared/samples/*/hooks.sequence.jsonl``, grouped by session) through the real worker path
(a queue and memory store on a SQLite file in a temporary directory, the claim handler, the
Anthropic processor) against a fake Messages API on loopback (``tests/helpers/fake_llm.py``),
once per way of asking:

- ``raw``: the way before: one call per tool call and per summary, the tool call shown as its
  raw payload (``prompts.observation_prompt``), noise included;
- ``compact``: the way now: the ``extract`` record and the diff (``llm.compact``), no call for
  what extract's rules find to be noise;
- ``batched``: the same with ``MEMQ_BATCH_TURNS``: a turn's tool calls described with its
  summary, one call per turn (``llm.batch``).

Tokens are counted as the API would see them, estimated at four characters a token: the
instructions and the message of each request the server received (input), and the canned
answer (output: the same for every call, and one record's worth more per record a turn's
call describes). Prints a table per session and the ratio compact / raw
of the total, and one JSON object as the last line.

    .venv/bin/python scripts/bench_tokens.py
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import anyio

ROOT: Final = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchkit import silence_logs  # noqa: E402

from memq.events import route_event  # noqa: E402
from memq.exceptions import InvalidEventError  # noqa: E402
from memq.memory.records import ProcessResult, SessionContext  # noqa: E402
from memq.memory.store import MemoryStore  # noqa: E402
from memq.processors.llm import AnthropicProcessor  # noqa: E402
from memq.processors.llm.batch import BATCH_SYSTEM  # noqa: E402
from memq.processors.llm.prompts import (  # noqa: E402
    observation_prompt,
    parse_observation,
    parse_summary,
    summary_prompt,
)
from memq.queue import Message, MessageKind, Queue  # noqa: E402
from memq.worker.processing import ClaimHandler  # noqa: E402
from tests.helpers.fake_llm import FakeLLM, anthropic_text  # noqa: E402

CHARS_PER_TOKEN: Final = 4
KINDS: Final = frozenset({"prompt", "observation", "summarize"})
# One answer every parser takes: an observation's fields, a summary's, and a turn's.
_FIELDS: Final = {
    "kind": "change",
    "title": "Did the thing the tool call shows",
    "subtitle": "",
    "narrative": "What happened, in two sentences. Why it matters.",
    "facts": ["one fact learned"],
    "concepts": ["topic"],
    "files_read": [],
    "files_modified": [],
    "request": "what the user asked",
    "investigated": "",
    "learned": "",
    "completed": "what was done",
    "next_steps": "",
    "files_edited": [],
    "notes": "",
}
ANSWER: Final = json.dumps({**_FIELDS, "records": [], "summary": _FIELDS})
MODES: Final = ("raw", "compact", "batched")
RECORD_ANSWER: Final = json.dumps(
    {"id": 12, **{k: _FIELDS[k] for k in ("kind", "title", "subtitle", "narrative", "facts")}}
    | {"concepts": _FIELDS["concepts"]}
)


@dataclass(frozen=True)
class Session:
    name: str
    events: list[dict[str, Any]]  # hook payloads in order


class RawPayloadProcessor(AnthropicProcessor):
    """The way before issue 13: every tool call shown as its raw payload, noise included."""

    async def process(self, message: Message, context: SessionContext) -> ProcessResult:
        if message.kind is MessageKind.OBSERVATION:
            answer, usage = await self.answer(observation_prompt(message.payload))
            return ProcessResult(
                observation=parse_observation(answer, message.payload), usage=usage
            )
        if message.kind is MessageKind.SUMMARIZE:
            answer, usage = await self.answer(summary_prompt(message.payload, context))
            return ProcessResult(summary=parse_summary(answer, context), usage=usage)
        return ProcessResult()


def sequence_files() -> list[Path]:
    """The replayed sample sessions: memq's own fixtures, then the shared samples'."""
    own = sorted((ROOT / "tests/fixtures/claude-code").glob("*.jsonl"))
    shared = sorted((ROOT.parent / "shared/samples").glob("*/hooks.sequence.jsonl"))
    return own + shared


def sessions() -> Iterator[Session]:
    """Each session of each file with at least one tool call memq records (once: the shared
    samples repeat memq's own fixture)."""
    seen: set[str] = set()
    for path in sequence_files():
        by_session: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for line in path.read_text("utf-8").splitlines():
            if not line.strip():
                continue
            payload = json.loads(line).get("payload")
            if not isinstance(payload, dict):
                continue
            try:
                route = route_event(payload)
            except InvalidEventError:
                continue
            if route.kind in KINDS:
                by_session[route.session_key].append(payload)
        label = path.relative_to(ROOT.parent).as_posix().removeprefix(ROOT.name + "/")
        for key, events in by_session.items():
            kinds = [route_event(e).kind for e in events]
            text = json.dumps(events, sort_keys=True)
            if "observation" in kinds and text not in seen:
                seen.add(text)
                yield Session(f"{label} {key.split(':', 1)[1][-12:]}", events)


def _module(lines: int) -> str:
    """A Python module of about ``lines`` lines, as a project's files are."""
    body = [f'"""Module of {lines} lines."""', "", "from __future__ import annotations", ""]
    n = 0
    while len(body) < lines:
        body += [
            "",
            f"def helper_{n}(value: int, scale: float = 1.5) -> float:",
            f'    """Helper {n}: the value scaled, offset by its index."""',
            f"    result = value * scale + {n}",
            "    if result > 1000:",
            "        return result / 2",
            "    return result",
        ]
        n += 1
    return "\n".join(body) + "\n"


def at_real_size(session: Session) -> Session:
    """``session`` with the sizes real work has: a 600-line file behind each Read and Edit,
    and a test run printing 300 lines."""
    big = _module(600)
    events = []
    for original in session.events:
        payload = json.loads(json.dumps(original))
        response = payload.get("tool_response")
        tool = payload.get("tool_name")
        if tool == "Read" and isinstance(response, dict) and isinstance(response.get("file"), dict):
            response["file"].update(content=big, numLines=600, totalLines=600)
        elif tool == "Edit" and isinstance(response, dict) and response.get("originalFile"):
            old = payload["tool_input"].get("old_string", "")
            new = payload["tool_input"].get("new_string", "")
            response["originalFile"] = big + old + "\n"
            del response["structuredPatch"]  # the rules diff the strings instead
            payload["tool_input"].update(old_string=old, new_string=new)
        elif tool == "Bash" and isinstance(response, dict) and "stdout" in response:
            passed = "".join(f"tests/test_mod.py::test_case_{n} PASSED\n" for n in range(300))
            response["stdout"] = passed + str(response.get("stdout") or "")
        events.append(payload)
    return Session(f"{session.name} at real size", events)


def records_shown(body: dict[str, Any]) -> int:
    """How many records a turn's request showed the model (0 for any other request)."""
    if body.get("system") != BATCH_SYSTEM:
        return 0
    text = body["messages"][-1]["content"]
    shown: list[Any] = json.loads(text[text.index("{") : text.rindex("}") + 1])["records"]
    return len(shown)


def tokens(chars: int) -> int:
    return math.ceil(chars / CHARS_PER_TOKEN)


def request_tokens(body: dict[str, Any]) -> int:
    """The input tokens of one Messages API request: its instructions and messages."""
    chars = len(body.get("system") or "")
    for message in body.get("messages") or []:
        content = message.get("content")
        chars += len(content) if isinstance(content, str) else len(json.dumps(content))
    return tokens(chars)


async def replay(session: Session, mode: str, fake: FakeLLM) -> dict[str, int]:
    """Process ``session`` with the processor of ``mode``; the calls and tokens it cost."""
    fake.reset()
    fake.script(*[anthropic_text(ANSWER)] * (len(session.events) + 1))
    env = {"MEMQ_BASE_URL": fake.url, "MEMQ_API_KEY": "k", "MEMQ_LLM_TIMEOUT": "10"}
    if mode == "batched":
        env["MEMQ_BATCH_TURNS"] = "true"
    kind = RawPayloadProcessor if mode == "raw" else AnthropicProcessor
    processor = kind.from_env(env)
    with tempfile.TemporaryDirectory() as directory:
        queue = await Queue.open(Path(directory) / "memq.db")
        try:
            async with await MemoryStore.open(Path(directory) / "memq.db") as store:
                handler = ClaimHandler(lambda _s: processor, store)
                for payload in session.events:
                    route = route_event(payload)
                    await queue.enqueue(route.session_key, route.kind, payload)
                while backlog := await queue.sessions_with_backlog():
                    for key in backlog:
                        async for claim in queue.stream(key, linger=0):
                            await handler(claim)
                if (await queue.stats()).counts.failed:
                    raise RuntimeError(f"{session.name}: a message failed in mode {mode}")
        finally:
            await queue.close()
            await processor.aclose()
    bodies = [request.json() for request in fake.requests]
    input_tokens = sum(request_tokens(body) for body in bodies)
    # The canned answer for each call; a turn's answer also describes each record it was
    # shown, as a real model's would: one record's worth more per record.
    output_tokens = len(bodies) * tokens(len(ANSWER))
    output_tokens += sum(records_shown(body) for body in bodies) * tokens(len(RECORD_ANSWER))
    return {"calls": len(bodies), "input": input_tokens, "output": output_tokens}


async def measure() -> dict[str, Any]:
    rows = []
    with FakeLLM.running() as fake:
        replayed = list(sessions())
        sized = [at_real_size(s) for s in replayed if "turns." in s.name]
        for session in [*replayed, *sized]:
            row: dict[str, Any] = {"session": session.name, "events": len(session.events)}
            for mode in MODES:
                row[mode] = await replay(session, mode, fake)
            rows.append(row)
    return {"sessions": rows}


def total(row: dict[str, int]) -> int:
    return row["input"] + row["output"]


def _group_figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
    sums = {mode: {"calls": 0, "input": 0, "output": 0} for mode in MODES}
    for row in rows:
        for mode, counts in sums.items():
            for key in counts:
                counts[key] += row[mode][key]
    n = max(1, len(rows))
    base = max(1, total(sums["raw"]))
    return {
        "sessions": len(rows),
        **sums,
        "tokens_per_session": {mode: round(total(sums[mode]) / n, 1) for mode in sums},
        "ratio": {mode: round(total(sums[mode]) / base, 4) for mode in MODES[1:]},
        "calls": {mode: sums[mode]["calls"] for mode in MODES},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.parse_args()
    silence_logs()
    result = anyio.run(measure)
    rows = result["sessions"]
    print(
        f"{'SESSION':<58} {'EVENTS':>6}"
        + "".join(f" {mode.upper() + ' CALLS':>13} {'TOKENS':>7}" for mode in MODES),
        file=sys.stderr,
    )
    for row in rows:
        cells = "".join(f" {row[m]['calls']:>13} {total(row[m]):>7}" for m in MODES)
        print(f"{row['session']:<58} {row['events']:>6}{cells}", file=sys.stderr)
    summary: dict[str, Any] = {}
    for group, chosen in (
        ("replayed", [r for r in rows if not r["session"].endswith("at real size")]),
        ("real_size", [r for r in rows if r["session"].endswith("at real size")]),
    ):
        figures = _group_figures(chosen)
        summary[group] = figures
        per = figures["tokens_per_session"]
        print(
            f"\n{group}: {figures['sessions']} sessions; tokens per session: one call per event"
            f" with the raw payload {per['raw']:.0f}, compact {per['compact']:.0f}"
            f" (ratio {figures['ratio']['compact']:.3f}), compact + one call per turn"
            f" {per['batched']:.0f} (ratio {figures['ratio']['batched']:.3f});"
            f" calls {figures['calls']['raw']} -> {figures['calls']['compact']}"
            f" -> {figures['calls']['batched']}",
            file=sys.stderr,
        )
    print(f"tokens estimated at {CHARS_PER_TOKEN} characters each", file=sys.stderr)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
