"""``memq serve --team``: the team server's intake as a real daemon on a fresh PostgreSQL
schema, its keys made and revoked with the real ``memq keys``; and its listener's start-up
rules (PostgreSQL only; plain HTTP beyond loopback refused unless a TLS proxy is declared;
TLS served with the certificate given)."""

from __future__ import annotations

import datetime
import json
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.daemon import Daemon, free_port
from tests.helpers.processes import run_module
from tests.postgres.conftest import PgSchema, fresh_schema

P = "github.com/acme/app"
Q = "github.com/acme/other"
EVENTS = "/api/team/v1/events"
BURST = 20  # the module's server: MEMQ_TEAM_BURST, with MEMQ_TEAM_RATE=0.5


class TeamServer:
    """A ``memq serve --team`` daemon and its team listener's address."""

    def __init__(self, home: Path, url: str, **env: str) -> None:
        self.team_port = free_port()
        self.daemon = Daemon(
            home,
            env={
                "MEMQ_DATABASE_URL": url,
                "MEMQ_TEAM_LISTEN": f"127.0.0.1:{self.team_port}",
                **env,
            },
        )

    @property
    def team_url(self) -> str:
        return f"http://127.0.0.1:{self.team_port}"

    def start(self) -> None:
        daemon = self.daemon
        log = daemon.stderr_path.open("ab")
        daemon.process = subprocess.Popen(
            [sys.executable, "-m", "memq", "serve", "--team", "--quiet"],
            env=daemon.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        log.close()
        daemon.wait_healthy()

    def key(self, name: str, *projects: str) -> str:
        """A new key's token, made by the real ``memq keys create``."""
        scope = (
            ["--all-projects"] if not projects else [a for p in projects for a in ("--project", p)]
        )
        done = self.daemon.memq("keys", "create", name, *scope, "--json")
        assert done.returncode == 0, done.stderr
        token: str = json.loads(done.stdout)["token"]
        return token

    def pause(self, session: str) -> None:
        """Keep ``session``'s events from being processed (through the loopback API)."""
        with self.daemon.client() as client:
            body = {"value": True, "create": True}
            answer = client.put(f"/api/sessions/{session}/config/paused", json=body)
            assert answer.status_code == 200, answer.text

    def post(self, token: str, body: Any, **kwargs: Any) -> httpx.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.post(
            self.team_url + EVENTS, content=content, headers=headers, timeout=10, **kwargs
        )


def event(
    local_id: int, session: str = "claude-code:s1", project: str = P, **extra: Any
) -> dict[str, Any]:
    payload = {
        "hook_event_name": "UserPromptSubmit",
        "session_id": session.rpartition(":")[2],
        "cwd": "/home/alice/app",
        "prompt": f"prompt number {local_id}",
        "prompt_id": f"{session}-{local_id}",
        "assistant": "claude-code",
    }
    return {
        "local_id": local_id,
        "session_id": session,
        "kind": "prompt",
        "dedupe_key": None,
        "project": project,
        "created_at": 1_800_000_000_000 + local_id,
        "payload": payload,
        **extra,
    }


def batch(*events: dict[str, Any], machine: str = "laptop-1") -> dict[str, Any]:
    return {"machine": machine, "events": list(events)}


def statuses(response: httpx.Response) -> list[tuple[int, str]]:
    assert response.status_code == 200, response.text
    return [(r["local_id"], r["status"]) for r in response.json()["results"]]


@pytest.fixture(scope="module")
def schema(postgres_server: str) -> Iterator[PgSchema]:
    """One schema for the module's server (each test uses keys and sessions of its own)."""
    with fresh_schema(postgres_server) as made:
        yield made


@pytest.fixture(scope="module")
def server(schema: PgSchema, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TeamServer]:
    made = TeamServer(
        tmp_path_factory.mktemp("team") / "home",
        schema.schema_url,
        MEMQ_TEAM_RATE="0.5",
        MEMQ_TEAM_BURST=str(BURST),
    )
    made.start()
    try:
        yield made
    finally:
        made.daemon.kill()


def stored(schema: PgSchema, session: str) -> list[tuple[int, str, dict[str, Any]]]:
    rows = schema.query(
        "SELECT id, dedupe_key, payload FROM pending_messages WHERE session_id = %s ORDER BY id",
        (session,),
    )
    return [(int(i), str(d), json.loads(p) if p else {}) for i, d, p in rows]


class TestIntake:
    def test_accepted_then_duplicate_stored_once_with_its_origin(
        self, server: TeamServer, schema: PgSchema
    ) -> None:
        token = server.key("intake-alice", P)
        server.pause("claude-code:i1")  # a processed row's payload is dropped: keep it
        first = server.post(token, batch(event(1, "claude-code:i1"), event(2, "claude-code:i1")))
        assert statuses(first) == [(1, "accepted"), (2, "accepted")]
        again = server.post(token, batch(event(2, "claude-code:i1"), event(3, "claude-code:i1")))
        assert statuses(again) == [(2, "duplicate"), (3, "accepted")]
        assert again.json()["results"][0]["id"] == first.json()["results"][1]["id"]
        rows = stored(schema, "claude-code:i1")
        # By the key's name (12 characters), not its id: a rotated key's re-send is a duplicate.
        origins = [f"origin:12.intake-alice:laptop-1:{n}" for n in (1, 2, 3)]
        assert [d for _, d, _ in rows] == origins
        origin = rows[0][2]["memq_origin"]
        assert origin == {
            "key": "intake-alice",
            "machine": "laptop-1",
            "local_id": 1,
            "project": P,
            "created_at": 1_800_000_000_001,
        }
        assert rows[0][2]["cwd"] == "/home/alice/app"  # kept
        # The same local id from another machine is another event.
        other = server.post(token, batch(event(1, "claude-code:i1"), machine="laptop-2"))
        assert statuses(other) == [(1, "accepted")]

    def test_a_project_out_of_scope_is_refused_per_event_and_audited(
        self, server: TeamServer, schema: PgSchema
    ) -> None:
        token = server.key("scope-bob", P)
        answer = server.post(
            token,
            batch(
                event(1, "claude-code:sc1"),
                event(2, "claude-code:sc2", project=Q),
                event(3, "claude-code:sc1", project="https://GitHub.com/Acme/App.git"),
                event(4, "claude-code:sc3", project="not a repository"),
            ),
        )
        assert statuses(answer) == [
            (1, "accepted"),
            (2, "refused"),
            (3, "accepted"),
            (4, "refused"),
        ]
        assert "may not use github.com/acme/other" in answer.json()["results"][1]["error"]
        assert stored(schema, "claude-code:sc2") == []
        audit = schema.query(
            "SELECT key_name, action, target, detail FROM audit_log WHERE key_name = 'scope-bob'"
            " AND action = 'refused'"
        )
        assert audit == [("scope-bob", "refused", Q, "project not allowed")]

    def test_another_keys_session_is_refused(self, server: TeamServer, schema: PgSchema) -> None:
        owner = server.key("owner-carol", P)
        other = server.key("other-dave", P)
        assert statuses(server.post(owner, batch(event(1, "claude-code:own")))) == [(1, "accepted")]
        answer = server.post(
            other, batch(event(9, "claude-code:own"), event(10, "claude-code:dave"))
        )
        assert statuses(answer) == [(9, "refused"), (10, "accepted")]
        assert "belongs to another key" in answer.json()["results"][0]["error"]
        assert len(stored(schema, "claude-code:own")) == 1
        owners = schema.query("SELECT session_id FROM team_sessions WHERE session_id LIKE '%own'")
        assert owners == [("claude-code:own",)]

    def test_bad_events_are_refused_alone(self, server: TeamServer) -> None:
        token = server.key("bad-events", P)
        answer = server.post(
            token,
            batch(
                event(1, "claude-code:bad", kind="no-such-kind"),
                event(2, "claude-code:bad", payload=[1, 2]),
                event(3, "", project=P),
                event(4, "claude-code:bad"),
            ),
        )
        assert statuses(answer) == [(1, "refused"), (2, "refused"), (3, "refused"), (4, "accepted")]

    def test_a_revoked_key_is_refused_at_once(self, server: TeamServer, schema: PgSchema) -> None:
        token = server.key("revoked-erin", P)
        assert statuses(server.post(token, batch(event(1, "claude-code:rv")))) == [(1, "accepted")]
        done = server.daemon.memq("keys", "revoke", "revoked-erin")
        assert done.returncode == 0, done.stderr
        answer = server.post(token, batch(event(2, "claude-code:rv")))
        assert answer.status_code == 401
        assert answer.json() == {"error": "the API key was revoked"}
        assert answer.headers["WWW-Authenticate"] == "Bearer"
        assert len(stored(schema, "claude-code:rv")) == 1
        details = schema.query(
            "SELECT detail FROM audit_log WHERE key_name = 'revoked-erin' AND action = 'refused'"
        )
        assert details == [("revoked key",)]

    def test_a_rotated_keys_sessions_follow_its_name(
        self, server: TeamServer, schema: PgSchema
    ) -> None:
        old = server.key("rotating-fay", P)
        sessions = ("claude-code:fay1", "claude-code:fay2")
        answer = server.post(old, batch(event(1, sessions[0]), event(2, sessions[1])))
        assert statuses(answer) == [(1, "accepted"), (2, "accepted")]
        assert server.daemon.memq("keys", "revoke", "rotating-fay").returncode == 0
        new = server.key("rotating-fay", P)
        answer = server.post(new, batch(event(3, sessions[0]), event(4, sessions[1])))
        assert statuses(answer) == [(3, "accepted"), (4, "accepted")]
        new_id = new.split("_")[1]
        owners = schema.query(
            "SELECT DISTINCT key_id FROM team_sessions WHERE session_id LIKE 'claude-code:fay%'"
        )
        assert owners == [(new_id,)]
        assert [len(stored(schema, s)) for s in sessions] == [2, 2]

    def test_a_revoked_keys_sessions_stay_refused_to_other_names(
        self, server: TeamServer, schema: PgSchema
    ) -> None:
        gone = server.key("revoked-hal", P)
        assert statuses(server.post(gone, batch(event(1, "claude-code:hal")))) == [(1, "accepted")]
        assert server.daemon.memq("keys", "revoke", "revoked-hal").returncode == 0
        other = server.key("not-hal", P)
        answer = server.post(other, batch(event(2, "claude-code:hal")))
        assert statuses(answer) == [(2, "refused")]
        assert len(stored(schema, "claude-code:hal")) == 1

    def test_unknown_wrong_or_missing_keys_are_refused(self, server: TeamServer) -> None:
        token = server.key("wrong-frank", P)
        wrong = token[:-4] + ("aaaa" if not token.endswith("aaaa") else "bbbb")
        for bad in (wrong, "memq_0123456789ab_" + "x" * 43, "nonsense", ""):
            answer = server.post(bad, batch(event(1, "claude-code:wk")))
            assert answer.status_code == 401, bad
            assert answer.json() == {"error": "invalid API key"}

    def test_malformed_bodies_are_refused_whole(self, server: TeamServer) -> None:
        token = server.key("malformed-gina", P)
        for body in (
            b"not json",
            b"[]",
            json.dumps({"events": []}).encode(),
            json.dumps({"machine": "m", "events": {}}).encode(),
            json.dumps(batch({"local_id": "one", "session_id": "claude-code:m"})).encode(),
            json.dumps(batch({"local_id": True})).encode(),
            b'{"machine": "m", "events": [{"local_id": 1, "payload": {"n": NaN}}]}',
            b'{"machine": "m\\u0000", "events": []}',
        ):
            answer = server.post(token, body)
            assert answer.status_code == 422, body
            assert answer.json()["error"]

    def test_a_body_over_4_mib_is_refused(self, server: TeamServer) -> None:
        token = server.key("large-hal", P)
        server.pause("claude-code:big")  # 3 MiB are not worth processing here
        big = event(1, "claude-code:big")
        big["payload"]["prompt"] = "x" * (4 * 1024 * 1024)
        answer = server.post(token, batch(big))
        assert answer.status_code == 413
        fits = event(2, "claude-code:big")
        fits["payload"]["prompt"] = "y" * (3 * 1024 * 1024)
        assert statuses(server.post(token, batch(fits))) == [(2, "accepted")]

    def test_past_the_burst_a_key_is_told_to_wait(self, server: TeamServer) -> None:
        """MEMQ_TEAM_BURST requests at once, then 429 with Retry-After (rate 0.5/s: 2 s);
        another key is not held back."""
        token = server.key("busy-ivan", P)
        with httpx.Client(base_url=server.team_url, timeout=10) as client:
            headers = {"Authorization": f"Bearer {token}"}
            answers = [
                client.post(EVENTS, json=batch(), headers=headers).status_code
                for _ in range(BURST + 1)
            ]
        assert answers[:BURST] == [200] * BURST
        assert answers[BURST] == 429
        late = server.post(token, batch())
        assert late.status_code == 429
        assert late.headers["Retry-After"] in {"1", "2"}
        other = server.key("calm-judy", P)
        assert server.post(other, batch()).status_code == 200

    def test_the_team_listener_serves_only_the_team_api(self, server: TeamServer) -> None:
        health = httpx.get(server.team_url + "/api/team/v1/health", timeout=10)
        assert health.status_code == 200
        assert health.json() == {"status": "ok", "state": "running"}
        daemon = server.daemon
        for path in ("/api/health", "/api/status", "/api/search?q=x", "/", "/login"):
            answer = httpx.get(
                server.team_url + path,
                headers={"Authorization": f"Bearer {daemon.token}"},
                timeout=10,
            )
            assert answer.status_code == 404, path
        posted = httpx.post(
            server.team_url + "/api/events",
            json={"hook_event_name": "UserPromptSubmit", "session_id": "x", "prompt": "p"},
            headers={"Authorization": f"Bearer {daemon.token}"},
            timeout=10,
        )
        assert posted.status_code == 404
        # The loopback API is where it always is, behind its token.
        assert httpx.get(daemon.url + "/api/status", timeout=10).status_code == 401
        with daemon.client() as client:
            assert client.get("/api/status").status_code == 200

    def test_accepted_events_are_processed(self, server: TeamServer, schema: PgSchema) -> None:
        token = server.key("processed-kim", P)
        answer = server.post(token, batch(event(1, "claude-code:pr"), event(2, "claude-code:pr")))
        assert statuses(answer) == [(1, "accepted"), (2, "accepted")]
        deadline = time.monotonic() + 30
        while True:
            prompts = schema.query(
                "SELECT text FROM prompts WHERE session_key = 'claude-code:pr' ORDER BY number"
            )
            if len(prompts) == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert prompts == [("prompt number 1",), ("prompt number 2",)]


def serve_team(home: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``memq serve --team`` that is expected to refuse to start (bounded by a timeout)."""
    return run_module(
        "memq", "serve", "--team", "--quiet", env={"MEMQ_HOME": str(home), **env}, timeout=30
    )


class TestStartRules:
    def test_without_postgresql_it_refuses_to_start(self, tmp_path: Path) -> None:
        done = serve_team(tmp_path / "home", {"MEMQ_DATABASE_URL": ""})
        assert done.returncode == 1
        assert "memq serve --team needs PostgreSQL: set MEMQ_DATABASE_URL" in done.stderr

    def test_plain_http_beyond_loopback_is_refused(self, tmp_path: Path) -> None:
        env = {
            "MEMQ_DATABASE_URL": "postgresql://memq@127.0.0.1:1/none",
            "MEMQ_TEAM_LISTEN": f"0.0.0.0:{free_port()}",
        }
        done = serve_team(tmp_path / "home", env)
        assert done.returncode == 1
        assert "MEMQ_TEAM_LISTEN=0.0.0.0:" in done.stderr
        for setting in ("MEMQ_TLS_CERT", "MEMQ_TLS_KEY", "MEMQ_TLS_PROXY=1"):
            assert setting in done.stderr

    def test_half_of_tls_is_refused(self, tmp_path: Path) -> None:
        env = {
            "MEMQ_DATABASE_URL": "postgresql://memq@127.0.0.1:1/none",
            "MEMQ_TLS_CERT": str(tmp_path / "cert.pem"),
        }
        done = serve_team(tmp_path / "home", env)
        assert done.returncode == 1
        assert "set both MEMQ_TLS_CERT and MEMQ_TLS_KEY" in done.stderr

    def test_behind_a_tls_proxy_it_listens_beyond_loopback(
        self, pg_schema: PgSchema, tmp_path: Path
    ) -> None:
        server = TeamServer(tmp_path / "home", pg_schema.schema_url, MEMQ_TLS_PROXY="1")
        server.daemon.env["MEMQ_TEAM_LISTEN"] = f"0.0.0.0:{server.team_port}"
        server.start()
        try:
            # Bound to every address; the test talks to it on loopback only.
            health = httpx.get(server.team_url + "/api/team/v1/health", timeout=10)
            assert health.status_code == 200
        finally:
            server.daemon.kill()

    def test_tls_is_served_with_the_certificate_given(
        self, pg_schema: PgSchema, tmp_path: Path
    ) -> None:
        cert, key = self_signed(tmp_path)
        server = TeamServer(
            tmp_path / "home", pg_schema.schema_url, MEMQ_TLS_CERT=str(cert), MEMQ_TLS_KEY=str(key)
        )
        server.start()
        try:
            url = f"https://127.0.0.1:{server.team_port}/api/team/v1/health"
            trusted = ssl.create_default_context(cafile=str(cert))
            assert httpx.get(url, verify=trusted, timeout=10).json()["status"] == "ok"
            with pytest.raises(httpx.HTTPError):
                httpx.get(url, timeout=10)  # not a certificate the system trusts
            with pytest.raises(httpx.HTTPError):
                httpx.get(server.team_url + "/api/team/v1/health", timeout=10)  # no plain HTTP
        finally:
            server.daemon.kill()


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made now (the cryptography package)."""
    x509 = pytest.importorskip("cryptography.x509")
    import ipaddress  # noqa: PLC0415

    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import NameOID  # noqa: PLC0415

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "memq team test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path
