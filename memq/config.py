"""The daemon's and the CLI's settings, and where memq keeps its files.

Every setting has a key in ``MEMQ_HOME/settings.toml`` and a ``MEMQ_*`` variable that
overrides it (``SETTINGS`` lists them). The parsers themselves live in ``memq.env``, which
the hook uses directly; ``memq.env.environment`` lays the environment over the file.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from memq import env as memq_env
from memq import limits
from memq.env import (
    HOST,
    SETTING_VARIABLES,
    Source,
    Variable,
    env_choice,
    env_flag,
    env_float,
    env_int,
    env_text,
)
from memq.exceptions import SettingError
from memq.model_cost import DEFAULT_PRICES, Price, parse_prices, prices_json
from memq.storage.postgres.url import shown_url, url_problem
from memq.team.listen import DEFAULT_TEAM_LISTEN, parse_listen

__all__ = ["HOST", "SETTINGS", "Paths", "SettingError", "SettingSpec", "Settings"]

PROCESSOR_DEFAULT: Final = "(the processor's own)"
# MEMQ_UPSTREAM_MODE: events processed here and forwarded (the default: local memory keeps
# working offline, and local context never waits on the network), or only forwarded.
UPSTREAM_BOTH: Final = "both"
UPSTREAM_FORWARD: Final = "forward"
LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})
MAX_RESERVE_BYTES: Final = 64 * 1024**3
# MEMQ_MACHINE_NAME's longest: the team server's intake refuses a longer machine name
# (memq.team.intake.MAX_MACHINE_CHARS).
MAX_MACHINE_NAME_CHARS: Final = 200
# MEMQ_CONTEXT_BUDGET's range: below it a context holds a line or two; above it every session
# would start with a tenth of a large model's window spent on memory.
MIN_SESSION_CONTEXT_BUDGET: Final = 200
MAX_SESSION_CONTEXT_BUDGET: Final = 20_000
HIDDEN: Final = "(hidden)"


def default_machine_name() -> str:
    """MEMQ_MACHINE_NAME's default: the host name, its printable characters cut to fit
    ("unknown" when nothing is left)."""
    name = "".join(ch for ch in socket.gethostname() if ch.isprintable()).strip()
    return name[:MAX_MACHINE_NAME_CHARS].strip() or "unknown"


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

    @property
    def settings_file(self) -> Path:
        return self.home / memq_env.SETTINGS_FILE

    @property
    def reserve(self) -> Path:
        return self.home / memq_env.RESERVE_FILE

    @property
    def upstream_key(self) -> Path:
        return self.home / memq_env.UPSTREAM_KEY_FILE

    def create_home(self) -> None:
        """Create the data directory (0700: it holds the token and everything remembered)
        and its ``logs/``. ``mkdir(parents=True)`` alone would leave the home world-readable."""
        self.home.parent.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(mode=0o700, exist_ok=True)
        self.logs.mkdir(mode=0o700, exist_ok=True)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the daemon and its clients can be told through ``MEMQ_*`` variables or
    the settings file."""

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
    # Bytes kept free on the disk (MEMQ_HOME/reserve) and released when it fills; 0: none.
    reserve_bytes: int = memq_env.DEFAULT_RESERVE_BYTES
    # Per-prompt recall (memq.memory.recall): off by default; the least score of a hit
    # shown, and the tokens it may add to a prompt.
    recall_on_prompt: bool = False
    recall_min_score: float = limits.DEFAULT_RECALL_MIN_SCORE
    recall_budget: int = limits.DEFAULT_RECALL_BUDGET
    # Tokens a SessionStart's context may use, the team's block included (memq.worker.injection).
    context_budget: int = limits.DEFAULT_CONTEXT_BUDGET
    # Secrets replaced by markers before anything is stored (memq.redact), and the user's
    # own patterns of them.
    redact: bool = True
    redact_patterns: tuple[str, ...] = ()
    # Model tokens a UTC day may spend before messages go to ``extract`` (None: no budget),
    # and the price table the cost estimates use (memq.model_cost).
    daily_tokens: int = 0  # 0: no budget
    model_prices: Mapping[str, Price] = field(
        default_factory=lambda: dict(DEFAULT_PRICES), compare=False
    )
    # The PostgreSQL server several daemons share (memq.storage.postgres); "": SQLite in
    # the home.
    database_url: str = ""
    # On PostgreSQL: seconds between a daemon's heartbeats (and its sweeps for dead ones),
    # and since its last beat before the others declare it dead (None: 5 x the interval).
    heartbeat_interval: float = 2.0
    heartbeat_expiry: float | None = None
    # The team server this laptop forwards its events to (memq.team.forwarder; "": none),
    # the file holding its API key ("": MEMQ_HOME/upstream.key), and whether events are
    # also processed here ("both") or only forwarded ("forward").
    upstream: str = ""
    upstream_key_file: str = ""
    upstream_mode: str = UPSTREAM_BOTH
    # The name this machine goes by on the team server (records say which machine made
    # them; the server's dedupe key holds it): the host name unless set.
    machine_name: str = field(default_factory=default_machine_name)
    # ``memq serve --team`` (memq.team.server): where the team API listens (host:port),
    # its TLS certificate and key files ("": none), whether a TLS-terminating proxy is in
    # front (then plain HTTP may listen beyond loopback), and each key's request rate
    # (requests per second, and the burst it may spend at once).
    team_listen: str = DEFAULT_TEAM_LISTEN
    tls_cert: str = ""
    tls_key: str = ""
    tls_proxy: bool = False
    team_rate: float = 10.0
    team_burst: int = 50
    # ``memq serve --team``: failed authentications a client address may make at once, and
    # per window after that (then 429 before any key is checked), the window in seconds,
    # and the days the audit log (and each key's use per hour) is kept.
    team_auth_failures: int = 20
    team_auth_window: float = 60.0
    team_audit_days: int = 90
    # What the settings were read from (``memq.env.Sources`` for the environment over the
    # settings file); the model-based processors read their own from it. None: os.environ.
    environment: Mapping[str, str] | None = field(default=None, compare=False, repr=False)

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

    @property
    def upstream_key_path(self) -> Path:
        """The file holding the team server's API key."""
        return Path(self.upstream_key_file) if self.upstream_key_file else self.paths.upstream_key

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, only: Collection[str] | None = None
    ) -> Settings:
        """Settings from ``MEMQ_*`` variables in ``env`` (``os.environ`` when None; pass
        ``memq.env.environment(...)`` to read the settings file too).

        Every setting is checked, or only the keys in ``only``: a bad value of any other
        one leaves that setting at its default, so that a command is not refused over a
        setting it does not use.

        Raises:
            SettingError: a checked setting has a bad value (naming its variable or key).
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {"home": Path(memq_env.home_dir(env)), "environment": env}
        for spec in SETTINGS:
            if spec.field is None:
                continue
            try:
                values[spec.field] = spec.parse(env)
            except SettingError:
                if only is None or spec.key in only:
                    raise
        return cls(**values)

    @classmethod
    def load(
        cls, environ: Mapping[str, str] | None = None, *, only: Collection[str] | None = None
    ) -> Settings:
        """Settings from the environment (``os.environ`` when None) laid over the settings
        file of the home it names; as :meth:`from_env` otherwise."""
        sources = memq_env.environment(os.environ if environ is None else environ)
        return cls.from_env(sources, only=only)


DEFAULTS: Final = Settings()


@dataclass(frozen=True, slots=True)
class SettingSpec:
    """One setting: its key in settings.toml, how to read it, and what it is for."""

    key: str
    parse: Callable[[Mapping[str, str]], Any]  # its checked value in env; the default if unset
    help: str
    field: str | None = None  # the Settings attribute; None: the hook or a processor reads it
    secret: bool = False  # never shown, never recorded by memq install
    recorded: bool = True  # memq install copies it from the environment into the file

    @property
    def variable(self) -> str:
        return SETTING_VARIABLES[self.key]


def _base_url(env: Mapping[str, str]) -> str:
    # As memq.processors.llm checks it; "" means the processor's official endpoint.
    value = env_text(env, Variable.BASE_URL, "")
    if value and not value.startswith(("http://", "https://")):
        problem = "must start with http:// or https://"
        raise memq_env.setting_error(env, Variable.BASE_URL, repr(value), problem)
    return value


def _team_auth_window(env: Mapping[str, str]) -> float:
    # Seconds, not milliseconds; at most a day (a longer one keeps an address out for long).
    value = env_float(env, Variable.TEAM_AUTH_WINDOW, DEFAULTS.team_auth_window, positive=True)
    if not 1 <= value <= 86_400:
        problem = "must be 1 to 86400 seconds"
        raise memq_env.setting_error(env, Variable.TEAM_AUTH_WINDOW, value, problem)
    return value


def _daily_tokens(env: Mapping[str, str]) -> int:
    # 0 or unset: no budget.
    return env_int(env, Variable.DAILY_TOKENS, 0, low=0, high=10**12)


def _database_url(env: Mapping[str, str]) -> str:
    value = env_text(env, Variable.DATABASE_URL, "")
    problem = url_problem(value) if value else None
    if problem is not None:
        raise memq_env.setting_error(env, Variable.DATABASE_URL, shown_url(value), problem)
    return value


def _heartbeat_interval(env: Mapping[str, str]) -> float:
    return env_float(env, Variable.HEARTBEAT_INTERVAL, DEFAULTS.heartbeat_interval, positive=True)


def _heartbeat_expiry(env: Mapping[str, str]) -> float:
    # Unset: 5 x the interval. A bad interval is its own setting's error; measured against
    # the default then.
    try:
        interval = _heartbeat_interval(env)
    except SettingError:
        interval = DEFAULTS.heartbeat_interval
    expiry = env_float(env, Variable.HEARTBEAT_EXPIRY, 5 * interval, positive=True)
    if expiry <= interval:
        problem = f"must be longer than heartbeat_interval ({interval:g} s)"
        raise memq_env.setting_error(env, Variable.HEARTBEAT_EXPIRY, f"{expiry:g}", problem)
    return expiry


def _upstream(env: Mapping[str, str]) -> str:
    value = env_text(env, Variable.UPSTREAM, "").rstrip("/")
    if not value:
        return ""
    problem = _upstream_problem(value)
    if problem is None and env_text(env, Variable.DATABASE_URL, ""):
        # Several daemons on one database would forward its outbox side by side.
        problem = "is for a laptop's own SQLite database, not with database_url"
    if problem is not None:
        # Never the credentials a URL may hold.
        shown = repr(value if "@" not in value else "...@" + value.rsplit("@", 1)[1])
        raise memq_env.setting_error(env, Variable.UPSTREAM, shown, problem)
    return value


def _upstream_problem(url: str) -> str | None:
    """What is wrong with a team server's URL; None when nothing is."""
    from urllib.parse import urlsplit  # noqa: PLC0415 - only when it is set

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises for a port that is no number
    except ValueError as exc:
        return f"is not a URL ({exc})"
    if parts.scheme not in ("https", "http") or not host:
        return "must be https://host[:port]"
    if parts.username or parts.password:
        return "must not hold credentials: the key goes in upstream.key"
    if parts.query or parts.fragment:
        return "must be https://host[:port] without a query"
    if parts.scheme == "http" and host not in LOOPBACK_HOSTS:
        return "must use https (plain http only to this machine, for tests)"
    return None


def _machine_name(env: Mapping[str, str]) -> str:
    value = env_text(env, Variable.MACHINE_NAME, "")
    if not value:
        return default_machine_name()
    problem = None
    if len(value) > MAX_MACHINE_NAME_CHARS:
        problem = f"is {len(value)} characters long: at most {MAX_MACHINE_NAME_CHARS}"
    elif not value.isprintable():
        problem = "holds a character that is not printable (a control character or a tab)"
    if problem is not None:
        shown = repr(value if len(value) <= 40 else value[:40] + "...")
        raise memq_env.setting_error(env, Variable.MACHINE_NAME, shown, problem)
    return value


def _upstream_key_file(env: Mapping[str, str]) -> str:
    value = env_text(env, Variable.UPSTREAM_KEY_FILE, "")
    return os.path.abspath(os.path.expanduser(value)) if value else ""


def _upstream_mode(env: Mapping[str, str]) -> str:
    return env_choice(env, Variable.UPSTREAM_MODE, UPSTREAM_BOTH, (UPSTREAM_BOTH, UPSTREAM_FORWARD))


def _team_listen(env: Mapping[str, str]) -> str:
    value = env_text(env, Variable.TEAM_LISTEN, DEFAULT_TEAM_LISTEN)
    try:
        parse_listen(value)
    except ValueError as exc:
        raise memq_env.setting_error(env, Variable.TEAM_LISTEN, repr(value), str(exc)) from None
    return value


def _tls_file(variable: str) -> Callable[[Mapping[str, str]], str]:
    def parse(env: Mapping[str, str]) -> str:
        value = env_text(env, variable, "")
        return os.path.abspath(os.path.expanduser(value)) if value else ""

    return parse


def _model_prices(env: Mapping[str, str]) -> dict[str, Price]:
    raw = env_text(env, Variable.MODEL_PRICES, "")
    try:
        return parse_prices(raw)
    except ValueError as exc:
        raise memq_env.setting_error(env, Variable.MODEL_PRICES, repr(raw), str(exc)) from None


SETTINGS: Final[tuple[SettingSpec, ...]] = (
    SettingSpec("port", memq_env.port, "the daemon's loopback port", "port"),
    SettingSpec(
        "processor",
        lambda env: env_text(env, Variable.PROCESSOR, DEFAULTS.processor),
        "what turns events into memory: extract, anthropic, openai or claude-code",
        "processor",
    ),
    SettingSpec(
        "capacity",
        lambda env: env_int(env, Variable.CAPACITY, DEFAULTS.capacity, low=1, high=256),
        "sessions processed at once",
        "capacity",
    ),
    SettingSpec(
        "linger",
        lambda env: env_float(env, Variable.LINGER, DEFAULTS.linger),
        "seconds an idle session's worker waits for more work",
        "linger",
    ),
    SettingSpec(
        "lease",
        lambda env: env_float(env, Variable.LEASE, DEFAULTS.lease, positive=True),
        "seconds a processor may take for one message",
        "lease",
    ),
    SettingSpec(
        "max_attempts",
        lambda env: env_int(env, Variable.MAX_ATTEMPTS, DEFAULTS.max_attempts, low=1, high=100),
        "attempts before a message is failed",
        "max_attempts",
    ),
    SettingSpec("body_limit", memq_env.body_limit, "bytes of one HTTP request", "body_limit"),
    SettingSpec(
        "shutdown_grace",
        lambda env: env_float(env, Variable.SHUTDOWN_GRACE, DEFAULTS.shutdown_grace),
        "seconds in-flight messages get to finish at stop",
        "shutdown_grace",
    ),
    SettingSpec(
        "synchronous",
        lambda env: env_choice(env, Variable.SYNCHRONOUS, DEFAULTS.synchronous, ("FULL", "NORMAL")),
        "SQLite's synchronous mode: FULL or NORMAL",
        "synchronous",
    ),
    SettingSpec(
        "log_level",
        lambda env: env_choice(
            env, Variable.LOG_LEVEL, DEFAULTS.log_level, ("debug", "info", "warning", "error")
        ),
        "debug, info, warning or error",
        "log_level",
    ),
    SettingSpec(
        "skip_tools", memq_env.skip_tools, "tools whose events are not recorded", "skip_tools"
    ),
    SettingSpec(
        "session_ttl",
        lambda env: env_float(env, Variable.SESSION_TTL, DEFAULTS.session_ttl, positive=True),
        "seconds idle before a session's state leaves the daemon's memory",
        "session_ttl",
    ),
    SettingSpec(
        "activity_flush_events",
        lambda env: env_int(
            env,
            Variable.ACTIVITY_FLUSH_EVENTS,
            DEFAULTS.activity_flush_events,
            low=1,
            high=1_000_000,
        ),
        "last-access touches written at once",
        "activity_flush_events",
    ),
    SettingSpec(
        "activity_flush_interval",
        lambda env: env_float(
            env, Variable.ACTIVITY_FLUSH_INTERVAL, DEFAULTS.activity_flush_interval, positive=True
        ),
        "seconds before last-access touches are written",
        "activity_flush_interval",
    ),
    SettingSpec(
        "reserve_bytes",
        lambda env: env_int(
            env, Variable.RESERVE_BYTES, DEFAULTS.reserve_bytes, low=0, high=MAX_RESERVE_BYTES
        ),
        "bytes kept free in MEMQ_HOME/reserve, released when the disk fills (0: none)",
        "reserve_bytes",
    ),
    SettingSpec(
        "recall_on_prompt",
        lambda env: env_flag(env, Variable.RECALL_ON_PROMPT),
        "true: each prompt gets the few best matches in memory as extra context",
        "recall_on_prompt",
    ),
    SettingSpec(
        "recall_min_score",
        lambda env: env_float(env, Variable.RECALL_MIN_SCORE, DEFAULTS.recall_min_score),
        "the least search score of a match recalled for a prompt",
        "recall_min_score",
    ),
    SettingSpec(
        "recall_budget",
        lambda env: env_int(
            env, Variable.RECALL_BUDGET, DEFAULTS.recall_budget, low=100, high=4000
        ),
        "tokens a prompt's recall may add at most",
        "recall_budget",
    ),
    SettingSpec(
        "context_budget",
        lambda env: env_int(
            env,
            Variable.CONTEXT_BUDGET,
            DEFAULTS.context_budget,
            low=MIN_SESSION_CONTEXT_BUDGET,
            high=MAX_SESSION_CONTEXT_BUDGET,
        ),
        "tokens a session's starting context may use, the team's part included",
        "context_budget",
    ),
    SettingSpec(
        "hook_connect_timeout",
        memq_env.hook_connect_timeout,
        "seconds the hook waits to reach the daemon",
    ),
    SettingSpec(
        "hook_timeout", memq_env.hook_timeout, "seconds the hook waits for the daemon's answer"
    ),
    SettingSpec(
        "redact",
        memq_env.redact,
        "on: secrets are replaced by [redacted:KIND] before anything is stored",
        "redact",
    ),
    SettingSpec(
        "redact_patterns",
        memq_env.redact_patterns,
        "your own regular expressions of secrets to redact, one a line",
        "redact_patterns",
    ),
    SettingSpec(
        "disabled",
        lambda env: env_flag(env, Variable.DISABLED),
        "true: the hook does nothing",
        recorded=False,  # a switch for one shell, not for every session from now on
    ),
    SettingSpec(
        "model",
        lambda env: env_text(env, Variable.MODEL, ""),
        "the model anthropic or openai asks",
    ),
    SettingSpec("base_url", _base_url, "the model API's root URL"),
    SettingSpec(
        "api_key",
        lambda env: env_text(env, Variable.API_KEY, ""),
        "the model API's key",
        secret=True,
    ),
    SettingSpec("llm_timeout", memq_env.llm_timeout, "seconds one model request may take"),
    SettingSpec(
        "llm_max_tokens", memq_env.llm_max_tokens, "the most tokens the model may answer with"
    ),
    SettingSpec(
        "daily_tokens",
        _daily_tokens,
        "model tokens a UTC day may spend before extract takes over (0: no budget)",
        "daily_tokens",
    ),
    SettingSpec(
        "model_prices",
        _model_prices,
        "USD per million tokens for the cost estimate: MODEL=IN/OUT, ... (over the defaults)",
        "model_prices",
    ),
    SettingSpec(
        "claude_bin",
        lambda env: env_text(env, Variable.CLAUDE_BIN, ""),
        "the claude command processor claude-code runs (default: claude on PATH)",
    ),
    SettingSpec(
        "batch_turns",
        lambda env: env_flag(env, Variable.BATCH_TURNS),
        "true: a model processor describes a turn's tool calls with its summary, in one call",
    ),
    SettingSpec(
        "database_url",
        _database_url,
        "a PostgreSQL server several daemons share (postgresql://user@host/db; unset: SQLite)",
        "database_url",
    ),
    SettingSpec(
        "heartbeat_interval",
        _heartbeat_interval,
        "PostgreSQL: seconds between a daemon's heartbeats",
        "heartbeat_interval",
    ),
    SettingSpec(
        "heartbeat_expiry",
        _heartbeat_expiry,
        "PostgreSQL: seconds after its last heartbeat that a daemon is declared dead and its"
        " work handed to the others (default 5 x heartbeat_interval)",
        "heartbeat_expiry",
    ),
    SettingSpec(
        "upstream",
        _upstream,
        "the team server this laptop forwards its events to (https://host:port; unset: none)",
        "upstream",
    ),
    SettingSpec(
        "upstream_key_file",
        _upstream_key_file,
        "the file holding the team server's API key (default MEMQ_HOME/upstream.key, 0600)",
        "upstream_key_file",
    ),
    SettingSpec(
        "upstream_mode",
        _upstream_mode,
        "both: events are processed here and forwarded (works offline); forward: only forwarded",
        "upstream_mode",
    ),
    SettingSpec(
        "machine_name",
        _machine_name,
        "the name this machine goes by on the team server (default: the host name)",
        "machine_name",
    ),
    SettingSpec(
        "team_listen",
        _team_listen,
        "memq serve --team: host:port the team API listens on (beyond loopback: TLS or proxy)",
        "team_listen",
    ),
    SettingSpec(
        "tls_cert",
        _tls_file(Variable.TLS_CERT),
        "memq serve --team: the TLS certificate file (PEM, with its chain)",
        "tls_cert",
    ),
    SettingSpec(
        "tls_key", _tls_file(Variable.TLS_KEY), "memq serve --team: the TLS key file", "tls_key"
    ),
    SettingSpec(
        "tls_proxy",
        lambda env: env_flag(env, Variable.TLS_PROXY),
        "memq serve --team: true when a TLS-terminating proxy is in front of the team API",
        "tls_proxy",
    ),
    SettingSpec(
        "team_rate",
        lambda env: env_float(env, Variable.TEAM_RATE, DEFAULTS.team_rate, positive=True),
        "memq serve --team: requests per second each API key may make",
        "team_rate",
    ),
    SettingSpec(
        "team_burst",
        lambda env: env_int(env, Variable.TEAM_BURST, DEFAULTS.team_burst, low=1, high=100_000),
        "memq serve --team: requests an API key may make at once before team_rate holds",
        "team_burst",
    ),
    SettingSpec(
        "team_auth_failures",
        lambda env: env_int(
            env, Variable.TEAM_AUTH_FAILURES, DEFAULTS.team_auth_failures, low=1, high=100_000
        ),
        "memq serve --team: failed authentications a client address may make per "
        "team_auth_window before its requests get 429",
        "team_auth_failures",
    ),
    SettingSpec(
        "team_auth_window",
        _team_auth_window,
        "memq serve --team: seconds over which team_auth_failures come back to an address",
        "team_auth_window",
    ),
    SettingSpec(
        "team_audit_days",
        lambda env: env_int(
            env, Variable.TEAM_AUDIT_DAYS, DEFAULTS.team_audit_days, low=1, high=36_500
        ),
        "memq serve --team: days the audit log and each key's use per hour are kept",
        "team_audit_days",
    ),
)
SETTINGS_BY_KEY: Final = {spec.key: spec for spec in SETTINGS}
ALL_KEYS: Final = frozenset(SETTINGS_BY_KEY)


def shown_value(spec: SettingSpec, value: Any) -> Any:
    """A setting's parsed value as ``memq status --json`` shows it (JSON, secrets hidden)."""
    if spec.secret:
        return HIDDEN if value else None
    if isinstance(value, frozenset):
        return sorted(value)
    if isinstance(value, tuple):  # redact_patterns, in their order
        return list(value)
    if value == "" and spec.key in ("model", "base_url"):
        return None  # the processor's own
    if spec.key == "database_url":
        value = shown_url(value)  # never its password
    if spec.key == "model_prices":
        return ", ".join(f"{model}={price}" for model, price in prices_json(value).items())
    return value


def settings_report(env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Each setting's value in ``env`` and where it came from, for ``memq status``:
    ``{key: {"value", "source", "variable"[, "error"]}}``, ``home`` first. A bad value is
    reported with its error, not raised."""
    report: dict[str, dict[str, Any]] = {
        "home": {
            "value": memq_env.home_dir(env),
            "source": memq_env.source_of(env, Variable.HOME),
            "variable": Variable.HOME,
        }
    }
    for spec in SETTINGS:
        entry: dict[str, Any] = {
            "value": None,
            "source": memq_env.source_of(env, spec.variable),
            "variable": spec.variable,
        }
        try:
            entry["value"] = shown_value(spec, spec.parse(env))
        except SettingError as exc:
            entry["error"] = str(exc)
            if spec.key == "database_url":
                entry["value"] = shown_url(env.get(spec.variable) or "")
            elif not spec.secret:
                entry["value"] = env.get(spec.variable)
        report[spec.key] = entry
    return report


def is_default(entry: Mapping[str, Any]) -> bool:
    """Whether a ``settings_report`` entry is a default value nobody set."""
    return entry["source"] == Source.DEFAULT and "error" not in entry
