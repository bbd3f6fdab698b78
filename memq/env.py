"""The ``MEMQ_*`` environment variables and the data directory's file names.

Standard library only and cheap to import (no dataclasses, pathlib or typing at run time):
``memq hook`` reads its settings through this module on every tool call, and the daemon's
``memq.config`` builds on the same parsers, so both agree on names, defaults and errors.
"""

from __future__ import annotations

import math
import os

# Re-exported: memq.config and the processors import it from here.
from memq.exceptions import SettingError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Final

HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 37778
DEFAULT_HOME: Final = "~/.memq"
# The largest request body the daemon takes; the hook cuts an event down to fit it.
DEFAULT_BODY_LIMIT: Final = 1024 * 1024

# Files inside MEMQ_HOME.
DATABASE_FILE: Final = "memq.db"
TOKEN_FILE: Final = "token"  # noqa: S105 - the file name, not a secret
PID_FILE: Final = "memq.pid"
LOGS_DIR: Final = "logs"
DAEMON_LOG_FILE: Final = "memq.log"
HOOK_LOG_FILE: Final = "hook.log"

# The assistant's own bookkeeping: not worth remembering, and noisy.
DEFAULT_SKIP_TOOLS: Final = (
    "TodoWrite",
    "TodoRead",
    "TaskCreate",
    "TaskUpdate",
    "TaskList",
    "TaskGet",
)


def home_dir(env: Mapping[str, str]) -> str:
    """MEMQ_HOME, expanded; ``~/.memq`` when unset."""
    raw = env.get("MEMQ_HOME", "").strip()
    return os.path.expanduser(raw or DEFAULT_HOME)


def port(env: Mapping[str, str]) -> int:
    """MEMQ_PORT."""
    return env_int(env, "MEMQ_PORT", DEFAULT_PORT, low=1, high=65535)


def body_limit(env: Mapping[str, str]) -> int:
    """MEMQ_BODY_LIMIT: bytes of one HTTP request body."""
    return env_int(env, "MEMQ_BODY_LIMIT", DEFAULT_BODY_LIMIT, low=1024, high=1 << 30)


def skip_tools(env: Mapping[str, str]) -> frozenset[str]:
    """MEMQ_SKIP_TOOLS: comma-separated tool names whose events are not recorded. Set it to
    an empty string to record every tool."""
    raw = env.get("MEMQ_SKIP_TOOLS")
    if raw is None:
        return frozenset(DEFAULT_SKIP_TOOLS)
    return frozenset(name.strip() for name in raw.split(",") if name.strip())


def env_flag(env: Mapping[str, str], name: str) -> bool:
    """A yes/no variable: 1, true, yes and on mean yes."""
    return env.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def env_int(env: Mapping[str, str], name: str, default: int, *, low: int, high: int) -> int:
    """A whole number in ``low..high``, or ``SettingError`` naming the variable."""
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


def env_float(
    env: Mapping[str, str], name: str, default: float, *, positive: bool = False
) -> float:
    """A finite non-negative (or positive) number, or ``SettingError`` naming the variable."""
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


def env_choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    """One of ``choices`` (case-insensitive), or ``SettingError`` naming the variable."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    for choice in choices:
        if raw.lower() == choice.lower():
            return choice
    raise SettingError(f"{name}={raw!r} is not one of {', '.join(choices)}")
