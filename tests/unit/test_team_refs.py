"""Team references (``team#12``): the team server's records as a laptop names them, parsed
apart from local ones (memq.memory.refs), rendered by the server's context
(memq.memory.context's ``ref_prefix``), read through ``TeamReads.records`` from a mock team
server, printed marked as the team's, and taken by the MCP tools' argument parsing."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp.server.mcpserver.exceptions import ToolError

from memq.client.record_text import record_text
from memq.config import Settings
from memq.exceptions import InvalidRequestError, TeamReadError
from memq.limits import MAX_TEAM_REFS
from memq.mcp import reader, server
from memq.memory.context import add_observations, add_summaries, project_layout
from memq.memory.records import ObservationKind, ObservationRecord, RecordType, SummaryRecord
from memq.memory.refs import (
    TEAM_PREFIX,
    RecordRef,
    TeamRef,
    is_team_ref,
    parse_any_ref,
    parse_any_refs,
    parse_ref,
)
from memq.queue.testing import ManualClock
from memq.team.team_reads import RECORDS_PATH, RECORDS_TIMEOUT, TeamReads

OBS, SUM, PROMPT = RecordType.OBSERVATION, RecordType.SUMMARY, RecordType.PROMPT
TOKEN = "memq_abcdefghijkl_" + "s" * 43
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


class TestParsing:
    @pytest.mark.parametrize(
        ("text", "ref"),
        [
            ("team#12", RecordRef(OBS, 12)),
            ("team#S5", RecordRef(SUM, 5)),
            ("TEAM#p7", RecordRef(PROMPT, 7)),
            ("  team #12 ", RecordRef(OBS, 12)),
            ("Team12", RecordRef(OBS, 12)),
            ("team s5", RecordRef(SUM, 5)),
        ],
    )
    def test_a_team_reference_names_the_servers_record(self, text: str, ref: RecordRef) -> None:
        parsed = parse_any_ref(text)
        assert parsed == TeamRef(ref)
        assert is_team_ref(text)
        assert str(parsed) == f"team{ref}"

    @pytest.mark.parametrize(
        ("value", "ref"), [("#12", RecordRef(OBS, 12)), (12, RecordRef(OBS, 12)), ("s3", None)]
    )
    def test_a_local_reference_stays_local(self, value: str | int, ref: RecordRef | None) -> None:
        parsed = parse_any_ref(value)
        assert isinstance(parsed, RecordRef)
        assert parsed == (ref or RecordRef(SUM, 3))
        assert not is_team_ref(value)

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("team#", "not a team record reference: 'team#'"),
            ("team", "not a team record reference: 'team'"),
            ("teamwork", "not a team record reference: 'teamwork'"),
            ("team#x12", "not a team record reference: 'team#x12'"),
            ("team#12#3", "not a team record reference: 'team#12#3'"),
            ("team#-1", "not a team record reference"),
            ("team # 12", "not a team record reference"),
            ("team#0", "no record can have the id in 'team#0'"),
            ("team#9223372036854775808", "no record can have the id in"),
            ("team#12345678901234567890", "not a team record reference"),
        ],
    )
    def test_junk_is_a_clear_error(self, text: str, message: str) -> None:
        with pytest.raises(InvalidRequestError, match=re.escape(message)):
            parse_any_ref(text)
        # Whatever it is, it never reads as a local record either.
        with pytest.raises(InvalidRequestError):
            parse_ref(text)

    @pytest.mark.parametrize("text", ["team#12", "TEAM #S5", " team#p7"])
    def test_parse_ref_refuses_a_team_reference_saying_how_to_read_it(self, text: str) -> None:
        with pytest.raises(InvalidRequestError) as raised:
            parse_ref(text)
        message = str(raised.value)
        assert "record of the team server" in message
        assert f"memq show {text.strip()}" in message
        assert "get_observations" in message

    def test_a_list_keeps_team_and_local_records_apart_once_each(self) -> None:
        parsed = parse_any_refs(["team#12", "#12", "TEAM 12", 12, "team#S12"])
        assert parsed == [
            TeamRef(RecordRef(OBS, 12)),
            RecordRef(OBS, 12),
            TeamRef(RecordRef(SUM, 12)),
        ]
        with pytest.raises(InvalidRequestError, match="'teamwork'"):
            parse_any_refs(["team#1", "teamwork"])


def observation(record_id: int, title: str, author: str | None) -> ObservationRecord:
    return ObservationRecord(
        kind=ObservationKind.CHANGE,
        title=title,
        id=record_id,
        session_key="claude-code:s1",
        created_at=NOW - timedelta(minutes=5),
        author=author,
    )


class TestTeamContext:
    def render(self, ref_prefix: str) -> str:
        layout = project_layout("github.com/acme/app", 500, ref_prefix)
        summary = SummaryRecord(
            request="make retries back off", id=3, session_key="claude-code:s1", author="alice"
        )
        add_summaries(layout, "github.com/acme/app", [summary], NOW, {}, viewer="bob")
        records = [observation(12, "fix issue #7 in retry.py", "alice"), observation(9, "x", None)]
        add_observations(layout, "github.com/acme/app", records, NOW, viewer="bob")
        return layout.text()

    def test_every_reference_of_the_team_block_is_a_team_reference(self) -> None:
        text = self.render(TEAM_PREFIX)
        assert "* team#S3 [alice] " in text
        assert "- team#12 [alice] 5m ago [change] fix issue #7 in retry.py" in text
        assert "- team#9 5m ago" in text
        # The footer says how to read them, and offers no timeline (none for team records).
        assert "memq show team#ID" in text
        assert "mcp__memq__get_observations" in text
        assert "timeline" not in text
        # No reference is left bare; the "#7" in the title is prose, kept as written.
        bare = re.findall(r"(?<![\w#])(?<!team)#[SP]?\d+", text)
        assert bare == ["#7"]

    def test_the_local_context_is_unchanged(self) -> None:
        text = self.render("")
        assert "- #12 [alice] 5m ago" in text
        assert "team#" not in text
        assert "memq show #ID" in text


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "upstream.key"
    path.write_text(TOKEN)
    path.chmod(0o600)
    return path


def record(ref: str, author: str = "alice") -> dict[str, Any]:
    return {
        "ref": ref,
        "id": int(ref.lstrip("#SP")),
        "record_type": "summary" if "S" in ref else "observation",
        "title": f"record {ref}",
        "author": author,
        "machine": "laptop-a",
        "session_key": "claude-code:a1",
        "project": "github.com/acme/app",
        "message_id": 4,
        "created_at": "2026-12-04T12:00:00+00:00",
    }


def team_reads(key_file: Path, handler: Any) -> TeamReads:
    return TeamReads(
        "http://team.test", key_file, None, ManualClock(), transport=httpx.MockTransport(handler)
    )


class TestTeamReadsRecords:
    async def test_the_servers_records_come_back_as_team_records_in_the_order_asked(
        self, key_file: Path
    ) -> None:
        asked: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            asked.append(request)
            items = [record("#S5"), record("#12")]
            return httpx.Response(200, json={"items": items, "missing": ["#13"], "total": 2})

        reads = team_reads(key_file, handler)
        try:
            refs = parse_any_refs(["team#12", "team#13", "team#S5"])
            found = await reads.records([ref for ref in refs if isinstance(ref, TeamRef)])
        finally:
            await reads.aclose()
        assert asked[0].url.path == RECORDS_PATH
        assert asked[0].url.params.get("ref") == "#12,#13,#S5"  # the server's own references
        assert asked[0].headers["authorization"] == f"Bearer {TOKEN}"
        assert [(i["ref"], i["team"], i["author"]) for i in found["items"]] == [
            ("team#12", True, "alice"),
            ("team#S5", True, "alice"),
        ]
        assert found["missing"] == ["team#13"]
        assert found["total"] == 2

    async def test_none_found_is_every_one_missing(self, key_file: Path) -> None:
        reads = team_reads(
            key_file, lambda request: httpx.Response(404, json={"error": "no record #12"})
        )
        try:
            found = await reads.records([TeamRef(RecordRef(OBS, 12))])
        finally:
            await reads.aclose()
        assert found == {"items": [], "missing": ["team#12"], "total": 0}

    @pytest.mark.parametrize(
        ("response", "message"),
        [
            (httpx.Response(401, json={"error": "revoked key"}), "answered 401: revoked key"),
            (httpx.Response(500, text="boom"), "answered 500"),
            (httpx.Response(200, json={"items": [{"id": 3}]}), "has no reference"),
            (httpx.Response(200, json={"items": [{"ref": "team#3"}]}), "team server"),
            (httpx.Response(200, text="<html>"), "team server"),
        ],
    )
    async def test_an_unusable_answer_is_a_clear_error(
        self, key_file: Path, response: httpx.Response, message: str
    ) -> None:
        reads = team_reads(key_file, lambda request: response)
        try:
            with pytest.raises(TeamReadError, match=re.escape(message)) as raised:
                await reads.records([TeamRef(RecordRef(OBS, 3))])
        finally:
            await reads.aclose()
        assert "http://team.test" in str(raised.value)

    async def test_a_server_that_does_not_answer_is_given_up_on_in_time(
        self, key_file: Path
    ) -> None:
        async def handler(request: httpx.Request) -> httpx.Response:
            await anyio.sleep(60)
            return httpx.Response(200, json={"items": []})

        reads = team_reads(key_file, handler)
        started = time.monotonic()
        try:
            with pytest.raises(TeamReadError, match="no answer in time"):
                await reads.records([TeamRef(RecordRef(OBS, 3))])
        finally:
            await reads.aclose()
        waited = time.monotonic() - started
        assert RECORDS_TIMEOUT == 3.0
        assert RECORDS_TIMEOUT - 0.1 <= waited < RECORDS_TIMEOUT + 2

    async def test_no_key_file_and_too_many_refs_are_clear_errors(self, tmp_path: Path) -> None:
        reads = team_reads(tmp_path / "nokey", lambda request: httpx.Response(200))
        try:
            with pytest.raises(TeamReadError, match="no key file"):
                await reads.records([TeamRef(RecordRef(OBS, 3))])
            many = [TeamRef(RecordRef(OBS, n)) for n in range(1, MAX_TEAM_REFS + 2)]
            with pytest.raises(InvalidRequestError, match=f"at most {MAX_TEAM_REFS}"):
                await reads.records(many)
        finally:
            await reads.aclose()


def test_a_team_record_is_printed_as_the_teams_with_its_author() -> None:
    item = {**record("#12"), "ref": "team#12", "team": True, "kind": "change"}
    text = record_text(item, lambda iso: iso)
    head, origin = text.splitlines()[:2]
    assert head.startswith("team#12  observation/change")
    assert origin.startswith("team memory  by alice on laptop-a  session claude-code:a1")
    local = record_text({**record("#12"), "author": None}, lambda iso: iso)
    assert "team memory" not in local
    assert "by " not in local.splitlines()[1]


class TestMcpArguments:
    def test_get_observations_takes_team_and_local_references(self) -> None:
        refs = server._refs(["team#12", "#12", "team #S3, team 4"])
        assert [str(ref) for ref in refs] == ["team#12", "#12", "team#S3", "team#4"]
        with pytest.raises(ToolError, match="not a team record reference: 'teamx'"):
            server._refs("teamx #3")

    def test_timeline_says_a_team_record_has_none(self) -> None:
        with pytest.raises(ToolError, match=r"not available for team records \(team#12"):
            server._ref("team#12")
        assert server._ref("#12") == RecordRef(OBS, 12)

    def test_without_the_daemon_a_team_record_is_not_read_from_the_local_file(
        self, tmp_path: Path
    ) -> None:
        settings = Settings(home=tmp_path, port=1)  # nothing listens on port 1
        api = reader.MemoryApi(settings, timeout=1)
        with pytest.raises(InvalidRequestError, match="read through the memq daemon"):
            api.records(["team#12"], current=None)
