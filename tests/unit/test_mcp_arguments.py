"""How the MCP server reads what the model sends (references, kinds, times, projects) and
what memory answered: a bad value is a clear tool error, never a crash."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp.server.mcpserver.exceptions import ToolError

from memq.exceptions import InvalidQueryError, RecordNotFoundError, RequestError, StorageError
from memq.mcp import reader, server
from memq.memory.projects import project_named


class TestReferences:
    def test_a_list_one_value_or_a_string_of_several(self) -> None:
        assert [str(ref) for ref in server._refs(["#12", 13, "S3"])] == ["#12", "#13", "#S3"]
        assert [str(ref) for ref in server._refs(12)] == ["#12"]
        assert [str(ref) for ref in server._refs("#12, #P7 #12")] == ["#12", "#P7"]

    @pytest.mark.parametrize(
        ("ids", "message"),
        [
            ([], "at least one"),
            ("  ", "at least one"),
            (["#12", "twelve"], "not a record reference: 'twelve'"),
            ([True], "not a record reference: True"),
            (list(range(1, 102)), "at most 100"),
        ],
    )
    def test_bad_ones_are_tool_errors(self, ids: list[str | int] | str, message: str) -> None:
        with pytest.raises(ToolError, match=message):
            server._refs(ids)


class TestFilters:
    def test_kind_is_an_observation_kind_or_a_record_type(self) -> None:
        assert server._kind_filter("Command") == (None, ["command"])
        assert server._kind_filter("summary") == (["summary"], None)
        assert server._kind_filter(None) == (None, None)
        with pytest.raises(ToolError, match="unknown kind 'spaceship'"):
            server._kind_filter("spaceship")

    def test_times(self) -> None:
        at = server._time("since", "2026-01-31")
        assert at is not None
        assert at.isoformat() == "2026-01-31T00:00:00+00:00"
        assert server._time("until", " ") is None
        with pytest.raises(ToolError, match="until must be an ISO-8601 time"):
            server._time("until", "last week")


class TestProjects:
    def test_a_directory_names_its_git_root(self, tmp_path: Path) -> None:
        (tmp_path / ".git").mkdir()
        (tmp_path / "src").mkdir()
        assert project_named(str(tmp_path / "src")) == str(tmp_path)

    def test_anything_else_is_taken_as_written(self) -> None:
        assert project_named("/no/such/project") == "/no/such/project"


class TestAnswers:
    @pytest.mark.parametrize(
        ("status", "error"),
        [
            (400, InvalidQueryError),
            (404, RecordNotFoundError),
            (422, RequestError),
            (503, StorageError),
            (401, RequestError),
        ],
    )
    def test_an_error_answer_is_the_memq_error_of_its_status(
        self, status: int, error: type[Exception]
    ) -> None:
        with pytest.raises(error, match=r"^what went wrong$"):
            reader._decoded(status, b'{"error": "what went wrong"}')

    def test_an_answer_that_is_not_json_still_says_what_it_was(self) -> None:
        with pytest.raises(RequestError, match="Bad Gateway"):
            reader._decoded(502, b"Bad Gateway")
        assert reader._decoded(200, b'{"items": []}') == {"items": []}
