"""The last exchange of a Claude Code transcript, read backwards from the end of the file."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memq.hooks.transcript import (
    MAX_CHARS,
    Exchange,
    ScanStats,
    last_exchange,
    records_from_end,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "transcripts"
KIB = 1024
MIB = 1024 * KIB
FINAL = "Done. The tool ran; result: [tool_result] (Bash completed with no output)"


def kind(name: str) -> dict[str, Any]:
    """A recorded transcript line of one kind, as a fresh dict."""
    record: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text("utf-8"))
    return record


def user(content: str | list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    """A main-conversation user line with this message content."""
    record = kind("user.string")
    record["message"]["content"] = content
    record.update(fields)
    return record


def assistant(
    text: str | None = None, *, blocks: list[dict[str, Any]] | None = None, mid: str = "msg_x"
) -> dict[str, Any]:
    """A main-conversation assistant line: one text block, or the blocks given."""
    record = kind("assistant.text")
    record["message"]["id"] = mid
    record["message"]["content"] = (
        blocks if blocks is not None else [{"type": "text", "text": text}]
    )
    return record


def tool_use(tool_id: str = "toolu_1", mid: str = "msg_x") -> dict[str, Any]:
    """An assistant line holding only a tool call."""
    record = kind("assistant.tool_use")
    record["message"]["id"] = mid
    record["message"]["content"][0]["id"] = tool_id
    return record


def tool_result(output: str, tool_id: str = "toolu_1") -> dict[str, Any]:
    """A user line holding only a tool's result."""
    record = kind("user.tool_result")
    block = record["message"]["content"][0]
    block["tool_use_id"] = tool_id
    block["content"] = output
    record["toolUseResult"]["stdout"] = output
    return record


def jsonl(records: Iterable[dict[str, Any]], newline: str = "\n") -> bytes:
    """Records as Claude Code writes them: compact JSON, one per line."""
    text = "".join(
        json.dumps(record, separators=(",", ":"), ensure_ascii=False) + newline
        for record in records
    )
    return text.encode("utf-8")


def session() -> list[dict[str, Any]]:
    """One turn as the samples recorded it: prompt, text, tool call, result, subagent, reply."""
    return [
        kind("queue-operation"),
        kind("user.string"),
        kind("attachment.agent_listing_delta"),
        kind("attachment.skill_listing"),
        kind("assistant.text"),
        kind("assistant.tool_use"),
        kind("user.tool_result"),
        kind("subagent.user.string"),
        kind("subagent.attachment.skill_listing"),
        kind("subagent.assistant.text"),
        kind("attachment.task_reminder"),
        assistant(FINAL, mid="msg_fake_002"),
        kind("last-prompt"),
        kind("mode"),
    ]


Write = Callable[..., Path]


@pytest.fixture
def write(tmp_path: Path) -> Write:
    """Write bytes or records to a transcript file and return its path."""

    def write(content: bytes | Iterable[dict[str, Any]], name: str = "t.jsonl") -> Path:
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else jsonl(content))
        return path

    return write


def big_transcript(path: Path, pairs: int, output_bytes: int, before: int = 0) -> int:
    """A prompt, many tool calls with large outputs, the final reply; returns the prompt offset.

    ``before`` tool calls of an earlier turn come first.
    """
    output = ("x" * 99 + "\n") * (output_bytes // 100)

    def tool_calls(numbers: range) -> bytes:
        return b"".join(
            jsonl([tool_use(f"toolu_{i}", mid=f"msg_{i}"), tool_result(output, f"toolu_{i}")])
            for i in numbers
        )

    with path.open("wb") as file:
        file.write(jsonl([kind("queue-operation")]) + tool_calls(range(-before, 0)))
        prompt_at = file.tell()
        file.write(jsonl([user("refactor the parser")]) + tool_calls(range(pairs)))
        file.write(jsonl([assistant("The parser is refactored.", mid="msg_last")]))
    return prompt_at


# What each recorded line kind gives when it is the whole transcript.
EXPECTED: dict[str, Exchange] = {
    "assistant.text": Exchange(None, "I'll create the file."),
    "assistant.tool_use": Exchange(None, None),
    "attachment.agent_listing_delta": Exchange(None, None),
    "attachment.command_permissions": Exchange(None, None),
    "attachment.file": Exchange(None, None),
    "attachment.skill_listing": Exchange(None, None),
    "attachment.task_reminder": Exchange(None, None),
    "last-prompt": Exchange(None, None),
    "mode": Exchange(None, None),
    "queue-operation": Exchange(None, None),
    "subagent.assistant.text": Exchange(None, None),
    "subagent.attachment.skill_listing": Exchange(None, None),
    "subagent.user.string": Exchange(None, None),
    "system.compact_boundary": Exchange(None, None),
    "user.string.compact_summary": Exchange(None, None),
    "user.string": Exchange("create out.txt", None),
    "user.text": Exchange(None, None),  # isMeta: a skill's expansion, not typed
    "user.tool_result": Exchange(None, None),
}


class TestSampleKinds:
    """Every recorded line kind, alone and in a session."""

    def test_every_sample_kind_has_an_expectation(self) -> None:
        """A new sample kind in the fixtures must be given its expected exchange here."""
        assert {path.stem for path in FIXTURES.glob("*.json")} == set(EXPECTED)

    @pytest.mark.parametrize("name", sorted(EXPECTED))
    def test_each_kind_alone(self, write: Write, name: str) -> None:
        """Only a typed prompt and assistant text count; every other kind is passed over."""
        assert last_exchange(write([kind(name)])) == EXPECTED[name]

    def test_a_recorded_turn(self, write: Write) -> None:
        """The turn's prompt and final reply, not the subagent's prompt or the earlier text."""
        assert last_exchange(write(session())) == Exchange("create out.txt", FINAL)

    def test_after_compaction(self, write: Write) -> None:
        """The compaction boundary, summary and a meta line do not replace the real prompt."""
        records = [
            *session(),
            kind("system.compact_boundary"),
            kind("user.string.compact_summary"),
            kind("user.text"),
            kind("attachment.command_permissions"),
            kind("attachment.file"),
        ]
        assert last_exchange(write(records)) == Exchange("create out.txt", FINAL)


class TestUserPrompt:
    """Which user line is the latest real prompt."""

    def test_the_latest_prompt_wins(self, write: Write) -> None:
        """Of two prompts the later one is returned."""
        path = write([user("first"), assistant("one"), user("second"), assistant("two")])
        assert last_exchange(path).user_prompt == "second"

    def test_text_blocks_are_joined(self, write: Write) -> None:
        """A prompt given as text blocks is their texts; an image block beside them is ignored."""
        blocks: list[dict[str, Any]] = [
            {"type": "text", "text": "look at this"},
            {"type": "image", "source": {"type": "base64", "data": "AAAA"}},
            {"type": "text", "text": "and fix it"},
        ]
        assert last_exchange(write([user(blocks)])).user_prompt == "look at this\nand fix it"

    def test_only_tool_results_means_no_prompt(self, write: Write) -> None:
        """A transcript whose user lines are all tool results has no prompt."""
        records = [
            tool_use("t1"),
            tool_result("out 1", "t1"),
            tool_use("t2"),
            tool_result("", "t2"),
        ]
        assert last_exchange(write(records)) == Exchange(None, None)

    def test_tool_results_are_passed_over(self, write: Write) -> None:
        """Tool results after the prompt do not hide it, even with a text block beside them."""
        result = tool_result("output")
        result["message"]["content"].append({"type": "text", "text": "injected by the harness"})
        records = [user("the prompt"), tool_use(), result, assistant("done", mid="m2")]
        assert last_exchange(write(records)) == Exchange("the prompt", "done")

    def test_system_reminder_blocks_are_stripped(self, write: Write) -> None:
        """Reminder blocks go; the user's text beside them stays."""
        reminder = "<system-reminder>\nThe date changed.\n</system-reminder>"
        blocks = [{"type": "text", "text": reminder}, {"type": "text", "text": "real question"}]
        assert last_exchange(write([user(blocks)])).user_prompt == "real question"
        inline = f"{reminder}\nreal question\n{reminder}"
        assert last_exchange(write([user(inline)])).user_prompt == "real question"

    def test_a_line_of_reminders_only_is_passed_over(self, write: Write) -> None:
        """A user line holding nothing but a reminder leaves the earlier prompt the latest."""
        reminder = "<system-reminder>Todo list is empty.</system-reminder>"
        path = write([user("the prompt"), user([{"type": "text", "text": reminder}])])
        assert last_exchange(path).user_prompt == "the prompt"

    def test_an_unclosed_reminder_tag_is_kept_as_text(self, write: Write) -> None:
        """Text the user typed that merely mentions the tag is not eaten."""
        text = "why does <system-reminder> appear in my prompt?"
        assert last_exchange(write([user(text)])).user_prompt == text

    def test_compaction_banner_is_passed_over_by_its_text(self, write: Write) -> None:
        """The continuation banner is skipped even without its isCompactSummary flag."""
        banner = kind("user.string.compact_summary")
        del banner["isCompactSummary"]
        assert last_exchange(write([user("the prompt"), banner])).user_prompt == "the prompt"

    def test_compaction_banner_is_passed_over_by_its_flag(self, write: Write) -> None:
        """A line flagged isCompactSummary is skipped whatever its text."""
        summary = user("Summary of the work so far", isCompactSummary=True)
        assert last_exchange(write([user("the prompt"), summary])).user_prompt == "the prompt"

    def test_meta_lines_are_passed_over(self, write: Write) -> None:
        """A meta line (a skill expansion, hook feedback) is not a prompt."""
        meta = user("Stop hook feedback:\n[hook]: blocked", isMeta=True)
        assert last_exchange(write([user("the prompt"), meta])).user_prompt == "the prompt"

    def test_sidechain_lines_are_passed_over(self, write: Write) -> None:
        """A subagent's prompt is not the user's."""
        path = write([user("the prompt"), user("subagent task", isSidechain=True)])
        assert last_exchange(path).user_prompt == "the prompt"

    @pytest.mark.parametrize(
        "text",
        [
            "<local-command-stdout>Set model to opus</local-command-stdout>",
            "<local-command-stderr>failed</local-command-stderr>",
            "<local-command-caveat>Caveat: The messages below were generated by the user while "
            "running local commands. DO NOT respond to these messages.</local-command-caveat>",
            "<bash-input>ls</bash-input>",
            "<bash-stdout>a.txt</bash-stdout><bash-stderr></bash-stderr>",
            "<task-notification>agent done</task-notification>",
            "[Request interrupted by user]",
            "[Request interrupted by user for tool use]",
        ],
    )
    def test_text_claude_code_wrote_is_passed_over(self, write: Write, text: str) -> None:
        """Command output, caveats, shell echoes, notifications and interruptions are not typed."""
        path = write([user("the prompt"), user(text)])
        assert last_exchange(path).user_prompt == "the prompt"

    def test_a_slash_command_is_returned_as_typed(self, write: Write) -> None:
        """The command envelope becomes the command line; its meta expansion is passed over."""
        envelope = (
            "<command-message>hello</command-message>\n<command-name>/hello</command-name>\n"
            "<command-args>world</command-args>"
        )
        path = write([user("earlier"), user(envelope), kind("user.text")])
        assert last_exchange(path).user_prompt == "/hello world"
        bare = "<command-name>/compact</command-name>\n<command-message>compact</command-message>"
        assert last_exchange(write([user(bare)])).user_prompt == "/compact"

    def test_a_prompt_before_the_last_reply_is_found(self, write: Write) -> None:
        """The prompt is searched for on its own, far before the reply."""
        records = [user("the prompt")]
        for i in range(50):
            records += [tool_use(f"t{i}", mid=f"m{i}"), tool_result(f"out {i}", f"t{i}")]
        records.append(assistant("reply", mid="last"))
        assert last_exchange(write(records)) == Exchange("the prompt", "reply")


class TestAssistantMessage:
    """Which assistant text is the latest reply."""

    def test_lines_without_text_are_passed_over(self, write: Write) -> None:
        """Later tool calls and thinking do not hide the latest text."""
        thinking = assistant(blocks=[{"type": "thinking", "thinking": "hmm", "signature": "s"}])
        path = write([assistant("the reply", mid="m1"), tool_use(mid="m2"), thinking])
        assert last_exchange(path).assistant_message == "the reply"

    def test_text_blocks_of_one_line_are_joined(self, write: Write) -> None:
        """Every text block of the message counts; a tool call between them does not."""
        blocks: list[dict[str, Any]] = [
            {"type": "text", "text": "first"},
            {"type": "tool_use", "id": "t", "name": "Bash", "input": {}},
            {"type": "text", "text": "second"},
        ]
        assert last_exchange(write([assistant(blocks=blocks)])).assistant_message == "first\nsecond"

    def test_lines_of_one_message_are_joined_in_order(self, write: Write) -> None:
        """Claude Code writes a block per line; lines sharing message.id make one message."""
        records = [
            assistant("an older message", mid="m1"),
            tool_result("out"),
            assistant("part one", mid="m2"),
            kind("attachment.task_reminder"),
            tool_use(mid="m2"),
            assistant("part two", mid="m2"),
        ]
        assert last_exchange(write(records)).assistant_message == "part one\npart two"

    def test_an_older_message_is_not_joined(self, write: Write) -> None:
        """Text of an earlier message stays out of the latest one."""
        path = write([assistant("old", mid="m1"), assistant("new", mid="m2")])
        assert last_exchange(path).assistant_message == "new"

    def test_sidechain_replies_are_passed_over(self, write: Write) -> None:
        """A subagent's text is not the reply."""
        sub = kind("subagent.assistant.text")
        assert last_exchange(write([assistant("the reply"), sub])).assistant_message == "the reply"

    def test_string_content_is_accepted(self, write: Write) -> None:
        """Message content given as a plain string is the text."""
        record = assistant("unused")
        record["message"]["content"] = "plain"
        assert last_exchange(write([record])).assistant_message == "plain"

    def test_a_reply_without_a_prompt_is_found(self, write: Write) -> None:
        """The two sides are independent: a reply is returned when no prompt exists."""
        path = write([tool_result("out"), assistant("the reply")])
        assert last_exchange(path) == Exchange(None, "the reply")


class TestTrimming:
    """How long returned texts may be."""

    def test_texts_are_cut_to_max_chars(self, write: Write) -> None:
        """Both sides are cut to the limit given."""
        path = write([user("p" * 50), assistant("a" * 50)])
        assert last_exchange(path, max_chars=10) == Exchange("p" * 10, "a" * 10)

    def test_the_default_limit(self, write: Write) -> None:
        """Without a limit given each side is cut to MAX_CHARS."""
        path = write([user("p" * (MAX_CHARS + 100)), assistant("a" * (MAX_CHARS + 1))])
        exchange = last_exchange(path)
        assert len(exchange.user_prompt or "") == MAX_CHARS == 4_000
        assert len(exchange.assistant_message or "") == MAX_CHARS


class TestReadingBackwards:
    """The file is read from the end, in growing chunks, only as far as needed."""

    def test_a_prompt_megabytes_before_the_end_is_found(self, tmp_path: Path) -> None:
        """Thousands of large tool results between prompt and reply do not hide the prompt."""
        path = tmp_path / "big.jsonl"
        prompt_at = big_transcript(path, pairs=1_200, output_bytes=4 * KIB, before=300)
        size = path.stat().st_size
        assert size - prompt_at > 10 * MIB
        stats = ScanStats()
        exchange = last_exchange(path, stats=stats)
        assert exchange == Exchange("refactor the parser", "The parser is refactored.")
        assert size - prompt_at <= stats.bytes_read < size

    def test_reading_stops_once_both_are_found(self, tmp_path: Path) -> None:
        """A short last turn is found with one read of a 10+ MB file."""
        path = tmp_path / "big.jsonl"
        big_transcript(path, pairs=1_200, output_bytes=4 * KIB)
        with path.open("ab") as file:
            file.write(jsonl([user("one more thing"), assistant("Done too.", mid="m_end")]))
        stats = ScanStats()
        exchange = last_exchange(path, stats=stats)
        assert exchange == Exchange("one more thing", "Done too.")
        assert (stats.reads, stats.bytes_read) == (1, 64 * KIB)
        assert path.stat().st_size > 10 * MIB

    def test_max_bytes_bounds_the_read_of_a_huge_file(self, tmp_path: Path) -> None:
        """In a 200 MB file only max_bytes (and one byte before) are read; what is there counts."""
        path = tmp_path / "huge.jsonl"
        with path.open("wb") as file:
            file.write(jsonl([user("lost far away")]))
            file.truncate(200 * MIB)  # sparse: the gap costs no disk
            file.seek(0, os.SEEK_END)
            file.write(b"\n" + jsonl([tool_result("out"), assistant("near the end")]))
        stats = ScanStats()
        exchange = last_exchange(path, max_bytes=1 * MIB, stats=stats)
        assert exchange == Exchange(None, "near the end")
        assert stats.bytes_read == 1 * MIB + 1

    def test_a_prompt_beyond_max_bytes_is_not_found(self, write: Write) -> None:
        """What lies before the last max_bytes is never looked at; the reply still is."""
        path = write([user("the prompt"), tool_result("x" * 10_000), assistant("the reply")])
        assert last_exchange(path, max_bytes=5_000) == Exchange(None, "the reply")
        assert last_exchange(path, max_bytes=50_000) == Exchange("the prompt", "the reply")

    def test_the_first_line_of_the_window_counts_only_if_whole(self, write: Write) -> None:
        """A window starting exactly at a line start parses that line; one byte less drops it."""
        prompt = jsonl([user("the prompt")])
        path = write(jsonl([kind("mode")]) + prompt)
        assert last_exchange(path, max_bytes=len(prompt)).user_prompt == "the prompt"
        assert last_exchange(path, max_bytes=len(prompt) - 1).user_prompt is None

    def test_chunks_double_up_to_the_cap(self, write: Write) -> None:
        """Reads of 1, 2, 4, 8, 8, 8, 8 and the last byte cover a 40-byte file."""
        stats = ScanStats()
        last_exchange(write(b"z" * 40), first_chunk=1, max_chunk=8, stats=stats)
        assert (stats.reads, stats.bytes_read) == (8, 40)

    @pytest.mark.parametrize("where", ["after", "at", "before"])
    def test_a_line_split_exactly_at_a_chunk_boundary(self, write: Write, where: str) -> None:
        """A chunk boundary just after, at or just before a newline leaves the lines whole."""
        head = jsonl([user("the prompt"), assistant("the reply")])
        tail = jsonl([tool_use(mid="m_t")])
        path = write(head + tail)
        newline = len(head) - 1  # the offset of the newline ending the reply's line
        boundary = {"after": newline + 1, "at": newline, "before": newline - 1}[where]
        chunk = len(head + tail) - boundary
        exchange = last_exchange(path, first_chunk=chunk, max_chunk=chunk)
        assert exchange == Exchange("the prompt", "the reply")

    def test_every_chunk_size_gives_the_same_answer(self, write: Write) -> None:
        """From one byte per read to the whole file at once, the answer is the same."""
        records = [
            user("first ✓ prompt"),
            assistant("née ünïcode ✓", mid="m1"),
            user("the prompt — ✓"),
            tool_use(mid="m2"),
            tool_result("résultat ✓\n" * 20),
            assistant("the reply ✓", mid="m3"),
            kind("mode"),
        ]
        path = write(records)
        expected = Exchange("the prompt — ✓", "the reply ✓")
        for chunk in range(1, path.stat().st_size + 2):
            assert last_exchange(path, first_chunk=chunk, max_chunk=chunk) == expected, chunk
            assert last_exchange(path, first_chunk=chunk, max_chunk=4 * chunk) == expected, chunk

    @settings(max_examples=60, deadline=None)
    @given(
        st.lists(
            st.one_of(
                st.text(max_size=40).map(lambda t: ("user", t)),
                st.text(max_size=40).map(lambda t: ("assistant", t)),
                st.text(max_size=200).map(lambda t: ("result", t)),
            ),
            max_size=12,
        ),
        st.integers(min_value=1, max_value=300),
        st.sampled_from(["\n", "\r\n"]),
    )
    def test_chunking_never_changes_the_answer(
        self, tmp_path_factory: pytest.TempPathFactory, lines: list[Any], chunk: int, newline: str
    ) -> None:
        """Any transcript read in small chunks gives what one whole read gives."""
        make: dict[str, Callable[[str], dict[str, Any]]] = {
            "user": user,
            "assistant": assistant,
            "result": tool_result,
        }
        records = [make[which](text) for which, text in lines]
        path = tmp_path_factory.mktemp("prop") / "t.jsonl"
        path.write_bytes(jsonl(records, newline))
        whole = last_exchange(path, first_chunk=MIB, max_chunk=MIB)
        assert last_exchange(path, first_chunk=chunk, max_chunk=chunk) == whole
        assert last_exchange(path, first_chunk=chunk, max_chunk=2 * chunk) == whole

    def test_a_truncated_last_line_is_skipped(self, write: Write) -> None:
        """A last line still being written does not parse and is passed over."""
        partial = jsonl([assistant("not finished", mid="m2")])[:-40]
        path = write(jsonl([user("the prompt"), assistant("the reply")]) + partial)
        assert last_exchange(path) == Exchange("the prompt", "the reply")

    def test_a_last_line_cut_inside_a_character_is_skipped(self, write: Write) -> None:
        """A last line cut in the middle of a multi-byte character is passed over."""
        partial = jsonl([assistant("✓✓✓✓", mid="m2")])
        cut = partial[: partial.index("✓".encode()) + 1]
        path = write(jsonl([user("the prompt"), assistant("the reply")]) + cut)
        assert last_exchange(path) == Exchange("the prompt", "the reply")

    def test_crlf_line_endings(self, write: Write) -> None:
        """Lines ending in CRLF read like lines ending in LF."""
        path = write(jsonl(session(), newline="\r\n"))
        assert last_exchange(path) == Exchange("create out.txt", FINAL)

    def test_blank_lines_are_passed_over(self, write: Write) -> None:
        """Empty and whitespace-only lines between records are harmless."""
        path = write(b"\n\n" + jsonl([user("the prompt")]) + b"  \n\n" + jsonl([assistant("ok")]))
        assert last_exchange(path) == Exchange("the prompt", "ok")


class TestUnreadable:
    """Anything that is not a readable transcript gives an empty exchange, never an error."""

    def test_missing_file(self, tmp_path: Path) -> None:
        """A path that does not exist."""
        assert last_exchange(tmp_path / "absent.jsonl") == Exchange(None, None)

    def test_empty_file(self, write: Write) -> None:
        """A file with no bytes."""
        assert last_exchange(write(b"")) == Exchange(None, None)

    def test_directory(self, tmp_path: Path) -> None:
        """A directory in place of the file."""
        assert last_exchange(tmp_path) == Exchange(None, None)

    def test_binary_garbage(self, write: Write) -> None:
        """Random bytes, newlines included."""
        garbage = bytes(range(256)) * 64 + os.urandom(64 * KIB) + b"\n{\xff\xfe\n\x00\x00"
        assert last_exchange(write(garbage), first_chunk=1000) == Exchange(None, None)

    def test_deeply_nested_json(self, write: Write) -> None:
        """Nesting deep enough to exhaust the parser's recursion is a bad line, not a crash."""
        nested = b'{"a":' * 200_000 + b"1" + b"}" * 200_000 + b"\n"
        path = write(jsonl([user("the prompt")]) + nested + b"[" * 200_000 + b"\n")
        assert last_exchange(path) == Exchange("the prompt", None)

    @pytest.mark.parametrize(
        "line",
        [
            b"null",
            b"42",
            b'"a string"',
            b"[1, 2]",
            b'{"type": "user"}',
            b'{"type": "user", "message": "text"}',
            b'{"type": "user", "message": {"content": 7}}',
            b'{"type": "user", "message": {"content": [7, null, {"type": "text", "text": 7}]}}',
            b'{"type": "assistant", "message": {"content": [{"type": "text"}]}}',
            b'{"type": "assistant", "message": {"id": {"odd": 1}, "content": null}}',
        ],
    )
    def test_lines_of_the_wrong_shape_are_passed_over(self, write: Write, line: bytes) -> None:
        """Valid JSON that is not a usable record does not hide the real lines or raise."""
        path = write(jsonl([user("the prompt"), assistant("the reply")]) + line + b"\n")
        assert last_exchange(path) == Exchange("the prompt", "the reply")

    def test_invalid_utf8_is_replaced(self, write: Write) -> None:
        """A stray invalid byte costs that character, not the line."""
        line = jsonl([user("caf_ prompt")]).replace(b"caf_", b"caf\xe9")
        assert last_exchange(write(line)).user_prompt == "caf\ufffd prompt"

    def test_a_fifo_is_not_opened(self, tmp_path: Path) -> None:
        """A named pipe would block the hook forever: it is refused without opening."""
        if not hasattr(os, "mkfifo"):
            pytest.skip("no named pipes on this platform")
        fifo = tmp_path / "pipe.jsonl"
        os.mkfifo(fifo)
        assert last_exchange(fifo) == Exchange(None, None)

    def test_a_file_without_read_permission(self, write: Write) -> None:
        """A file the hook may not read."""
        path = write([user("secret")])
        path.chmod(0)
        try:
            if os.access(path, os.R_OK):
                pytest.skip("running with privileges that ignore file modes")
            assert last_exchange(path) == Exchange(None, None)
        finally:
            path.chmod(0o600)


class TestExchange:
    """The result type: a small immutable value."""

    def test_equality_and_hash_follow_the_fields(self) -> None:
        """Exchanges with the same texts are equal and hash alike."""
        assert Exchange("p", "a") == Exchange("p", "a")
        assert Exchange("p", "a") != Exchange("p", None)
        assert Exchange("p", "a") != ("p", "a")
        assert hash(Exchange("p", "a")) == hash(Exchange("p", "a"))

    def test_it_is_immutable(self) -> None:
        """Setting a field raises."""
        exchange = Exchange("p", "a")
        with pytest.raises(AttributeError):
            exchange.user_prompt = "changed"

    def test_repr_names_the_fields(self) -> None:
        """The repr shows both texts."""
        assert repr(Exchange("p", None)) == "Exchange(user_prompt='p', assistant_message=None)"


class TestRecordsFromEnd:
    """The reader the other assistants' adapters use on their own transcripts."""

    def test_objects_last_first_and_nothing_else(self, tmp_path: Path) -> None:
        path = tmp_path / "t.jsonl"
        path.write_text('{"n": 1}\nnot json\n[1, 2]\n{"n": 2}\n{"n": 3, "half')
        assert [r["n"] for r in records_from_end(str(path))] == [2, 1]

    def test_only_lines_holding_the_needle_are_read(self, tmp_path: Path) -> None:
        path = tmp_path / "t.jsonl"
        path.write_text('{"call": "a", "n": 1}\n{"call": "b", "n": 2}\n{"call": "a", "n": 3}\n')
        found = records_from_end(str(path), needle=b'"a"')
        assert [r["n"] for r in found] == [3, 1]

    def test_never_further_than_max_bytes_from_the_end(self, tmp_path: Path) -> None:
        path = tmp_path / "t.jsonl"
        lines = [json.dumps({"n": n}) for n in range(1000)]
        path.write_text("\n".join(lines) + "\n")
        last = len(lines[-1]) + 1
        found = [r["n"] for r in records_from_end(str(path), max_bytes=3 * last)]
        assert found == [999, 998, 997]

    def test_a_fifo_is_never_opened(self, tmp_path: Path) -> None:
        """Opening a FIFO with no writer would block the hook for good."""
        fifo = tmp_path / "t.jsonl"
        os.mkfifo(fifo)
        assert list(records_from_end(str(fifo))) == []

    @pytest.mark.parametrize("path", [None, "", 7, "/no/such/file.jsonl"])
    def test_no_file_gives_nothing(self, path: object) -> None:
        assert list(records_from_end(path)) == []
