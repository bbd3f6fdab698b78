"""scripts/bench_pg.py runs: ``--quick`` against the test server gives every figure (and
checked the order of every drain), and with no server it says so in one line and exits 2.
Figures only: no timing is asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "bench_pg.py"
FIGURES = (
    "sqlite_enqueue_64_producers",
    "postgres_enqueue_64_producers",
    "postgres_raw_commit",
    "sqlite_drain_50_sessions",
    "postgres_drain_50_sessions",
    "sqlite_wakeup",
    "postgres_wakeup",
    "postgres_wakeup_across",
    "postgres_drain_1_daemons",
    "postgres_drain_2_daemons",
    "postgres_drain_3_daemons",
)


def run_bench(url: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MEMQ_TEST_DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_quick_run_reports_every_figure_beside_sqlite(postgres_server: str, tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    done = run_bench(
        postgres_server, "--quick", "--json", str(out), "--dir", str(tmp_path), timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report == json.loads(done.stdout.splitlines()[-1])
    figures = report["figures"]
    assert set(FIGURES) <= set(figures)
    assert all(figures[key]["value"] > 0 for key in FIGURES)
    for daemons in (1, 2, 3):
        figure = figures[f"postgres_drain_{daemons}_daemons"]
        assert figure["in_order"] is True
        assert len(figure["per_daemon"]) == daemons
        assert sum(figure["per_daemon"]) == figure["count"]
    assert "SQLite" in done.stderr
    assert "PostgreSQL" in done.stderr
    # The script dropped its schema.
    schema = report["environment"]["schema"]
    import psycopg  # noqa: PLC0415

    with psycopg.connect(postgres_server, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
        assert found.fetchall() == []


def test_no_server_is_one_line_and_exit_2(tmp_path: Path) -> None:
    # Port 1 on 127.0.0.1: nothing listens there, the connection is refused at once.
    done = run_bench("postgresql://postgres@127.0.0.1:1/test", "--quick", timeout=60)
    assert done.returncode == 2
    assert done.stdout == ""
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(
        "bench_pg: no PostgreSQL server at postgresql://postgres@127.0.0.1:1/test"
    )
    assert "MEMQ_TEST_DATABASE_URL" in line
