"""Settings read from the environment, and where memq keeps its files.

Standard library only: the hook reads ``MEMQ_HOME`` and ``MEMQ_PORT`` through this module on
every tool call.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

DEFAULT_PORT: Final = 37778
HOST: Final = "127.0.0.1"


class SettingError(ValueError):
    """An environment variable holds a value memq cannot use."""


@dataclass(frozen=True, slots=True)
class Paths:
    """The files in the data directory (``MEMQ_HOME``)."""

    home: Path

    @property
    def database(self) -> Path:
        return self.home / "memq.db"

    @property
    def token(self) -> Path:
        return self.home / "token"

    @property
    def pidfile(self) -> Path:
        return self.home / "memq.pid"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def log_file(self) -> Path:
        return self.logs / "memq.log"

    def create_home(self) -> None:
        """Create the data directory (0700: it holds the token and everything remembered)
        and its ``logs/``. ``mkdir(parents=True)`` alone would leave the home world-readable."""
        self.home.parent.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(mode=0o700, exist_ok=True)
        self.logs.mkdir(mode=0o700, exist_ok=True)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the daemon and its clients can be told through ``MEMQ_*`` variables."""

    home: Path = field(default_factory=lambda: Path("~/.memq").expanduser())
    port: int = DEFAULT_PORT
    processor: str = "extract"
    capacity: int = 4  # sessions processed at once
    linger: float = 5.0  # seconds an idle session's generator waits for more work
    lease: float = 120.0  # seconds a processor may take for one message
    max_attempts: int = 3
    body_limit: int = 1024 * 1024  # bytes of one HTTP request body
    shutdown_grace: float = 10.0  # seconds in-flight messages get to finish at stop
    synchronous: str = "FULL"
    log_level: str = "info"

    @property
    def paths(self) -> Paths:
        return Paths(self.home)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``MEMQ_*`` variables; raises ``SettingError`` naming a bad one."""
        env = os.environ if env is None else env
        defaults = cls()
        home = env.get("MEMQ_HOME", "").strip()
        return cls(
            home=Path(home).expanduser() if home else defaults.home,
            port=_int(env, "MEMQ_PORT", defaults.port, low=1, high=65535),
            processor=env.get("MEMQ_PROCESSOR", defaults.processor).strip() or "extract",
            capacity=_int(env, "MEMQ_CAPACITY", defaults.capacity, low=1, high=256),
            linger=_float(env, "MEMQ_LINGER", defaults.linger),
            lease=_float(env, "MEMQ_LEASE", defaults.lease, positive=True),
            max_attempts=_int(env, "MEMQ_MAX_ATTEMPTS", defaults.max_attempts, low=1, high=100),
            body_limit=_int(env, "MEMQ_BODY_LIMIT", defaults.body_limit, low=1024, high=1 << 30),
            shutdown_grace=_float(env, "MEMQ_SHUTDOWN_GRACE", defaults.shutdown_grace),
            synchronous=_choice(env, "MEMQ_SYNCHRONOUS", defaults.synchronous, ("FULL", "NORMAL")),
            log_level=_choice(
                env, "MEMQ_LOG_LEVEL", defaults.log_level, ("debug", "info", "warning", "error")
            ),
        )


def _int(env: Mapping[str, str], name: str, default: int, *, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingError(f"{name}={raw!r} is not a whole number") from None
    if not low <= value <= high:
        raise SettingError(f"{name}={value} is outside {low}..{high}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, *, positive: bool = False) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingError(f"{name}={raw!r} is not a number") from None
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        sign = "positive" if positive else "non-negative"
        raise SettingError(f"{name}={raw} must be a finite {sign} number")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    for choice in choices:
        if raw.lower() == choice.lower():
            return choice
    raise SettingError(f"{name}={raw!r} is not one of {', '.join(choices)}")
