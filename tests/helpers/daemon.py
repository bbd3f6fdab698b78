"""The real daemon as a subprocess on a free loopback port, with its own MEMQ_HOME."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.helpers.processes import project_env, run_module


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Daemon:
    """Start, kill and talk to ``memq serve`` running in a subprocess."""

    def __init__(
        self, home: Path, *, port: int | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.home = home
        self.port = port or free_port()
        self.env = project_env(
            {
                "MEMQ_HOME": str(home),
                "MEMQ_PORT": str(self.port),
                "MEMQ_LINGER": "0.2",
                **(env or {}),
            }
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token(self) -> str:
        return (self.home / "token").read_text().strip()

    def memq(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run the real ``memq`` CLI with this daemon's environment."""
        return run_module("memq", *args, env=self.env, timeout=timeout)

    def start(self, timeout: float = 20) -> None:
        """Run ``memq serve`` and wait until it answers /api/health."""
        log = self.stderr_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "memq", "serve", "--quiet"],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        log.close()
        self.wait_healthy(timeout)

    def wait_healthy(self, timeout: float = 20) -> None:
        """Wait until a daemon answers /api/health on this port, however it was started
        (``start``, ``memq start``, a hook's fallback, a ``memq serve`` of the test's own).

        Raises ``RuntimeError`` when the process ``start`` ran exits first, or when nothing
        answers within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"memq serve exited: {self.stderr()}")
            try:
                if httpx.get(f"{self.url}/api/health", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"no memq daemon became healthy on port {self.port}")

    @property
    def stderr_path(self) -> Path:
        # Beside MEMQ_HOME, not in it: the daemon itself must create its home (0700).
        return self.home.with_name(self.home.name + ".serve.stderr")

    def stderr(self) -> str:
        path = self.stderr_path
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM and wait; returns the exit status."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout)
        self.process = None
        return code

    def client(self, **kwargs: Any) -> httpx.Client:
        """An HTTP client with the bearer token."""
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10, **kwargs)

    def wait_idle(self, timeout: float = 30) -> dict[str, Any]:
        """Wait until nothing is pending or processing; return the final status."""
        deadline = time.monotonic() + timeout
        with self.client() as client:
            while True:
                status: dict[str, Any] = client.get("/api/status").json()
                counts = status["counts"]
                if counts["pending"] == 0 and counts["processing"] == 0:
                    return status
                if time.monotonic() > deadline:
                    raise TimeoutError(f"still busy: {counts}")
                time.sleep(0.05)


@contextmanager
def running_daemon(home: Path, env: dict[str, str] | None = None) -> Iterator[Daemon]:
    """A started daemon, killed at the end whatever happens."""
    daemon = Daemon(home, env=env)
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.kill()
