"""Recall of memory search: do the questions a user asks find the records that answer them?

The corpus is a set of sessions written for this benchmark (``tests/fixtures/recall/
sessions.json``): prompts, Write / Edit / MultiEdit / Bash / Read / Grep tool calls with code
names in several spellings, failures and Stops, in two projects. They are spread among 60
sessions of everyday work in the same projects, made from ``background.json`` (seeded: the
same every run), so that common words are everywhere, as in a real memory. Each event is made
into a full Claude Code hook payload in the shape of the recorded samples
(``tests/fixtures/claude-code``), routed like the daemon routes it (``route_event``), queued,
and processed the way the worker does: the ``extract`` processor as it is in this tree, shown
the store's context, acked with ``MemoryStore.effect`` on a temporary SQLite file. So the
records are whatever ``extract`` makes today, and follow its changes.

Then each question of ``tests/fixtures/recall/questions.json`` (written in a user's words,
each naming the records that answer it) is searched with ``MemorySearch.search`` (words
syntax, across all projects), and the benchmark prints:

* recall@1 and recall@5: the share of questions with an answering record in the top 1 / 5;
* MRR: the mean of 1 / rank of the first answering record (0 when none is in the top 20).

Target: recall@5 >= 0.9 with ``extract`` records. ``--misses`` lists the questions whose
answer is not in the top 5, with what came instead; ``--ranks`` every question's rank. The
last line of stdout is one JSON object.

``--migration N`` times instead migration 0011 (the code-aware index) on a database made at
schema 0010 with N observations (plus prompts and summaries: ``scripts/bench_memory.py``'s
generated memory, half of whose observation excerpts are given a line of camelCase code, as
the diffs of Edit records have), and prints the seconds it took, the database's size before
and after, and what writing one such observation costs at schema 0010 and at 0011.

    .venv/bin/python scripts/bench_recall.py [--misses] [--ranks] [--json-only] [--keep DIR]
    .venv/bin/python scripts/bench_recall.py --migration 100000
"""

from __future__ import annotations

import argparse
import difflib
import json
import random
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import anyio
from benchkit import silence_logs

ROOT: Final = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from memq.events import route_event  # noqa: E402
from memq.memory.projects import project_for  # noqa: E402
from memq.memory.search import MemorySearch, SearchHit  # noqa: E402
from memq.memory.store import MemoryStore  # noqa: E402
from memq.processors import get_processor  # noqa: E402
from memq.queue import Queue  # noqa: E402

FIXTURES: Final = ROOT / "tests" / "fixtures"
RECALL: Final = FIXTURES / "recall"
SAMPLES: Final = FIXTURES / "claude-code"
TOP: Final = 20  # hits read per question (MRR counts ranks up to this)
BACKGROUND_SESSIONS: Final = 60  # sessions of everyday work around the ones asked about
SEED: Final = 13
TARGET_RECALL_AT_5: Final = 0.9
# A fixed namespace: the same corpus gets the same session and tool-use ids every run.
_IDS: Final = uuid.UUID("5b0f6a52-3c1e-4d8a-9a6e-1f2b3c4d5e6f")


@dataclass(frozen=True)
class Result:
    question: str
    answers: tuple[str, ...]
    ranked: tuple[str, ...]  # the labels (or titles) of the hits, best first
    rank: int | None  # 1-based rank of the first answering record


def sample(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((SAMPLES / f"{name}.json").read_text("utf-8"))
    return payload


def _id(*parts: object) -> str:
    return str(uuid.uuid5(_IDS, "/".join(str(p) for p in parts)))


def _tool_response(tool: str, event: Mapping[str, Any], cwd: str) -> Any:
    """The tool_response Claude Code sends for ``tool``, from the event's compact fields."""
    tool_input = event["input"]
    if "response" in event:
        return event["response"]
    if tool == "Bash":
        return {
            "stdout": event.get("output", ""),
            "stderr": "",
            "interrupted": False,
            "isImage": False,
            "noOutputExpected": False,
        }
    if tool == "Read":
        content = event["content"]
        return {
            "type": "text",
            "file": {
                "filePath": tool_input["file_path"],
                "content": content,
                "numLines": content.count("\n"),
                "startLine": tool_input.get("offset", 1),
                "totalLines": content.count("\n"),
            },
        }
    if tool in ("Grep", "Glob"):
        files = event.get("files", [])
        return {"mode": "files_with_matches", "filenames": files, "numFiles": len(files)}
    if tool == "Write":
        return {
            "type": "create",
            "filePath": tool_input["file_path"],
            "content": tool_input["content"],
            "structuredPatch": [],
            "originalFile": None,
            "userModified": False,
        }
    if tool in ("Edit", "MultiEdit"):
        edits = tool_input.get("edits") or [tool_input]
        old = "".join(edit["old_string"] + "\n" for edit in edits)
        new = "".join(edit["new_string"] + "\n" for edit in edits)
        lines = [
            line.rstrip("\n")
            for line in difflib.unified_diff(old.splitlines(True), new.splitlines(True), n=3)
        ][2:]  # without the ---/+++ header
        response: dict[str, Any] = {
            "filePath": tool_input["file_path"],
            "originalFile": old,
            "structuredPatch": [
                {
                    "oldStart": 1,
                    "oldLines": old.count("\n"),
                    "newStart": 1,
                    "newLines": new.count("\n"),
                    "lines": [line for line in lines if not line.startswith("@@")],
                }
            ],
            "userModified": False,
            "replaceAll": bool(tool_input.get("replace_all", False)),
        }
        if tool == "Edit":
            response |= {
                "oldString": tool_input["old_string"],
                "newString": tool_input["new_string"],
            }
        else:
            response["edits"] = edits
        return response
    raise ValueError(f"no response shape for tool {tool!r} in {cwd}")


def hook_payloads(session: Mapping[str, Any]) -> list[tuple[str | None, dict[str, Any]]]:
    """(label, hook payload) for each event of a corpus session, in order."""
    session_id = _id("session", session["name"])
    cwd = session["cwd"]
    common = {
        "session_id": session_id,
        "transcript_path": f"/home/dev/.claude/projects/{cwd.replace('/', '-')}/{session_id}.jsonl",
        "cwd": cwd,
    }
    made: list[tuple[str | None, dict[str, Any]]] = []
    prompt_id = _id(session_id, "prompt", 0)
    for number, event in enumerate(session["events"]):
        label = event.get("label")
        if "prompt" in event:
            prompt_id = _id(session_id, "prompt", number)
            payload = sample("UserPromptSubmit") | common | {"prompt": event["prompt"]}
        elif "stop" in event:
            payload = sample("Stop") | common | {"last_assistant_message": event["stop"]}
        else:
            tool = event["tool"]
            fields = {
                "tool_name": tool,
                "tool_input": event["input"],
                "tool_use_id": "toolu_" + _id(session_id, number).replace("-", "")[:24],
            }
            if "error" in event:
                payload = sample("PostToolUseFailure") | common | fields
                payload["error"] = event["error"]
            else:
                payload = sample("PostToolUse") | common | fields
                payload["tool_response"] = _tool_response(tool, event, cwd)
        payload["prompt_id"] = prompt_id
        made.append((label, payload))
    return made


# Lines of everyday code that put common words (session, request, error, config, test)
# in many records, as in a real project.
_COMMON_PY: Final = (
    "    if not config.enabled:\n        return None\n",
    '    log.debug("request done", status=response.status)\n',
    '    raise ValueError(f"bad input: {value!r}")\n',
    "    session = self.open_session()\n",
    "    assert result.errors == []\n",
)
_COMMON_TS: Final = (
    "  const session = await getSession(req);\n",
    '  if (!req.body) return res.status(400).json({ error: "invalid request" });\n',
    "  const config = loadConfig();\n",
    "  expect(response.status).toBe(200);\n",
    '  logger.info({ userId: req.user?.id }, "request handled");\n',
)


def background_sessions(topics: Sequence[Mapping[str, Any]], count: int) -> list[dict[str, Any]]:
    """``count`` sessions of everyday work on ``topics``, the same every run (seeded)."""
    rng = random.Random(SEED)
    sessions: list[dict[str, Any]] = []
    for number in range(count):
        topic = topics[number % len(topics)]
        cwd, names, files = topic["cwd"], topic["names"], topic["files"]
        python = cwd.endswith("harbor")
        common = _COMMON_PY if python else _COMMON_TS

        def code(name: str, python: bool = python, common: Sequence[str] = common) -> str:
            head = f"def {name}(value):\n" if python else f"export function {name}(value) {{\n"
            return head + "".join(rng.sample(common, 2))

        events: list[dict[str, Any]] = [{"prompt": rng.choice(topic["prompts"])}]
        for step in range(rng.randint(8, 16)):
            path = f"{cwd}/{rng.choice(files)}"
            name = rng.choice(names)
            choice = rng.random()
            if choice < 0.25:
                events.append({"tool": "Read", "input": {"file_path": path}, "content": code(name)})
            elif choice < 0.35:
                found = rng.sample(files, min(2, len(files)))
                events.append(
                    {"tool": "Grep", "input": {"pattern": name, "path": cwd}, "files": found}
                )
            elif choice < 0.7:
                old, new = code(name), code(rng.choice(names))
                edit = {"file_path": path, "old_string": old, "new_string": new}
                events.append({"tool": "Edit", "input": edit})
            elif choice < 0.8:
                command = rng.choice(["git status --short", "git diff --stat", "ls"])
                events.append({"tool": "Bash", "input": {"command": command}, "output": path})
            elif choice < 0.9 and step > 2:
                failure = (
                    f"Exit code 1\nFAILED {files[-1]}::test_{name} - "
                    f"AssertionError: expected {name} to return a value\n1 failed, 9 passed"
                )
                events.append(
                    {"tool": "Bash", "input": {"command": topic["test"]}, "error": failure}
                )
            else:
                output = f"{rng.randint(4, 40)} passed in 0.{rng.randint(10, 99)}s"
                events.append(
                    {"tool": "Bash", "input": {"command": topic["test"]}, "output": output}
                )
        done = f"Done: {events[0]['prompt']}. Changed {', '.join(files[:2])}; the tests pass."
        events.append({"stop": done})
        sessions.append({"name": f"background-{number}", "cwd": cwd, "events": events})
    return sessions


def corpus() -> list[dict[str, Any]]:
    """The sessions asked about, spread among the background ones (seeded)."""
    asked = json.loads((RECALL / "sessions.json").read_text("utf-8"))["sessions"]
    topics = json.loads((RECALL / "background.json").read_text("utf-8"))["topics"]
    sessions = background_sessions(topics, BACKGROUND_SESSIONS)
    rng = random.Random(SEED)
    for session in asked:
        sessions.insert(rng.randint(0, len(sessions)), session)
    return sessions


async def build(db_path: Path, sessions: Sequence[Mapping[str, Any]]) -> dict[int, str]:
    """Write the corpus through queue, ``extract`` and store; {message id: label}."""
    labels: dict[int, str] = {}
    processor = get_processor("extract")
    async with await Queue.open(db_path) as queue, await MemoryStore.open(db_path) as store:
        for session in sessions:
            for label, payload in hook_payloads(session):
                route = route_event(payload)
                enqueued = await queue.enqueue(
                    route.session_key, route.kind, payload, route.dedupe_key
                )
                if label is not None:
                    labels[enqueued.message_id] = label
            key = route.session_key
            project = project_for(session["cwd"])
            while key in await queue.sessions_with_backlog():
                async for claim in queue.stream(key, linger=0):
                    context = await store.context_for(key)
                    result = await processor.process(claim.message, context)
                    await claim.ack(store.effect(claim.message, result, project=project))
    return labels


async def ask(
    db_path: Path, questions: Sequence[Mapping[str, Any]], labels: Mapping[int, str]
) -> list[Result]:
    results: list[Result] = []
    async with await MemorySearch.open(db_path) as memory:
        for question in questions:
            hits: list[SearchHit] = await memory.search(question["q"], limit=TOP)
            ranked = tuple(labels.get(hit.message_id, f"({hit.title[:50]})") for hit in hits)
            answers = tuple(question["answers"])
            rank = next((i for i, name in enumerate(ranked, 1) if name in answers), None)
            results.append(Result(question["q"], answers, ranked, rank))
    return results


def figures(results: Sequence[Result]) -> dict[str, Any]:
    count = len(results)
    return {
        "questions": count,
        "recall_at_1": round(sum(r.rank == 1 for r in results) / count, 3),
        "recall_at_5": round(sum(r.rank is not None and r.rank <= 5 for r in results) / count, 3),
        "mrr": round(sum(1 / r.rank for r in results if r.rank) / count, 3),
    }


def check_corpus(questions: Sequence[Mapping[str, Any]], labels: Mapping[int, str]) -> None:
    """Every answer a question names must be an event of the corpus."""
    known = set(labels.values())
    for question in questions:
        unknown = [name for name in question["answers"] if name not in known]
        if unknown:
            raise SystemExit(f"question {question['q']!r} names unknown events {unknown}")


def unrecorded(db_path: Path, labels: Mapping[int, str]) -> list[str]:
    """The labelled events that ``extract`` made no record of (noise it leaves out): the
    questions they answer can only be answered by their other records."""
    conn = sqlite3.connect(db_path)
    try:
        recorded = {
            row[0]
            for table in ("prompts", "observations", "summaries")
            for row in conn.execute(f"SELECT message_id FROM {table}")
        }
    finally:
        conn.close()
    return sorted(label for message_id, label in labels.items() if message_id not in recorded)


async def run(db_path: Path) -> tuple[dict[str, Any], list[Result], float]:
    sessions = corpus()
    questions = json.loads((RECALL / "questions.json").read_text("utf-8"))["questions"]
    started = time.perf_counter()
    labels = await build(db_path, sessions)
    build_seconds = time.perf_counter() - started
    check_corpus(questions, labels)
    results = await ask(db_path, questions, labels)
    return figures(results) | {"unrecorded": unrecorded(db_path, labels)}, results, build_seconds


def _camel_code(rng: random.Random, words: Sequence[str]) -> str:
    """A changed line of code with camelCase names, as an Edit's diff shows one."""
    a, b, c = (rng.choice(words) for _ in range(3))
    return f"+    const {a}{b.capitalize()} = build{c.capitalize()}{a.capitalize()}(options);"


def _coded_memory(observations: int) -> tuple[Any, list[tuple[Any, ...]]]:
    """``bench_memory``'s generated memory, and its observation rows with half of the
    excerpts given a line of camelCase code."""
    import bench_memory  # noqa: PLC0415 (scripts/, beside this file: its generated memory)

    rng = random.Random(SEED)
    data = bench_memory.generate(observations, rng)
    coded = [
        (*row[:-2], row[-2] + "\n" + _camel_code(rng, bench_memory.WORDS), row[-1])
        if rng.random() < 0.5
        else row
        for row in data.observations
    ]
    return data, coded


def time_writes(root: Path, observations: int = 20_000) -> dict[str, float]:
    """Microseconds per observation written (one transaction, the index's triggers firing)
    at schema 0010 and 0011, best of two rounds each, interleaved."""
    import bench_memory  # noqa: PLC0415

    from memq.storage import schema  # noqa: PLC0415

    data, coded = _coded_memory(observations)
    migrations = schema.available_migrations()
    best: dict[str, float] = {}
    for _ in range(2):
        for version in (10, 11):
            path = root / f"writes{version}.db"
            path.unlink(missing_ok=True)
            conn = sqlite3.connect(path, isolation_level=None)
            try:
                schema.migrate(conn, [m for m in migrations if m.version <= version])
                conn.execute("BEGIN")
                conn.executemany(bench_memory.INSERT_SESSION, data.sessions)
                started = time.perf_counter()
                conn.executemany(bench_memory.INSERT_OBSERVATION, coded)
                micros = (time.perf_counter() - started) / len(coded) * 1e6
                conn.execute("COMMIT")
            finally:
                conn.close()
            key = f"write_us_{version:04d}"
            best[key] = round(min(best.get(key, micros), micros), 1)
    return best


def time_migration(root: Path, observations: int) -> dict[str, Any]:
    """Seconds to apply migration 0011 to a schema-0010 database of ``observations``."""
    import bench_memory  # noqa: PLC0415

    from memq.storage import schema  # noqa: PLC0415

    path = root / "migration.db"
    path.unlink(missing_ok=True)
    data, coded = _coded_memory(observations)
    migrations = schema.available_migrations()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        schema.migrate(conn, [m for m in migrations if m.version <= 10])
        conn.execute("BEGIN")
        conn.executemany(bench_memory.INSERT_SESSION, data.sessions)
        conn.executemany(bench_memory.INSERT_PROMPT, data.prompts)
        conn.executemany(bench_memory.INSERT_OBSERVATION, coded)
        conn.executemany(bench_memory.INSERT_SUMMARY, data.summaries)
        conn.execute("COMMIT")
        conn.execute("VACUUM")
        before = path.stat().st_size
        started = time.perf_counter()  # for comparison: rebuilding the index of 0003 alone
        conn.execute("INSERT INTO memory_fts (memory_fts) VALUES ('rebuild')")
        rebuild_0003 = time.perf_counter() - started
        started = time.perf_counter()
        schema.migrate(conn, [m for m in migrations if m.version <= 11])
        seconds = time.perf_counter() - started
        conn.execute("VACUUM")
        (records,) = conn.execute("SELECT count(*) FROM memory_fts_docsize").fetchone()
    finally:
        conn.close()
    return {
        "benchmark": "migration_0011",
        "observations": observations,
        "records": records,
        "seconds": round(seconds, 2),
        "rebuild_0003_seconds": round(rebuild_0003, 2),
        "size_before_mb": round(before / 2**20, 1),
        "size_after_mb": round(path.stat().st_size / 2**20, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--misses", action="store_true", help="list questions missed at 5")
    parser.add_argument("--ranks", action="store_true", help="list every question's rank")
    parser.add_argument("--json-only", action="store_true", help="print only the JSON object")
    parser.add_argument("--keep", metavar="DIR", help="build the database in DIR and keep it")
    parser.add_argument("--migration", metavar="N", type=int, help="time migration 0011 instead")
    args = parser.parse_args(argv)
    silence_logs()
    if args.migration:
        with tempfile.TemporaryDirectory(prefix="memq-bench-recall-") as tmp:
            where = Path(args.keep) if args.keep else Path(tmp)
            where.mkdir(parents=True, exist_ok=True)
            timed = time_migration(where, args.migration) | time_writes(where)
        if not args.json_only:
            print(
                f"migration 0011 on {timed['records']:,} records "
                f"({timed['observations']:,} observations): {timed['seconds']} s "
                f"(rebuilding the index of 0003 alone: {timed['rebuild_0003_seconds']} s); "
                f"database {timed['size_before_mb']} MB -> {timed['size_after_mb']} MB\n"
                f"writing an observation: {timed['write_us_0010']} us at schema 0010, "
                f"{timed['write_us_0011']} us at 0011",
                file=sys.stderr,
            )
        print(json.dumps(timed))
        return 0
    with tempfile.TemporaryDirectory(prefix="memq-bench-recall-") as tmp:
        where = Path(args.keep) if args.keep else Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        db_path = where / "recall.db"
        db_path.unlink(missing_ok=True)
        found, results, build_seconds = anyio.run(run, db_path)
    report = {"benchmark": "recall", **found, "target_recall_at_5": TARGET_RECALL_AT_5}
    report["met"] = found["recall_at_5"] >= TARGET_RECALL_AT_5
    report["build_seconds"] = round(build_seconds, 2)
    if not args.json_only:
        out = sys.stderr
        print(f"questions  {found['questions']}", file=out)
        print(f"recall@1   {found['recall_at_1']:.3f}", file=out)
        print(f"recall@5   {found['recall_at_5']:.3f}  (target >= {TARGET_RECALL_AT_5})", file=out)
        print(f"MRR        {found['mrr']:.3f}", file=out)
        if found["unrecorded"]:
            print(f"events extract kept no record of: {', '.join(found['unrecorded'])}", file=out)
        if args.ranks:
            for result in results:
                print(f"{result.rank or '-':>3}  {result.question}", file=out)
        if args.misses:
            for result in results:
                if result.rank is None or result.rank > 5:
                    rank = result.rank or f">{TOP}"
                    print(f"\nmiss (rank {rank}): {result.question!r}", file=out)
                    print(f"  answers: {', '.join(result.answers)}", file=out)
                    print(f"  top 5:   {', '.join(result.ranked[:5]) or '-'}", file=out)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
