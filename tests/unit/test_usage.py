"""Memory's use in pure logic: the rates and totals of the figures, what the recorder keeps
of a record (references, repeats, bad values), and which API reads are the model's."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any, TypeVar

import pytest
from starlette.requests import Request

from memq.memory.records import RecordType
from memq.memory.refs import RecordRef
from memq.memory.usage import (
    MAX_QUERY_CHARS,
    MAX_REFS,
    REPEAT_WINDOW,
    Fetch,
    UsageRecorder,
    UsageTool,
)
from memq.memory.usage_figures import figures, rate, total
from memq.queue import Transaction
from memq.worker.http.fetches import from_mcp, record_answer, refs_of
from tests.helpers.clock import FakeClock

T = TypeVar("T")


class NoWriter:
    """A writer the unit tests never reach (nothing is flushed)."""

    async def run_in_transaction(self, fn: Callable[[Transaction], Awaitable[T]]) -> T:
        raise AssertionError("unit tests write nothing")


def recorder(clock: FakeClock | None = None) -> UsageRecorder:
    return UsageRecorder(NoWriter(), clock=clock or FakeClock())


def injection_row(**values: int) -> dict[str, int]:
    """A row of ``injection_figures``: every count 0 unless given."""
    names = ("injections", "tokens", "refs_shown", "hits", "ref_hits")
    return {name: values.get(name, 0) for name in names} | {
        source: values.get(source, 0) for source in ("startup", "compact", "prompt")
    }


class TestRates:
    def test_a_rate_is_a_share_rounded_to_three_decimals(self) -> None:
        assert rate(1, 3) == 0.333
        assert rate(2, 3) == 0.667
        assert rate(5, 5) == 1.0
        assert rate(0, 7) == 0.0

    def test_no_injection_is_no_rate(self) -> None:
        """Nothing to divide by: null, not 0% (which would say the model ignored memory)."""
        assert rate(0, 0) is None

    def test_one_groups_figures(self) -> None:
        got = figures(
            injection_row(injections=4, tokens=900, refs_shown=12, hits=3, ref_hits=1, prompt=3),
            {"fetches": 6, "searches": 2, "get_observations": 3, "records_fetched": 5},
        )
        assert (got["hits"], got["hit_rate"], got["ref_hits"], got["ref_hit_rate"]) == (
            3,
            0.75,
            1,
            0.25,
        )
        assert (got["fetches"], got["searches"], got["records_fetched"]) == (6, 2, 5)
        assert got["by_tool"]["get_observations"] == 3
        assert got["by_source"]["prompt"] == 3

    def test_a_group_with_fetches_only(self) -> None:
        got = figures(None, {"fetches": 2, "searches": 2})
        assert (got["injections"], got["hit_rate"], got["searches"]) == (0, None, 2)

    def test_the_total_is_the_sum_not_the_mean_of_the_rates(self) -> None:
        """1 of 1 and 0 of 3 injections are 1 of 4 (25%), not the mean of 100% and 0%."""
        first = figures(injection_row(injections=1, hits=1, ref_hits=1, startup=1), None)
        second = figures(injection_row(injections=3, compact=3), {"fetches": 1, "searches": 1})
        both = total([first, second])
        assert (both["injections"], both["hits"], both["hit_rate"]) == (4, 1, 0.25)
        assert both["ref_hit_rate"] == 0.25
        assert both["by_source"] == {
            "startup": 1,
            "resume": 0,
            "clear": 0,
            "compact": 3,
            "prompt": 0,
        }
        assert both["searches"] == 1

    def test_the_total_of_nothing(self) -> None:
        assert total([])["hit_rate"] is None


class TestRecorder:
    def test_references_once_canonical_and_bounded(self) -> None:
        usage = recorder()
        refs: list[RecordRef | str] = ["#12", "12", "s3", RecordRef(RecordType.PROMPT, 7), "zz"]
        usage.record_fetch("get_observations", project="/p", refs=refs)
        usage.record_fetch("search", project="/p", refs=[str(i) for i in range(1, 500)])
        first, second = usage._pending
        assert isinstance(first, Fetch)
        assert first.refs == ("#12", "#S3", "#P7")
        assert len(second.refs) == MAX_REFS

    def test_a_long_query_is_cut(self) -> None:
        usage = recorder()
        usage.record_fetch("search", project=None, query="x" * 5000)
        (fetch,) = usage._pending
        assert isinstance(fetch, Fetch)
        assert fetch.query == "x" * MAX_QUERY_CHARS
        assert fetch.project is None

    def test_an_empty_context_is_no_injection(self) -> None:
        usage = recorder()
        usage.record_injection("s", "/p", "startup", [], 0)
        assert usage.pending == 0

    def test_a_repeat_within_the_window_is_one_injection(self) -> None:
        """A hook that retried its SessionStart gets the same context again: counted once;
        the same context later, or another one, counts again."""
        clock = FakeClock()
        usage = recorder(clock)
        usage.record_injection("s", "/p", "startup", ["#1"], 10)
        clock.advance(1)
        usage.record_injection("s", "/p", "startup", ["#1"], 10)
        usage.record_injection("other", "/p", "startup", ["#1"], 10)
        assert usage.pending == 2
        clock.advance(REPEAT_WINDOW + 1)
        usage.record_injection("s", "/p", "startup", ["#1"], 10)
        usage.record_injection("s", "/p", "compact", ["#1"], 10)
        assert usage.pending == 4

    def test_an_unknown_source_or_tool_is_dropped(self) -> None:
        usage = recorder()
        usage.record_injection("s", "/p", "sideways", ["#1"], 10)
        usage.record_fetch("rm", project="/p")
        usage.record_fetch("", project="/p")
        usage.record_fetch("search", project="/p", session_key="")
        assert usage.pending == 0

    def test_settings_are_checked(self) -> None:
        with pytest.raises(ValueError, match="flush_every"):
            UsageRecorder(NoWriter(), flush_every=0)
        with pytest.raises(ValueError, match="retention"):
            UsageRecorder(NoWriter(), retention=0)
        with pytest.raises(ValueError, match="max_injections"):
            UsageRecorder(NoWriter(), max_fetches=0)


def request(
    headers: dict[str, str], query: str = "", usage: UsageRecorder | None = None
) -> Request:
    """A request to the API with ``headers``, on an app whose services record to ``usage``."""
    services = SimpleNamespace(usage=usage)
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": "/api/records",
        "query_string": query.encode(),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "app": SimpleNamespace(state=SimpleNamespace(services=services)),
    }
    return Request(scope)


class TestWhichReadsAreTheModels:
    def test_only_reads_the_mcp_server_marks(self) -> None:
        assert from_mcp(request({"X-Memq-Via": "mcp"}))
        assert from_mcp(request({"X-Memq-Via": " MCP "}))
        assert not from_mcp(request({}))
        assert not from_mcp(request({"X-Memq-Via": "cli"}))

    def test_a_read_to_index_records_is_none(self) -> None:
        """The search tool reads records for its cost hints: that is no fetch of them."""
        assert not from_mcp(request({"X-Memq-Via": "mcp"}, "ids=1&purpose=index"))

    def test_the_headers_name_the_tool_project_and_session(self) -> None:
        """The project comes URL-quoted (a header is Latin-1); a tool the server names wins
        over the route's; a session it names is taken as given."""
        usage = recorder()
        made = request(
            {
                "X-Memq-Via": "mcp",
                "X-Memq-Project": "/work/caf%C3%A9%20app",
                "X-Memq-Tool": "timeline",
                "X-Memq-Session": "abc",
            },
            "q=x",
        )
        made.scope["app"] = SimpleNamespace(
            state=SimpleNamespace(services=SimpleNamespace(usage=usage))
        )
        record_answer(made, UsageTool.SEARCH, {"items": [{}, {}], "total": 2}, query="x")
        record_answer(request({}), UsageTool.SEARCH, {"items": []})  # a person's: not recorded
        (fetch,) = usage._pending
        assert isinstance(fetch, Fetch)
        assert (fetch.project, fetch.tool, fetch.session_key) == (
            "/work/café app",
            UsageTool.TIMELINE,
            "claude-code:abc",
        )
        assert (fetch.results, fetch.query, fetch.refs) == (2, "x", ())

    def test_an_answer_of_an_unexpected_shape_is_not_recorded(self) -> None:
        usage = recorder()
        made = request({"X-Memq-Via": "mcp"})
        made.scope["app"] = SimpleNamespace(
            state=SimpleNamespace(services=SimpleNamespace(usage=usage))
        )
        record_answer(made, UsageTool.TIMELINE, {"items": []})  # no anchor
        assert usage.pending == 0

    def test_references_of_an_answer(self) -> None:
        items: list[dict[str, Any]] = [
            {"record_type": "observation", "id": 12},
            {"record_type": "summary", "id": 3},
            {"record_type": "nonsense", "id": 1},
            {"id": 4},
        ]
        assert [str(ref) for ref in refs_of(items)] == ["#12", "#S3"]
