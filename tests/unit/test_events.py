from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memq import events
from memq.events import (
    check_json_values,
    normalize_session_key,
    parse_event_body,
    route_event,
)
from memq.exceptions import InvalidEventError, MalformedEventError
from memq.queue import MessageKind

FIXTURES = Path(__file__).parents[1] / "fixtures" / "claude-code"


def sample(name: str) -> dict[str, object]:
    data: dict[str, object] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


class TestRouting:
    @pytest.mark.parametrize(
        ("name", "kind"),
        [
            ("UserPromptSubmit", MessageKind.PROMPT),
            ("PostToolUse.Bash", MessageKind.OBSERVATION),
            ("PostToolUseFailure", MessageKind.OBSERVATION),
            ("Stop", MessageKind.SUMMARIZE),
            ("SessionEnd", MessageKind.SESSION_END),
            ("SessionStart", MessageKind.EVENT),
            ("PreToolUse.Bash", MessageKind.UNSUBSCRIBED),
            ("InstructionsLoaded", MessageKind.UNSUBSCRIBED),
        ],
    )
    def test_each_hook_event_becomes_its_kind(self, name: str, kind: MessageKind) -> None:
        """Tool results are observations, Stop summarizes, SessionStart is an event, and an
        event memq does not subscribe to is kept as unsubscribed."""
        route = route_event(sample(name))
        assert route.kind == kind.value
        assert route.session_key == f"claude-code:{sample(name)['session_id']}"

    def test_tool_results_dedupe_on_the_tool_use_id(self) -> None:
        """Success and failure of one tool call share a key; its PreToolUse has its own."""
        post = route_event(sample("PostToolUse.Bash"))
        pre = route_event(sample("PreToolUse.Bash"))
        assert post.dedupe_key == f"tool:{sample('PostToolUse.Bash')['tool_use_id']}"
        assert pre.dedupe_key == f"PreToolUse:{sample('PreToolUse.Bash')['tool_use_id']}"
        failure = {**sample("PostToolUse.Bash"), "hook_event_name": "PostToolUseFailure"}
        assert route_event(failure).dedupe_key == post.dedupe_key

    def test_prompts_dedupe_on_the_prompt_id_and_others_on_the_hooks_event_id(self) -> None:
        """A prompt is keyed by its prompt_id; an event the hook tagged by that tag."""
        prompt = sample("UserPromptSubmit")
        assert route_event(prompt).dedupe_key == f"prompt:{prompt['prompt_id']}"
        stop = {**sample("Stop"), "memq_event_id": "e-1"}
        assert route_event(stop).dedupe_key == "Stop:e-1"
        assert route_event(sample("Stop")).dedupe_key is None

    @pytest.mark.parametrize(
        ("change", "problem"),
        [
            ({"session_id": None}, "session_id' is missing"),
            ({"session_id": 5}, "session_id' must be a string"),
            ({"session_id": "  "}, "session_id' is empty"),
            ({"hook_event_name": ["x"]}, "hook_event_name' must be a string"),
            ({"tool_use_id": 12}, "tool_use_id' must be a string"),
            ({"cwd": {"a": 1}}, "cwd' must be a string"),
            ({"session_id": "s" * 300}, "longer than"),
        ],
    )
    def test_unusable_fields_are_named(self, change: dict[str, object], problem: str) -> None:
        """A payload missing or mistyping what routing needs is refused, naming the field."""
        payload = {k: v for k, v in {**sample("PostToolUse"), **change}.items() if v is not None}
        with pytest.raises(InvalidEventError, match=problem):
            route_event(payload)


class TestParsing:
    def test_a_real_payload_parses(self) -> None:
        """The sample bytes come back as the same object."""
        raw = (FIXTURES / "PostToolUse.Write.json").read_bytes()
        assert parse_event_body(raw) == json.loads(raw)

    @pytest.mark.parametrize(
        ("body", "error", "problem"),
        [
            (b"\xff\xfe{}", MalformedEventError, "UTF-8"),
            (b"{not json", MalformedEventError, "not valid JSON"),
            (b'{"a": NaN}', MalformedEventError, "NaN"),
            (b'{"a": Infinity}', MalformedEventError, "Infinity"),
            (b'{"a": "\\ud800"}', MalformedEventError, "surrogate"),
            (b"[" * 5000 + b"]" * 5000, MalformedEventError, "nest"),
            (b'{"a":' * 150 + b"1" + b"}" * 150, MalformedEventError, "deeper"),
            (b"[1, 2]", InvalidEventError, "JSON object"),
            (b'{"a": "x\\u0000y"}', InvalidEventError, "NUL"),
            (b'{"a": 99999999999999999999999}', InvalidEventError, "64 bits"),
            (b'{"a": 1' + b"0" * 5000 + b"}", MalformedEventError, "not valid JSON"),
        ],
    )
    def test_bad_bodies_are_refused_with_the_reason(
        self, body: bytes, error: type[Exception], problem: str
    ) -> None:
        """Each way a body can be unusable gets its own clear message."""
        with pytest.raises(error, match=problem):
            parse_event_body(body)


# Text with the characters the walk refuses (NUL, lone surrogates) among ordinary ones, and
# integers on both sides of the 64-bit bounds.
_TEXT = st.text(st.sampled_from(["a", "\x00", "\ud800", "\udfff", "é", "<", "\\", '"', "9"]))
_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_TEXT, children, max_size=4),
    max_leaves=30,
)


class TestRefusedValuesWithoutAWalk:
    """A body whose bytes cannot hold a refused value is not walked; every other body is."""

    @pytest.mark.parametrize(
        ("body", "error", "problem"),
        [
            (b'{"a": 9223372036854775808}', InvalidEventError, "64 bits"),
            (b'{"a": -9223372036854775809}', InvalidEventError, "64 bits"),
            (b'{"\\u0000": 1}', InvalidEventError, "NUL"),
            (b'{"\\udc00": 1}', MalformedEventError, "surrogate"),
            (b'{"a":' + b"[" * 101 + b"]" * 101 + b"}", MalformedEventError, "deeper"),
        ],
    )
    def test_values_at_the_edges_are_still_refused(
        self, body: bytes, error: type[Exception], problem: str
    ) -> None:
        with pytest.raises(error, match=problem):
            parse_event_body(body)

    def test_a_plain_event_costs_no_walk(self, monkeypatch: pytest.MonkeyPatch) -> None:
        def walked(value: object) -> None:
            raise AssertionError("walked a body that cannot hold a refused value")

        monkeypatch.setattr(events, "check_json_values", walked)
        raw = (FIXTURES / "PostToolUse.Write.json").read_bytes()
        assert parse_event_body(raw) == json.loads(raw)

    @given(value=st.dictionaries(_TEXT, _VALUES, max_size=5), ascii_only=st.booleans())
    def test_the_verdict_is_the_walks(self, value: dict[str, object], ascii_only: bool) -> None:
        body = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
        try:
            parse_event_body(body)
            got: type[Exception] | None = None
        except (InvalidEventError, MalformedEventError) as exc:
            got = type(exc)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            # A raw lone surrogate is not UTF-8: refused before any walk, as malformed.
            assert got is MalformedEventError
            return
        try:
            # What the body parses to (escaped surrogates may pair up), walked in full.
            check_json_values(json.loads(text))
            expected: type[Exception] | None = None
        except (InvalidEventError, MalformedEventError) as exc:
            expected = type(exc)
        assert got is expected


class TestSessionKeys:
    def test_bare_ids_are_claude_code_sessions(self) -> None:
        """Routes accept a bare Claude Code id or the full key."""
        assert normalize_session_key("abc") == "claude-code:abc"
        assert normalize_session_key("claude-code:abc") == "claude-code:abc"
        assert normalize_session_key("codex:abc") == "codex:abc"
        assert normalize_session_key("weird:abc") == "claude-code:weird:abc"
