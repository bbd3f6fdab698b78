"""Record references (``memq.memory.refs``): printed and read back the same."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memq.exceptions import InvalidRequestError
from memq.limits import MAX_INTEGER
from memq.memory.records import RecordType
from memq.memory.refs import RecordRef, format_ref, parse_ref, parse_refs


@pytest.mark.parametrize(
    ("record_type", "text"),
    [
        (RecordType.OBSERVATION, "#1234"),
        (RecordType.SUMMARY, "#S1234"),
        (RecordType.PROMPT, "#P1234"),
    ],
)
def test_each_type_has_its_own_form(record_type: RecordType, text: str) -> None:
    assert format_ref(record_type, 1234) == text
    assert parse_ref(text) == RecordRef(record_type, 1234)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("1234", RecordRef(RecordType.OBSERVATION, 1234)),
        (1234, RecordRef(RecordType.OBSERVATION, 1234)),
        ("  #s7 ", RecordRef(RecordType.SUMMARY, 7)),
        ("p9", RecordRef(RecordType.PROMPT, 9)),
        ("#0012", RecordRef(RecordType.OBSERVATION, 12)),
    ],
)
def test_what_people_and_models_type_is_read(typed: str | int, expected: RecordRef) -> None:
    assert parse_ref(typed) == expected


@pytest.mark.parametrize(
    "bad", ["", "#", "#X12", "12a", "# 12", "-3", "#S", "0", "#P0", True, 1.5, None, "\uff11\uff12"]
)
def test_anything_else_is_refused_by_name(bad: object) -> None:
    with pytest.raises(InvalidRequestError, match="record"):
        parse_ref(bad)  # type: ignore[arg-type]


def test_an_id_beyond_sqlite_integers_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="no record can have"):
        parse_ref(f"#{MAX_INTEGER + 1}")
    assert parse_ref(f"#{MAX_INTEGER}").id == MAX_INTEGER


def test_many_keep_their_order_without_repeats() -> None:
    refs = parse_refs(["#S2", "5", "#5", "P1", "s2"])
    assert [str(ref) for ref in refs] == ["#S2", "#5", "#P1"]


@given(st.sampled_from(list(RecordType)), st.integers(min_value=1, max_value=MAX_INTEGER))
def test_round_trip(record_type: RecordType, record_id: int) -> None:
    ref = RecordRef(record_type, record_id)
    assert parse_ref(str(ref)) == ref
