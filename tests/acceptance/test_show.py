"""Issue 12: ``memq show REF...`` prints records in full for people (or as JSON), through the
daemon or, when it is stopped, from the database file; bad and missing references fail
with a clear message and a non-zero exit status."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.acceptance.test_mcp import SESSION, remember
from tests.helpers.daemon import Daemon

EXIT_ERROR = 1
EXIT_USAGE = 2


@pytest.fixture(scope="module")
def remembered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon with a project's session in memory (running)."""
    workdir = tmp_path_factory.mktemp("show")
    project = workdir / "retry-service"
    (project / ".git").mkdir(parents=True)
    daemon = Daemon(workdir / "home")
    daemon.start()
    try:
        remember(daemon, project)
        yield daemon
    finally:
        daemon.kill()


def refs(daemon: Daemon, query: str, record_type: str) -> list[str]:
    """The references of the records of ``record_type`` a search finds."""
    letter = {"observation": "", "summary": "S", "prompt": "P"}[record_type]
    with daemon.client() as client:
        items = client.get("/api/search", params={"q": query, "type": record_type}).json()
    return [f"#{letter}{item['id']}" for item in items["items"]]


class TestShow:
    def test_prints_each_record_in_full(self, remembered: Daemon) -> None:
        command = refs(remembered, "pytest", "observation")[0]
        summary = refs(remembered, "retry", "summary")[0]
        prompt = refs(remembered, "retry", "prompt")[0]
        result = remembered.memq("show", summary, command.removeprefix("#"), prompt, "--utc")
        assert result.returncode == 0, result.stderr
        blocks = result.stdout.strip().split("\n\n")
        assert [block.split()[0] for block in blocks] == [summary, command, prompt]
        assert blocks[0].split("\n")[0].startswith(f"{summary}  summary  ")
        assert "Request:\n  make the retry logic back off" in blocks[0]
        assert "Command: pytest tests/test_retry.py" in blocks[1]
        assert f"session claude-code:{SESSION}" in blocks[1]
        assert blocks[1].split("\n")[0].endswith(" UTC")
        assert "Prompt 1 of its session:\n  make the retry logic back off" in blocks[2]

    def test_json(self, remembered: Daemon) -> None:
        command = refs(remembered, "pytest", "observation")[0]
        result = remembered.memq("show", f"{command},#99999999", "--json")
        assert result.returncode == EXIT_ERROR  # one is missing
        body = json.loads(result.stdout)
        assert [item["ref"] for item in body["items"]] == [command]
        assert body["items"][0]["command"] == "pytest tests/test_retry.py"
        assert body["missing"] == ["#99999999"]
        assert "no record #99999999" in result.stderr

    def test_missing_and_bad_references_fail_clearly(self, remembered: Daemon) -> None:
        missing = remembered.memq("show", "#99999999", "S99999999")
        assert missing.returncode == EXIT_ERROR
        assert missing.stdout == ""
        assert "memq: memory holds no record #99999999, #S99999999" in missing.stderr
        bad = remembered.memq("show", "#12", "twelve")
        assert bad.returncode == EXIT_USAGE
        assert "not a record reference: 'twelve'" in bad.stderr

    def test_reads_the_file_when_the_daemon_is_stopped(
        self, remembered: Daemon, tmp_path: Path
    ) -> None:
        command = refs(remembered, "pytest", "observation")[0]
        up = remembered.memq("show", command, "--utc")
        assert remembered.stop() == 0
        try:
            down = remembered.memq("show", command, "--utc")
            assert (down.returncode, down.stdout) == (0, up.stdout)
            assert "directly" in down.stderr
            missing = remembered.memq("show", "#99999999")
            assert missing.returncode == EXIT_ERROR
            assert "no record #99999999" in missing.stderr
        finally:
            remembered.start()


class TestTheRecordsApi:
    def test_records_by_reference(self, remembered: Daemon) -> None:
        """``GET /api/records``: the records in the order asked, the missing ones named; a
        bad reference is a 422, none found a 404."""
        command = refs(remembered, "pytest", "observation")[0]
        summary = refs(remembered, "retry", "summary")[0]
        with remembered.client() as client:
            found = client.get("/api/records", params={"ids": f"{summary},{command},#99999999"})
            assert found.status_code == 200
            body = found.json()
            assert [item["ref"] for item in body["items"]] == [summary, command]
            assert (body["missing"], body["total"]) == (["#99999999"], 2)
            # A raw # would start the URL's fragment: written bare (or %23) it is the same.
            repeated = client.get(f"/api/records?ids={command[1:]}&ids=%23{summary[1:]}")
            assert [item["ref"] for item in repeated.json()["items"]] == [command, summary]
            bad = client.get("/api/records", params={"ids": "#12,nope"})
            assert (bad.status_code, bad.json()["error"]) == (
                422,
                "not a record reference: 'nope' (use #123 for an observation, #S12 for a "
                "summary, #P7 for a prompt)",
            )
            assert client.get("/api/records").status_code == 422
            many = ",".join(str(n) for n in range(1, 102))
            assert "at most 100" in client.get("/api/records", params={"ids": many}).text
            none = client.get("/api/records", params={"ids": "#99999999"})
            assert none.status_code == 404
            assert "no record #99999999" in none.json()["error"]

    def test_the_timeline_by_reference(self, remembered: Daemon) -> None:
        """``GET /api/timeline?anchor=``: the timeline of the record's message; ``around``
        still works, and exactly one of them is required."""
        command = refs(remembered, "pytest", "observation")[0]
        with remembered.client() as client:
            by_ref = client.get("/api/timeline", params={"anchor": command, "before": 1})
            assert by_ref.status_code == 200
            anchor = by_ref.json()["anchor"]
            assert f"#{anchor['id']}" == command
            around = client.get(
                "/api/timeline", params={"around": anchor["message_id"], "before": 1}
            )
            assert around.json() == by_ref.json()
            assert client.get("/api/timeline").status_code == 422
            both = client.get("/api/timeline", params={"anchor": command, "around": 1})
            assert both.status_code == 422
            assert client.get("/api/timeline", params={"anchor": "x1"}).status_code == 422
            missing = client.get("/api/timeline", params={"anchor": "#S99999999"})
            assert missing.status_code == 404
            assert "no record #S99999999" in missing.json()["error"]
