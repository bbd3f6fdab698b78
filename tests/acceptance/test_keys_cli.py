"""``memq keys create|list|revoke`` as real processes, on the configured database: the
token printed once and stored nowhere, lists without secrets, revocation by name or id; on
SQLite also beside a running daemon, which holds the database's lock."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from memq.team.keys import parse_token
from tests.helpers.backends import POSTGRES, PgBackend
from tests.helpers.daemon import Daemon
from tests.helpers.processes import run_module
from tests.helpers.rows import table

P = "github.com/acme/app"


class Cli:
    """``memq`` with one home and database (``url``: PostgreSQL's schema, else SQLite's)."""

    def __init__(self, home: Path, url: str = "") -> None:
        self.home = home
        self.url = url

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {"MEMQ_HOME": str(self.home), "MEMQ_DATABASE_URL": self.url}
        return run_module("memq", *args, env=env)

    def stored(self, pg: PgBackend | None) -> str:
        """Every row of the key tables, as text."""
        tables = ("api_keys", "audit_log", "key_use")
        if pg is not None:
            return "\n".join(str(pg.table(f"SELECT * FROM {t}")) for t in tables)
        database = self.home / "memq.db"
        rows = [str(table(database, f"SELECT * FROM {t}")) for t in tables]
        wal = Path(f"{database}-wal")
        raw = [p.read_bytes().decode("latin-1") for p in (database, wal) if p.exists()]
        return "\n".join(rows + raw)


@pytest.fixture
def pg(backend_name: str) -> Iterator[PgBackend | None]:
    """A fresh PostgreSQL schema for the ``postgres`` case; None for SQLite's."""
    if backend_name != POSTGRES:
        yield None
        return
    made = PgBackend.create()
    try:
        yield made
    finally:
        made.drop()


@pytest.fixture
def cli(tmp_path: Path, pg: PgBackend | None) -> Cli:
    return Cli(tmp_path / "home", pg.schema.schema_url if pg is not None else "")


def created_token(out: str) -> str:
    (token,) = [line for line in out.splitlines() if line.startswith("memq_")]
    return token


def test_create_list_revoke(cli: Cli, pg: PgBackend | None) -> None:
    made = cli("keys", "create", "alice", "--project", "git@github.com:Acme/App.git")
    assert made.returncode == 0, made.stderr
    token = created_token(made.stdout)
    key_id, secret = parse_token(token) or ("", "")
    assert f"created key {key_id} (alice) for {P}" in made.stdout
    assert "not shown again" in made.stdout
    assert secret not in cli.stored(pg)

    server = cli("keys", "create", "ci-server", "--all-projects", "--json")
    assert server.returncode == 0, server.stderr
    server_key = json.loads(server.stdout)
    assert server_key["all_projects"] is True
    assert parse_token(server_key["token"]) is not None

    listed = cli("keys", "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{key_id}  alice ")
    assert "active" in lines[0]
    assert lines[0].endswith(P)
    assert lines[1].endswith("all projects")
    as_json = json.loads(cli("keys", "list", "--json").stdout)
    assert [k["name"] for k in as_json] == ["alice", "ci-server"]
    for shown in (listed.stdout, json.dumps(as_json)):
        assert secret not in shown
        assert "secret" not in shown
        assert "token" not in shown

    revoked = cli("keys", "revoke", "alice")
    assert revoked.returncode == 0, revoked.stderr
    assert f"revoked key {key_id} (alice)" in revoked.stdout
    by_id = cli("keys", "revoke", server_key["key_id"], "--json")
    assert by_id.returncode == 0, by_id.stderr
    assert json.loads(by_id.stdout)["revoked_at"] is not None
    assert all("revoked" in line for line in cli("keys", "list").stdout.splitlines())

    again = cli("keys", "revoke", "alice")
    assert again.returncode == 1
    assert "revoked already" in again.stderr
    missing = cli("keys", "revoke", "bob")
    assert missing.returncode == 1
    assert "no key is named 'bob'" in missing.stderr
    assert secret not in cli.stored(pg)


def test_usage_errors(cli: Cli) -> None:
    no_scope = cli("keys", "create", "alice")
    assert no_scope.returncode == 2
    assert "--project" in no_scope.stderr
    both = cli("keys", "create", "alice", "--project", P, "--all-projects")
    assert both.returncode == 2
    local = cli("keys", "create", "alice", "--project", "/srv/git/app")
    assert local.returncode == 2
    assert "names no repository" in local.stderr
    assert cli("keys", "create", "alice", "--project", P).returncode == 0
    taken = cli("keys", "create", "alice", "--project", P)
    assert taken.returncode == 1
    assert "'alice' exists" in taken.stderr


def test_keys_beside_a_running_daemon(tmp_path: Path) -> None:
    """The daemon holds the SQLite file's lock: keys are written beside it, and the daemon
    goes on working."""
    daemon = Daemon(tmp_path / "home", env={"MEMQ_DATABASE_URL": ""})
    daemon.start()
    try:
        made = daemon.memq("keys", "create", "alice", "--project", P)
        assert made.returncode == 0, made.stderr
        assert created_token(made.stdout)
        assert "alice" in daemon.memq("keys", "list").stdout
        assert daemon.memq("keys", "revoke", "alice").returncode == 0
        daemon.wait_healthy()
    finally:
        daemon.kill()
