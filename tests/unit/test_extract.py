"""The offline ``extract`` processor: observations from tool calls, summaries from context."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from memq.exceptions import InvalidInputError, UnknownProcessorError
from memq.limits import EXTRACT_OUTPUT_CHARS
from memq.memory.records import (
    ObservationKind,
    ObservationRecord,
    Page,
    PromptRecord,
    SessionContext,
    SummaryRecord,
)
from memq.processors import ExtractProcessor, ProcessResult, get_processor
from memq.processors.extract import (
    SUMMARY_TEXT_CHARS,
    extract_observation,
    relative_path,
    summarize,
)
from memq.queue import Message, MessageKind
from tests.helpers.memory import sample

CWD = "/home/dev/project"
WHEN = datetime(2025, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC)


def tool_call(
    tool: str, tool_input: Any = None, response: Any = None, **extra: Any
) -> dict[str, Any]:
    """A hand-made PostToolUse payload."""
    payload: dict[str, Any] = {"hook_event_name": "PostToolUse", "cwd": CWD, "tool_name": tool}
    if tool_input is not None:
        payload["tool_input"] = tool_input
    if response is not None:
        payload["tool_response"] = response
    return payload | extra


def failure(tool: str, tool_input: Any, error: str) -> dict[str, Any]:
    """A hand-made PostToolUseFailure payload."""
    return {
        "hook_event_name": "PostToolUseFailure",
        "cwd": CWD,
        "tool_name": tool,
        "tool_input": tool_input,
        "error": error,
    }


def message(kind: MessageKind, payload: Any, message_id: int = 7) -> Message:
    return Message(
        id=message_id,
        session_id="claude-code:s1",
        kind=kind,
        payload=payload,
        dedupe_key=None,
        attempts=1,
        created_at=WHEN,
    )


def observation(**fields: Any) -> ObservationRecord:
    return ObservationRecord(**({"kind": ObservationKind.OTHER, "title": "x"} | fields))


def prompt(number: int, text: str) -> PromptRecord:
    return PromptRecord(
        number=number,
        text=text,
        id=number,
        message_id=number,
        session_key="claude-code:s1",
        created_at=WHEN,
    )


class TestSamplePayloads:
    def test_bash(self) -> None:
        """A successful Bash call is a command with its exit code 0 and its description."""
        record = extract_observation(sample("PostToolUse.Bash"))
        assert record.kind is ObservationKind.COMMAND
        assert record.title == "Ran `echo hello > out.txt`"
        assert record.subtitle == "write file"
        assert record.command == "echo hello > out.txt"
        assert record.exit_code == 0
        assert record.tool_name == "Bash"
        assert "exit code 0" in record.facts
        assert record.files_read == record.files_modified == ()

    def test_write(self) -> None:
        """A Write is a change to a file named relative to the working directory."""
        record = extract_observation(sample("PostToolUse.Write"))
        assert record.kind is ObservationKind.CHANGE
        assert record.title == "Created notes.txt"
        assert record.files_modified == ("notes.txt",)
        assert record.files_read == ()
        assert record.command is None
        assert record.exit_code is None
        assert record.excerpt == "hello from Write"
        assert "1 line written" in record.facts

    def test_task_create(self) -> None:
        """Task bookkeeping is kind other, titled by the task's subject."""
        record = extract_observation(sample("PostToolUse.TaskCreate"))
        assert record.kind is ObservationKind.OTHER
        assert record.title == "Created task: Demo task"

    def test_task_update(self) -> None:
        """A task update names the task and its new status."""
        record = extract_observation(sample("PostToolUse.TaskUpdate"))
        assert record.kind is ObservationKind.OTHER
        assert record.title == "Updated task 1: completed"
        assert "status pending -> completed" in record.facts

    def test_agent(self) -> None:
        """A subagent run is a discovery whose answer becomes the narrative and excerpt."""
        record = extract_observation(sample("PostToolUse.Agent"))
        assert record.kind is ObservationKind.DISCOVERY
        assert record.title == "Ran agent: say hi"
        assert record.subtitle == "general-purpose"
        assert record.narrative == "Just text, no tools."
        assert record.excerpt == "Just text, no tools."
        assert "agent: general-purpose" in record.facts

    def test_bash_failure(self) -> None:
        """A failed Bash call keeps kind command; the exit code comes from the error text."""
        record = extract_observation(sample("PostToolUseFailure"))
        assert record.kind is ObservationKind.COMMAND
        assert record.title == "Ran `echo failing >&2; exit 3` (exit 3)"
        assert record.command == "echo failing >&2; exit 3"
        assert record.exit_code == 3
        assert "exit code 3" in record.facts
        assert "failed: failing" in record.facts
        assert record.excerpt == "Exit code 3\nfailing"


class TestToolKinds:
    @pytest.mark.parametrize(
        ("tool", "kind"),
        [
            ("Write", ObservationKind.CHANGE),
            ("Edit", ObservationKind.CHANGE),
            ("MultiEdit", ObservationKind.CHANGE),
            ("NotebookEdit", ObservationKind.CHANGE),
            ("Read", ObservationKind.DISCOVERY),
            ("LS", ObservationKind.DISCOVERY),
            ("Glob", ObservationKind.SEARCH),
            ("Grep", ObservationKind.SEARCH),
            ("Bash", ObservationKind.COMMAND),
            ("WebFetch", ObservationKind.WEB),
            ("WebSearch", ObservationKind.WEB),
            ("Task", ObservationKind.DISCOVERY),
            ("Agent", ObservationKind.DISCOVERY),
            ("TodoWrite", ObservationKind.OTHER),
            ("TaskCreate", ObservationKind.OTHER),
            ("TaskUpdate", ObservationKind.OTHER),
            ("mcp__github__create_issue", ObservationKind.OTHER),
        ],
    )
    def test_kind_by_tool(self, tool: str, kind: ObservationKind) -> None:
        """Each tool maps to its kind, even with no input or response at all."""
        record = extract_observation(tool_call(tool))
        assert record.kind is kind
        assert record.title
        assert record.tool_name == tool

    @pytest.mark.parametrize("tool", ["Edit", "Read", "Grep", "WebFetch"])
    def test_failure_keeps_the_tools_kind(self, tool: str) -> None:
        """A PostToolUseFailure is still a change, discovery, ... with the failure in it."""
        plain = extract_observation(tool_call(tool, {"file_path": f"{CWD}/a.py"}))
        failed = extract_observation(failure(tool, {"file_path": f"{CWD}/a.py"}, "boom"))
        assert failed.kind is plain.kind
        assert failed.title.startswith(f"{tool} failed")
        assert "failed: boom" in failed.facts


class TestHandMadePayloads:
    def test_read(self) -> None:
        """A Read lists its file as read, with the line range as subtitle."""
        record = extract_observation(
            tool_call(
                "Read",
                {"file_path": f"{CWD}/README.md", "offset": 10, "limit": 5},
                {"type": "text", "file": {"filePath": f"{CWD}/README.md", "content": "# memq"}},
            )
        )
        assert record.title == "Read README.md"
        assert record.subtitle == "lines 10-14"
        assert record.files_read == ("README.md",)
        assert record.files_modified == ()
        assert record.excerpt == "# memq"

    def test_edit(self) -> None:
        """An Edit is a change to its file, its excerpt the diff; replace_all is a fact."""
        record = extract_observation(
            tool_call(
                "Edit",
                {"file_path": f"{CWD}/src/app.py", "old_string": "a", "replace_all": True},
                {"filePath": f"{CWD}/src/app.py", "newString": "b = 2"},
            )
        )
        assert record.kind is ObservationKind.CHANGE
        assert record.title == "Edited src/app.py"
        assert record.files_modified == ("src/app.py",)
        assert "replaced every occurrence" in record.facts
        assert record.excerpt == "@@\n-a\n+b = 2"

    def test_multi_edit(self) -> None:
        """A MultiEdit counts its edits and collects every file they name."""
        record = extract_observation(
            tool_call(
                "MultiEdit",
                {
                    "file_path": f"{CWD}/a.py",
                    "edits": [{"old_string": "x"}, {"file_path": f"{CWD}/b.py"}, "junk"],
                },
            )
        )
        assert record.title == "Edited a.py and 1 more"
        assert record.files_modified == ("a.py", "b.py")
        assert "3 edits" in record.facts

    def test_notebook_edit(self) -> None:
        """A NotebookEdit names the notebook it changed."""
        record = extract_observation(
            tool_call("NotebookEdit", {"notebook_path": f"{CWD}/nb.ipynb", "edit_mode": "insert"})
        )
        assert record.title == "Edited notebook nb.ipynb"
        assert record.files_modified == ("nb.ipynb",)

    def test_failed_edit_modified_nothing(self) -> None:
        """A failed change lists no modified file; its title still names the target."""
        record = extract_observation(
            failure("Edit", {"file_path": f"{CWD}/src/app.py"}, "String to replace not found")
        )
        assert record.kind is ObservationKind.CHANGE
        assert record.title == "Edit failed: src/app.py"
        assert record.files_modified == ()
        assert "failed: String to replace not found" in record.facts

    def test_grep(self) -> None:
        """A Grep is a search titled by its pattern and scope, with counts as facts."""
        record = extract_observation(
            tool_call(
                "Grep",
                {"pattern": "retry", "path": f"{CWD}/src", "glob": "*.py"},
                {"mode": "files_with_matches", "filenames": ["src/a.py"], "numFiles": 1},
            )
        )
        assert record.kind is ObservationKind.SEARCH
        assert record.title == "Searched for 'retry' in src"
        assert record.files_read == ("src",)
        assert "glob: *.py" in record.facts
        assert "1 file found" in record.facts
        assert record.excerpt == "src/a.py"

    def test_glob_without_path(self) -> None:
        """A Glob in the working directory names only its pattern."""
        record = extract_observation(tool_call("Glob", {"pattern": "**/*.py"}, {"numFiles": 12}))
        assert record.title == "Searched for files matching '**/*.py'"
        assert "12 files found" in record.facts

    def test_ls(self) -> None:
        """An LS is a discovery of its directory."""
        record = extract_observation(tool_call("LS", {"path": f"{CWD}/docs"}))
        assert record.title == "Listed docs"
        assert record.files_read == ("docs",)

    def test_web_fetch(self) -> None:
        """A WebFetch is web work titled by its URL, with the HTTP status as a fact."""
        record = extract_observation(
            tool_call(
                "WebFetch",
                {"url": "https://example.com/docs", "prompt": "find the API"},
                {"code": 200, "result": "The API is ..."},
            )
        )
        assert record.kind is ObservationKind.WEB
        assert record.title == "Fetched https://example.com/docs"
        assert record.subtitle == "find the API"
        assert "HTTP 200" in record.facts
        assert record.excerpt == "The API is ..."

    def test_web_search(self) -> None:
        """A WebSearch is titled by its query."""
        record = extract_observation(tool_call("WebSearch", {"query": "sqlite strict tables"}))
        assert record.title == "Searched the web for 'sqlite strict tables'"

    def test_todo_write(self) -> None:
        """A TodoWrite counts the todos and how many are done."""
        todos = [{"status": "completed"}, {"status": "pending"}, "junk"]
        record = extract_observation(tool_call("TodoWrite", {"todos": todos}))
        assert record.title == "Updated the todo list"
        assert "1 of 3 todos completed" in record.facts

    def test_unknown_tool(self) -> None:
        """A tool without a rule is kind other, titled "Used <tool>"."""
        record = extract_observation(
            tool_call("mcp__db__query", {"file_path": f"{CWD}/x"}, {"rows": 3})
        )
        assert record.kind is ObservationKind.OTHER
        assert record.title == "Used mcp__db__query"
        assert record.files_read == record.files_modified == ()

    def test_long_command_is_clipped_in_the_title(self) -> None:
        """A long or multi-line command keeps the title one short line; the record has it all."""
        command = "python -c 'print(1)' " + "x" * 200 + "\nsecond line"
        record = extract_observation(tool_call("Bash", {"command": command}))
        assert "\n" not in record.title
        assert len(record.title) <= 160
        assert record.title.endswith("…`")
        assert record.command == command

    @pytest.mark.parametrize(
        "payload",
        [
            {},
            {"tool_name": None},
            {"tool_name": 42, "tool_input": "not a dict", "tool_response": 3.5},
            {"tool_name": "Bash", "tool_input": {"command": ["ls"]}, "cwd": 7},
            {"tool_name": "Edit", "tool_input": {"file_path": None, "edits": "junk"}},
            {"tool_name": "Read", "tool_input": {"file_path": "", "offset": "ten"}},
            {"tool_name": "Grep", "tool_input": {"pattern": {"re": "x"}}, "tool_response": []},
            {"tool_name": "TaskUpdate", "tool_input": {"taskId": 5}, "tool_response": "ok"},
            {"tool_name": "Bash", "tool_response": {"exit_code": 10**40, "stdout": None}},
            {"hook_event_name": "PostToolUseFailure", "tool_name": "Bash", "error": None},
            {"tool_name": "Agent", "tool_response": {"content": [{"type": "image"}, None]}},
        ],
    )
    def test_garbage_never_crashes(self, payload: dict[str, Any]) -> None:
        """Missing, mistyped or absurd fields give a vaguer record, never an error."""
        record = extract_observation(payload)
        assert record.title
        assert isinstance(record.kind, ObservationKind)
        assert record.exit_code is None or abs(record.exit_code) < 2**32
        json.dumps(record.to_dict())

    def test_garbage_titles(self) -> None:
        """A payload without a tool name still reads sensibly."""
        assert extract_observation({}).title == "Used an unknown tool"
        assert extract_observation({"tool_name": "Bash"}).title == "Ran a command"
        assert extract_observation({"tool_name": "Read"}).title == "Read a file"

    @pytest.mark.parametrize("payload", [None, "text", 3, ["tool_name", "Bash"]])
    def test_a_payload_that_is_not_an_object_is_refused(self, payload: Any) -> None:
        """There is no tool call to describe: InvalidInputError, which fails the attempt."""
        with pytest.raises(InvalidInputError, match="must be a JSON object"):
            extract_observation(payload)


class TestToolResponses:
    @pytest.mark.parametrize(
        ("response", "excerpt"),
        [
            ("(Bash completed with no output)", "(Bash completed with no output)"),
            ({"stdout": "out", "stderr": "err"}, "out\nerr"),
            ({"stdout": "", "stderr": ""}, ""),
            ([{"type": "text", "text": "one"}, {"type": "text", "text": "two"}], "one\ntwo"),
            ({"content": [{"type": "text", "text": "nested"}]}, "nested"),
            ({"file": {"content": "file text"}}, "file text"),
            (None, ""),
            (42, ""),
            (True, ""),
            ({"a": {"b": {"c": {"d": {"e": {"f": {"g": {"text": "deep"}}}}}}}}, ""),
        ],
    )
    def test_excerpt_from_any_shape(self, response: Any, excerpt: str) -> None:
        """The excerpt comes from a string, a dict, a list of blocks, or is empty."""
        payload = tool_call("Bash", {"command": "ls"})
        if response is not None:
            payload["tool_response"] = response
        assert extract_observation(payload).excerpt == excerpt

    def test_missing_response(self) -> None:
        """Without tool_response a Bash call still gets exit code 0 and an empty excerpt."""
        record = extract_observation(tool_call("Bash", {"command": "make"}))
        assert record.exit_code == 0
        assert record.excerpt == ""

    def test_excerpt_is_short(self) -> None:
        """Output of any length is cut to a short excerpt that keeps its head and tail and
        says how much was cut."""
        lines = [f"line {i}" for i in range(10_000)]
        record = extract_observation(
            tool_call("Bash", {"command": "yes"}, {"stdout": "\n".join(lines)})
        )
        assert len(record.excerpt) <= EXTRACT_OUTPUT_CHARS
        kept = record.excerpt.splitlines()
        assert kept[0] == "line 0"
        assert kept[-1] == "line 9999"
        assert "lines cut] …" in record.excerpt

    def test_stderr_is_a_fact(self) -> None:
        """The first line of stderr is kept as a fact."""
        record = extract_observation(
            tool_call("Bash", {"command": "cc"}, {"stdout": "", "stderr": "\nwarning: x\nmore"})
        )
        assert "stderr: warning: x" in record.facts


class TestExitCodes:
    @pytest.mark.parametrize("key", ["exit_code", "exitCode", "returncode", "code"])
    def test_from_the_response(self, key: str) -> None:
        """An exit code in the response is used, and a non-zero one shows in the title."""
        record = extract_observation(tool_call("Bash", {"command": "pytest -q"}, {key: 3}))
        assert record.exit_code == 3
        assert record.title == "Ran `pytest -q` (exit 3)"

    def test_from_the_failure_text(self) -> None:
        """A failure's "Exit code N" line gives the exit code."""
        record = extract_observation(failure("Bash", {"command": "false"}, "Exit code 1\n"))
        assert record.exit_code == 1
        assert record.title == "Ran `false` (exit 1)"
        assert "failed: Exit code 1" in record.facts

    def test_failure_without_a_code(self) -> None:
        """A failure that names no exit code leaves it unknown."""
        record = extract_observation(failure("Bash", {"command": "sleep 999"}, "Command timed out"))
        assert record.exit_code is None
        assert record.title == "Ran `sleep 999` (failed)"
        assert "failed: Command timed out" in record.facts

    def test_interrupted(self) -> None:
        """An interrupted command has no exit code."""
        record = extract_observation(
            tool_call("Bash", {"command": "sleep 9"}, {"stdout": "", "interrupted": True})
        )
        assert record.exit_code is None
        assert record.title == "Ran `sleep 9` (interrupted)"
        assert "interrupted" in record.facts

    def test_an_exit_code_said_to_be_unknown_stays_unknown(self) -> None:
        """An adapter that could not learn the code (Codex without its session file) says
        ``"exit_code": null``: not a success."""
        record = extract_observation(
            tool_call("Bash", {"command": "make"}, {"stdout": "done", "exit_code": None})
        )
        assert record.exit_code is None
        assert record.title == "Ran `make`"

    def test_booleans_and_huge_numbers_are_not_exit_codes(self) -> None:
        """``true`` or a number too big for SQLite is ignored, not stored."""
        assert extract_observation(tool_call("Bash", {}, {"exit_code": True})).exit_code == 0
        assert extract_observation(tool_call("Bash", {}, {"exit_code": 2**70})).exit_code == 0
        huge = failure("Bash", {"command": "x"}, "Exit code 99999999999")
        assert extract_observation(huge).exit_code is None

    def test_only_bash_has_a_command(self) -> None:
        """Other tools have neither command nor exit code."""
        record = extract_observation(tool_call("Read", {"file_path": "a"}, {"exit_code": 1}))
        assert record.command is None
        assert record.exit_code is None


class TestRelativePaths:
    @pytest.mark.parametrize(
        ("path", "cwd", "expected"),
        [
            ("/home/dev/project/src/app.py", "/home/dev/project", "src/app.py"),
            ("/home/dev/project/src/app.py", "/home/dev/project/", "src/app.py"),
            ("/home/dev/project", "/home/dev/project", "."),
            ("/home/dev/project-other/a.py", "/home/dev/project", "/home/dev/project-other/a.py"),
            ("/home/dev/project/../x.py", "/home/dev/project", "/home/dev/x.py"),
            ("/etc/hosts", "/home/dev/project", "/etc/hosts"),
            ("src/./app.py", "/home/dev/project", "src/app.py"),
            ("/a/b.py", None, "/a/b.py"),
            ("C:\\work\\proj\\src\\app.py", "C:\\work\\proj", "src/app.py"),
        ],
    )
    def test_relative_when_inside(self, path: str, cwd: str | None, expected: str) -> None:
        """Paths inside the working directory become relative; others stay absolute."""
        assert relative_path(path, cwd) == expected


class TestSummarize:
    def context(
        self, *observations: ObservationRecord, prompts: tuple[PromptRecord, ...] = ()
    ) -> SessionContext:
        return SessionContext(
            session_key="claude-code:s1",
            project="project",
            prompts=prompts,
            observations=observations,
        )

    def test_from_the_stop_sample(self) -> None:
        """The Stop payload's last assistant message is what was completed."""
        stop = sample("Stop")
        record = summarize(stop, self.context(prompts=(prompt(1, "create out.txt"),)))
        assert record.request == "create out.txt"
        assert record.completed == stop["last_assistant_message"]
        assert record.next_steps == ""
        assert record.learned == ""

    def test_request_joins_the_batchs_prompts(self) -> None:
        """Every prompt since the last summary is part of the request, oldest first."""
        prompts = (prompt(1, "fix the bug"), prompt(2, "  "), prompt(3, "and add a test"))
        record = summarize({"last_user_prompt": "ignored"}, self.context(prompts=prompts))
        assert record.request == "fix the bug\nand add a test"

    def test_request_falls_back_to_the_last_user_prompt(self) -> None:
        """Without prompts in context, the hook's last_user_prompt is the request."""
        record = summarize({"last_user_prompt": " do it "}, self.context())
        assert record.request == "do it"

    def test_files_are_the_ordered_union(self) -> None:
        """Files read and edited are collected in first-seen order without repeats."""
        record = summarize(
            {},
            self.context(
                observation(files_read=("a.py", "b.py"), files_modified=("c.py",)),
                observation(files_read=("b.py", "d.py"), files_modified=("c.py", "a.py")),
            ),
        )
        assert record.files_read == ("a.py", "b.py", "d.py")
        assert record.files_edited == ("c.py", "a.py")

    def test_investigated_lists_reads_and_searches(self) -> None:
        """Discoveries, searches and web work are what was investigated."""
        record = summarize(
            {},
            self.context(
                observation(kind=ObservationKind.DISCOVERY, title="Read README.md"),
                observation(kind=ObservationKind.SEARCH, title="Searched for 'retry'"),
                observation(kind=ObservationKind.CHANGE, title="Edited a.py"),
                observation(kind=ObservationKind.DISCOVERY, title="Read README.md"),
            ),
        )
        assert record.investigated == "Read README.md\nSearched for 'retry'"

    def test_notes_list_commands_and_failures(self) -> None:
        """Notes name every command with its exit code, and every failed call."""
        failed_edit = extract_observation(failure("Edit", {"file_path": f"{CWD}/a.py"}, "nope"))
        record = summarize(
            {},
            self.context(
                extract_observation(sample("PostToolUse.Bash")),
                extract_observation(sample("PostToolUseFailure")),
                failed_edit,
                extract_observation(sample("PostToolUse.Write")),
            ),
        )
        assert record.notes.splitlines() == [
            "$ echo hello > out.txt (exit 0)",
            "$ echo failing >&2; exit 3 (exit 3)",
            "Edit failed: a.py",
        ]

    def test_completed_is_trimmed(self) -> None:
        """A very long last message is cut to a sane length."""
        record = summarize({"last_assistant_message": "done " * 2000}, self.context())
        assert len(record.completed) <= SUMMARY_TEXT_CHARS
        assert record.completed.endswith("…")

    def test_completed_falls_back_to_the_changes(self) -> None:
        """Without a last assistant message, the changes made are what was completed."""
        record = summarize(
            {}, self.context(observation(title="Edited a.py", files_modified=("a.py",)))
        )
        assert record.completed == "Edited a.py"

    def test_long_lists_are_capped(self) -> None:
        """A batch with hundreds of commands gives a bounded note."""
        commands = [observation(command=f"cmd {i}", exit_code=0) for i in range(100)]
        record = summarize({}, self.context(*commands))
        lines = record.notes.splitlines()
        assert len(lines) == 21
        assert lines[-1] == "... and 80 more"

    @pytest.mark.parametrize("payload", [None, [], "x", {"last_assistant_message": 5}])
    def test_any_payload(self, payload: Any) -> None:
        """The summary comes from the context; an odd Stop payload only loses its extras."""
        record = summarize(payload, self.context(prompts=(prompt(1, "hi"),)))
        assert record.request == "hi"
        assert record.completed == ""


class TestProcessor:
    async def test_observation_message(self) -> None:
        """An observation message gives exactly an observation."""
        result = await ExtractProcessor().process(
            message(MessageKind.OBSERVATION, sample("PostToolUse.Bash")),
            SessionContext("claude-code:s1", None),
        )
        assert result.summary is None
        assert result.observation == extract_observation(sample("PostToolUse.Bash"))

    async def test_summarize_message(self) -> None:
        """A summarize message gives exactly a summary built from the context."""
        context = SessionContext("claude-code:s1", None, prompts=(prompt(1, "go"),))
        result = await ExtractProcessor().process(
            message(MessageKind.SUMMARIZE, sample("Stop")), context
        )
        assert result.observation is None
        assert result.summary == summarize(sample("Stop"), context)

    @pytest.mark.parametrize(
        ("kind", "name"),
        [
            (MessageKind.PROMPT, "UserPromptSubmit"),
            (MessageKind.SESSION_END, "SessionEnd"),
            (MessageKind.EVENT, "SessionStart"),
        ],
    )
    async def test_bookkeeping_messages_give_nothing(self, kind: MessageKind, name: str) -> None:
        """Prompts, session ends and other events are the store's bookkeeping, not records."""
        result = await ExtractProcessor().process(
            message(kind, sample(name)), SessionContext("claude-code:s1", None)
        )
        assert result == ProcessResult()

    @pytest.mark.parametrize(
        "name",
        [
            "PostToolUse.Bash",
            "PostToolUse.Write",
            "PostToolUse.Agent",
            "PostToolUse.TaskCreate",
            "PostToolUse.TaskUpdate",
            "PostToolUseFailure",
        ],
    )
    async def test_deterministic(self, name: str) -> None:
        """The same message and context give an equal result, and the input is not changed."""
        payload = sample(name)
        before = copy.deepcopy(payload)
        context = SessionContext("claude-code:s1", "p", prompts=(prompt(1, "x"),))
        first = await ExtractProcessor().process(message(MessageKind.OBSERVATION, payload), context)
        again = await ExtractProcessor().process(
            message(MessageKind.OBSERVATION, sample(name), message_id=99), context
        )
        assert first == again
        assert payload == before


class TestRegistry:
    def test_extract_is_known(self) -> None:
        """``get_processor("extract")`` gives the extract processor under that name."""
        processor = get_processor("extract")
        assert isinstance(processor, ExtractProcessor)
        assert processor.name == "extract"

    def test_unknown_names_the_known_ones(self) -> None:
        """A typo in MEMQ_PROCESSOR gets a message listing what exists."""
        with pytest.raises(UnknownProcessorError, match=r"unknown processor 'llm'.*known: extract"):
            get_processor("llm")


class TestRecords:
    def test_to_dict_is_json_ready(self) -> None:
        """Times become ISO-8601 UTC text, tuples lists, kinds their values."""
        record = ObservationRecord(
            kind=ObservationKind.CHANGE,
            title="Edited a.py",
            facts=("one",),
            files_modified=("a.py",),
            id=1,
            message_id=2,
            session_key="claude-code:s1",
            created_at=WHEN,
        )
        data = record.to_dict()
        assert json.loads(json.dumps(data)) == data
        assert data["kind"] == "change"
        assert data["facts"] == ["one"]
        assert data["created_at"] == "2025-03-01T12:00:00.250Z"
        assert data["message_id"] == 2

    def test_page_to_dict(self) -> None:
        """A page is ``{"items": [...], "total": N}``."""
        page = Page((SummaryRecord(request="r"),), total=5)
        assert page.to_dict() == {
            "items": [SummaryRecord(request="r").to_dict()],
            "total": 5,
        }
