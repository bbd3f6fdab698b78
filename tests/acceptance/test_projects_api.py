"""``GET /api/projects``: the projects memory knows, newest activity first, bounded, with
their session counts and a total; behind the bearer token like every route."""

from __future__ import annotations

import uuid

import httpx

from tests.acceptance.conftest import sample
from tests.helpers.daemon import Daemon


def prompt_in(cwd: str) -> dict[str, object]:
    """A prompt in a new session working in ``cwd`` (a directory that does not exist names
    its own project)."""
    return {
        **sample("UserPromptSubmit"),
        "session_id": str(uuid.uuid4()),
        "prompt_id": str(uuid.uuid4()),
        "cwd": cwd,
    }


def test_projects_are_listed_newest_first_with_counts_and_a_total(daemon: Daemon) -> None:
    with daemon.client() as client:
        for cwd in ("/nowhere/alpha", "/nowhere/beta", "/nowhere/alpha", "/nowhere/gamma"):
            assert client.post("/api/events", json=prompt_in(cwd)).is_success
            daemon.wait_idle()  # one at a time: their activity times ascend in this order
        answer = client.get("/api/projects").json()
        listed = [(item["project"], item["session_count"]) for item in answer["items"]]
        assert listed == [("/nowhere/gamma", 1), ("/nowhere/alpha", 2), ("/nowhere/beta", 1)]
        assert answer["total"] == 3
        assert all(item["last_activity_at"].endswith("Z") for item in answer["items"])
        times = [item["last_activity_at"] for item in answer["items"]]
        assert times == sorted(times, reverse=True)

        page = client.get("/api/projects?limit=1&offset=1").json()
        assert [item["project"] for item in page["items"]] == ["/nowhere/alpha"]
        assert page["total"] == 3
        assert client.get("/api/projects?limit=0").status_code == 422
        assert client.get("/api/projects?limit=1001").status_code == 422


def test_projects_need_the_token(daemon: Daemon) -> None:
    with daemon.client() as client:
        assert client.post("/api/events", json=prompt_in("/nowhere/secret")).is_success
        daemon.wait_idle()
    anonymous = httpx.get(f"{daemon.url}/api/projects", timeout=10)
    assert anonymous.status_code == 401
    assert "/nowhere/secret" not in anonymous.text
    wrong = httpx.get(
        f"{daemon.url}/api/projects", headers={"Authorization": "Bearer nope"}, timeout=10
    )
    assert wrong.status_code == 401
