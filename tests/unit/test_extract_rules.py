"""The ``extract`` processor's rules beyond one call: diffs, cut outputs, kinds from the
evidence of a turn, noise left out, and what a summary reads from the last reply."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from memq.limits import EXTRACT_DIFF_CHARS, EXTRACT_DIFF_LINES, EXTRACT_NEW_FILE_LINES
from memq.memory.records import (
    ObservationKind,
    ObservationRecord,
    ProcessResult,
    PromptRecord,
    SessionContext,
)
from memq.processors import ExtractProcessor
from memq.processors.extract import (
    Noise,
    edit_diff,
    extract_observation,
    next_steps,
    noise_reason,
    summarize,
    turn_of,
)
from memq.processors.extract._text import cut_head, cut_middle
from memq.queue import Message, MessageKind
from tests.helpers.memory import sample

CWD = "/home/dev/project"
WHEN = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SESSION = "claude-code:s1"


def call(tool: str, tool_input: Any = None, response: Any = None, **extra: Any) -> dict[str, Any]:
    """A hand-made PostToolUse payload."""
    payload: dict[str, Any] = {"hook_event_name": "PostToolUse", "cwd": CWD, "tool_name": tool}
    if tool_input is not None:
        payload["tool_input"] = tool_input
    if response is not None:
        payload["tool_response"] = response
    return payload | extra


def failed(tool: str, tool_input: Any, error: str) -> dict[str, Any]:
    return {
        "hook_event_name": "PostToolUseFailure",
        "cwd": CWD,
        "tool_name": tool,
        "tool_input": tool_input,
        "error": error,
    }


def bash(command: str, stdout: str = "", **response: Any) -> dict[str, Any]:
    return call("Bash", {"command": command}, {"stdout": stdout, "stderr": ""} | response)


def edit(path: str, old: str = "a = 1", new: str = "a = 2") -> dict[str, Any]:
    return call("Edit", {"file_path": f"{CWD}/{path}", "old_string": old, "new_string": new})


def read(path: str, content: str = "text", **tool_input: Any) -> dict[str, Any]:
    return call(
        "Read",
        {"file_path": f"{CWD}/{path}", **tool_input},
        {"type": "text", "file": {"filePath": f"{CWD}/{path}", "content": content}},
    )


def prompt_record(message_id: int, text: str = "fix it") -> PromptRecord:
    return PromptRecord(
        number=1, text=text, id=message_id, message_id=message_id, session_key=SESSION,
        created_at=WHEN,
    )  # fmt: skip


def turn(*payloads: dict[str, Any], prompt: str = "fix it") -> SessionContext:
    """The context of a turn: a prompt (message 1), then each payload's observation stored
    as the worker would (noise left out), messages 2, 3, ..."""
    context = SessionContext(SESSION, None, prompts=(prompt_record(1, prompt),))
    for message_id, payload in enumerate(payloads, start=2):
        record = extract_observation(payload, context, message_id=message_id)
        if noise_reason(record, context, message_id=message_id) is None:
            stored = ObservationRecord(
                **{**record.to_dict(), "kind": record.kind, "message_id": message_id}
                | {"facts": record.facts, "concepts": (), "created_at": None}
                | {"files_read": record.files_read, "files_modified": record.files_modified}
            )
            context = SessionContext(
                SESSION, None, prompts=context.prompts, observations=(*context.observations, stored)
            )
    return context


def after(context: SessionContext, payload: dict[str, Any]) -> ObservationRecord:
    """The observation of ``payload`` as the next message of the turn."""
    return extract_observation(payload, context, message_id=100)


def is_noise(context: SessionContext, payload: dict[str, Any]) -> Noise | None:
    return noise_reason(after(context, payload), context, message_id=100)


class TestCuts:
    def test_short_text_is_whole(self) -> None:
        """What fits is kept as it is."""
        assert cut_middle("one\ntwo\n", 2, 2, 100) == "one\ntwo"

    def test_head_and_tail_with_the_cut_counted(self) -> None:
        """A long output keeps its first and last lines and says how many were cut."""
        text = "\n".join(f"line {i}" for i in range(100))
        cut = cut_middle(text, 3, 2, 10_000).splitlines()
        assert cut == ["line 0", "line 1", "line 2", "… [95 lines cut] …", "line 98", "line 99"]

    def test_a_long_line_keeps_its_ends(self) -> None:
        """One huge line (minified output) keeps its start and its end."""
        cut = cut_middle("a" * 50 + "b" * 10_000 + "c" * 50, 5, 5, 10_000)
        assert cut.startswith("a" * 50)
        assert cut.endswith("c" * 50)
        assert "chars cut] …" in cut
        assert len(cut) < 400

    def test_fewer_lines_while_over_the_character_budget(self) -> None:
        """Wide lines shrink the head and tail until the whole fits the budget."""
        text = "\n".join("x" * 200 for _ in range(50))
        cut = cut_middle(text, 10, 10, 1000)
        assert len(cut) <= 1000
        assert "lines cut] …" in cut

    def test_head_only(self) -> None:
        """A new file keeps its first lines, the rest counted."""
        assert cut_head("1\n2\n3\n4", 2, 100) == "1\n2\n… [2 lines cut] …"
        assert cut_head("1\n2", 2, 100) == "1\n2"


class TestDiffs:
    def test_edit_from_the_tools_patch(self) -> None:
        """An Edit's structuredPatch gives a diff with real line numbers and three lines of
        context either side."""
        payload = sample("PostToolUse.Edit")
        diff = edit_diff(payload)
        lines = diff.splitlines()
        assert lines[0] == "@@ -11,7 +11,7 @@"
        assert sum(1 for line in lines if line.startswith(" ")) == 6
        assert "-    return [base_delay * 2**i for i in range(attempts)]" in lines
        record = extract_observation(payload)
        assert record.excerpt == diff
        assert "1 line added, 1 removed" in record.facts

    def test_context_is_trimmed_to_three_lines(self) -> None:
        """A patch with wide context is cut to three lines around the change, and its
        header renumbered."""
        body = [f" c{i}" for i in range(10)] + ["-old", "+new"] + [f" d{i}" for i in range(10)]
        patch = [{"oldStart": 1, "oldLines": 21, "newStart": 1, "newLines": 21, "lines": body}]
        diff = edit_diff(call("Edit", {"file_path": "a.py"}, {"structuredPatch": patch}))
        assert diff.splitlines() == [
            "@@ -8,7 +8,7 @@", " c7", " c8", " c9", "-old", "+new", " d0", " d1", " d2",
        ]  # fmt: skip

    def test_edit_from_its_strings(self) -> None:
        """Without a patch, the old and new strings make the diff (hunks headed by a bare
        @@: a snippet has no line numbers)."""
        diff = edit_diff(edit("a.py", "x = 1\ny = 2\n", "x = 1\ny = 3\n"))
        assert diff == "@@\n x = 1\n-y = 2\n+y = 3"

    def test_multi_edit_diffs_each_edit(self) -> None:
        """Every edit of a MultiEdit is a hunk."""
        edits = [
            {"old_string": "a", "new_string": "b"},
            {"old_string": "c", "new_string": "d"},
            {"old_string": "same", "new_string": "same"},
        ]
        diff = edit_diff(call("MultiEdit", {"file_path": f"{CWD}/a.py", "edits": edits}))
        assert diff == "@@\n-a\n+b\n@@\n-c\n+d"

    def test_write_of_an_existing_file(self) -> None:
        """Rewriting a file whose old content the payload gives is a diff, not the file."""
        old = "".join(f"line {i}\n" for i in range(100))
        new = old.replace("line 50\n", "line fifty\n")
        payload = call(
            "Write",
            {"file_path": f"{CWD}/a.txt", "content": new},
            {"type": "update", "filePath": f"{CWD}/a.txt", "originalFile": old},
        )
        lines = edit_diff(payload).splitlines()
        assert lines[0] == "@@ -48,7 +48,7 @@"
        assert "-line 50" in lines
        assert "+line fifty" in lines
        assert len(lines) == 9
        record = extract_observation(payload)
        assert record.title == "Wrote a.txt"
        assert "1 line added, 1 removed" in record.facts

    def test_new_file_is_its_head(self) -> None:
        """A new file is stored as its first lines, the cut marked."""
        content = "".join(f"line {i}\n" for i in range(500))
        payload = call(
            "Write", {"file_path": f"{CWD}/big.txt", "content": content}, {"type": "create"}
        )
        lines = extract_observation(payload).excerpt.splitlines()
        assert lines[:2] == ["line 0", "line 1"]
        assert lines[-1] == f"… [{500 - EXTRACT_NEW_FILE_LINES} lines cut] …"
        assert len(lines) == EXTRACT_NEW_FILE_LINES + 1

    def test_long_diffs_keep_head_and_tail(self) -> None:
        """A huge rewrite is cut to the diff budget, its start and end kept."""
        old = "".join(f"old {i}\n" for i in range(1000))
        new = "".join(f"new {i}\n" for i in range(1000))
        diff = edit_diff(edit("a.py", old, new))
        lines = diff.splitlines()
        assert len(lines) <= EXTRACT_DIFF_LINES + 1
        assert len(diff) <= EXTRACT_DIFF_CHARS
        assert lines[1] == "-old 0"
        assert lines[-1] == "+new 999"
        assert any("lines cut] …" in line for line in lines)

    def test_notebook_cell(self) -> None:
        """A notebook edit keeps the cell's new source."""
        payload = call(
            "NotebookEdit", {"notebook_path": f"{CWD}/nb.ipynb", "new_source": "print(1)"}
        )
        assert edit_diff(payload) == "print(1)"

    @pytest.mark.parametrize(
        "payload",
        [
            call("Bash", {"command": "ls"}),
            failed("Edit", {"file_path": "a.py", "old_string": "a", "new_string": "b"}, "nope"),
            call("Edit", {"file_path": "a.py"}, {"structuredPatch": "junk"}),
            call("Edit", {"file_path": "a.py"}, {"structuredPatch": [{"lines": 3}]}),
        ],
    )
    def test_nothing_to_diff(self, payload: dict[str, Any]) -> None:
        """Other tools, failed edits and edits that say too little have no diff."""
        assert edit_diff(payload) == ""

    def test_a_failed_edit_keeps_its_error(self) -> None:
        """What a failed edit was meant to change is not stored: its error is."""
        payload = failed("Edit", {"file_path": "a.py", "old_string": "a"}, "String not found")
        assert extract_observation(payload).excerpt == "String not found"


class TestBugfix:
    def test_a_failing_command_that_passes_after_edits(self) -> None:
        """Fail, edit, pass: the passing run is a bugfix naming the edits."""
        context = turn(bash("make check", exit_code=2), edit("src/a.py"), edit("src/b.py"))
        record = after(context, bash("make check"))
        assert record.kind is ObservationKind.BUGFIX
        assert record.title == "Fixed `make check`: passes after edits to src/a.py and 1 more"
        assert "failed earlier in the turn (exit 2)" in record.facts
        assert "fixed by edits to src/a.py, src/b.py" in record.facts
        assert record.command == "make check"
        assert record.exit_code == 0

    def test_the_failure_as_a_failed_call(self) -> None:
        """A PostToolUseFailure's exit code counts as the failure."""
        context = turn(
            failed("Bash", {"command": "pytest -q"}, "Exit code 1\nFAILED t.py::x"),
            edit("a.py"),
        )
        assert after(context, bash("pytest -q")).kind is ObservationKind.BUGFIX

    @pytest.mark.parametrize(
        ("first", "then"),
        [
            ("pytest tests/test_a.py::test_x", "pytest -q"),
            ("pytest tests/test_a.py", "pytest tests"),
            ("uv run pytest tests/unit/test_a.py -x", "uv run pytest tests/unit"),
            (".venv/bin/python -m pytest tests/a.py", ".venv/bin/python -m pytest"),
            ("npm test", "npm test -- --silent"),
            ("go test ./pkg/retry", "go test ./pkg/retry"),
        ],
    )
    def test_the_same_runner_over_a_wider_selection(self, first: str, then: str) -> None:
        """A test run that covers the failing one counts as passing it."""
        context = turn(bash(first, exit_code=1), edit("a.py"))
        assert after(context, bash(then)).kind is ObservationKind.BUGFIX

    @pytest.mark.parametrize(
        ("first", "then"),
        [
            ("pytest tests/test_a.py", "pytest tests/test_b.py"),
            ("pytest -k retry", "pytest tests/unit"),
            ("pytest -q", "cargo test"),
            ("make build", "make check"),
            ("pytest -q && ruff check", "pytest -q"),
        ],
    )
    def test_another_check_is_not_a_fix(self, first: str, then: str) -> None:
        """A pass of something else proves nothing about the failure."""
        context = turn(bash(first, exit_code=1), edit("a.py"))
        assert after(context, bash(then)).kind is ObservationKind.COMMAND

    def test_no_edit_no_fix(self) -> None:
        """A flaky command that passes on a rerun fixed nothing."""
        context = turn(bash("pytest -q", exit_code=1), read("a.py"))
        assert after(context, bash("pytest -q")).kind is ObservationKind.COMMAND

    def test_only_the_first_pass_is_the_fix(self) -> None:
        """Once it passed, later passes are plain runs."""
        context = turn(bash("pytest -q", exit_code=1), edit("a.py"), bash("pytest -q"))
        assert context.observations[-1].kind is ObservationKind.BUGFIX
        assert after(context, bash("pytest -q")).kind is ObservationKind.COMMAND

    def test_a_failed_edit_is_no_edit(self) -> None:
        """An edit that failed changed nothing."""
        context = turn(
            bash("pytest -q", exit_code=1),
            failed("Edit", {"file_path": f"{CWD}/a.py"}, "String to replace not found"),
        )
        assert after(context, bash("pytest -q")).kind is ObservationKind.COMMAND

    def test_the_previous_turn_does_not_count(self) -> None:
        """Evidence comes from the turn: a failure before the last prompt is not in it."""
        earlier = turn(bash("pytest -q", exit_code=1), edit("a.py"))
        context = SessionContext(
            SESSION,
            None,
            prompts=(*earlier.prompts, prompt_record(50, "go on")),
            observations=earlier.observations,
        )
        assert after(context, bash("pytest -q")).kind is ObservationKind.COMMAND

    def test_still_failing_is_not_a_fix(self) -> None:
        """A run that fails again is a command."""
        context = turn(bash("pytest -q", exit_code=1), edit("a.py"))
        assert after(context, bash("pytest -q", exit_code=1)).kind is ObservationKind.COMMAND

    def test_without_context_the_tools_kind(self) -> None:
        """Without its turn a call keeps its tool's kind."""
        assert extract_observation(bash("pytest -q")).kind is ObservationKind.COMMAND


class TestRefactorFeatureDecision:
    def test_a_rename_of_a_name_everywhere(self) -> None:
        """replace_all of one identifier by another is a refactor."""
        payload = call(
            "Edit",
            {
                "file_path": f"{CWD}/src/a.py",
                "old_string": "retry_policy",
                "new_string": "backoff_delays",
                "replace_all": True,
            },
        )
        record = extract_observation(payload)
        assert record.kind is ObservationKind.REFACTOR
        assert record.title == "Renamed retry_policy to backoff_delays in src/a.py"

    @pytest.mark.parametrize(
        "tool_input",
        [
            {"old_string": "retry_policy", "new_string": "backoff_delays"},  # one place only
            {"old_string": "x = 1", "new_string": "x = 2", "replace_all": True},
            {"old_string": "name", "new_string": "name", "replace_all": True},
        ],
    )
    def test_other_edits_are_changes(self, tool_input: dict[str, Any]) -> None:
        """Anything else an Edit does stays a change."""
        record = extract_observation(call("Edit", {"file_path": f"{CWD}/a.py", **tool_input}))
        assert record.kind is ObservationKind.CHANGE

    def test_a_move(self) -> None:
        """A lone ``git mv`` / ``mv`` that succeeded is a refactor naming both paths."""
        record = extract_observation(bash(f"git mv {CWD}/src/old.py src/new.py"))
        assert record.kind is ObservationKind.REFACTOR
        assert record.title == "Moved src/old.py to src/new.py"
        assert record.files_modified == ("src/old.py", "src/new.py")
        assert record.command == f"git mv {CWD}/src/old.py src/new.py"

    @pytest.mark.parametrize(
        "command", ["mv a b c/", "mv *.py src/", "mv a b && rm c", "mv -t dir a", "mvn test"]
    )
    def test_other_moves_are_commands(self, command: str) -> None:
        """Several paths, globs, chains and look-alikes stay commands."""
        assert extract_observation(bash(command)).kind is ObservationKind.COMMAND

    def test_a_failed_move_is_a_command(self) -> None:
        assert extract_observation(bash("mv a b", exit_code=1)).kind is ObservationKind.COMMAND

    def test_a_new_source_file_asked_for(self) -> None:
        """A new source file in a turn that asks for something new is a feature."""
        created = call(
            "Write", {"file_path": f"{CWD}/src/jitter.py", "content": "x = 1\n"}, {"type": "create"}
        )
        context = turn(prompt="Add jitter to the retry delays")
        assert after(context, created).kind is ObservationKind.FEATURE
        # Either alone is a change.
        assert after(turn(prompt="tidy up"), created).kind is ObservationKind.CHANGE
        for path in ("tests/test_jitter.py", "notes.md", "src/jitter_test.go"):
            test_file = call(
                "Write", {"file_path": f"{CWD}/{path}", "content": "x"}, {"type": "create"}
            )
            assert after(context, test_file).kind is ObservationKind.CHANGE
        rewrite = call(
            "Write", {"file_path": f"{CWD}/src/j.py", "content": "x"}, {"type": "update"}
        )
        assert after(context, rewrite).kind is ObservationKind.CHANGE

    def test_an_approved_plan_is_a_decision(self) -> None:
        """ExitPlanMode states the plan the user approved."""
        plan = "# Move retries into the client\n\n1. Add a RetryPolicy\n2. Use it"
        record = extract_observation(call("ExitPlanMode", {"plan": plan}))
        assert record.kind is ObservationKind.DECISION
        assert record.title == "Plan approved: Move retries into the client"
        assert "1. Add a RetryPolicy" in record.excerpt
        rejected = extract_observation(failed("ExitPlanMode", {"plan": plan}, "User rejected"))
        assert rejected.kind is ObservationKind.OTHER
        assert rejected.title == "Plan not approved: Move retries into the client"

    def test_an_answered_question_is_a_decision(self) -> None:
        """The user's answer to AskUserQuestion is a decision; an unanswered one is not."""
        question = "Which database should the cache use?"
        tool_input = {"questions": [{"question": question, "options": [{"label": "SQLite"}]}]}
        record = extract_observation(
            call("AskUserQuestion", tool_input, {"answers": {question: "SQLite"}})
        )
        assert record.kind is ObservationKind.DECISION
        assert record.title == "Decided: SQLite"
        assert record.subtitle == question
        assert f"{question} -> SQLite" in record.facts
        unanswered = extract_observation(call("AskUserQuestion", tool_input))
        assert unanswered.kind is ObservationKind.OTHER
        assert unanswered.title == f"Asked: {question}"


class TestNoise:
    @pytest.mark.parametrize(
        "command",
        ["pwd", "cd src", "cd", "ls", "ls -la", "echo", "echo ''", "true", "cd src && pwd; ls -1"],
    )
    def test_no_op_commands(self, command: str) -> None:
        """Commands that change and show nothing worth keeping make no observation."""
        assert is_noise(turn(), bash(command, "src\n")) is Noise.NO_OP_COMMAND

    @pytest.mark.parametrize(
        "command",
        [
            "ls src",  # a listing of somewhere: a discovery
            "echo hi",
            "echo '' > out.txt",
            "cd build && make",
            "pwd | tee where.txt",
            "ls $(cat dirs)",
            "git status --ignored",
        ],
    )
    def test_commands_that_may_do_something_are_kept(self, command: str) -> None:
        assert is_noise(turn(), bash(command)) is None

    def test_a_failing_no_op_is_kept(self) -> None:
        """``cd missing`` failing says something."""
        assert is_noise(turn(), bash("cd missing", exit_code=1)) is None
        payload = failed("Bash", {"command": "cd missing"}, "Exit code 1\nno such directory")
        assert is_noise(turn(), payload) is None

    def test_git_status_of_a_clean_tree(self) -> None:
        """A clean ``git status`` is noise; one that lists changes is kept."""
        clean = "On branch main\nnothing to commit, working tree clean"
        assert is_noise(turn(), bash("git status", clean)) is Noise.NO_OP_COMMAND
        assert is_noise(turn(), bash("git status -s", "")) is Noise.NO_OP_COMMAND
        assert is_noise(turn(), bash("git status -s", " M a.py")) is None
        dirty = "On branch main\nChanges not staged for commit:\n\tmodified:   a.py"
        assert is_noise(turn(), bash("git status", dirty)) is None

    def test_a_repeated_read(self) -> None:
        """The same file, range and content read again with nothing between is noise."""
        context = turn(read("a.py"), bash("pytest -q"), read("b.py"))
        assert is_noise(context, read("a.py")) is Noise.REPEATED_READ

    @pytest.mark.parametrize(
        "between",
        [
            edit("a.py"),
            bash("sed -i s/a/b/ a.py"),
            bash("pytest --snapshot-update"),
            call("Write", {"file_path": f"{CWD}/a.py", "content": "x"}),
        ],
    )
    def test_a_read_after_a_change_is_kept(self, between: dict[str, Any]) -> None:
        """An edit of the file, or a command that may write, makes the next read new."""
        assert is_noise(turn(read("a.py"), between), read("a.py")) is None

    def test_an_edit_of_another_file_does_not_matter(self) -> None:
        assert is_noise(turn(read("a.py"), edit("b.py")), read("a.py")) is Noise.REPEATED_READ

    def test_other_reads_are_kept(self) -> None:
        """Another range, other content, or a read in another turn is new."""
        context = turn(read("a.py", offset=1, limit=50))
        assert is_noise(context, read("a.py", offset=51, limit=50)) is None
        assert is_noise(turn(read("a.py", "old")), read("a.py", "new")) is None
        moved_on = SessionContext(
            SESSION, None, prompts=(prompt_record(60),), observations=context.observations
        )
        assert is_noise(moved_on, read("a.py", offset=1, limit=50)) is None

    def test_a_repeated_search(self) -> None:
        """The same search with the same result is noise until something is edited."""
        grep = call("Grep", {"pattern": "retry"}, {"filenames": ["a.py"], "numFiles": 1})
        assert is_noise(turn(grep), grep) is Noise.REPEATED_READ
        assert is_noise(turn(grep, edit("z.py")), grep) is None

    def test_memqs_own_tools(self) -> None:
        """memq's MCP tools read memory: recording that would be memory of memory."""
        payload = call("mcp__memq__search", {"query": "retry"}, [{"type": "text", "text": "#1"}])
        assert is_noise(turn(), payload) is Noise.OWN_TOOL
        assert is_noise(turn(), call("mcp__github__search", {"q": "x"})) is None

    async def test_the_processor_returns_nothing_for_noise(self) -> None:
        """Noise gives an empty result (the message is still acked and recorded)."""
        message = Message(
            id=100, session_id=SESSION, kind=MessageKind.OBSERVATION, payload=bash("pwd"),
            dedupe_key=None, attempts=1, created_at=WHEN,
        )  # fmt: skip
        assert await ExtractProcessor().process(message, turn()) == ProcessResult()


class TestTurn:
    def test_the_turn_is_after_the_last_prompt_and_before_the_message(self) -> None:
        """Observations of the message's turn: after its last prompt, before itself."""
        observations = tuple(
            ObservationRecord(kind=ObservationKind.OTHER, title=str(i), message_id=i)
            for i in (2, 4, 6, 8)
        )
        context = SessionContext(
            SESSION,
            None,
            prompts=(prompt_record(1, "first"), prompt_record(3, "second"), prompt_record(7, "x")),
            observations=observations,
        )
        found = turn_of(context, message_id=6)
        assert found.prompt == "second"
        assert [o.title for o in found.observations] == ["4"]
        assert [o.title for o in turn_of(context).observations] == ["8"]
        assert turn_of(None).observations == ()


class TestNextSteps:
    @pytest.mark.parametrize(
        ("reply", "steps"),
        [
            (
                "Done.\n\nNext steps:\n- run the migration\n- update docs",
                "run the migration\nupdate docs",
            ),
            ("Done.\n\n## Next steps\n\n1. Deploy\n2. Watch the logs", "Deploy\nWatch the logs"),
            ("Fixed it.\n**Remaining:**\n* the Windows path", "the Windows path"),
            ("Fixed it.\nTODO: handle timeouts", "handle timeouts"),
            ("Fixed it. The next step is to add a test for the retry.", "add a test for the retry"),
            ("Follow-ups:\n- [ ] rename the module", "rename the module"),
        ],
    )
    def test_stated_steps(self, reply: str, steps: str) -> None:
        """A list or line under a next-steps heading or label, or such a sentence."""
        assert next_steps(reply)[0] == steps

    @pytest.mark.parametrize(
        "reply",
        [
            "All done. Remaining tests pass.",
            "Remaining work is nil, everything passes.",
            "Next steps",
            "",
            "Fixed the todo list rendering.",
        ],
    )
    def test_no_steps_stated(self, reply: str) -> None:
        """Nothing is made up: without a stated step, next steps stay empty."""
        assert next_steps(reply) == ("", reply)

    def test_completed_is_the_reply_without_its_steps(self) -> None:
        reply = "Fixed the retry.\n\nNext steps:\n- add a test\n\nThanks!"
        record = summarize({"last_assistant_message": reply}, SessionContext(SESSION, None))
        assert record.completed == "Fixed the retry.\n\nThanks!"
        assert record.next_steps == "add a test"
        assert record.learned == ""


class TestSummaryOfATurn:
    def test_fields_from_the_turn(self) -> None:
        """Investigated lists reads and searches; failures and commands are notes; left-out
        calls are counted; empty fields stay empty."""
        context = turn(
            read("a.py"),
            call("Grep", {"pattern": "retry"}, {"numFiles": 2}),
            bash("pytest -q", exit_code=1),
            edit("a.py"),
            bash("pytest -q"),
        )
        context = SessionContext(
            SESSION, None, prompts=context.prompts, observations=context.observations, left_out=3
        )
        record = summarize({}, context)
        assert record.investigated == "Read a.py\nSearched for 'retry'"
        assert record.completed == "Edited a.py\nFixed `pytest -q`: passes after edits to a.py"
        assert record.next_steps == ""
        assert record.notes.splitlines() == [
            "$ pytest -q (exit 1)",
            "$ pytest -q (exit 0)",
            "3 tool calls not recorded (repeated reads, no-op commands)",
        ]


class TestRealisticPayloads:
    def test_a_failing_test_run(self) -> None:
        """A failing pytest run: its telling line is the fact, and the excerpt keeps the
        start and the verdict at the end, the middle cut."""
        record = extract_observation(sample("PostToolUseFailure.pytest"))
        assert record.title == "Ran `pytest -q tests/test_retry.py` (exit 1)"
        assert record.facts[0] == "failed: tests/test_retry.py:14: AssertionError"
        lines = record.excerpt.splitlines()
        assert lines[0] == "Exit code 1"
        assert any(line.endswith("lines cut] …") for line in lines)
        assert "FAILED tests/test_retry.py::test_delays_between" in record.excerpt
        assert lines[-1].startswith("===")
        assert "1 failed, 3 passed" in lines[-1]

    def test_a_read_of_a_whole_file(self) -> None:
        """A Read keeps the file's head and tail, not the whole file."""
        payload = sample("PostToolUse.Read")
        record = extract_observation(payload)
        content = payload["tool_response"]["file"]["content"]
        assert record.title == "Read src/retry.py"
        assert record.excerpt.splitlines()[0] == content.splitlines()[0]
        assert record.excerpt.splitlines()[-1] == content.splitlines()[-1]
        assert len(record.excerpt) < len(content)

    @pytest.mark.parametrize(
        "payload",
        [
            {},
            {"tool_name": "Bash", "tool_input": {"command": "mv"}},
            {"tool_name": "Bash", "tool_input": {"command": "mv 'a"}},
            {"tool_name": "Bash", "tool_input": {"command": "pytest '"}},
            {"tool_name": "Edit", "tool_input": {"edits": [{"replace_all": True}, None]}},
            {"tool_name": "Write", "tool_response": {"type": "create", "structuredPatch": [None]}},
            {"tool_name": "ExitPlanMode", "tool_input": {"plan": 3}},
            {"tool_name": "AskUserQuestion", "tool_response": {"answers": {"q": 5, "r": ""}}},
            {"tool_name": "Read", "tool_response": {"file": {"content": "x" * 100_000}}},
        ],
    )
    def test_odd_payloads_in_a_turn(self, payload: dict[str, Any]) -> None:
        """With a turn to weigh them against, odd payloads still make a plain record."""
        context = turn(bash("pytest -q", exit_code=1), edit("a.py"), read("a.py"))
        record = after(context, payload)
        assert record.title
        assert len(record.excerpt) < 5000
        noise_reason(record, context, message_id=100)
