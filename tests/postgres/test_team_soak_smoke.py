"""scripts/bench_team.py in its quick mode (3 laptops x 3 sessions, the team server
SIGKILLed once): every laptop event reaches the server once and in order, the outboxes
empty, the lag figures printed, the schema dropped. Figures only: no timing is asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "bench_team.py"
QUICK_EVENTS = 3 * 3 * 2 * 5  # laptops x sessions x turns x (prompt, 3 tools, Stop)


def test_quick_soak_every_event_once_in_order_with_the_lag(
    postgres_server: str, tmp_path: Path
) -> None:
    out = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json", str(out), "--dir", str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "MEMQ_TEST_DATABASE_URL": postgres_server},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report == json.loads(done.stdout.splitlines()[-1])
    figures = report["figures"]
    assert figures["events_once_in_order"]["value"] == QUICK_EVENTS
    assert figures["events_once_in_order"]["sessions"] == 9
    assert "team server killed after" in done.stderr
    assert figures["outage_seconds"]["value"] > 0
    assert figures["lag_max"]["count"] == QUICK_EVENTS
    assert 0 <= figures["lag_p50"]["value"] <= figures["lag_p99"]["value"]
    import psycopg  # noqa: PLC0415

    with psycopg.connect(postgres_server, autocommit=True) as conn:
        found = conn.execute(
            "SELECT 1 FROM pg_namespace WHERE nspname = %s", (report["environment"]["schema"],)
        )
        assert found.fetchall() == []
