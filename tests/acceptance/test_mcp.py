"""Issue 12: ``memq mcp``, started as an assistant starts it and spoken to by the MCP SDK's own
stdio client, answers every tool from real memory: through the running daemon, and from
the database file (read-only) when the daemon is stopped. Bad arguments are tool errors
with a clear message, never a crash of the server."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from memq.env import MCP_TOOLS
from tests.acceptance.conftest import sample, sequence
from tests.helpers.daemon import Daemon, free_port
from tests.helpers.mcp import call, call_error, mcp_client

SESSION = "5d6e1f0a-2b3c-4d5e-8f90-a1b2c3d4e5f6"
FIXTURE_PROJECT = sample("SessionStart")["cwd"]  # the captured runs' project
REF = re.compile(r"#[SP]?\d+")


def events(project: Path) -> list[dict[str, Any]]:
    """A prompt, a file written, a test run and a Stop in ``project``."""
    where = {"session_id": SESSION, "cwd": str(project)}
    retry = str(project / "src" / "retry.py")
    return [
        sample("SessionStart") | where,
        sample("UserPromptSubmit") | where | {"prompt": "make the retry logic back off"},
        sample("PostToolUse.Write")
        | where
        | {
            "tool_use_id": "toolu_write_retry",
            "tool_input": {"file_path": retry, "content": "def backoff(attempt): ...\n"},
        },
        sample("PostToolUse.Bash")
        | where
        | {
            "tool_use_id": "toolu_pytest_retry",
            "tool_input": {"command": "pytest tests/test_retry.py", "description": "run"},
        },
        sample("Stop") | where | {"last_assistant_message": "Retries back off now."},
    ]


def remember(daemon: Daemon, project: Path) -> None:
    with daemon.client() as client:
        for payload in [*sequence(), *events(project)]:
            assert client.post("/api/events", json=payload).status_code in (200, 202)
    daemon.wait_idle()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mcp")


@pytest.fixture(scope="module")
def project(workdir: Path) -> Path:
    """A git project the model works in (the MCP server's cwd)."""
    root = workdir / "retry-service"
    (root / ".git").mkdir(parents=True)
    (root / "src").mkdir()
    return root


@pytest.fixture(scope="module")
def daemon(workdir: Path, project: Path) -> Iterator[Daemon]:
    """A daemon with the captured runs and the project's session in memory."""
    running = Daemon(workdir / "home")
    running.start()
    try:
        remember(running, project)
        yield running
    finally:
        running.kill()


def env_of(daemon: Daemon) -> dict[str, str]:
    return {"MEMQ_HOME": str(daemon.home), "MEMQ_PORT": str(daemon.port)}


def refs_in(text: str) -> list[str]:
    return REF.findall(text)


class TestWithTheDaemon:
    async def test_the_server_names_itself_its_tools_and_when_to_use_them(
        self, daemon: Daemon, project: Path
    ) -> None:
        async with mcp_client(env_of(daemon), cwd=project) as client:
            assert client.server_info is not None
            assert client.server_info.name == "memq"
            instructions = client.instructions or ""
            assert "search" in instructions
            assert "get_observations" in instructions
            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
            assert set(tools) == set(MCP_TOOLS)
            assert tools["search"].input_schema["required"] == ["query"]
            project_schema = tools["search"].input_schema["properties"]["project"]
            assert '"*" for every project' in project_schema["description"]
            assert all(
                tool.annotations and tool.annotations.read_only_hint for tool in tools.values()
            )

    async def test_search_gives_one_line_per_record_of_the_current_project(
        self, daemon: Daemon, project: Path
    ) -> None:
        """The project is the server's cwd (its git root); each line has the reference,
        time, kind, title, files and a cost hint."""
        async with mcp_client(env_of(daemon), cwd=project / "src") as client:
            text = await call(client, "search", query="retry")
            assert f"in project {project}" in text
            lines = [line for line in text.splitlines() if REF.match(line)]
            assert lines
            write = next(line for line in lines if "  change  " in line)
            assert re.match(r"#\d+  \d{4}-\d\d-\d\d \d\d:\d\d  change  .*~\d+ tok$", write), write
            assert "Created src/retry.py  [src/retry.py]" in write  # paths within the project
            assert "out.txt" not in text  # the other project's records
            everywhere = await call(client, "search", query="one.txt", project="*")
            assert "every project" in everywhere
            assert refs_in(everywhere)
            here = await call(client, "search", query="one.txt")
            assert 'project="*"' in here  # nothing here; the answer says how to look wider

    async def test_the_clients_root_is_the_current_project(
        self, daemon: Daemon, tmp_path: Path
    ) -> None:
        """A client that offers roots names the project, wherever the server runs (on the
        handshake-era protocol: from 2026-07-28 on, roots are deprecated and the cwd counts)."""
        roots = (FIXTURE_PROJECT,)
        async with mcp_client(env_of(daemon), cwd=tmp_path, roots=roots, mode="legacy") as client:
            text = await call(client, "search", query="one.txt")
            assert f"in project {FIXTURE_PROJECT}" in text
            assert refs_in(text)

    async def test_search_filters(self, daemon: Daemon, project: Path) -> None:
        async with mcp_client(env_of(daemon), cwd=project) as client:
            commands = await call(client, "search", query="retry", kind="command")
            assert "pytest tests/test_retry.py" in commands
            assert "  change  " not in commands
            prompts = await call(client, "search", query="retry", kind="prompt")
            assert refs_in(prompts)
            assert all(ref.startswith("#P") for ref in refs_in(prompts))
            later = await call(client, "search", query="retry", since="2999-01-01")
            assert "No records match" in later
            in_session = await call(client, "search", query="retry", session=SESSION)
            assert f"session {SESSION}" in in_session
            assert len(refs_in(in_session)) == 4
            fixture_session = sample("UserPromptSubmit")["session_id"]
            elsewhere = await call(client, "search", query="retry", session=fixture_session)
            assert "No records match" in elsewhere
            one = await call(client, "search", query="retry", limit=1)
            assert len([line for line in one.splitlines() if REF.match(line)]) == 1

    async def test_get_observations_reads_records_in_full(
        self, daemon: Daemon, project: Path
    ) -> None:
        async with mcp_client(env_of(daemon), cwd=project) as client:
            index = await call(client, "search", query="pytest retry", kind="command")
            ref = refs_in(index)[0]
            text = await call(client, "get_observations", ids=[ref])
            assert text.startswith(f"{ref}  observation/command  ")
            assert "Command: pytest tests/test_retry.py" in text
            assert f"project {project}" in text
            assert f"session claude-code:{SESSION}" in text
            number = int(ref.removeprefix("#"))
            assert await call(client, "get_observations", ids=number) == text
            assert await call(client, "get_observations", ids=f"{ref}, #S1") != text
            partial = await call(client, "get_observations", ids=[ref, "#99999999"])
            assert partial.startswith(text)
            assert partial.endswith("Not found (deleted, or never there): #99999999")

    async def test_timeline_marks_its_anchor(self, daemon: Daemon, project: Path) -> None:
        async with mcp_client(env_of(daemon), cwd=project) as client:
            index = await call(client, "search", query="pytest retry", kind="command")
            ref = refs_in(index)[0]
            text = await call(client, "timeline", anchor=ref, depth_before=2, depth_after=2)
            assert f"Session claude-code:{SESSION}, around {ref}" in text
            marked = [line for line in text.splitlines() if line.startswith("▶ ")]
            assert len(marked) == 1
            assert marked[0].startswith(f"▶ {ref}  ")
            assert len([line for line in text.splitlines() if REF.search(line)]) == 5
            by_query = await call(client, "timeline", query="pytest retry", depth_before=1)
            assert "▶ #" in by_query

    async def test_recent_context_is_the_session_start_text(
        self, daemon: Daemon, project: Path
    ) -> None:
        async with mcp_client(env_of(daemon), cwd=project) as client:
            text = await call(client, "recent_context")
            with daemon.client() as http:
                expected = http.get("/api/context", params={"project": str(project)}).json()
            assert text == expected["context"]
            assert "retry" in text
            other = await call(client, "recent_context", project=str(project.parent))
            assert "no memory of project" in other

    async def test_bad_arguments_are_tool_errors(self, daemon: Daemon, project: Path) -> None:
        """Each answers isError with what was wrong; the server goes on answering."""
        async with mcp_client(env_of(daemon), cwd=project) as client:
            assert "not a record reference: 'twelve'" in await call_error(
                client, "get_observations", ids=["twelve"]
            )
            assert "no record #99999999" in await call_error(
                client, "get_observations", ids="#99999999"
            )
            assert "at least one" in await call_error(client, "get_observations", ids=[])
            assert "search query is empty" in await call_error(client, "search", query="  ")
            assert "unknown kind 'spaceship'" in await call_error(
                client, "search", query="retry", kind="spaceship"
            )
            assert "since must be an ISO-8601" in await call_error(
                client, "search", query="retry", since="yesterday"
            )
            assert "limit must be" in await call_error(client, "search", query="x", limit=0)
            assert "no session 'no-such-session'" in await call_error(
                client, "search", query="retry", session="no-such-session"
            )
            assert "exactly one of anchor" in await call_error(client, "timeline")
            assert "no record #S99999999" in await call_error(
                client, "timeline", anchor="#S99999999"
            )
            assert "depth_before" in await call_error(
                client, "timeline", anchor="#1", depth_before=1000
            )
            assert "one project" in await call_error(client, "recent_context", project="*")
            assert await call(client, "search", query="retry")  # still serving

    async def test_huge_answers_are_cut_saying_how_to_narrow(
        self, daemon: Daemon, project: Path
    ) -> None:
        """A thousand lines do not fit the budget: the answer ends saying what to do."""
        with daemon.client() as http:
            for n in range(300):
                payload = sample("PostToolUse.Bash") | {
                    "session_id": SESSION,
                    "cwd": str(project),
                    "tool_use_id": f"toolu_flood_{n}",
                    "tool_input": {"command": f"echo flood {n} " + "x" * 300},
                }
                assert http.post("/api/events", json=payload).status_code in (200, 202)
        daemon.wait_idle()
        async with mcp_client(env_of(daemon), cwd=project) as client:
            text = await call(client, "search", query="flood", limit=1000)
            assert len(text) <= 6000 * 4 + 200
            assert text.rstrip().endswith("lower limit]")
            assert "more left out" in text


class TestWithTheDaemonStopped:
    async def test_every_tool_reads_the_file_and_changes_nothing(
        self, tmp_path: Path, project: Path
    ) -> None:
        stopped = Daemon(tmp_path / "home")
        stopped.start()
        try:
            remember(stopped, project)
            with stopped.client() as http:
                context = http.get("/api/context", params={"project": str(project)}).json()
        finally:
            assert stopped.stop() == 0
        database = stopped.home / "memq.db"
        before = hashlib.sha256(database.read_bytes()).hexdigest()
        async with mcp_client(env_of(stopped), cwd=project) as client:
            index = await call(client, "search", query="pytest retry", kind="command")
            ref = refs_in(index)[0]
            assert "pytest tests/test_retry.py" in index
            full = await call(client, "get_observations", ids=[ref])
            assert "Command: pytest tests/test_retry.py" in full
            timeline = await call(client, "timeline", anchor=ref)
            assert f"▶ {ref}" in timeline
            assert await call(client, "recent_context") == context["context"]
            assert "no record #99999999" in await call_error(
                client, "get_observations", ids="#99999999"
            )
            assert "not a record reference" in await call_error(client, "timeline", anchor="x")
            assert "no session 'nope'" in await call_error(
                client, "search", query="retry", session="nope"
            )
            assert refs_in(await call(client, "search", query="retry", session=SESSION))
        assert hashlib.sha256(database.read_bytes()).hexdigest() == before

    async def test_a_home_without_memory_answers_nothing_found(
        self, tmp_path: Path, project: Path
    ) -> None:
        home = tmp_path / "home"
        env = {"MEMQ_HOME": str(home), "MEMQ_PORT": str(free_port())}
        async with mcp_client(env, cwd=project) as client:
            assert "No records match" in await call(client, "search", query="retry")
            assert "no memory of project" in await call(client, "recent_context")
            assert "no record #1" in await call_error(client, "get_observations", ids="#1")
        assert not (home / "memq.db").exists()


class TestTheHome:
    async def test_found_as_the_hook_finds_it_without_memq_variables(
        self, tmp_path: Path, project: Path
    ) -> None:
        """Started with no MEMQ_* variable, the server reads ~/.memq and the port in its
        settings.toml, as the hook does."""
        user = tmp_path / "user"
        home = user / ".memq"
        home.mkdir(parents=True, mode=0o700)
        port = free_port()
        (home / "settings.toml").write_text(f"port = {port}\n")
        running = Daemon(home, port=port)
        running.start()
        try:
            remember(running, project)
            async with mcp_client({"HOME": str(user)}, cwd=project) as client:
                text = await call(client, "search", query="pytest retry")
                assert "pytest tests/test_retry.py" in text
        finally:
            running.kill()


class _Recorder(BaseHTTPRequestHandler):
    """Answers every GET as memq would for nothing found, noting the headers."""

    seen: list[dict[str, str]] = []  # noqa: RUF012 - one recorder per test, reset there

    def do_GET(self) -> None:
        type(self).seen.append({key.lower(): value for key, value in self.headers.items()})
        body = json.dumps({"items": [], "total": 0}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class TestHeaders:
    async def test_every_api_call_names_mcp_and_the_project(
        self, tmp_path: Path, project: Path
    ) -> None:
        """Whatever answers on the port sees who asks, and for which project."""
        _Recorder.seen = []
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            env = {"MEMQ_HOME": str(tmp_path / "home"), "MEMQ_PORT": str(server.server_port)}
            async with mcp_client(env, cwd=project / "src") as client:
                assert "No records match" in await call(client, "search", query="retry")
        finally:
            server.shutdown()
            server.server_close()
        assert _Recorder.seen
        for headers in _Recorder.seen:
            assert headers["x-memq-via"] == "mcp"
            assert headers["x-memq-tool"] == "search"
            assert unquote(headers["x-memq-project"]) == str(project)
