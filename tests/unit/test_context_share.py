"""One SessionStart budget shared by the team's block and local memory
(memq.team.context_share): the team's cap, the local rest, the cut at a line."""

from __future__ import annotations

import pytest

from memq.limits import DEFAULT_CONTEXT_BUDGET
from memq.memory.context import estimate_tokens
from memq.memory.fence import FENCE_CLOSE, FENCE_OPEN
from memq.team.context_share import (
    SEPARATOR,
    TEAM_BUDGET,
    cut_to_tokens,
    joined,
    share,
    team_share,
)


def fenced(lines: int, width: int = 76) -> str:
    """A team block as the server writes it: fence, note, ``lines`` lines, fence."""
    body = [f"- #{n} [alice] 5m ago " + "x" * (width - 20) for n in range(lines)]
    return "\n".join([FENCE_OPEN, "memq recalled these notes from the team.", *body, FENCE_CLOSE])


@pytest.mark.parametrize(
    ("total", "expected"),
    [
        (DEFAULT_CONTEXT_BUDGET, 666),  # a third of the default 2,000
        (3000, 1000),
        (3003, TEAM_BUDGET),  # a third would be 1,001: capped
        (100_000, TEAM_BUDGET),
        (2, 0),
        (0, 0),
    ],
)
def test_the_team_gets_a_third_at_most_and_never_more_than_team_budget(
    total: int, expected: int
) -> None:
    assert team_share(total) == expected


def test_an_empty_team_block_leaves_the_whole_budget_to_local_memory() -> None:
    shares = share(2000, "")
    assert (shares.team, shares.local_tokens) == ("", 2000)


def test_local_memory_gets_the_budget_less_what_the_team_text_costs() -> None:
    team = fenced(10)  # well inside 666 tokens
    shares = share(2000, team)
    assert shares.team == team
    assert shares.local_tokens == 2000 - estimate_tokens(SEPARATOR + team)
    assert shares.local_tokens > 2000 - team_share(2000)  # a short block leaves more


@pytest.mark.parametrize("local_chars", [0, 1, 3, 4, 5, 4000, 6000])
def test_local_within_its_share_and_the_team_block_keep_the_whole_within_the_budget(
    local_chars: int,
) -> None:
    for team in (fenced(3), fenced(30), "one line of the team", ""):
        shares = share(2000, team)
        local = "y" * min(local_chars, shares.local_tokens * 4)
        assert estimate_tokens(joined(local, shares.team)) <= 2000


def test_a_long_team_block_is_cut_at_a_line_and_its_fence_closed() -> None:
    team = fenced(100)  # about 2,000 tokens
    assert estimate_tokens(team) > team_share(2000)
    shares = share(2000, team)
    assert estimate_tokens(shares.team) <= team_share(2000)
    assert shares.team.startswith(FENCE_OPEN + "\n")
    assert shares.team.endswith("\n" + FENCE_CLOSE)
    kept = shares.team.split("\n")[:-1]
    assert kept == team.split("\n")[: len(kept)]  # whole lines, from the top
    assert len(kept) > 20  # and as many as fit: 666 tokens hold ~33 lines of 80 chars
    assert estimate_tokens("\n".join([*team.split("\n")[: len(kept) + 1], FENCE_CLOSE])) > 666
    assert shares.local_tokens == 2000 - estimate_tokens(SEPARATOR + shares.team)


def test_a_block_with_no_line_past_its_note_that_fits_is_dropped() -> None:
    assert cut_to_tokens(fenced(5, width=400), 40) == ""
    assert share(120, fenced(5, width=400)) == share(120, "")


def test_an_unfenced_text_is_cut_at_a_line_too() -> None:
    text = "\n".join(["a" * 30] * 10)  # 309 chars: 78 tokens
    assert cut_to_tokens(text, 100) == text
    assert cut_to_tokens(text, 20) == "\n".join(["a" * 30] * 2)  # 61 chars; 3 lines: 92
    assert cut_to_tokens("b" * 100, 10) == ""  # one line longer than the share: nothing


def test_joined_puts_the_team_block_after_local_memory() -> None:
    assert joined("local", "team") == "local" + SEPARATOR + "team"
    assert joined("", "team") == "team"
    assert joined("local", "") == "local"
