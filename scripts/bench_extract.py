"""Benchmark of the offline ``extract`` processor's turn read, and what its rules keep.

Since issue 13, the worker shows ``extract`` a tool call's turn (``MemoryStore.turn_for``: the
session's last prompt and up to 40 observations after it), the evidence of a fix or of a
repeated read. That is one more read per tool call. This script measures what it costs on the
worker's real path (queue, claim, processor, ack with the memory write, real SQLite files):

1. with the turn read, as shipped;
2. baseline: the same, with tool calls shown no context (as before issue 13).

The sessions are the realistic turns of ``tests/fixtures/claude-code/turns.fix-and-rename
.jsonl`` (a failing test fixed, repeated reads, no-op commands, a rename, a new module),
replayed over and over with fresh tool-use ids. The two runs alternate, best of ``--rounds``
each. Printed: milliseconds per message of each, the turn read's share, and what the rules
kept: records per tool call and the kinds they got. Figures only; the exit status is 0 unless
something crashed. The last line of stdout is one JSON object.

Run it from the project root::

    .venv/bin/python scripts/bench_extract.py [--turns 60] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import structlog

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from memq.env import DEFAULT_SKIP_TOOLS  # noqa: E402
from memq.events import route_event  # noqa: E402
from memq.memory import MemoryStore  # noqa: E402
from memq.memory.records import SessionContext  # noqa: E402
from memq.privacy import is_skipped  # noqa: E402
from memq.processors import ExtractProcessor  # noqa: E402
from memq.queue import Message, Queue  # noqa: E402
from memq.worker import processing  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "claude-code" / "turns.fix-and-rename.jsonl"


def events(turns: int) -> list[dict[str, Any]]:
    """The fixture's events ``turns`` times over (each pass is two turns), every tool call
    with its own id, spread over four sessions."""
    base = [json.loads(line)["payload"] for line in FIXTURE.read_text("utf-8").splitlines()]
    base = [p for p in base if not is_skipped(p, DEFAULT_SKIP_TOOLS)]
    out = []
    for n in range(max(turns // 2, 1)):
        for index, payload in enumerate(base):
            copy = dict(payload, session_id=f"bench-{n % 4}")
            if "tool_use_id" in copy:
                copy["tool_use_id"] = f"{payload['tool_use_id']}-{n}-{index}"
            if "prompt_id" in copy:
                copy["prompt_id"] = f"{payload['prompt_id']}-{n}"
            out.append(copy)
    return out


async def run(payloads: list[dict[str, Any]], *, turn_read: bool) -> tuple[float, Counter[str]]:
    """Seconds to process every payload through the worker's claim handler, and the kinds
    of the observations made ("(none)" counts the tool calls left out)."""
    original = processing.processing_context

    async def no_turn(store: Any, message: Message) -> SessionContext:
        if message.kind.value == "observation":
            return SessionContext(session_key=message.session_id, project=None)
        return await original(store, message)

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "memq.db"
        queue = await Queue.open(path)
        store = await MemoryStore.open(path)
        try:
            for payload in payloads:
                route = route_event(payload)
                await queue.enqueue(route.session_key, route.kind, payload, route.dedupe_key)
            handler = processing.ClaimHandler(lambda _s: ExtractProcessor(), store)
            processing.processing_context = original if turn_read else no_turn
            started = time.perf_counter()
            while sessions := await queue.sessions_with_backlog():
                for session in sessions:
                    async for claim in queue.stream(session, linger=0):
                        await handler(claim)
            elapsed = time.perf_counter() - started
            kinds: Counter[str] = Counter()
            tool_calls = sum(1 for p in payloads if "tool_name" in p)
            for session in {f"claude-code:{p['session_id']}" for p in payloads}:
                page = await store.observations(session, limit=100_000)
                kinds.update(o.kind.value for o in page.items)
            kinds["(none)"] = tool_calls - sum(kinds.values())
            return elapsed, kinds
        finally:
            processing.processing_context = original
            await store.close()
            await queue.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    payloads = events(args.turns)
    best = {True: float("inf"), False: float("inf")}
    kinds: dict[bool, Counter[str]] = {}
    for _ in range(args.rounds):
        for turn_read in (False, True):
            elapsed, kinds[turn_read] = await run(payloads, turn_read=turn_read)
            best[turn_read] = min(best[turn_read], elapsed)
    messages = len(payloads)
    tool_calls = sum(1 for p in payloads if "tool_name" in p)
    with_turn, without = best[True] / messages * 1000, best[False] / messages * 1000
    kept = tool_calls - kinds[True]["(none)"]
    figures = {
        "messages": messages,
        "tool_calls": tool_calls,
        "ms_per_message_with_turn_read": round(with_turn, 3),
        "ms_per_message_baseline": round(without, 3),
        "turn_read_cost_ratio": round(with_turn / without, 3),
        "records_per_tool_call": round(kept / tool_calls, 3),
        "kinds_with_turn_read": dict(sorted(kinds[True].items())),
        "kinds_baseline": dict(sorted(kinds[False].items())),
    }
    print(f"{messages} messages ({tool_calls} tool calls), best of {args.rounds} rounds")
    print(f"  with the turn read: {with_turn:.3f} ms/message")
    print(f"  baseline (no turn): {without:.3f} ms/message  (ratio {with_turn / without:.2f})")
    print(f"  records per tool call: {kept}/{tool_calls} = {kept / tool_calls:.2f}")
    print(f"  kinds: {figures['kinds_with_turn_read']}")
    print(f"  kinds without the turn: {figures['kinds_baseline']}")
    print(json.dumps(figures))


if __name__ == "__main__":
    anyio.run(main)
