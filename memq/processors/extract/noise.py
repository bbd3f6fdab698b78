"""Tool calls not worth an observation: a read repeated with nothing changed in between,
a command that does nothing, and memq's own tools. The rules are narrow on purpose: a call
that might have told the assistant something new is kept."""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from enum import StrEnum
from typing import Final

from memq.env import MEMQ_MCP_TOOLS
from memq.memory.records import ObservationRecord
from memq.processors.extract.evidence import runner_of

# Tools that only read: a second identical call with nothing edited in between tells nothing.
_READ_TOOLS: Final = frozenset({"Read", "Grep", "Glob", "LS"})
_NO_OP_WORDS: Final = frozenset({"pwd", "true", ":", "clear"})
_SHELL_MARKS: Final = ("|", ">", "<", "`", "$(", "\n", "*")
_SEPARATORS: Final = re.compile(r"\s*(?:&&|;)\s*")
# Commands that leave the working tree as it was: they do not make a later read new.
_READ_ONLY: Final = frozenset({"ls", "cat", "head", "tail", "wc", "grep", "rg", "pwd", "echo"})
_GIT_READ_ONLY: Final = frozenset({"status", "diff", "log", "show", "blame"})
# Flags with which a test run rewrites files (snapshots, fixes): it is not read-only then.
_WRITING_FLAGS: Final = frozenset(
    {"-u", "--update", "--updateSnapshot", "--update-snapshots", "--snapshot-update", "--fix"}
)
_CLEAN_STATUS: Final = "nothing to commit, working tree clean"
_SHORT_STATUS_FLAGS: Final = frozenset({"-s", "--short", "--porcelain", "-sb", "-bs"})


class Noise(StrEnum):
    """Why a tool call makes no observation; a summary counts them by these names."""

    REPEATED_READ = "repeated read"
    NO_OP_COMMAND = "no-op command"
    OWN_TOOL = "memq tool call"


def noise(record: ObservationRecord, turn: Sequence[ObservationRecord]) -> Noise | None:
    """Why the call ``record`` describes is not worth storing, given the observations of its
    turn before it (oldest first); None when it is worth storing."""
    if record.tool_name in MEMQ_MCP_TOOLS or (record.tool_name or "").startswith("mcp__memq__"):
        return Noise.OWN_TOOL
    if _failed(record):
        return None
    # A no-op whose exit code is unknown (an adapter that could not learn it) is no
    # different: only a failure says something.
    if record.command is not None and record.exit_code in (0, None) and is_no_op(record):
        return Noise.NO_OP_COMMAND
    if record.tool_name in _READ_TOOLS and _repeats(record, turn):
        return Noise.REPEATED_READ
    return None


def is_no_op(record: ObservationRecord) -> bool:
    """A command that changes nothing and shows nothing worth keeping: ``pwd``, ``true``,
    ``clear``, ``cd DIR``, ``ls`` of the working directory (flags only), ``echo`` of nothing,
    or several of them joined by ``&&`` or ``;``; and ``git status`` that reports a clean
    tree (its long form says so; a short form prints nothing). No redirection, pipe or
    substitution: those can do anything."""
    command = (record.command or "").strip()
    if not command or any(mark in command for mark in _SHELL_MARKS):
        return False
    words = _words(command)
    if words is not None and words[:2] == ["git", "status"]:
        flags = words[2:]
        if not flags:
            return _CLEAN_STATUS in record.excerpt
        return set(flags) <= _SHORT_STATUS_FLAGS and not record.excerpt.strip()
    parts = [part for part in _SEPARATORS.split(command) if part]
    return bool(parts) and all(_no_op_part(part) for part in parts)


def _no_op_part(part: str) -> bool:
    words = _words(part)
    if not words:
        return False
    name, args = words[0], words[1:]
    if name in _NO_OP_WORDS:
        return not args
    if name == "cd":
        return len(args) <= 1
    if name == "ls":
        return all(arg.startswith("-") for arg in args)
    if name == "echo":
        return all(arg in {"", "-n"} for arg in args)
    return False


def _repeats(record: ObservationRecord, turn: Sequence[ObservationRecord]) -> bool:
    """An earlier call of the same tool in the turn with the same target, range and output,
    and nothing in between that could have changed it: no edit of the file read (of any file,
    for a search), no command that may write."""
    for earlier in reversed(turn):
        if (
            earlier.tool_name == record.tool_name
            and earlier.title == record.title
            and earlier.subtitle == record.subtitle
            and earlier.excerpt == record.excerpt
            and earlier.facts == record.facts
        ):
            return True
        if earlier.files_modified and (
            record.tool_name != "Read" or set(earlier.files_modified) & set(record.files_read)
        ):
            return False
        if earlier.command is not None and not _read_only(earlier.command):
            return False
    return False


def _read_only(command: str) -> bool:
    """Whether ``command`` leaves the files as they were: a read (``cat``, ``grep``, ``git
    diff`` ...) or a test run (its caches aside) without a flag that rewrites snapshots."""
    run = runner_of(command)
    if run is not None:
        return not (set(command.split()) & _WRITING_FLAGS)
    if any(mark in command for mark in (">", "`", "$(", "&", ";", "\n")):
        return False
    for part in command.split("|"):
        words = _words(part.strip())
        if not words:
            return False
        if words[0] == "git":
            if len(words) < 2 or words[1] not in _GIT_READ_ONLY:
                return False
        elif words[0] not in _READ_ONLY:
            return False
    return True


def _failed(record: ObservationRecord) -> bool:
    return any(fact == "failed" or fact.startswith("failed: ") for fact in record.facts)


def _words(command: str) -> list[str] | None:
    try:
        return shlex.split(command)
    except ValueError:
        return None
