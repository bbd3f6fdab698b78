"""Per-session settings, titles, --ephemeral and project changes against the real daemon and
CLI, with restarts where the issue claims persistence."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.acceptance.conftest import sample
from tests.helpers.daemon import Daemon
from tests.helpers.fake_llm import FakeLLM, openai_text

SESSION = sample("PostToolUse.Bash")["session_id"]
KEY = f"claude-code:{SESSION}"


def tool_event(n: int, session: str = SESSION, **fields: Any) -> dict[str, Any]:
    return {**sample("PostToolUse.Bash"), "session_id": session, "tool_use_id": f"t{n}", **fields}


def counts_of(client: httpx.Client, key: str) -> dict[str, int]:
    sessions = client.get("/api/status").json()["sessions"]
    return next((s["counts"] for s in sessions if s["session_id"] == key), {})


class TestConfigApi:
    def test_set_get_delete_and_refusals(self, daemon: Daemon) -> None:
        """PUT stores a setting, GET shows it with the defaults, DELETE brings the default
        back; unknown names, bad values and unconfigurable processors are a 422; a session
        memq does not know is a 404 unless the PUT creates it."""
        with daemon.client() as client:
            url = f"/api/sessions/{SESSION}/config"
            assert client.get(url).status_code == 404
            refused = client.put(f"{url}/paused", json={"value": True})
            assert refused.status_code == 404
            assert f"no session {KEY}" in refused.json()["error"]
            assert client.get(f"{url}/paused").status_code == 404
            bad_create = {"value": "m", "create": "yes"}
            assert client.put(f"{url}/model", json=bad_create).status_code == 422
            assert client.get("/api/status").json()["paused_sessions"] == []
            put = client.put(f"{url}/model", json={"value": "  small-model ", "create": True})
            assert put.status_code == 200
            assert put.json() == {
                "session_id": KEY,
                "name": "model",
                "value": "small-model",
                "known": False,
            }
            assert client.get(f"{url}/model").json()["value"] == "small-model"
            assert client.get(url).json() == {
                "session_id": KEY,
                "config": {"processor": None, "model": "small-model", "paused": False},
                "set": ["model"],
                "effective": {"processor": "extract", "model": None},
                "pause": None,
            }

            assert client.put(f"{url}/colour", json={"value": "red"}).status_code == 422
            assert client.put(f"{url}/paused", json={"value": "maybe"}).status_code == 422
            assert client.put(f"{url}/paused", json={}).status_code == 422
            assert client.put(f"{url}/model", json={"value": ""}).status_code == 422
            assert client.put(f"{url}/processor", json={"value": "nope"}).status_code == 422
            # No API key in this daemon's environment: refused now, not failed later.
            refused = client.put(f"{url}/processor", json={"value": "anthropic"})
            assert refused.status_code == 422
            assert "API key" in refused.json()["error"]
            assert client.put(f"{url}/model", content=b"{").status_code == 400

            assert client.delete(f"{url}/model").json()["value"] is None
            assert client.delete(f"{url}/model").status_code == 404
            # Its last setting gone and no event ever sent: memq does not know it again.
            assert client.get(url).status_code == 404


class TestConfigCli:
    def test_settings_survive_a_restart(self, tmp_path: Path) -> None:
        """memq config sets and shows settings; after a restart they are still there."""
        daemon = Daemon(tmp_path / "home")
        daemon.start()
        try:
            result = daemon.memq("config", SESSION, "paused", "yes", "--create")
            assert result.returncode == 0, result.stderr
            assert result.stdout.startswith("paused = true")
            assert daemon.memq("config", SESSION, "model", "m-2").returncode == 0
            assert daemon.memq("config", SESSION, "colour", "red").returncode == 1
            assert daemon.memq("config", SESSION, "--unset").returncode == 2
            assert daemon.stop() == 0

            daemon.start()
            shown = daemon.memq("config", SESSION)
            assert shown.returncode == 0, shown.stderr
            assert "paused     true" in shown.stdout
            assert "model      m-2" in shown.stdout
            assert "processor  -  (default)" in shown.stdout
            as_json = json.loads(daemon.memq("config", SESSION, "--json").stdout)
            assert as_json["config"] == {"processor": None, "model": "m-2", "paused": True}
            assert daemon.memq("config", SESSION, "model", "--unset").returncode == 0
            assert daemon.memq("config", SESSION, "model").stdout.startswith("model = -")
        finally:
            daemon.kill()


class TestUnknownSession:
    def test_configuring_an_unknown_session_is_an_error_unless_created(
        self, daemon: Daemon
    ) -> None:
        """``memq config typo paused true`` used to store a paused session nobody sends
        events to: it is an error naming --create, and stores nothing; --create stores it; a
        session memq has seen needs no --create."""
        typo = daemon.memq("config", "typo", "paused", "true")
        assert typo.returncode == 1
        assert "no session claude-code:typo" in typo.stderr
        assert "--create" in typo.stderr
        assert typo.stdout == ""
        assert daemon.memq("config", "typo").returncode == 1
        assert daemon.memq("config", "typo", "paused").returncode == 1
        assert json.loads(daemon.memq("status", "--json").stdout)["paused_sessions"] == []
        assert daemon.memq("config", "typo", "--create").returncode == 2  # nothing to set

        created = daemon.memq("config", "typo", "paused", "true", "--create")
        assert created.returncode == 0, created.stderr
        assert "memory has no session claude-code:typo yet" in created.stdout
        status = json.loads(daemon.memq("status", "--json").stdout)
        assert status["paused_sessions"] == ["claude-code:typo"]
        assert daemon.memq("config", "typo").returncode == 0

        with daemon.client() as client:
            assert client.post("/api/events", json=tool_event(1)).status_code == 202
        seen = daemon.memq("config", SESSION, "model", "m-1")
        assert seen.returncode == 0, seen.stderr


class TestPaused:
    def test_a_paused_session_queues_and_resumes_on_unpause_even_after_restart(
        self, tmp_path: Path
    ) -> None:
        """While paused, a session's events are accepted and stay pending (others are
        processed); a restart keeps it paused; unpausing processes the backlog."""
        daemon = Daemon(tmp_path / "home")
        daemon.start()
        try:
            with daemon.client() as client:
                assert daemon.memq("config", SESSION, "paused", "true", "--create").returncode == 0
                for n in range(3):
                    assert client.post("/api/events", json=tool_event(n)).status_code == 202
                other = tool_event(9, session="other-session")
                assert client.post("/api/events", json=other).status_code == 202
                _wait_for(lambda: counts_of(client, "claude-code:other-session")["processed"] == 1)
                time.sleep(0.5)  # the paused session would have been processed by now
                assert counts_of(client, KEY)["pending"] == 3
                status = client.get("/api/status").json()
                assert status["paused_sessions"] == [KEY]
                assert "paused    " + KEY in daemon.memq("status").stdout
            assert daemon.stop() == 0

            daemon.start()
            with daemon.client() as client:
                time.sleep(0.5)
                assert counts_of(client, KEY)["pending"] == 3
                url = f"/api/sessions/{SESSION}/config/paused"
                assert client.put(url, json={"value": False}).status_code == 200
                _wait_for(lambda: counts_of(client, KEY)["processed"] == 3)
                observations = client.get(f"/api/sessions/{SESSION}/observations").json()
                assert observations["total"] == 3
        finally:
            daemon.kill()


class TestPerSessionProcessor:
    def test_a_session_gets_its_own_processor_and_model(self, tmp_path: Path) -> None:
        """With ``processor=openai`` and ``model=tiny`` set on one session, its next message
        goes to the model API asking for that model; another session stays on extract."""
        with FakeLLM.running() as fake:
            fake.script(openai_text(json.dumps(OBSERVATION)))
            env = {"MEMQ_BASE_URL": f"{fake.url}/v1", "MEMQ_API_KEY": "k-test"}
            daemon = Daemon(tmp_path / "home", env=env)
            daemon.start()
            try:
                with daemon.client() as client:
                    url = f"/api/sessions/{SESSION}/config"
                    create = {"value": "openai", "create": True}
                    assert client.put(f"{url}/processor", json=create).is_success
                    assert client.put(f"{url}/model", json={"value": "tiny"}).is_success
                    assert client.get(url).json()["effective"] == {
                        "processor": "openai",
                        "model": "tiny",
                    }
                    client.post("/api/events", json=tool_event(1))
                    client.post("/api/events", json=tool_event(2, session="plain"))
                    daemon.wait_idle()
                    assert [r.json()["model"] for r in fake.requests] == ["tiny"]
                    mine = client.get(f"/api/sessions/{SESSION}/observations").json()
                    assert [o["title"] for o in mine["items"]] == [OBSERVATION["title"]]
                    plain = client.get("/api/sessions/plain/observations").json()
                    assert plain["items"][0]["title"] != OBSERVATION["title"]
            finally:
                daemon.kill()


OBSERVATION = {
    "kind": "change",
    "title": "Wrote out.txt (model-made)",
    "subtitle": "via the per-session model",
    "narrative": "A model wrote this record.",
    "facts": [],
    "concepts": [],
    "files_read": [],
    "files_modified": [],
}


class TestTitles:
    def test_edit_reset_revert_and_restart(self, tmp_path: Path) -> None:
        """A title comes from the first prompt; an edited one survives a revert of every
        prompt and a restart; --reset gives the first prompt's back."""
        daemon = Daemon(tmp_path / "home")
        daemon.start()
        try:
            with daemon.client() as client:
                prompt = sample("UserPromptSubmit")
                session = prompt["session_id"]
                client.post("/api/events", json=prompt)
                daemon.wait_idle()
                assert daemon.memq("title", session).stdout.strip() == "create out.txt"
                edited = daemon.memq("title", session, "Greeting file")
                assert edited.returncode == 0, edited.stderr
                detail = client.get(f"/api/sessions/{session}").json()
                assert (detail["title"], detail["title_edited"]) == ("Greeting file", True)
                url = f"/api/sessions/{session}/title"
                assert client.put(url, json={"title": "  "}).status_code == 422
                assert client.put(url, json={"title": 3}).status_code == 422
                assert client.put(url, json={}).status_code == 422
                assert (
                    client.put("/api/sessions/nobody/title", json={"title": "x"}).status_code == 404
                )
                assert daemon.memq("revert", session, "--last", "1").returncode == 0
                assert client.get(f"/api/sessions/{session}").json()["prompt_count"] == 0
            assert daemon.stop() == 0

            daemon.start()
            with daemon.client() as client:
                detail = client.get(f"/api/sessions/{session}").json()
                assert (detail["title"], detail["title_edited"]) == ("Greeting file", True)
                client.post(
                    "/api/events", json={**prompt, "prompt_id": "again", "prompt": "Hi\nthere"}
                )
                daemon.wait_idle()
                reset = daemon.memq("title", session, "--reset")
                assert reset.returncode == 0, reset.stderr
                detail = client.get(f"/api/sessions/{session}").json()
                assert (detail["title"], detail["title_edited"]) == ("Hi", False)
        finally:
            daemon.kill()


class TestProjectChange:
    def test_a_session_whose_cwd_appears_later_is_updated_not_duplicated(
        self, daemon: Daemon, tmp_path: Path
    ) -> None:
        """The first event has an empty cwd, later ones a project and then another one: one
        session, whose project follows the latest."""
        first, second = tmp_path / "first", tmp_path / "second"
        (first / ".git").mkdir(parents=True)
        (second / "sub").mkdir(parents=True)
        with daemon.client() as client:
            client.post("/api/events", json=tool_event(1, cwd=""))
            daemon.wait_idle()
            assert client.get(f"/api/sessions/{SESSION}").json()["project"] is None
            client.post("/api/events", json=tool_event(2, cwd=str(first / "deep")))
            daemon.wait_idle()
            assert client.get(f"/api/sessions/{SESSION}").json()["project"] == str(first)
            client.post("/api/events", json=tool_event(3, cwd=str(second / "sub")))
            daemon.wait_idle()
            listed = client.get("/api/sessions").json()
            assert [s["key"] for s in listed["items"]] == [KEY]
            assert listed["items"][0]["project"] == str(second / "sub")
            assert listed["items"][0]["observation_count"] == 3


class TestEphemeral:
    def test_says_so_loudly_keeps_nothing_and_leaves_the_home_database_alone(
        self, tmp_path: Path
    ) -> None:
        """``memq serve --ephemeral`` warns on stderr, reports itself in status, and what it
        stored is gone after it stops; the home never gets a database."""
        home = tmp_path / "home"
        daemon = Daemon(home)  # not started: it lends its port, environment and client
        first = _serve_ephemeral(daemon.env)
        try:
            daemon.wait_healthy()
            with daemon.client() as client:
                assert client.post("/api/events", json=tool_event(1)).status_code == 202
                daemon.wait_idle()
                assert client.get("/api/status").json()["ephemeral"] is True
                assert client.get(f"/api/sessions/{SESSION}").status_code == 200
            status = daemon.memq("status")
            assert "EPHEMERAL" in status.stdout
            stopped = daemon.memq("stop")
            assert stopped.returncode == 0, stopped.stderr
            _, stderr = first.communicate(timeout=30)
        finally:
            if first.poll() is None:
                first.kill()
        assert "EPHEMERAL MODE" in stderr
        assert "DELETED" in stderr
        assert not (home / "memq.db").exists()
        shm = Path("/dev/shm")
        if shm.is_dir():
            assert not list(shm.glob("memq-ephemeral-*"))

        second = _serve_ephemeral(daemon.env)
        try:
            daemon.wait_healthy()
            with daemon.client() as client:
                assert client.get(f"/api/sessions/{SESSION}").status_code == 404
        finally:
            second.send_signal(signal.SIGTERM)
            second.communicate(timeout=30)


def _serve_ephemeral(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "memq", "serve", "--ephemeral"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(check: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.05)


class TestLastAccess:
    def test_written_at_shutdown_and_idle_sessions_are_dropped(self, tmp_path: Path) -> None:
        """With both triggers far away, last access reaches the database only through the
        flush at shutdown, and survives the restart; with a short TTL an idle session
        leaves the daemon's memory (its data stays)."""
        env = {
            "MEMQ_ACTIVITY_FLUSH_EVENTS": "1000000",
            "MEMQ_ACTIVITY_FLUSH_INTERVAL": "3600",
            "MEMQ_SESSION_TTL": "1",
        }
        daemon = Daemon(tmp_path / "home", env=env)
        daemon.start()
        try:
            with daemon.client() as client:
                assert client.post("/api/events", json=tool_event(1)).status_code == 202
                daemon.wait_idle()
                assert client.get(f"/api/sessions/{SESSION}").json()["last_access_at"] is None
                assert client.get("/api/status").json()["tracked_sessions"] == 1
                _wait_for(lambda: client.get("/api/status").json()["tracked_sessions"] == 0)
                assert client.get(f"/api/sessions/{SESSION}/observations").json()["total"] == 1
            assert daemon.stop() == 0
            log = (daemon.home / "logs" / "memq.log").read_text()
            assert '"event": "session.expired"' in log

            daemon.start()
            with daemon.client() as client:
                detail = client.get(f"/api/sessions/{SESSION}").json()
                assert detail["last_access_at"] is not None
        finally:
            daemon.kill()
