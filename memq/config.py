"""The daemon's and the CLI's settings, read from ``MEMQ_*`` variables, and where memq keeps
its files. The parsers themselves live in ``memq.env``, which the hook uses directly."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from memq import env as memq_env
from memq.env import HOST, env_choice, env_float, env_int
from memq.exceptions import SettingError

__all__ = ["HOST", "Paths", "SettingError", "Settings"]


@dataclass(frozen=True, slots=True)
class Paths:
    """The files in the data directory (``MEMQ_HOME``)."""

    home: Path

    @property
    def database(self) -> Path:
        return self.home / memq_env.DATABASE_FILE

    @property
    def token(self) -> Path:
        return self.home / memq_env.TOKEN_FILE

    @property
    def pidfile(self) -> Path:
        return self.home / memq_env.PID_FILE

    @property
    def logs(self) -> Path:
        return self.home / memq_env.LOGS_DIR

    @property
    def log_file(self) -> Path:
        return self.logs / memq_env.DAEMON_LOG_FILE

    def create_home(self) -> None:
        """Create the data directory (0700: it holds the token and everything remembered)
        and its ``logs/``. ``mkdir(parents=True)`` alone would leave the home world-readable."""
        self.home.parent.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(mode=0o700, exist_ok=True)
        self.logs.mkdir(mode=0o700, exist_ok=True)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the daemon and its clients can be told through ``MEMQ_*`` variables."""

    home: Path = field(default_factory=lambda: Path(memq_env.DEFAULT_HOME).expanduser())
    port: int = memq_env.DEFAULT_PORT
    processor: str = "extract"
    capacity: int = 4  # sessions processed at once
    linger: float = 5.0  # seconds an idle session's generator waits for more work
    lease: float = 120.0  # seconds a processor may take for one message
    max_attempts: int = 3
    body_limit: int = memq_env.DEFAULT_BODY_LIMIT  # bytes of one HTTP request body
    shutdown_grace: float = 10.0  # seconds in-flight messages get to finish at stop
    synchronous: str = "FULL"
    log_level: str = "info"
    skip_tools: frozenset[str] = frozenset(memq_env.DEFAULT_SKIP_TOOLS)
    # ``memq serve --ephemeral``: the database is elsewhere (in memory), not in the home.
    database: Path | None = None
    ephemeral: bool = False
    session_ttl: float = 1800.0  # seconds idle before a session's in-memory state is dropped
    activity_flush_events: int = 256  # touches that write last-access times ...
    activity_flush_interval: float = 5.0  # ... or seconds after the first unwritten one

    @property
    def paths(self) -> Paths:
        return Paths(self.home)

    @property
    def database_path(self) -> Path:
        """The database the daemon opens: the home's, unless ``database`` says otherwise."""
        return self.database if self.database is not None else self.paths.database

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``MEMQ_*`` variables; raises ``SettingError`` naming a bad one."""
        env = os.environ if env is None else env
        defaults = cls()
        return cls(
            home=Path(memq_env.home_dir(env)),
            port=memq_env.port(env),
            processor=env.get("MEMQ_PROCESSOR", "").strip() or defaults.processor,
            capacity=env_int(env, "MEMQ_CAPACITY", defaults.capacity, low=1, high=256),
            linger=env_float(env, "MEMQ_LINGER", defaults.linger),
            lease=env_float(env, "MEMQ_LEASE", defaults.lease, positive=True),
            max_attempts=env_int(env, "MEMQ_MAX_ATTEMPTS", defaults.max_attempts, low=1, high=100),
            body_limit=memq_env.body_limit(env),
            shutdown_grace=env_float(env, "MEMQ_SHUTDOWN_GRACE", defaults.shutdown_grace),
            synchronous=env_choice(
                env, "MEMQ_SYNCHRONOUS", defaults.synchronous, ("FULL", "NORMAL")
            ),
            log_level=env_choice(
                env, "MEMQ_LOG_LEVEL", defaults.log_level, ("debug", "info", "warning", "error")
            ),
            skip_tools=memq_env.skip_tools(env),
            session_ttl=env_float(env, "MEMQ_SESSION_TTL", defaults.session_ttl, positive=True),
            activity_flush_events=env_int(
                env,
                "MEMQ_ACTIVITY_FLUSH_EVENTS",
                defaults.activity_flush_events,
                low=1,
                high=1_000_000,
            ),
            activity_flush_interval=env_float(
                env,
                "MEMQ_ACTIVITY_FLUSH_INTERVAL",
                defaults.activity_flush_interval,
                positive=True,
            ),
        )
