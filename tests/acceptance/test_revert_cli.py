"""memq revert against the real daemon: after a rewind, the session forgets what followed."""

from __future__ import annotations

from tests.acceptance.conftest import sample
from tests.helpers.daemon import Daemon


class TestRevert:
    def test_last_n_and_bad_requests(self, daemon: Daemon) -> None:
        """--last 1 forgets the newest record; a missing or mixed cut is a 422, an unknown
        session a 404."""
        session = sample("PostToolUse.Bash")["session_id"]
        with daemon.client() as client:
            for i in range(3):
                event = {**sample("PostToolUse.Bash"), "tool_use_id": f"toolu_r{i}"}
                assert client.post("/api/events", json=event).status_code == 202
            daemon.wait_idle()
            before = client.get(f"/api/sessions/{session}/observations").json()["items"]
            result = daemon.memq("revert", session, "--last", "1")
            assert result.returncode == 0, result.stderr
            assert "1 record(s)" in result.stdout
            after = client.get(f"/api/sessions/{session}/observations").json()["items"]
            assert [o["message_id"] for o in after] == [o["message_id"] for o in before[:2]]

            keep = before[0]["message_id"]
            kept = client.post(f"/api/sessions/{session}/revert", json={"after": keep})
            assert kept.json()["memory_rows"] == 1
            remaining = client.get(f"/api/sessions/{session}/observations").json()["items"]
            assert [o["message_id"] for o in remaining] == [keep]

            url = f"/api/sessions/{session}/revert"
            assert client.post(url, json={}).status_code == 422
            assert client.post(url, json={"after": 1, "last": 1}).status_code == 422
            assert client.post(url, json={"last": 0}).status_code == 422
            assert client.post("/api/sessions/nobody/revert", json={"last": 1}).status_code == 404
        assert daemon.memq("revert", session).returncode == 2  # argparse: a cut is required

    def test_transfer_moves_a_session_and_refuses_nonsense(self, daemon: Daemon) -> None:
        """memq transfer FROM TO: the memory is found under the new id only; moving a session
        onto itself or nowhere is a 422."""
        source = sample("UserPromptSubmit")["session_id"]
        with daemon.client() as client:
            client.post("/api/events", json=sample("UserPromptSubmit"))
            client.post("/api/events", json=sample("PostToolUse.Bash"))
            daemon.wait_idle()
            result = daemon.memq("transfer", source, "renamed")
            assert result.returncode == 0, result.stderr
            assert "to claude-code:renamed" in result.stdout
            assert client.get(f"/api/sessions/{source}").status_code == 404
            moved = client.get("/api/sessions/renamed").json()
            assert [p["text"] for p in moved["prompts"]] == ["create out.txt"]
            assert client.get("/api/sessions/renamed/observations").json()["total"] == 1
            url = "/api/sessions/renamed/transfer"
            assert client.post(url, json={"to": "renamed"}).status_code == 422
            assert client.post(url, json={}).status_code == 422
