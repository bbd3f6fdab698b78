"""Kinds from evidence: what a tool call's turn (the observations since the last prompt)
shows about it. Each rule needs its evidence whole; without it the tool's kind stays."""

from __future__ import annotations

import dataclasses
import posixpath
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from memq.memory.records import ObservationKind, ObservationRecord, SessionContext
from memq.processors.extract._call import ToolCall
from memq.processors.extract._text import unique
from memq.processors.extract.described import target
from memq.processors.extract.observations import MAX_FACTS

_MAX_FILES_NAMED: Final = 5  # in a bugfix's fact

# Test runners, by their first word or first two words (after ``uv run``, ``python -m`` ...).
_RUNNERS: Final = frozenset(
    {"pytest", "py.test", "jest", "vitest", "mocha", "rspec", "tox", "nox", "phpunit", "ctest"}
)
_RUNNER_PAIRS: Final = frozenset(
    {
        *("go test", "cargo test", "npm test", "npm run", "yarn test", "pnpm test"),
        *("make test", "mvn test", "gradle test", "./gradlew test", "dotnet test"),
        *("mix test", "swift test", "deno test", "bun test"),
    }
)
_PREFIXES: Final = (("uv", "run"), ("poetry", "run"), ("pnpm", "exec"), ("bundle", "exec"))
_SHELL_MARKS: Final = ("&", ";", "|", "\n", "`", "$(", ">", "<")
_ENV_ASSIGNMENT: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")

_SOURCE_EXTENSIONS: Final = frozenset(
    {
        *(".py", ".ts", ".tsx", ".js", ".jsx", ".mjs", ".go", ".rs", ".java", ".kt", ".rb"),
        *(".c", ".cc", ".cpp", ".h", ".hpp", ".cs", ".swift", ".php", ".scala", ".ex"),
        *(".exs", ".vue", ".svelte", ".lua", ".dart", ".sql", ".sh"),
    }
)
_TEST_PATH: Final = re.compile(
    r"(^|/)(tests?|spec|__tests__|testdata|fixtures)/|(^|/)test_[^/]*$|_test\.\w+$|\.(test|spec)\.\w+$"
)
# A prompt that asks for something new: the user's words, not memq's guess.
_ASKS_FOR_NEW: Final = re.compile(
    r"\b(add|adding|implement\w*|introduc\w+|support|create|build|new (feature|command|"
    r"endpoint|option|module|tool|page|api))\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Turn:
    """A tool call's turn: the prompt that opened it and the observations since, before it."""

    prompt: str = ""
    observations: tuple[ObservationRecord, ...] = ()


def turn_of(context: SessionContext | None, message_id: int | None = None) -> Turn:
    """The turn of the message ``message_id`` in ``context``: its last prompt before the
    message, and the observations after that prompt and before the message, oldest first.
    Records without a message id count as earlier than the message."""

    def before(record_id: int | None) -> bool:
        return message_id is None or record_id is None or record_id < message_id

    if context is None:
        return Turn()
    prompts = sorted(
        (p for p in context.prompts if before(p.message_id)), key=lambda p: p.message_id
    )
    last = prompts[-1] if prompts else None
    after = last.message_id if last is not None else None
    observations = tuple(
        o
        for o in context.observations
        if before(o.message_id) and (after is None or (o.message_id or 0) > after)
    )
    return Turn(prompt=last.text if last is not None else "", observations=observations)


def refine(record: ObservationRecord, call: ToolCall, turn: Turn) -> ObservationRecord:
    """``record`` with the kind its turn gives evidence of (bugfix, feature), else as is."""
    if call.failed:
        return record
    fixed = _fix(record, turn.observations)
    if fixed is not None:
        code, files = fixed
        named = ", ".join(files[:_MAX_FILES_NAMED])
        if len(files) > _MAX_FILES_NAMED:
            named += f" and {len(files) - _MAX_FILES_NAMED} more"
        more = f" and {len(files) - 1} more" if len(files) > 1 else ""
        command = target(record.command or "")
        return dataclasses.replace(
            record,
            kind=ObservationKind.BUGFIX,
            title=f"Fixed `{command}`: passes after edits to {target(files[0])}{more}",
            facts=(
                f"failed earlier in the turn (exit {code})",
                f"fixed by edits to {named}",
                *record.facts,
            )[:MAX_FACTS],
        )
    if _new_feature_file(record, call, turn.prompt):
        return dataclasses.replace(record, kind=ObservationKind.FEATURE)
    return record


def _fix(
    record: ObservationRecord, earlier: Sequence[ObservationRecord]
) -> tuple[int, list[str]] | None:
    """(the failing exit code, the files edited since) when ``record`` is a command that
    passes, its latest earlier run in the turn failed, and files were edited in between."""
    if record.command is None or record.exit_code != 0:
        return None
    for index in range(len(earlier) - 1, -1, -1):
        run = earlier[index]
        if run.command is None or not same_check(run.command, record.command):
            continue
        if run.exit_code in (0, None):
            return None  # it passed already (or its outcome is unknown): nothing fixed now
        edited = unique(f for later in earlier[index + 1 :] for f in later.files_modified)
        return (run.exit_code, edited) if edited else None
    return None


def same_check(failed: str, passed: str) -> bool:
    """Whether the run ``passed`` checks what ``failed`` checked: the same command, or the
    same test runner over the same or a wider selection (``pytest tests/a.py::test_x`` is
    covered by ``pytest tests`` and by ``pytest -q``, not by ``pytest tests/b.py``)."""
    if " ".join(failed.split()) == " ".join(passed.split()):
        return True
    first, second = runner_of(failed), runner_of(passed)
    if first is None or second is None or first[0] != second[0]:
        return False
    wide = second[1]
    return not wide or all(any(_covers(w, narrow) for w in wide) for narrow in first[1])


def _covers(wide: str, narrow: str) -> bool:
    wide = wide.rstrip("/")
    return narrow == wide or narrow.startswith((wide + "/", wide + "::"))


def runner_of(command: str) -> tuple[str, tuple[str, ...]] | None:
    """(runner, operands) of a simple test command; None for anything else."""
    if any(mark in command for mark in _SHELL_MARKS):
        return None
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    while words and _ENV_ASSIGNMENT.match(words[0]):
        words = words[1:]
    for prefix in _PREFIXES:
        if tuple(words[:2]) == prefix:
            words = words[2:]
    if len(words) >= 2 and posixpath.basename(words[0]).startswith("python") and words[1] == "-m":
        words = words[2:]
    if words and words[0] == "npx":
        words = words[1:]
    if not words:
        return None
    runner = posixpath.basename(words[0])
    if runner in _RUNNERS:
        rest = words[1:]
    elif " ".join(words[:2]) in _RUNNER_PAIRS:
        runner, rest = " ".join(words[:2]), words[2:]
    else:
        return None
    return runner, tuple(word for word in rest if not word.startswith("-"))


def _new_feature_file(record: ObservationRecord, call: ToolCall, prompt: str) -> bool:
    """A new source file (not a test) written in a turn whose prompt asks for something
    new. Either alone stays a change: a new file can be a scratch script, a prompt's verb
    a figure of speech."""
    if call.tool != "Write" or call.response_field("type") != "create":
        return False
    if len(record.files_modified) != 1 or not _ASKS_FOR_NEW.search(prompt):
        return False
    path = record.files_modified[0]
    return posixpath.splitext(path)[1] in _SOURCE_EXTENSIONS and not _TEST_PATH.search(path)
