"""What the model-based processors ask and accept: prompts built from payloads and context,
answers checked field by field, and the retry delay read from an answer's headers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from memq.exceptions import InvalidInputError, InvalidOutputError
from memq.memory.records import (
    ObservationKind,
    ObservationRecord,
    PromptRecord,
    SessionContext,
)
from memq.processors.llm import retry_after
from memq.processors.llm.prompts import (
    CONTEXT_OBSERVATIONS,
    FACTS,
    OBSERVATION_BUDGET,
    RAW_CHARS,
    SUMMARY_BUDGET,
    TITLE_CHARS,
    fit_json,
    observation_prompt,
    parse_observation,
    parse_summary,
    summary_prompt,
    trim_json,
)
from tests.helpers.memory import sample

CWD = "/home/dev/project"
WHEN = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def answer(**fields: Any) -> str:
    """A model's answer: a valid observation with ``fields`` changed (None removes one)."""
    record: dict[str, Any] = {
        "kind": "command",
        "title": "Wrote a greeting to out.txt",
        "subtitle": "shell redirect",
        "narrative": "The assistant wrote hello into out.txt.",
        "facts": ["out.txt holds hello"],
        "concepts": ["shell"],
        "files_read": [],
        "files_modified": ["out.txt"],
    }
    record.update(fields)
    return json.dumps({k: v for k, v in record.items() if v is not None})


def summary_answer(**fields: Any) -> str:
    record: dict[str, Any] = {
        "request": "Write a greeting file",
        "investigated": "",
        "learned": "The shell redirect creates the file",
        "completed": "Wrote out.txt",
        "next_steps": "",
        "files_read": [],
        "files_edited": ["out.txt"],
        "notes": "",
    }
    record.update(fields)
    return json.dumps({k: v for k, v in record.items() if v is not None})


def prompt(number: int, text: str) -> PromptRecord:
    return PromptRecord(
        number=number,
        text=text,
        id=number,
        message_id=number,
        session_key="claude-code:s1",
        created_at=WHEN,
    )


def observation(title: str, **fields: Any) -> ObservationRecord:
    return ObservationRecord(kind=fields.pop("kind", ObservationKind.CHANGE), title=title, **fields)


def prompt_json(user: str) -> Any:
    """The JSON document inside a prompt's user text."""
    start, end = user.index("{"), user.rindex("}")
    return json.loads(user[start : end + 1])


class TestObservationPrompt:
    def test_shows_the_tool_call(self) -> None:
        """The prompt holds the tool's name, input, result and working directory."""
        built = observation_prompt(sample("PostToolUse.Bash"))
        event = prompt_json(built.user)
        assert event["tool_name"] == "Bash"
        assert event["tool_input"]["command"] == "echo hello > out.txt"
        assert event["cwd"] == CWD
        assert "tool_response" in event

    def test_leaves_out_bookkeeping(self) -> None:
        """Session ids, transcript paths and permission modes are not the model's business."""
        user = observation_prompt(sample("PostToolUse.Bash")).user
        for noise in ("transcript_path", "session_id", "c2c6f4bc", "permission_mode", "toolu_"):
            assert noise not in user

    def test_failure_shows_the_error(self) -> None:
        """A failed call's error text reaches the model."""
        event = prompt_json(observation_prompt(sample("PostToolUseFailure")).user)
        assert event["error"] == "Exit code 3\nfailing"
        assert event["hook_event_name"] == "PostToolUseFailure"

    def test_long_strings_are_cut_and_marked(self) -> None:
        """A 200 KB file content is cut, the cut is said, and the prompt stays in budget."""
        payload = sample("PostToolUse.Write")
        payload["tool_input"]["content"] = "x" * 200_000
        user = observation_prompt(payload).user
        assert len(user) < OBSERVATION_BUDGET + 200
        assert "more characters]" in user
        assert prompt_json(user)["tool_input"]["file_path"] == f"{CWD}/notes.txt"

    def test_long_lists_are_cut_and_marked(self) -> None:
        """A list of 500 items keeps its first ones and says how many were left out."""
        payload = sample(
            "PostToolUse.Bash", tool_response={"filenames": [f"f{i}" for i in range(500)]}
        )
        filenames = prompt_json(observation_prompt(payload).user)["tool_response"]["filenames"]
        assert filenames[0] == "f0"
        assert filenames[-1].endswith("more items]")
        assert len(filenames) < 100

    def test_huge_payload_stays_in_budget(self) -> None:
        """Many large fields together still fit: caps tighten, and the text is cut last."""
        payload = sample("PostToolUse.Bash")
        payload["tool_response"] = {f"k{i}": ["y" * 5000] * 40 for i in range(60)}
        assert len(observation_prompt(payload).user) < OBSERVATION_BUDGET + 200

    def test_non_object_payload_is_refused(self) -> None:
        """An observation payload that is not an object has no tool call to describe."""
        with pytest.raises(InvalidInputError, match="must be a JSON object, not list"):
            observation_prompt([1, 2])

    def test_every_kind_is_offered(self) -> None:
        """The instructions name every ObservationKind, so a new kind is not forgotten."""
        system = observation_prompt(sample("PostToolUse.Bash")).system
        for kind in ObservationKind:
            assert f'"{kind.value}"' in system

    def test_asks_for_every_record_field(self) -> None:
        """The instructions name every field the parser reads."""
        system = observation_prompt(sample("PostToolUse.Bash")).system
        for name in ("kind", "title", "subtitle", "narrative", "facts", "concepts"):
            assert f'"{name}"' in system
        assert '"files_read"' in system
        assert '"files_modified"' in system


class TestSummaryPrompt:
    def test_includes_the_context(self) -> None:
        """Prompts, observations (with commands and exit codes) and the Stop payload are shown."""
        context = SessionContext(
            "claude-code:s1",
            "project",
            prompts=(prompt(1, "Add a greeting file"),),
            observations=(
                observation(
                    "Ran `pytest`", kind=ObservationKind.COMMAND, command="pytest", exit_code=1
                ),
                observation("Edited app.py", files_modified=("app.py",)),
            ),
        )
        document = prompt_json(summary_prompt(sample("Stop"), context).user)
        assert document["project"] == "project"
        assert document["prompts"] == [{"number": 1, "text": "Add a greeting file"}]
        first, second = document["records"]
        assert first == {
            "kind": "command",
            "title": "Ran `pytest`",
            "command": "pytest",
            "exit_code": 1,
        }
        assert second["files_modified"] == ["app.py"]
        assert document["stop"]["last_assistant_message"].startswith("Done.")
        assert "transcript_path" not in document["stop"]

    def test_keeps_the_latest_observations(self) -> None:
        """A long stretch shows its last observations and says how many came before."""
        many = tuple(observation(f"step {i}") for i in range(CONTEXT_OBSERVATIONS + 5))
        document = prompt_json(
            summary_prompt(sample("Stop"), SessionContext("k", None, observations=many)).user
        )
        assert document["earlier_records_left_out"] == 5
        assert document["records"][0]["title"] == "step 5"
        assert document["records"][-1]["title"] == f"step {CONTEXT_OBSERVATIONS + 4}"

    def test_says_what_the_history_left_out(self) -> None:
        """A context cut by the store's history tells the model how many earlier entries of
        the stretch it is not shown; a whole one says nothing of the kind."""
        cut = SessionContext("k", None, prompts=(prompt(4, "go on"),), omitted=7)
        made = summary_prompt(sample("Stop"), cut)
        assert prompt_json(made.user)["earlier_entries_left_out"] == 7
        assert '"earlier_entries_left_out"' in made.system
        whole = prompt_json(summary_prompt(sample("Stop"), SessionContext("k", None)).user)
        assert "earlier_entries_left_out" not in whole

    def test_long_prompts_are_cut(self) -> None:
        """A pasted 300 KB prompt does not blow the budget."""
        context = SessionContext("k", None, prompts=(prompt(1, "p" * 300_000),))
        user = summary_prompt(sample("Stop"), context).user
        assert len(user) < SUMMARY_BUDGET + 200
        assert "more characters]" in user

    def test_shows_fewer_records_when_they_do_not_fit(self) -> None:
        """Records too big for the budget even when cut are dropped oldest first, and the
        Stop payload always stays."""
        fat = tuple(
            observation(f"step {i}", facts=tuple("f" * 400 for _ in range(8)))
            for i in range(CONTEXT_OBSERVATIONS)
        )
        user = summary_prompt(sample("Stop"), SessionContext("k", None, observations=fat)).user
        document = prompt_json(user)
        assert len(user) < SUMMARY_BUDGET + 200
        assert document["records"][-1]["title"] == f"step {CONTEXT_OBSERVATIONS - 1}"
        assert document["earlier_records_left_out"] > 0
        assert document["stop"]["last_assistant_message"].startswith("Done.")

    def test_odd_payload_gives_an_empty_stop(self) -> None:
        """A Stop payload that is not an object is no reason to fail the summary."""
        document = prompt_json(summary_prompt("odd", SessionContext("k", None)).user)
        assert document["stop"] == {}


class TestTrimming:
    def test_trim_json_caps_depth_keys_and_strings(self) -> None:
        """Strings, objects, lists and nesting are all bounded, with markers."""
        deep: Any = "leaf"
        for _ in range(20):
            deep = [deep]
        value = {"s": "abcdef", "many": {str(i): i for i in range(100)}, "deep": deep}
        trimmed = trim_json(value, text_chars=3, object_keys=10, depth=5)
        assert trimmed["s"] == "abc[… 3 more characters]"
        assert len(trimmed["many"]) == 11
        assert trimmed["many"]["…"] == "90 more keys"
        assert "nested too deep" in json.dumps(trimmed["deep"])

    def test_fit_json_keeps_small_values_whole(self) -> None:
        """A value under budget is shown as is."""
        assert json.loads(fit_json({"a": "b" * 100}, 1000)) == {"a": "b" * 100}


class TestParseObservation:
    def test_valid_answer(self) -> None:
        """The model's descriptive fields become the record."""
        record = parse_observation(answer(), sample("PostToolUse.Bash"))
        assert record.kind is ObservationKind.COMMAND
        assert record.title == "Wrote a greeting to out.txt"
        assert record.subtitle == "shell redirect"
        assert record.narrative == "The assistant wrote hello into out.txt."
        assert record.facts == ("out.txt holds hello",)
        assert record.concepts == ("shell",)
        assert record.files_modified == ("out.txt",)

    def test_facts_from_the_payload_win(self) -> None:
        """Tool name, command and exit code come from the payload, whatever the model says."""
        text = answer(tool_name="Evil", command="rm -rf /", exit_code=99, excerpt="lies")
        record = parse_observation(text, sample("PostToolUseFailure"))
        assert record.tool_name == "Bash"
        assert record.command == "echo failing >&2; exit 3"
        assert record.exit_code == 3
        assert "failing" in record.excerpt

    @pytest.mark.parametrize(
        "wrapped",
        [
            "```json\n{body}\n```",
            "```\n{body}\n```",
            "  \n```JSON\n{body}```\n",
            "\n{body}\n",
        ],
    )
    def test_fence_is_tolerated(self, wrapped: str) -> None:
        """A Markdown code fence (with or without a language) around the object is fine."""
        record = parse_observation(wrapped.format(body=answer()), sample("PostToolUse.Bash"))
        assert record.title == "Wrote a greeting to out.txt"

    def test_prose_around_the_object_is_refused(self) -> None:
        """Only a fence is tolerated: chatter around the JSON means the model did not follow."""
        text = f"Here is the record:\n```json\n{answer()}\n```"
        with pytest.raises(InvalidOutputError, match=r"not JSON.*Here is the record"):
            parse_observation(text, sample("PostToolUse.Bash"))

    def test_not_json_carries_the_raw_text(self) -> None:
        """Text that is not JSON is refused, and the error shows what the model said."""
        with pytest.raises(InvalidOutputError) as caught:
            parse_observation("The assistant ran echo.", sample("PostToolUse.Bash"))
        assert "not JSON" in str(caught.value)
        assert "The assistant ran echo." in str(caught.value)

    def test_raw_text_is_trimmed(self) -> None:
        """A huge wrong answer is quoted only in part."""
        with pytest.raises(InvalidOutputError) as caught:
            parse_observation("nope " * 10_000, sample("PostToolUse.Bash"))
        assert len(str(caught.value)) < RAW_CHARS + 300
        assert "more characters]" in str(caught.value)

    @pytest.mark.parametrize("text", ["[1, 2]", '"a record"', "null", "3"])
    def test_json_that_is_not_an_object_is_refused(self, text: str) -> None:
        """Only a JSON object can be a record."""
        with pytest.raises(InvalidOutputError, match="not an object"):
            parse_observation(text, sample("PostToolUse.Bash"))

    def test_unknown_kind_is_refused(self) -> None:
        """A kind outside ObservationKind is refused, naming the allowed ones."""
        with pytest.raises(
            InvalidOutputError, match=r"'kind' is 'investigation', not one of change"
        ):
            parse_observation(answer(kind="investigation"), sample("PostToolUse.Bash"))

    def test_kind_ignores_case_and_spaces(self) -> None:
        """ " Bugfix " is the bugfix kind."""
        record = parse_observation(answer(kind=" Bugfix "), sample("PostToolUse.Bash"))
        assert record.kind is ObservationKind.BUGFIX

    @pytest.mark.parametrize(
        ("field", "value", "message"),
        [
            ("kind", 3, "'kind' must be a string, not number"),
            ("title", 42, "'title' must be a string, not number"),
            ("title", ["a"], "'title' must be a string, not array"),
            ("narrative", {"a": 1}, "'narrative' must be a string, not object"),
            ("facts", "one fact", "'facts' must be a list of strings, not string"),
            ("facts", ["ok", 7], "'facts' must hold only strings, not number"),
            ("concepts", [None], "'concepts' must hold only strings, not null"),
            ("files_modified", [True], "'files_modified' must hold only strings, not boolean"),
        ],
    )
    def test_wrong_types_are_refused(self, field: str, value: Any, message: str) -> None:
        """Each field holds its own type and nothing else."""
        with pytest.raises(InvalidOutputError, match=message):
            parse_observation(answer(**{field: value}), sample("PostToolUse.Bash"))

    @pytest.mark.parametrize(("field", "message"), [("kind", "no 'kind'"), ("title", "no 'title'")])
    def test_missing_required_fields_are_refused(self, field: str, message: str) -> None:
        """An observation needs a kind and a title."""
        record = json.loads(answer())
        del record[field]
        with pytest.raises(InvalidOutputError, match=message):
            parse_observation(json.dumps(record), sample("PostToolUse.Bash"))

    @pytest.mark.parametrize("title", ["", "   \n ", None])
    def test_blank_title_is_refused(self, title: Any) -> None:
        """An empty (or null) title says nothing."""
        record = json.loads(answer())
        record["title"] = title
        with pytest.raises(InvalidOutputError, match="'title' must not be empty"):
            parse_observation(json.dumps(record), sample("PostToolUse.Bash"))

    def test_optional_fields_may_be_missing_or_null(self) -> None:
        """Only kind and title are needed; null counts as absent."""
        text = json.dumps(
            {"kind": "command", "title": "Ran echo", "facts": None, "narrative": None}
        )
        record = parse_observation(text, sample("PostToolUse.Bash"))
        assert (record.subtitle, record.narrative, record.facts, record.concepts) == (
            "",
            "",
            (),
            (),
        )

    def test_extra_fields_are_ignored(self) -> None:
        """Fields the record does not have are dropped, not refused."""
        record = parse_observation(
            answer(confidence=0.9, reasoning=["x"]), sample("PostToolUse.Bash")
        )
        assert record.title == "Wrote a greeting to out.txt"

    def test_lengths_are_capped(self) -> None:
        """Long values are clipped, long lists shortened, lines collapsed, duplicates dropped."""
        text = answer(
            title="Did\n  a   thing " + "t" * 1000,
            facts=[f"fact {i}" for i in range(50)] + ["fact 0"],
            narrative="n" * 10_000,
        )
        record = parse_observation(text, sample("PostToolUse.Bash"))
        assert len(record.title) == TITLE_CHARS
        assert record.title.startswith("Did a thing tt")
        assert record.title.endswith("…")
        assert record.facts == tuple(f"fact {i}" for i in range(FACTS))
        assert len(record.narrative) <= 2000

    def test_payload_files_are_kept_and_model_files_made_relative(self) -> None:
        """Files the payload names stay; the model's are added, relative to the cwd."""
        text = answer(
            files_modified=[f"{CWD}/extra.txt", "notes.txt"], files_read=[f"{CWD}/README"]
        )
        record = parse_observation(text, sample("PostToolUse.Write"))
        assert record.files_modified == ("notes.txt", "extra.txt")
        assert record.files_read == ("README",)
        missing = parse_observation(answer(files_modified=[]), sample("PostToolUse.Write"))
        assert missing.files_modified == ("notes.txt",)

    def test_failed_call_modified_nothing(self) -> None:
        """Whatever the model reads into a failed call, it changed no file."""
        record = parse_observation(answer(files_modified=["out.txt"]), sample("PostToolUseFailure"))
        assert record.files_modified == ()

    def test_non_object_payload_is_refused(self) -> None:
        """The payload is checked like the extract processor checks it."""
        with pytest.raises(InvalidInputError, match="must be a JSON object"):
            parse_observation(answer(), "not a payload")


class TestParseSummary:
    CONTEXT = SessionContext(
        "claude-code:s1",
        "project",
        observations=(
            observation("Read a.py", files_read=("a.py",), kind=ObservationKind.DISCOVERY),
            observation("Edited b.py", files_modified=("b.py",)),
        ),
    )

    def test_valid_answer(self) -> None:
        """The model's fields become the summary; files from the context are kept."""
        summary = parse_summary(f"```json\n{summary_answer()}\n```", self.CONTEXT)
        assert summary.request == "Write a greeting file"
        assert summary.learned == "The shell redirect creates the file"
        assert summary.completed == "Wrote out.txt"
        assert summary.files_read == ("a.py",)
        assert summary.files_edited == ("b.py", "out.txt")

    @pytest.mark.parametrize("field", ["request", "completed"])
    def test_missing_required_fields_are_refused(self, field: str) -> None:
        """A summary must say what was asked and what was done (even if only "")."""
        record = json.loads(summary_answer())
        del record[field]
        with pytest.raises(InvalidOutputError, match=f"no '{field}' field"):
            parse_summary(json.dumps(record), self.CONTEXT)

    def test_empty_required_text_is_accepted(self) -> None:
        """An empty string is an answer: nothing was completed."""
        assert parse_summary(summary_answer(completed=""), self.CONTEXT).completed == ""

    @pytest.mark.parametrize(
        ("field", "value"),
        [("request", ["a"]), ("learned", 1), ("files_edited", "b.py"), ("notes", {"a": 1})],
    )
    def test_wrong_types_are_refused(self, field: str, value: Any) -> None:
        """Texts are strings and file lists are lists of strings."""
        with pytest.raises(InvalidOutputError, match=f"'{field}' must"):
            parse_summary(summary_answer(**{field: value}), self.CONTEXT)

    def test_extra_fields_and_optional_gaps(self) -> None:
        """Unknown fields are ignored; absent optional ones are empty."""
        text = json.dumps({"request": "r", "completed": "c", "mood": "great"})
        summary = parse_summary(text, SessionContext("k", None))
        assert (summary.request, summary.completed, summary.learned, summary.notes) == (
            "r",
            "c",
            "",
            "",
        )

    def test_not_json_carries_the_raw_text(self) -> None:
        """A summary in prose is refused with the prose in the message."""
        with pytest.raises(InvalidOutputError, match="The user asked for a greeting"):
            parse_summary("The user asked for a greeting.", self.CONTEXT)


class TestRetryAfter:
    def test_seconds(self) -> None:
        """``retry-after: 7`` is seven seconds."""
        assert retry_after(httpx.Headers({"retry-after": "7"})) == 7.0

    def test_milliseconds_win(self) -> None:
        """``retry-after-ms`` is more precise and read first."""
        headers = httpx.Headers({"retry-after": "2", "retry-after-ms": "1500"})
        assert retry_after(headers) == 1.5

    def test_http_date(self) -> None:
        """An HTTP date is a delay from now."""
        headers = httpx.Headers({"retry-after": "Sat, 01 Mar 2025 12:00:30 GMT"})
        assert retry_after(headers, now=WHEN) == 30.0

    @pytest.mark.parametrize("value", ["", "soon", "-3", "nan", "inf"])
    def test_nonsense_is_no_delay(self, value: str) -> None:
        """A value that is no sensible delay is ignored."""
        assert retry_after(httpx.Headers({"retry-after": value})) is None

    def test_absent(self) -> None:
        """No header, no delay."""
        assert retry_after(httpx.Headers()) is None
