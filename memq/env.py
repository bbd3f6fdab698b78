"""The ``MEMQ_*`` settings, the data directory's file names, and where each value comes from.

A setting is read from the environment (``MEMQ_PORT``), else from ``MEMQ_HOME/settings.toml``
(``port = 40000``), else it has its default. :func:`environment` lays the one over the other;
the parsers below read what it returns and name the variable, or the file's key, at fault.
``MEMQ_HOME`` itself comes from the environment only: the file lives in it. ``Variable`` names
every variable (the only place memq spells them out); ``SETTING_VARIABLES`` pairs each with its
key in the file.

Standard library only and cheap to import (no dataclasses, pathlib or typing at run time):
``memq hook`` reads its settings through this module on every tool call, and the daemon's
``memq.config`` builds on the same parsers, so both agree on names, defaults and errors.
"""

from __future__ import annotations

import math
import os

from memq.exceptions import SettingError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Final


class Variable:
    """Every environment variable memq reads, by name: ``MEMQ_HOME`` and one per setting
    (``SETTING_VARIABLES`` pairs each with its key in settings.toml). The only place memq
    spells them out."""

    HOME: Final = "MEMQ_HOME"
    PORT: Final = "MEMQ_PORT"
    PROCESSOR: Final = "MEMQ_PROCESSOR"
    CAPACITY: Final = "MEMQ_CAPACITY"
    LINGER: Final = "MEMQ_LINGER"
    LEASE: Final = "MEMQ_LEASE"
    MAX_ATTEMPTS: Final = "MEMQ_MAX_ATTEMPTS"
    BODY_LIMIT: Final = "MEMQ_BODY_LIMIT"
    SHUTDOWN_GRACE: Final = "MEMQ_SHUTDOWN_GRACE"
    SYNCHRONOUS: Final = "MEMQ_SYNCHRONOUS"
    LOG_LEVEL: Final = "MEMQ_LOG_LEVEL"
    SKIP_TOOLS: Final = "MEMQ_SKIP_TOOLS"
    SESSION_TTL: Final = "MEMQ_SESSION_TTL"
    ACTIVITY_FLUSH_EVENTS: Final = "MEMQ_ACTIVITY_FLUSH_EVENTS"
    ACTIVITY_FLUSH_INTERVAL: Final = "MEMQ_ACTIVITY_FLUSH_INTERVAL"
    RESERVE_BYTES: Final = "MEMQ_RESERVE_BYTES"
    RECALL_ON_PROMPT: Final = "MEMQ_RECALL_ON_PROMPT"
    RECALL_MIN_SCORE: Final = "MEMQ_RECALL_MIN_SCORE"
    RECALL_BUDGET: Final = "MEMQ_RECALL_BUDGET"
    CONTEXT_BUDGET: Final = "MEMQ_CONTEXT_BUDGET"
    HOOK_CONNECT_TIMEOUT: Final = "MEMQ_HOOK_CONNECT_TIMEOUT"
    HOOK_TIMEOUT: Final = "MEMQ_HOOK_TIMEOUT"
    DISABLED: Final = "MEMQ_DISABLED"
    REDACT: Final = "MEMQ_REDACT"
    REDACT_PATTERNS: Final = "MEMQ_REDACT_PATTERNS"
    MODEL: Final = "MEMQ_MODEL"
    BASE_URL: Final = "MEMQ_BASE_URL"
    API_KEY: Final = "MEMQ_API_KEY"
    LLM_TIMEOUT: Final = "MEMQ_LLM_TIMEOUT"
    LLM_MAX_TOKENS: Final = "MEMQ_LLM_MAX_TOKENS"
    DAILY_TOKENS: Final = "MEMQ_DAILY_TOKENS"
    MODEL_PRICES: Final = "MEMQ_MODEL_PRICES"
    CLAUDE_BIN: Final = "MEMQ_CLAUDE_BIN"
    BATCH_TURNS: Final = "MEMQ_BATCH_TURNS"
    DATABASE_URL: Final = "MEMQ_DATABASE_URL"
    HEARTBEAT_INTERVAL: Final = "MEMQ_HEARTBEAT_INTERVAL"
    HEARTBEAT_EXPIRY: Final = "MEMQ_HEARTBEAT_EXPIRY"
    UPSTREAM: Final = "MEMQ_UPSTREAM"
    UPSTREAM_KEY_FILE: Final = "MEMQ_UPSTREAM_KEY_FILE"
    UPSTREAM_MODE: Final = "MEMQ_UPSTREAM_MODE"
    MACHINE_NAME: Final = "MEMQ_MACHINE_NAME"
    TEAM_LISTEN: Final = "MEMQ_TEAM_LISTEN"
    TLS_CERT: Final = "MEMQ_TLS_CERT"
    TLS_KEY: Final = "MEMQ_TLS_KEY"
    TLS_PROXY: Final = "MEMQ_TLS_PROXY"
    TEAM_RATE: Final = "MEMQ_TEAM_RATE"
    TEAM_BURST: Final = "MEMQ_TEAM_BURST"
    TEAM_AUTH_FAILURES: Final = "MEMQ_TEAM_AUTH_FAILURES"
    TEAM_AUTH_WINDOW: Final = "MEMQ_TEAM_AUTH_WINDOW"
    TEAM_AUDIT_DAYS: Final = "MEMQ_TEAM_AUDIT_DAYS"


HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 37778
DEFAULT_HOME: Final = "~/.memq"
# The largest request body the daemon takes; the hook cuts an event down to fit it.
DEFAULT_BODY_LIMIT: Final = 1024 * 1024
# Room the daemon keeps on the disk, in MEMQ_HOME/reserve, to go on when the disk fills.
DEFAULT_RESERVE_BYTES: Final = 32 * 1024 * 1024
# Seconds the hook waits to reach the daemon, and for its answer.
DEFAULT_HOOK_CONNECT_TIMEOUT: Final = 0.2
DEFAULT_HOOK_TIMEOUT: Final = 0.5
# The model-based processors' (memq.processors.llm): seconds one request may take, and the
# most tokens the model may answer with.
DEFAULT_LLM_TIMEOUT: Final = 60.0
DEFAULT_LLM_MAX_TOKENS: Final = 2048

# Files inside MEMQ_HOME.
DATABASE_FILE: Final = "memq.db"
TOKEN_FILE: Final = "token"  # noqa: S105 - the file name, not a secret
PID_FILE: Final = "memq.pid"
LOGS_DIR: Final = "logs"
DAEMON_LOG_FILE: Final = "memq.log"
HOOK_LOG_FILE: Final = "hook.log"
SETTINGS_FILE: Final = "settings.toml"
RESERVE_FILE: Final = "reserve"
UPSTREAM_KEY_FILE: Final = "upstream.key"  # the team server's API key (memq.team)

# The assistant's own bookkeeping: not worth remembering, and noisy.
# The MCP server `memq mcp` (memq.mcp) and its tools, named here for the hook's side (install,
# skipped tools) without importing the MCP SDK.
MCP_SERVER_NAME: Final = "memq"
MCP_TOOLS: Final = ("search", "timeline", "get_observations", "recent_context")
# The tools as Claude Code names them (``mcp__<server>__<tool>``): the model reading memory
# is counted by memq stats, not remembered as something it did.
MEMQ_MCP_TOOLS: Final = tuple(f"mcp__{MCP_SERVER_NAME}__{tool}" for tool in MCP_TOOLS)
DEFAULT_SKIP_TOOLS: Final = (
    "TodoWrite",
    "TodoRead",
    "TaskCreate",
    "TaskUpdate",
    "TaskList",
    "TaskGet",
    *MEMQ_MCP_TOOLS,
)

# Every key of settings.toml and the variable that overrides it, in the order they are listed.
SETTING_VARIABLES: Final = {
    "port": Variable.PORT,
    "processor": Variable.PROCESSOR,
    "capacity": Variable.CAPACITY,
    "linger": Variable.LINGER,
    "lease": Variable.LEASE,
    "max_attempts": Variable.MAX_ATTEMPTS,
    "body_limit": Variable.BODY_LIMIT,
    "shutdown_grace": Variable.SHUTDOWN_GRACE,
    "synchronous": Variable.SYNCHRONOUS,
    "log_level": Variable.LOG_LEVEL,
    "skip_tools": Variable.SKIP_TOOLS,
    "session_ttl": Variable.SESSION_TTL,
    "activity_flush_events": Variable.ACTIVITY_FLUSH_EVENTS,
    "activity_flush_interval": Variable.ACTIVITY_FLUSH_INTERVAL,
    "reserve_bytes": Variable.RESERVE_BYTES,
    "recall_on_prompt": Variable.RECALL_ON_PROMPT,
    "recall_min_score": Variable.RECALL_MIN_SCORE,
    "recall_budget": Variable.RECALL_BUDGET,
    "context_budget": Variable.CONTEXT_BUDGET,
    "hook_connect_timeout": Variable.HOOK_CONNECT_TIMEOUT,
    "hook_timeout": Variable.HOOK_TIMEOUT,
    "redact": Variable.REDACT,
    "redact_patterns": Variable.REDACT_PATTERNS,
    "disabled": Variable.DISABLED,
    "model": Variable.MODEL,
    "base_url": Variable.BASE_URL,
    "api_key": Variable.API_KEY,
    "llm_timeout": Variable.LLM_TIMEOUT,
    "llm_max_tokens": Variable.LLM_MAX_TOKENS,
    "daily_tokens": Variable.DAILY_TOKENS,
    "model_prices": Variable.MODEL_PRICES,
    "claude_bin": Variable.CLAUDE_BIN,
    "batch_turns": Variable.BATCH_TURNS,
    "database_url": Variable.DATABASE_URL,
    "heartbeat_interval": Variable.HEARTBEAT_INTERVAL,
    "heartbeat_expiry": Variable.HEARTBEAT_EXPIRY,
    "upstream": Variable.UPSTREAM,
    "upstream_key_file": Variable.UPSTREAM_KEY_FILE,
    "upstream_mode": Variable.UPSTREAM_MODE,
    "machine_name": Variable.MACHINE_NAME,
    "team_listen": Variable.TEAM_LISTEN,
    "tls_cert": Variable.TLS_CERT,
    "tls_key": Variable.TLS_KEY,
    "tls_proxy": Variable.TLS_PROXY,
    "team_rate": Variable.TEAM_RATE,
    "team_burst": Variable.TEAM_BURST,
    "team_auth_failures": Variable.TEAM_AUTH_FAILURES,
    "team_auth_window": Variable.TEAM_AUTH_WINDOW,
    "team_audit_days": Variable.TEAM_AUDIT_DAYS,
}
# A blank variable counts as unset, except these, where blank is a value of its own
# (MEMQ_SKIP_TOOLS= records every tool).
BLANK_IS_A_VALUE: Final = frozenset({Variable.SKIP_TOOLS})


class Source:
    """Where a setting's value came from (strings: they go into ``memq status --json``)."""

    DEFAULT: Final = "default"
    FILE: Final = "settings file"
    ENVIRONMENT: Final = "environment"


class Sources(dict[str, str]):
    """The environment laid over the settings file: a mapping of variable names to values,
    as ``os.environ`` is, that also knows which values the file gave."""

    __slots__ = ("file", "from_file", "invalid", "unknown")

    def __init__(
        self,
        environ: Mapping[str, str],
        file: str,
        file_values: Mapping[str, str] | None = None,
        *,
        invalid: Mapping[str, str] | None = None,
        unknown: tuple[str, ...] = (),
    ) -> None:
        """
        Args:
            environ: the process's environment.
            file: ``MEMQ_HOME/settings.toml``, whether it exists or not.
            file_values: the file's settings, by variable name, as the environment would
                spell them (``"40000"``, ``"true"``, ``"Read,Grep"``).
            invalid: the file's settings that no text can stand for (a table, a date), by
                variable name: the error to raise when the setting is read.
            unknown: the file's keys that are no setting.
        """
        super().__init__(environ)
        self.file = file
        self.from_file: dict[str, str] = {}  # variable -> its key in the file
        self.invalid: dict[str, str] = {}
        self.unknown = unknown
        key_of = {variable: key for key, variable in SETTING_VARIABLES.items()}
        for variable, value in (file_values or {}).items():
            if not _is_set(environ.get(variable), variable):
                self[variable] = value
                self.from_file[variable] = key_of[variable]
        for variable, problem in (invalid or {}).items():
            if not _is_set(environ.get(variable), variable):
                self.invalid[variable] = problem
                self.from_file[variable] = key_of[variable]


def environment(environ: Mapping[str, str]) -> Sources:
    """``environ`` laid over the settings file of the home it names.

    Reads ``MEMQ_HOME/settings.toml`` when there is one, through the cache beside it
    (``memq.settings_file.load_variables``: ``tomllib`` is imported only when the file
    changed since it was last read). A variable that is set wins over the file; a blank one
    does not (but see ``BLANK_IS_A_VALUE``).

    Raises:
        SettingError: the file cannot be read or is not TOML (naming the file and line).
    """
    path = os.path.join(home_dir(environ), SETTINGS_FILE)
    try:
        # Never through a symlink: the files in MEMQ_HOME are memq's own.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return Sources(environ, path)
    except OSError as exc:
        raise SettingError(f"{path}: cannot read it ({exc.strerror})") from None
    with open(fd, "rb") as handle:
        data = handle.read()
    from memq.settings_file import load_variables  # noqa: PLC0415 - only when there is a file

    parsed = load_variables(data, path)
    return Sources(environ, path, parsed.values, invalid=parsed.invalid, unknown=parsed.unknown)


def source_of(env: Mapping[str, str], name: str) -> str:
    """Where the value of variable ``name`` in ``env`` came from: a ``Source`` value."""
    if isinstance(env, Sources) and name in env.from_file:
        return Source.FILE
    return Source.ENVIRONMENT if _is_set(env.get(name), name) else Source.DEFAULT


def setting_error(env: Mapping[str, str], name: str, shown: object, problem: str) -> SettingError:
    """The error for the value ``shown`` of variable ``name``: ``NAME=value PROBLEM (set in
    the environment)``, or ``key = value PROBLEM (set in /path/settings.toml)`` for a value
    the settings file gave."""
    if isinstance(env, Sources) and name in env.from_file:
        where = f" (set in {env.file})" if env.file else ""
        return SettingError(f"{env.from_file[name]} = {shown} {problem}{where}")
    return SettingError(f"{name}={shown} {problem} (set in the environment)")


def raw_value(env: Mapping[str, str], name: str) -> str | None:
    """The text of variable ``name``, or None when unset; ``SettingError`` when the settings
    file gave it a value no text stands for."""
    if isinstance(env, Sources) and name in env.invalid:
        raise SettingError(env.invalid[name])
    return env.get(name)


def is_set(env: Mapping[str, str], name: str) -> bool:
    """Whether ``env`` gives variable ``name`` a value (blank is no value, but see
    ``BLANK_IS_A_VALUE``)."""
    return _is_set(env.get(name), name)


def _is_set(value: str | None, name: str) -> bool:
    return value is not None and (bool(value.strip()) or name in BLANK_IS_A_VALUE)


def home_dir(env: Mapping[str, str]) -> str:
    """MEMQ_HOME, expanded and made absolute (a hook runs in whatever directory the assistant
    works in); ``~/.memq`` when unset."""
    raw = env.get(Variable.HOME, "").strip()
    return os.path.abspath(os.path.expanduser(raw or DEFAULT_HOME))


def port(env: Mapping[str, str]) -> int:
    """MEMQ_PORT."""
    return env_int(env, Variable.PORT, DEFAULT_PORT, low=1, high=65535)


def body_limit(env: Mapping[str, str]) -> int:
    """MEMQ_BODY_LIMIT: bytes of one HTTP request body."""
    return env_int(env, Variable.BODY_LIMIT, DEFAULT_BODY_LIMIT, low=1024, high=1 << 30)


def skip_tools(env: Mapping[str, str]) -> frozenset[str]:
    """MEMQ_SKIP_TOOLS: comma-separated tool names whose events are not recorded. Set it to
    an empty string to record every tool."""
    raw = raw_value(env, Variable.SKIP_TOOLS)
    if raw is None:
        return frozenset(DEFAULT_SKIP_TOOLS)
    return frozenset(name.strip() for name in raw.split(",") if name.strip())


def hook_connect_timeout(env: Mapping[str, str]) -> float:
    """MEMQ_HOOK_CONNECT_TIMEOUT: seconds the hook waits to reach the daemon."""
    return env_float(
        env, Variable.HOOK_CONNECT_TIMEOUT, DEFAULT_HOOK_CONNECT_TIMEOUT, positive=True
    )


def hook_timeout(env: Mapping[str, str]) -> float:
    """MEMQ_HOOK_TIMEOUT: seconds the hook waits for the daemon's answer."""
    return env_float(env, Variable.HOOK_TIMEOUT, DEFAULT_HOOK_TIMEOUT, positive=True)


def redact(env: Mapping[str, str]) -> bool:
    """MEMQ_REDACT: whether secrets are replaced by markers before anything is stored; on
    unless set to off (a value that is neither fails, and the hook then keeps it on)."""
    raw = (raw_value(env, Variable.REDACT) or "").strip().lower()
    if not raw or raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise setting_error(env, Variable.REDACT, repr(raw), "is not on or off")


def redact_patterns(env: Mapping[str, str]) -> tuple[str, ...]:
    """MEMQ_REDACT_PATTERNS: the user's own regular expressions of secrets, one a line (in
    settings.toml, ``redact_patterns``: a list of strings). Each must compile."""
    raw = raw_value(env, Variable.REDACT_PATTERNS) or ""
    patterns = tuple(line.strip() for line in raw.splitlines() if line.strip())
    if not patterns:
        return ()
    from memq.redact import compile_pattern  # noqa: PLC0415 - only when there are patterns

    for number, pattern in enumerate(patterns, 1):
        try:
            compile_pattern(pattern)
        except SettingError as exc:
            problem = f"holds a pattern memq cannot use (number {number}): {exc}"
            raise setting_error(env, Variable.REDACT_PATTERNS, repr(raw), problem) from None
    return patterns


def llm_timeout(env: Mapping[str, str]) -> float:
    """MEMQ_LLM_TIMEOUT: seconds one model request may take, all of it."""
    return env_float(env, Variable.LLM_TIMEOUT, DEFAULT_LLM_TIMEOUT, positive=True)


def llm_max_tokens(env: Mapping[str, str]) -> int:
    """MEMQ_LLM_MAX_TOKENS: the most tokens the model may answer with (64..65536)."""
    return env_int(env, Variable.LLM_MAX_TOKENS, DEFAULT_LLM_MAX_TOKENS, low=64, high=65536)


def env_flag(env: Mapping[str, str], name: str) -> bool:
    """A yes/no variable: 1, true, yes and on mean yes."""
    return (raw_value(env, name) or "").strip().lower() in {"1", "true", "yes", "on"}


def env_text(env: Mapping[str, str], name: str, default: str) -> str:
    """A variable's text, stripped; ``default`` when unset or blank."""
    return (raw_value(env, name) or "").strip() or default


def env_int(env: Mapping[str, str], name: str, default: int, *, low: int, high: int) -> int:
    """A whole number in ``low..high``, or ``SettingError`` naming the variable."""
    raw = (raw_value(env, name) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise setting_error(env, name, repr(raw), "is not a whole number") from None
    if not low <= value <= high:
        raise setting_error(env, name, value, f"is outside {low}..{high}")
    return value


def env_float(
    env: Mapping[str, str], name: str, default: float, *, positive: bool = False
) -> float:
    """A finite non-negative (or positive) number, or ``SettingError`` naming the variable."""
    raw = (raw_value(env, name) or "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise setting_error(env, name, repr(raw), "is not a number") from None
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        sign = "positive" if positive else "non-negative"
        raise setting_error(env, name, raw, f"must be a finite {sign} number")
    return value


def env_choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    """One of ``choices`` (case-insensitive), or ``SettingError`` naming the variable."""
    raw = (raw_value(env, name) or "").strip()
    if not raw:
        return default
    for choice in choices:
        if raw.lower() == choice.lower():
            return choice
    raise setting_error(env, name, repr(raw), f"is not one of {', '.join(choices)}")
