"""What PostgreSQL is given in place of a NUL, which its text cannot hold."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("psycopg")

from memq.storage.postgres.connection import nul_free


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a\x00b", "a\ufffdb"),
        ("no nul", "no nul"),
        # Prose that quotes the escape is not JSON: kept as written.
        ("what does \\u0000 mean?", "what does \\u0000 mean?"),
        ('["not closed \\u0000', '["not closed \\u0000'),
    ],
)
def test_plain_text(text: str, expected: str) -> None:
    assert nul_free(text) == expected


def test_a_json_escape_becomes_the_character_and_an_escaped_backslash_is_kept() -> None:
    value = ["x\x00y", "quoted \\u0000 stays", "\\\x00"]
    text = json.dumps(value, ensure_ascii=False)
    cleaned = nul_free(text)
    assert json.loads(cleaned) == ["x\ufffdy", "quoted \\u0000 stays", "\\\ufffd"]
    # ensure_ascii=False JSON, as memq writes it: the character, never its escape.
    assert cleaned == json.dumps(json.loads(cleaned), ensure_ascii=False)


def test_an_object_and_a_json_string() -> None:
    assert json.loads(nul_free(json.dumps({"k": "\x00"}))) == {"k": "\ufffd"}
    assert json.loads(nul_free(json.dumps("\x00"))) == "\ufffd"
