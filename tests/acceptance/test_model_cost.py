"""Issue 13, the model's cost under control, through the real daemon and CLI with a fake
Anthropic API on loopback: each call's tokens are recorded with its message and shown by
``memq stats`` (per day, per project, with a cost estimate) and ``memq status``; past the
daily budget the messages are processed by ``extract``, marked, none failed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.conftest import sample
from tests.helpers.daemon import Daemon, running_daemon
from tests.helpers.fake_llm import FakeLLM, Reply, anthropic_text
from tests.helpers.rows import table

SESSION = "cost-session"
OBSERVATION = {"kind": "command", "title": "Ran the tests", "facts": [], "files_modified": []}
SUMMARY = {"request": "make the tests pass", "completed": "they pass"}


def answer(record: dict[str, Any], tokens_in: int, tokens_out: int) -> Reply:
    body = dict(anthropic_text(json.dumps(record)).json)
    body["usage"] = {"input_tokens": tokens_in, "output_tokens": tokens_out}
    return Reply(json=body)


def event(name: str, n: int = 0, **fields: Any) -> dict[str, Any]:
    return {**sample(name), "session_id": SESSION, "tool_use_id": f"t{n}", **fields}


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    with FakeLLM.running() as server:
        yield server


def on_anthropic(tmp_path: Path, fake: FakeLLM, **extra: str) -> dict[str, str]:
    return {
        "MEMQ_PROCESSOR": "anthropic",
        "MEMQ_BASE_URL": fake.url,
        "MEMQ_API_KEY": "sk-test",
        "MEMQ_MODEL": "claude-haiku-4-5",
        **extra,
    }


def post_turn(daemon: Daemon, tools: int) -> None:
    with daemon.client() as client:
        posted = [event("UserPromptSubmit", prompt="make the tests pass")]
        posted += [event("PostToolUse.Bash", n) for n in range(1, tools + 1)]
        posted.append(event("Stop"))
        for body in posted:
            assert client.post("/api/events", json=body).status_code in (200, 202)
    daemon.wait_idle()


class TestModelCost:
    def test_tokens_are_recorded_and_shown_with_a_cost(self, tmp_path: Path, fake: FakeLLM) -> None:
        fake.script(
            answer(OBSERVATION, 3000, 200),
            answer(OBSERVATION, 2000, 100),
            answer(SUMMARY, 5000, 300),
        )
        env = on_anthropic(tmp_path, fake, MEMQ_MODEL_PRICES="claude-haiku-4-5=2/10")
        with running_daemon(tmp_path / "home", env) as daemon:
            post_turn(daemon, tools=2)
            rows = table(daemon.home / "memq.db", "SELECT * FROM model_usage ORDER BY id")
            assert [(r["input_tokens"], r["output_tokens"]) for r in rows] == [
                (3000, 200),
                (2000, 100),
                (5000, 300),
            ]
            stats = daemon.memq("stats", "--json")
            assert stats.returncode == 0, stats.stderr
            models = json.loads(stats.stdout)["models"]
            total = models["total"]
            assert (total["messages"], total["input_tokens"], total["output_tokens"]) == (
                3,
                10_000,
                600,
            )
            # The daemon's own price table: $2 in, $10 out per million.
            assert total["cost_usd"] == pytest.approx(0.026)
            assert len(models["days"]) == 1
            assert [p["tokens"] for p in models["projects"]] == [10_600]
            text = daemon.memq("stats").stdout
            assert "model tokens, last 7 days" in text
            assert "$0.0260" in text
            status = daemon.memq("status").stdout
            assert "tokens    today 10.6k" in status
            assert "no daily budget" in status
            daemon.kill()
            # The same figures from the file when no daemon answers.
            offline = json.loads(daemon.memq("stats", "--json").stdout)["models"]
            assert offline["total"]["cost_usd"] == pytest.approx(0.026)

    def test_past_the_daily_budget_extract_takes_over(self, tmp_path: Path, fake: FakeLLM) -> None:
        """A 2M-token budget: two calls of 1.05M spend it; the rest of the turn is extract's,
        marked, and ``memq status`` says so and when it resets."""
        fake.script(*[answer(OBSERVATION, 1_000_000, 50_000)] * 2)
        env = on_anthropic(tmp_path, fake, MEMQ_DAILY_TOKENS="2000000")
        with running_daemon(tmp_path / "home", env) as daemon:
            post_turn(daemon, tools=4)
            assert len(fake.requests) == 2
            rows = table(daemon.home / "memq.db", "SELECT * FROM model_usage ORDER BY id")
            assert [(r["processor"], r["fallback"]) for r in rows] == [
                ("anthropic", None),
                ("anthropic", None),
                ("extract", "budget"),
                ("extract", "budget"),
                ("extract", "budget"),  # the summary
            ]
            status = json.loads(daemon.memq("status", "--json").stdout)
            assert status["failed"] == 0
            assert status["models"]["budget_spent"] is True
            assert status["models"]["fallbacks_today"] == 3
            text = daemon.memq("status").stdout
            assert "BUDGET    spent: 2.10M of 2.00M tokens today" in text
            assert "resets 00:00 UTC" in text
            with daemon.client() as client:
                observations = client.get(f"/api/sessions/claude-code:{SESSION}/observations")
            assert observations.status_code == 200, observations.text
            assert len(observations.json()["items"]) == 4

    def test_a_batched_turn_is_one_call(self, tmp_path: Path, fake: FakeLLM) -> None:
        """MEMQ_BATCH_TURNS: three tool calls and a Stop are one request; the records are
        the model's once the Stop is processed, and its usage is one row."""
        turn = {
            "records": [{"id": n, "kind": "command", "title": f"Model {n}"} for n in (1, 2, 3)],
            "summary": SUMMARY,
        }
        fake.script(answer(turn, 4000, 500))
        env = on_anthropic(tmp_path, fake, MEMQ_BATCH_TURNS="true")
        with running_daemon(tmp_path / "home", env) as daemon:
            post_turn(daemon, tools=3)
            assert len(fake.requests) == 1
            with daemon.client() as client:
                items = client.get(f"/api/sessions/claude-code:{SESSION}/observations").json()
            assert [o["title"] for o in items["items"]] == ["Model 1", "Model 2", "Model 3"]
            rows = table(daemon.home / "memq.db", "SELECT * FROM model_usage")
            assert [(r["input_tokens"], r["output_tokens"]) for r in rows] == [(4000, 500)]
