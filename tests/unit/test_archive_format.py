"""Reading an export file: what parse_export accepts, and the error for each problem."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from memq.exceptions import InvalidArchiveError
from memq.memory.archive import (
    ExportDocument,
    ImportResult,
    import_effect,
    number_prompts,
    parse_export,
)
from memq.memory.records import RecordType, to_epoch_ms

KEY = "claude-code:0c5a2f4e-1b7d-4e93-a6c8-9f2d3b1e7a40"
T0 = "2025-01-31T12:00:00.250Z"
T0_MS = to_epoch_ms(datetime(2025, 1, 31, 12, 0, 0, 250_000, tzinfo=UTC))


def head(**changes: Any) -> dict[str, Any]:
    session = {
        "key": KEY,
        "assistant": "claude-code",
        "external_id": KEY.removeprefix("claude-code:"),
        "project": "/home/dev/project",
        "cwd": None,
        "title": "Fix it",
        "prompt_count": 1,
        "started_at": T0,
        "ended_at": None,
        "updated_at": "2025-01-31T13:00:00.000Z",
    }
    line = {
        "type": "memq-export",
        "format": 1,
        "memq_version": "0.1.0",
        "exported_at": "2025-02-01T00:00:00.000Z",
        "session": session,
    }
    return line | changes


def prompt(**changes: Any) -> dict[str, Any]:
    line = {"type": "prompt", "message_id": 1, "created_at": T0, "number": 1, "text": "Fix it"}
    return line | changes


def observation(**changes: Any) -> dict[str, Any]:
    line = {
        "type": "observation",
        "message_id": 2,
        "created_at": T0,
        "kind": "command",
        "title": "Ran `pytest`",
        "subtitle": "",
        "narrative": "",
        "facts": ["a fact"],
        "concepts": [],
        "files_read": [],
        "files_modified": ["src/a.py"],
        "tool_name": "Bash",
        "command": "pytest",
        "exit_code": 0,
        "excerpt": "ok",
    }
    return line | changes


def summary(**changes: Any) -> dict[str, Any]:
    line = {
        "type": "summary",
        "message_id": 2,
        "created_at": T0,
        "request": "Fix it",
        "investigated": "",
        "learned": "",
        "completed": "Fixed",
        "next_steps": "",
        "files_read": [],
        "files_edited": ["src/a.py"],
        "notes": "",
    }
    return line | changes


def text(*lines: dict[str, Any] | str) -> str:
    return "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)


def without(line: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in line.items() if k != name}


def session_without(name: str) -> dict[str, Any]:
    line = head()
    return line | {"session": without(line["session"], name)}


def session_with(**changes: Any) -> dict[str, Any]:
    line = head()
    return line | {"session": line["session"] | changes}


class TestAccepted:
    def test_a_whole_file_reads_into_its_session_and_records(self) -> None:
        """Times become stored milliseconds, lists the JSON text the store writes."""
        document = parse_export(text(head(), prompt(), observation(), summary()))
        assert isinstance(document, ExportDocument)
        assert document.memq_version == "0.1.0"
        assert document.exported_at == datetime(2025, 2, 1, tzinfo=UTC)
        assert document.session.key == KEY
        assert document.session.started_at == T0_MS
        assert document.session.ended_at is None
        assert document.session.cwd is None
        first, second, third = document.records
        assert (first.line, first.type, first.message_id) == (2, RecordType.PROMPT, 1)
        assert first.created_at == T0_MS
        assert first.fields == {"number": 1, "text": "Fix it"}
        assert second.type is RecordType.OBSERVATION
        assert second.fields["facts"] == '["a fact"]'
        assert second.fields["files_modified"] == '["src/a.py"]'
        assert second.fields["exit_code"] == 0
        assert third.type is RecordType.SUMMARY
        assert third.fields["files_edited"] == '["src/a.py"]'

    def test_bytes_str_and_lines_read_alike(self) -> None:
        """The file as text, as UTF-8 bytes, or as the lines of an open file."""
        whole = text(head(), prompt(text="日本語 🚀"), observation())
        as_text = parse_export(whole)
        assert parse_export(whole.encode("utf-8")) == as_text
        assert parse_export(whole.splitlines(keepends=True)) == as_text
        assert parse_export([line.encode() for line in whole.splitlines()]) == as_text

    def test_only_newline_ends_a_line(self) -> None:
        """Characters str.splitlines splits on (U+2028, U+0085, form feed) stay in the text
        when written raw, as json.dumps(ensure_ascii=False) writes them."""
        tricky = "a\u2028b\u2029c\x85d\x0ce\x1cf"
        raw = json.dumps(prompt(text=tricky), ensure_ascii=False)
        assert "\u2028" in raw
        document = parse_export(text(head()) + raw + "\n")
        assert document.records[0].fields["text"] == tricky

    def test_blank_lines_crlf_and_a_byte_order_mark_are_tolerated(self) -> None:
        """Editors on other systems add these; line numbers still count every line."""
        whole = "\ufeff" + text(head(), "", prompt()).replace("\n", "\r\n") + "\r\n  \n"
        document = parse_export(whole)
        assert [record.line for record in document.records] == [3]

    def test_unknown_fields_are_ignored(self) -> None:
        """A record's id and session key (or anything else) are not read; a matching
        session_key is fine."""
        document = parse_export(text(head(extra=1), prompt(id=99, session_key=KEY, note="x")))
        assert document.records[0].fields == {"number": 1, "text": "Fix it"}

    def test_a_file_of_the_metadata_alone_has_no_records(self) -> None:
        """A session without records is a valid export."""
        assert parse_export(text(head())).records == ()

    def test_times_in_other_zones_are_converted(self) -> None:
        """Any ISO-8601 time with a zone; stored as UTC milliseconds."""
        document = parse_export(text(head(), prompt(created_at="2025-01-31T13:00:00.250+01:00")))
        assert document.records[0].created_at == T0_MS

    def test_import_effect_checks_the_file_at_once(self) -> None:
        """The check runs when the effect is made, before the writer is involved."""
        with pytest.raises(InvalidArchiveError, match="line 2: unknown type"):
            import_effect(text(head(), prompt(type="note")))
        assert callable(import_effect(text(head(), prompt())))


# (lines, the error's message as a regular expression)
INVALID: list[tuple[str, str | bytes, str]] = [
    ("empty", "", r"^line 1: the file is empty; a memq export starts with the metadata line"),
    ("blank", "\n \n", r"^line 1: the file is empty"),
    (
        "not json",
        text(head(), prompt(), "{not json"),
        r"^line 3: not JSON: Expecting property name enclosed in double quotes: column 2$",
    ),
    (
        "truncated",
        text(head()) + json.dumps(prompt())[:20],
        r"^line 2: not JSON: Unterminated string starting at: column 20$",
    ),
    (
        "nan",
        text(head(), '{"type": "prompt", "x": NaN}'),
        r"^line 2: not JSON: NaN is not a JSON value$",
    ),
    ("deep", text(head(), "[" * 100_000 + "]" * 100_000), r"^line 2: not JSON: nested too deeply$"),
    ("not utf-8", text(head()).encode() + b'{"text": "\xff"}\n', r"^line 2: not UTF-8 \(byte"),
    ("array", text(head(), "[1, 2]"), r"^line 2: not a JSON object but an array$"),
    ("first not metadata", text(prompt(), head()), r"^line 1: not a memq export: the first"),
    ("first untyped", text({"format": 1}), r"^line 1: not a memq export"),
    ("no format", text(without(head(), "format")), r"^line 1: missing field 'format'$"),
    (
        "format 2",
        text(head(format=2)),
        r"^line 1: unknown format version 2 \(this memq reads format 1\)$",
    ),
    ("format as text", text(head(format="1")), r'^line 1: unknown format version "1"'),
    ("format true", text(head(format=True)), r"^line 1: unknown format version true"),
    ("no session", text(without(head(), "session")), r"^line 1: missing field 'session'$"),
    (
        "session not object",
        text(head(session=[])),
        r"^line 1: field 'session' must be an object, not an array$",
    ),
    (
        "session key missing",
        text(session_without("key")),
        r"^line 1: missing field 'session.key'$",
    ),
    (
        "session key empty",
        text(session_with(key="")),
        r"^line 1: field 'session.key' must be 1 to 512 characters, not 0$",
    ),
    (
        "session key with NUL",
        text(session_with(key="claude-code:a\x00b")),
        r"^line 1: field 'session.key' must be text without NUL, not a string with NUL$",
    ),
    (
        "session key long",
        text(session_with(key="k" * 513)),
        r"^line 1: field 'session.key' must be 1 to 512 characters, not 513$",
    ),
    (
        "negative prompt count",
        text(session_with(prompt_count=-1)),
        r"^line 1: field 'session.prompt_count' must be from 0 to \d+, not -1$",
    ),
    (
        "project a number",
        text(session_with(project=3)),
        r"^line 1: field 'session.project' must be a string or null, not a number$",
    ),
    (
        "exported_at naive",
        text(head(exported_at="2025-02-01T00:00:00")),
        r"^line 1: field 'exported_at' must be an ISO-8601 time with a time zone",
    ),
    ("unknown type", text(head(), prompt(type="note")), r"^line 2: unknown type 'note' \(a "),
    (
        "second metadata line",
        text(head(), head()),
        r"^line 2: unknown type 'memq-export'",
    ),
    ("no type", text(head(), without(prompt(), "type")), r"^line 2: missing field 'type'$"),
    (
        "type a number",
        text(head(), prompt(type=1)),
        r"^line 2: field 'type' must be a string, not a number$",
    ),
    (
        "no message id",
        text(head(), without(prompt(), "message_id")),
        r"^line 2: missing field 'message_id'$",
    ),
    (
        "message id zero",
        text(head(), prompt(message_id=0)),
        r"^line 2: field 'message_id' must be from 1 to 9007199254740991, not 0$",
    ),
    (
        "message id huge",
        text(head(), prompt(message_id=2**53)),
        r"^line 2: field 'message_id' must be from 1 to",
    ),
    (
        "message id text",
        text(head(), prompt(message_id="1")),
        r"^line 2: field 'message_id' must be a whole number, not a string$",
    ),
    (
        "message id float",
        text(head(), prompt(message_id=1.0)),
        r"^line 2: field 'message_id' must be a whole number, not a number$",
    ),
    (
        "created_at garbage",
        text(head(), prompt(created_at="yesterday")),
        r"^line 2: field 'created_at' must be an ISO-8601 time with a time zone "
        r"\(e\.g\. 2025-01-31T12:00:00\.250Z\), not 'yesterday'$",
    ),
    (
        "created_at a number",
        text(head(), prompt(created_at=1738324800000)),
        r"^line 2: field 'created_at' must be a string, not a number$",
    ),
    (
        "prompt number zero",
        text(head(), prompt(number=0)),
        r"^line 2: field 'number' must be from 1 to",
    ),
    ("prompt without text", text(head(), without(prompt(), "text")), r"^line 2: missing field"),
    (
        "observation without title",
        text(head(), prompt(), without(observation(), "title")),
        r"^line 3: missing field 'title'$",
    ),
    (
        "title a number",
        text(head(), observation(title=5)),
        r"^line 2: field 'title' must be a string, not a number$",
    ),
    (
        "unknown kind",
        text(head(), observation(kind="musing")),
        r"^line 2: field 'kind' must be one of change, discovery, .*, not 'musing'$",
    ),
    (
        "facts a string",
        text(head(), observation(facts="a fact")),
        r"^line 2: field 'facts' must be an array of strings, not a string$",
    ),
    (
        "facts of numbers",
        text(head(), observation(facts=["a", 2])),
        r"^line 2: field 'facts' must be an array of strings, not an array holding a number$",
    ),
    (
        "exit code a boolean",
        text(head(), observation(exit_code=True)),
        r"^line 2: field 'exit_code' must be a whole number or null, not a boolean$",
    ),
    (
        "exit code past 64 bits",
        text(head(), observation(exit_code=2**63)),
        r"^line 2: field 'exit_code' must be from -\d+ to \d+ or null, not 9223372036854775808$",
    ),
    (
        "tool name missing (null is required)",
        text(head(), without(observation(), "tool_name")),
        r"^line 2: missing field 'tool_name'$",
    ),
    (
        "summary notes null",
        text(head(), summary(notes=None)),
        r"^line 2: field 'notes' must be a string, not null$",
    ),
    (
        "lone surrogate",
        text(
            head(),
            '{"type": "prompt", "message_id": 1, "created_at": "' + T0 + '", '
            '"number": 1, "text": "\\ud800"}',
        ),
        r"^line 2: field 'text' must be valid Unicode text, not a string with a lone surrogate$",
    ),
    (
        "two prompts of one message",
        text(head(), prompt(), observation(message_id=1), prompt(number=2)),
        r"^line 4: a second prompt of message_id 1 \(line 2 has the first\)$",
    ),
    (
        "another session's record",
        text(head(), prompt(session_key="claude-code:someone-else")),
        r"^line 2: field 'session_key' is \"claude-code:someone-else\", not the session of",
    ),
]


class TestRefused:
    @pytest.mark.parametrize(
        ("source", "message"),
        [pytest.param(source, message, id=name) for name, source, message in INVALID],
    )
    def test_each_problem_names_its_line(self, source: str | bytes, message: str) -> None:
        """An InvalidArchiveError whose message starts with the line number and says what is
        wrong."""
        with pytest.raises(InvalidArchiveError, match=message):
            parse_export(source)

    def test_the_first_problem_is_reported(self) -> None:
        """Lines are checked in order; the error names the first bad one."""
        with pytest.raises(InvalidArchiveError, match=r"^line 2: "):
            parse_export(text(head(), prompt(number=0), "{bad"))


class TestPromptNumbers:
    @pytest.mark.parametrize(
        ("taken", "wanted", "given"),
        [
            pytest.param([], [1, 2, 3], [1, 2, 3], id="free: kept"),
            pytest.param([1, 2], [3, 4], [3, 4], id="after the session's own: kept"),
            pytest.param([1, 2], [1, 2], [3, 4], id="taken: after the highest"),
            pytest.param([2], [1, 2, 3], [1, 3, 4], id="one taken: the rest follow it"),
            pytest.param([2, 10], [1, 2, 3], [1, 11, 12], id="a free number below: not taken"),
            pytest.param([], [5, 7], [5, 7], id="gaps: kept"),
            pytest.param([], [2, 1], [2, 3], id="out of order: renumbered"),
            pytest.param([], [1, 1], [1, 2], id="repeated: renumbered"),
        ],
    )
    def test_numbers_stay_in_time_order(
        self, taken: list[int], wanted: list[int], given: list[int]
    ) -> None:
        """Kept while free and ascending, else after the highest number so far."""
        assert number_prompts(taken, wanted) == given


class TestImportResult:
    def test_to_dict_counts_by_type(self) -> None:
        """The API's answer: counts per record type and what was skipped or remapped."""
        result = ImportResult(
            session_key=KEY,
            session_created=True,
            prompts=1,
            observations=2,
            summaries=3,
            skipped=4,
            remapped=5,
            renumbered=6,
        )
        assert result.imported == 6
        assert result.to_dict() == {
            "session_key": KEY,
            "session_created": True,
            "imported": {"prompt": 1, "observation": 2, "summary": 3},
            "skipped": 4,
            "remapped": 5,
            "renumbered": 6,
        }
        assert json.loads(json.dumps(result.to_dict())) == result.to_dict()
