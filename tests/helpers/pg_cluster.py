"""A private PostgreSQL cluster for tests that stop or restart the server: ``initdb`` in a temp
directory, ``pg_ctl`` on a free loopback port. Never the shared server, which other tests use.

As root (PostgreSQL refuses to run as root) the binaries run as the ``postgres`` user through
``runuser``. ``PgCluster.problem()`` says why no cluster can be made here, or None.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.helpers.daemon import free_port

_OWNER = "postgres"  # who runs the server when the test runs as root


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for root in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (root / name).exists():
            return str(root / name)
    return None


class PgCluster:
    """One throw-away cluster: ``start``, ``restart``, ``stop``; ``url`` reaches its
    ``postgres`` database as user ``postgres`` (trust auth)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="memq-pgc-"))
        self.data = self.root / "data"
        self._as_root = os.geteuid() == 0
        if self._as_root:
            os.chown(self.root, pwd.getpwnam(_OWNER).pw_uid, -1)

    @staticmethod
    def problem() -> str | None:
        """Why no private cluster can run here, or None."""
        for name in ("initdb", "pg_ctl"):
            if _binary(name) is None:
                return f"no {name} binary on PATH or under /usr/lib/postgresql"
        if os.geteuid() == 0:
            try:
                pwd.getpwnam(_OWNER)
            except KeyError:
                return f"running as root and there is no {_OWNER!r} user to run the server"
            if shutil.which("runuser") is None:
                return "running as root and runuser is missing"
        return None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> None:
        command = list(args)
        if self._as_root:
            command = ["runuser", "-u", _OWNER, "--", *command]
        done = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stderr.decode(errors='replace')}")

    def _ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self._run(
            str(_binary("pg_ctl")),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "server.log"),
            "-o",
            options,
            "-w",
            *extra,
            action,
        )

    def start(self) -> None:
        """``initdb`` (trust auth, user postgres) and start the server."""
        self._run(
            str(_binary("initdb")),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        )
        self._ctl("start")

    def restart(self, mode: str = "fast") -> None:
        """Stop (``fast``: every connection dropped, as a crash looks to clients) and start."""
        self._ctl("restart", "-m", mode)

    def stop(self) -> None:
        """Stop the server (immediate) and delete its directory; safe to call twice."""
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError):
                self._ctl("stop", "-m", "immediate")
        shutil.rmtree(self.root, ignore_errors=True)
