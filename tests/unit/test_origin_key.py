"""The team server's dedupe key of a forwarded event, written and read back."""

from __future__ import annotations

import pytest

from memq.team.intake import origin_key, parse_origin_key


@pytest.mark.parametrize(
    ("name", "machine", "local_id"),
    [("alice", "laptop-a", 1), ("a:b.c", "m:x:y", 12), ("7.x", "host", 9_223_372_036_854_775_807)],
)
def test_an_origin_reads_back_whatever_colons_and_dots_it_holds(
    name: str, machine: str, local_id: int
) -> None:
    assert parse_origin_key(origin_key(name, machine, local_id)) == (name, machine, local_id)


@pytest.mark.parametrize(
    "key",
    [
        "origin:0123456789ab:laptop:3",  # the older key-id form
        "hook:claude-code:s1:42",
        "origin:5.ali",
        "origin:5.alice:laptop:x",
        "origin:x.alice:laptop:1",
        "origin:5.alicelaptop:1",
    ],
)
def test_other_keys_are_not_origins(key: str) -> None:
    assert parse_origin_key(key) is None
