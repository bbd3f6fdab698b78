"""Cutting an event down to the body limit (memq.hooks.fit): always valid JSON, always within
the limit, small events unchanged, the largest parts cut first, every cut marked."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memq.events import parse_event_body
from memq.exceptions import MalformedEventError
from memq.hooks.fit import MIN_LIMIT, encode, fit, fit_body, safe_cut, water_level

STRING_NOTE = re.compile(r"… \[memq: (\d+) more bytes not kept\]$")
LIST_NOTE = re.compile(r"^\[memq: (\d+) more bytes of this list not kept\]$")
OBJECT_NOTE = re.compile(r"^\[memq: (\d+) more bytes of this object not kept\]$")

# Text that is hard to cut: escapes (quote, backslash, control), multi-byte and astral
# characters (a surrogate pair when escaped), brackets and a private tag inside strings.
TRICKY = st.text(
    alphabet=st.sampled_from(
        ["a", "b", " ", '"', "\\", "\n", "\x01", "é", "€", "😀", "[", "]", "{", "}", "<", "\u2028"]
    ),
    max_size=400,
)
KEYS = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]), max_size=12)
LEAVES = (
    TRICKY
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.booleans()
    | st.none()
)
VALUES = st.recursive(
    LEAVES,
    lambda children: st.lists(children, max_size=40) | st.dictionaries(KEYS, children, max_size=8),
    max_leaves=300,
)
PAYLOADS = st.fixed_dictionaries(
    {
        "session_id": st.text(alphabet="abcdef0123456789-", min_size=1, max_size=40),
        "hook_event_name": st.sampled_from(["PostToolUse", "UserPromptSubmit", "Stop"]),
        "tool_response": VALUES,
    },
    optional={"tool_input": VALUES, "tool_use_id": st.just("toolu_01abc")},
)
STYLES = st.sampled_from(["compact", "ascii", "pretty"])


def as_text(payload: dict[str, Any], style: str) -> bytes:
    """The payload as a hook might receive it: compact, ASCII-escaped or indented."""
    if style == "compact":
        return encode(payload)
    if style == "ascii":
        return json.dumps(payload).encode()
    return json.dumps(payload, indent=2).encode()


def assert_cut_from(original: Any, fitted: Any, where: str = "$") -> None:
    """``fitted`` is ``original`` with parts left out and strings shortened, each cut marked:
    nothing in it that was not in the original, nothing out of place."""
    if isinstance(original, str) and isinstance(fitted, str) and fitted != original:
        note = STRING_NOTE.search(fitted)
        if note is None:
            assert fitted.startswith("[memq: "), where
        else:
            assert original.startswith(fitted[: note.start()]), where
    elif isinstance(original, list) and isinstance(fitted, list):
        items = fitted
        if items and isinstance(items[-1], str) and LIST_NOTE.match(items[-1]):
            items = items[:-1]
        assert len(items) <= len(original), where
        for i, (was, kept) in enumerate(zip(original, items, strict=False)):
            assert_cut_from(was, kept, f"{where}[{i}]")
    elif isinstance(original, dict) and isinstance(fitted, dict):
        for key, kept in fitted.items():
            if key == "memq_not_kept" and key not in original:
                assert OBJECT_NOTE.match(kept), where
                continue
            assert key in original, f"{where}.{key}"
            assert_cut_from(original[key], kept, f"{where}.{key}")
    elif fitted != original:
        assert isinstance(fitted, str), where
        assert fitted.startswith("[memq: "), where


class TestProperties:
    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(payload=PAYLOADS, style=STYLES, limit=st.integers(min_value=MIN_LIMIT, max_value=20_000))
    def test_valid_json_within_the_limit_and_only_cut_from_the_original(
        self, payload: dict[str, Any], style: str, limit: int
    ) -> None:
        raw = as_text(payload, style)
        body = fit_body(raw, limit)
        assert len(body) <= limit
        fitted = parse_event_body(body)  # strict: UTF-8, no lone surrogates, no NaN
        assert_cut_from(payload, fitted)
        if len(raw) <= limit:
            assert body == raw

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(payload=PAYLOADS, limit=st.integers(min_value=1024, max_value=20_000))
    def test_the_routing_fields_are_never_cut(self, payload: dict[str, Any], limit: int) -> None:
        fitted, body = fit(payload, limit)
        assert len(body) <= limit
        for field in ("session_id", "hook_event_name", "tool_use_id"):
            assert fitted.get(field) == payload.get(field)

    @settings(max_examples=100, deadline=None)
    @given(payload=PAYLOADS)
    def test_a_payload_that_fits_is_unchanged(self, payload: dict[str, Any]) -> None:
        body = encode(payload)
        fitted, fitted_body = fit(payload, max(len(body), MIN_LIMIT))
        assert fitted is payload
        assert fitted_body == body

    @settings(max_examples=300, deadline=None)
    @given(text=TRICKY, at=st.integers(min_value=0, max_value=2000), ascii_only=st.booleans())
    def test_a_string_cut_anywhere_is_a_valid_prefix(
        self, text: str, at: int, ascii_only: bool
    ) -> None:
        raw = json.dumps(text, ensure_ascii=ascii_only).encode()
        cut = safe_cut(raw, 1, min(1 + at, len(raw) - 1))
        kept = parse_event_body(b'{"s":' + raw[:cut] + b'"}')["s"]
        assert text.startswith(kept)


class TestShapes:
    def test_a_million_short_strings_keep_their_first_ones(self) -> None:
        """The issue's case: a tool answer of a million short lines."""
        lines = [f"line {i:07d} of the output" for i in range(200_000)]
        payload = {"session_id": "s", "hook_event_name": "PostToolUse", "tool_response": lines}
        body = fit_body(encode(payload), 64 * 1024)
        assert len(body) <= 64 * 1024
        kept = json.loads(body)["tool_response"]
        note = LIST_NOTE.match(kept[-1])
        assert note is not None
        assert kept[:-1] == lines[: len(kept) - 1]
        assert len(kept) > 1000  # the budget is used, not given up
        assert int(note.group(1)) > len(encode(lines)) - 64 * 1024 - 100

    def test_one_huge_string_keeps_its_start_and_says_how_much_is_gone(self) -> None:
        payload = {"session_id": "s", "tool_response": {"stdout": "x" * 3_000_000, "code": 0}}
        fitted, body = fit(payload, 1024 * 1024)
        assert len(body) <= 1024 * 1024
        stdout = fitted["tool_response"]["stdout"]
        note = STRING_NOTE.search(stdout)
        assert note is not None
        assert len(stdout) > 1_000_000
        assert int(note.group(1)) == 3_000_000 - note.start()
        assert fitted["tool_response"]["code"] == 0

    def test_the_largest_parts_are_cut_first_and_to_the_same_size(self) -> None:
        """Water-filling: the small parts stay whole, the two large ones share the rest."""
        payload = {
            "session_id": "s",
            "small": "y" * 500,
            "big": "b" * 100_000,
            "bigger": "c" * 300_000,
            "list": list(range(50)),
        }
        fitted, body = fit(payload, 20_000)
        assert len(body) <= 20_000
        assert fitted["small"] == payload["small"]
        assert fitted["list"] == payload["list"]
        big, bigger = fitted["big"], fitted["bigger"]
        assert STRING_NOTE.search(big)
        assert STRING_NOTE.search(bigger)
        assert abs(len(big) - len(bigger)) <= 2  # the same share (the notes' digits differ)
        assert len(big) > 8000

    def test_deep_nesting_is_cut_level_by_level(self) -> None:
        node: Any = ["leaf"] * 10
        for depth in range(90):
            node = {"depth": depth, "pad": [f"p{i}" for i in range(2000)], "child": node}
        payload = {"session_id": "s", "hook_event_name": "PostToolUse", "tool_response": node}
        body = fit_body(encode(payload), 100_000)
        assert len(body) <= 100_000
        fitted = parse_event_body(body)
        assert_cut_from(payload, fitted)
        assert fitted["tool_response"]["depth"] == 89

    def test_records_nested_several_levels_deep(self) -> None:
        records = [
            {"id": i, "user": {"name": f"u{i}", "tags": {"a": [1, 2], "b": "x"}}}
            for i in range(20_000)
        ]
        payload = {"session_id": "s", "tool_response": records}
        body = fit_body(json.dumps(payload).encode(), 50_000)
        assert len(body) <= 50_000
        kept = json.loads(body)["tool_response"]
        assert kept[:-1] == records[: len(kept) - 1]
        assert LIST_NOTE.match(kept[-1])

    def test_an_object_with_too_many_fields_keeps_the_first_and_says_so(self) -> None:
        payload = {"session_id": "s", "files": {f"file{i}.py": "z" * 300 for i in range(1000)}}
        fitted, body = fit(payload, 16 * 1024)
        assert len(body) <= 16 * 1024
        files = fitted["files"]
        assert OBJECT_NOTE.match(files.pop("memq_not_kept"))
        assert list(files) == [f"file{i}.py" for i in range(len(files))]

    def test_the_routing_fields_survive_at_the_end_of_a_huge_event(self) -> None:
        """Claude Code sends tool_use_id after tool_response: it is kept whole, and the
        dedupe key with it."""
        payload = {
            "session_id": "s",
            "hook_event_name": "PostToolUse",
            "tool_response": {"stdout": "o" * 2_000_000},
            "tool_use_id": "toolu_01" + "9" * 30,
        }
        fitted, _ = fit(payload, 4096)
        assert fitted["tool_use_id"] == payload["tool_use_id"]

    def test_a_long_number_becomes_a_note(self) -> None:
        raw = b'{"session_id":"s","n":' + b"1" * 5000 + b"}"
        body = fit_body(raw, 1024)
        assert json.loads(body)["n"] == "[memq: a number of 5000 digits not kept]"


class TestMalformed:
    @pytest.mark.parametrize(
        "raw",
        [
            b'{"a": "' + b"x" * 5000,  # a string never closed
            b'{"a": [' + b'"x",' * 2000 + b'"y"',  # a list never closed
            b'{"a": [' + b'"x",' * 2000 + b'"y"}}',  # closed by the wrong bracket
            b'{"a": ' + b"x" * 5000 + b"}",  # not a value
            b'{"a": "' + b"x" * 5000 + b'"} trailing',
            b'{"a" "' + b"x" * 5000 + b'"}',  # no colon
            b'{"a": "' + b"x" * 5000 + b'",}',  # a comma before the end
            b"[" * 200 + b"]" * 200 + b" " * 2000,  # deeper than memq takes
            b" " * 2000,
        ],
        ids=[
            "unterminated-string",
            "unterminated-list",
            "mismatched",
            "bare-word",
            "trailing-data",
            "no-colon",
            "trailing-comma",
            "too-deep",
            "empty",
        ],
    )
    def test_a_broken_event_over_the_limit_is_refused(self, raw: bytes) -> None:
        with pytest.raises(MalformedEventError):
            fit_body(raw, 1024)

    def test_the_error_never_quotes_the_event(self) -> None:
        raw = b'{"secret": "' + b"hunter2 " * 1000
        with pytest.raises(MalformedEventError) as caught:
            fit_body(raw, 1024)
        assert "hunter2" not in str(caught.value)

    def test_a_limit_below_the_least_is_an_error(self) -> None:
        with pytest.raises(ValueError, match="below the least"):
            fit_body(b'"' + b"x" * 1000 + b'"', MIN_LIMIT - 1)


class TestWaterLevel:
    @pytest.mark.parametrize(
        ("sizes", "room", "level"),
        [
            ([10, 20, 30], 100, 30),  # everything fits: nothing is cut
            ([10, 100, 100], 110, 50),  # the small one whole, the two large share the rest
            ([100, 100], 50, 25),
            ([], 10, 0),
        ],
    )
    def test_levels(self, sizes: list[int], room: int, level: int) -> None:
        assert water_level(sizes, room) == level
