"""``memq hook [--assistant NAME] [EVENT]``: hand one hook event from the assistant to memq,
fast and silently.

The assistant's adapter (``memq.assistants``; Claude Code when none is named) first turns its
payload into memq's, and memq's context into the reply that assistant reads.

The assistant runs this as a fresh process on every prompt, tool call and stop, and shows the
user anything it prints to stderr or any non-zero exit. So it imports only the standard
library, exits 0 whatever happens, prints nothing but the context the daemon answers with
(in the assistant's reply shape), and loses nothing: when the daemon does not
answer in time the event goes straight into the pending table and the daemon is started in
the background; when the database cannot take it either (damaged, read-only, locked past the
hook's budget) the event goes to the spool
(``memq.hooks.spool``), which the daemon takes in. Problems go to
``MEMQ_HOME/logs/hook.log``; a setting the hook cannot use is logged there and its default
used, so a typo never costs an event.
"""

from __future__ import annotations

import json
import os
import sys
import time

from memq import assistants, private_files
from memq import env as memq_env
from memq.assistants import ASSISTANT_OPTION
from memq.events import HookEvent, Route, drop_origin, parse_event_body, route_event
from memq.exceptions import (
    DaemonUnavailableError,
    EventError,
    RepairInProgressError,
    SettingError,
    UnknownAssistantError,
    UnsafeFileError,
)
from memq.hooks.client import post_json
from memq.hooks.fit import fit, fit_body
from memq.privacy import is_skipped, strip_private
from memq.redact import BUILT_IN, REDACTED_MARK, Redactor, redactor

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import IO, Any, Final, TypeVar

    from memq.assistants.base import Adapter

    T = TypeVar("T")

# Once the event is ready, the daemon and the database together get this long to take it;
# past it the event goes to the spool. SQLite's own busy timeout (seconds) must not decide
# how long a hook waits for a daemon frozen inside a write: every wait is cut to this.
HOOK_BUDGET_SECONDS: Final = 1.0
# The daemon leaves the database at least this much of the budget, whatever its timeouts.
DATABASE_SHARE_SECONDS: Final = 0.25
MAX_HOOK_LOG_BYTES: Final = 5 * 1024 * 1024
# A home memq refuses: only this much of the event is kept, to see whether it is SessionStart.
MAX_REFUSAL_READ: Final = 64 * 1024


class HookSettings:
    """What the hook reads from the environment (see ``memq.env``).

    A value it cannot use (``MEMQ_PORT=abc``, ``port = "abc"`` in settings.toml) is replaced
    by its default and its error kept in ``problems``, for hook.log: the event still goes out.
    """

    __slots__ = (
        "body_limit",
        "connect_timeout",
        "home",
        "port",
        "problems",
        "read_timeout",
        "redactor",
        "shared_database",
        "skip_tools",
    )

    def __init__(self, env: Mapping[str, str]) -> None:
        self.problems: list[str] = []
        self.home = memq_env.home_dir(env)
        self.port = self._read(lambda: memq_env.port(env), memq_env.DEFAULT_PORT)
        self.connect_timeout = self._read(
            lambda: memq_env.hook_connect_timeout(env), memq_env.DEFAULT_HOOK_CONNECT_TIMEOUT
        )
        self.read_timeout = self._read(
            lambda: memq_env.hook_timeout(env), memq_env.DEFAULT_HOOK_TIMEOUT
        )
        self.body_limit = self._read(lambda: memq_env.body_limit(env), memq_env.DEFAULT_BODY_LIMIT)
        self.skip_tools = self._read(
            lambda: memq_env.skip_tools(env), frozenset(memq_env.DEFAULT_SKIP_TOOLS)
        )
        # A redact setting the hook cannot read leaves the built-in rules on: fail closed.
        built_in: Redactor | None = BUILT_IN
        self.redactor = self._read(
            lambda: redactor(memq_env.redact(env), memq_env.redact_patterns(env)), built_in
        )
        # The daemons keep their queue on a server (MEMQ_DATABASE_URL): a file written here
        # would never be read, so the fallback spools. A value the file gives but no text
        # stands for counts as set: the spool is safe with either backend.
        self.shared_database = memq_env.is_set(env, memq_env.Variable.DATABASE_URL) or (
            isinstance(env, memq_env.Sources) and memq_env.Variable.DATABASE_URL in env.invalid
        )

    def _read(self, parse: Callable[[], T], default: T) -> T:
        try:
            return parse()
        except SettingError as exc:
            self.problems.append(str(exc))
            return default


def main(argv: list[str], stdin: IO[bytes] | None = None, stdout: IO[str] | None = None) -> int:
    """Run the hook (``argv``: what follows ``memq hook``); always returns 0."""
    env: Mapping[str, str] = os.environ
    event, assistant, usage_problem = parse_arguments(argv)
    adapter = _adapter(assistant)
    refusal = home_refusal(memq_env.home_dir(env))
    if refusal is not None:
        refuse(refusal, event, adapter, stdin, stdout)
        return 0
    try:
        env = memq_env.environment(env)  # the environment laid over MEMQ_HOME/settings.toml
    except SettingError as exc:
        # The event still goes out, by the environment alone: not lost over a broken file.
        log_problem(memq_env.home_dir(env), "hook.settings_file", error=str(exc))
    try:
        if is_disabled(env):
            return 0
        raw = (stdin if stdin is not None else sys.stdin.buffer).read()
        settings = HookSettings(env)
        for problem in settings.problems:
            log_problem(settings.home, "hook.setting_ignored", error=problem, used="the default")
        if usage_problem is not None:
            # Still delivered: as Claude Code's when the assistant is unknown.
            log_problem(settings.home, "hook.bad_arguments", error=usage_problem, argv=argv)
        context = handle(raw, event, settings, adapter)
        if context:
            out = stdout if stdout is not None else sys.stdout
            out.write(context)
            out.flush()
    except BaseException as exc:
        home = memq_env.home_dir(env)
        error = f"{type(exc).__name__}: {exc}"
        home_problem = _home_write_problem(home) if isinstance(exc, OSError) else None
        if home_problem is not None:
            log_problem(home, "hook.home_read_only", problem=home_problem, error=error)
        else:
            log_problem(home, "hook.failed", error=error)
    return 0


def parse_arguments(argv: list[str]) -> tuple[str | None, str | None, str | None]:
    """``(event, assistant, problem)`` from ``memq hook``'s arguments: ``[--assistant NAME]
    [EVENT]`` in any order (``--assistant=NAME`` too). A problem (an unknown option, a
    missing name, two events) is returned to be logged, never raised: the event still goes."""
    event: str | None = None
    assistant: str | None = None
    problems: list[str] = []
    words = iter(argv)
    for word in words:
        if word == ASSISTANT_OPTION:
            assistant = next(words, None)
            if assistant is None:
                problems.append(f"{ASSISTANT_OPTION} needs a name")
        elif word.startswith(ASSISTANT_OPTION + "="):
            assistant = word.partition("=")[2]
        elif word.startswith("-"):
            problems.append(f"unknown option {word!r}")
        elif event is None:
            event = word
        else:
            problems.append(f"more than one event: {event!r}, {word!r}")
    if assistant is not None:
        try:
            assistant = assistants.canonical_name(assistant)
        except UnknownAssistantError as exc:
            problems.append(str(exc))
            assistant = None
    return event, assistant, "; ".join(problems) or None


def _adapter(assistant: str | None) -> Adapter:
    try:
        return assistants.adapter(assistant or assistants.CLAUDE_CODE)
    except Exception:
        return assistants.adapter(assistants.CLAUDE_CODE)


def raise_repairing(pid: int) -> None:
    """The database is not written while ``memq repair`` (``pid``) replaces its files."""
    raise RepairInProgressError(f"memq repair (pid {pid}) is rebuilding the database")


def _home_write_problem(home: str) -> str | None:
    """What keeps memq from writing in ``home`` (read-only), as a sentence for hook.log."""
    from memq.startup_error import home_write_problem

    return home_write_problem(home)


def home_refusal(home: str) -> str | None:
    """Why the hook must not touch ``home`` (others can write to it, so a token, a database
    or a spool there could be theirs), or None."""
    try:
        private_files.check_home(home)
    except UnsafeFileError as exc:
        return str(exc)
    except OSError:
        return None  # cannot even look at it: the usual path says why, in hook.log
    return None


def refuse(
    refusal: str,
    event: str | None,
    adapter: Adapter,
    stdin: IO[bytes] | None,
    stdout: IO[str] | None,
) -> None:
    """Take nothing from the event and write nothing to the home (not even hook.log): say
    why at the start of a session, where the person sees it."""
    source = stdin if stdin is not None else sys.stdin.buffer
    raw = source.read(MAX_REFUSAL_READ)
    while source.read(MAX_REFUSAL_READ):
        pass  # read to the end (the assistant writes it all), keeping only the start
    if event is None:
        try:
            event = parse_event_body(raw).get("hook_event_name")
        except EventError:
            return  # not a SessionStart's small payload
    mapped = adapter.memq_event(event) if isinstance(event, str) else None
    if mapped == HookEvent.SESSION_START:
        text = adapter.notice(mapped, f"memq is not recording this session: {refusal}\n")
        if text:
            out = stdout if stdout is not None else sys.stdout
            out.write(text)
            out.flush()


def is_disabled(env: Mapping[str, str]) -> bool:
    """MEMQ_DISABLED; a value that is no yes or no (a table in settings.toml) is logged and
    taken as no: an unreadable switch must not silently drop every event."""
    try:
        return memq_env.env_flag(env, memq_env.Variable.DISABLED)
    except SettingError as exc:
        log_problem(memq_env.home_dir(env), "hook.setting_ignored", error=str(exc), used="false")
        return False


def handle(
    raw: bytes, event: str | None, settings: HookSettings, adapter: Adapter | None = None
) -> str | None:
    """Deliver one event; return the text to print (SessionStart's context, a prompt's
    recall, in the reply shape of the assistant) or None."""
    adapter = adapter or assistants.adapter()
    # An event over the body limit is cut as text before it is parsed: a 50 MB tool answer
    # parsed whole would cost the hook seconds and hundreds of MB (memq.hooks.fit).
    payload = adapter.to_memq(parse_event_body(fit_body(raw, settings.body_limit)), event)
    if is_skipped(payload, settings.skip_tools):
        return None
    if payload.get("hook_event_name") == HookEvent.STOP:
        adapter.complete_turn(payload)
    drop_origin(payload)  # before the body: the daemon, direct write and spool get none
    payload = strip_private(payload)
    if settings.redactor is not None:
        # Before the body is made: the daemon, the direct write and the spool all get it
        # without the secrets (memq.redact).
        payload, _ = settings.redactor.redact_value(payload)
        payload[REDACTED_MARK] = settings.redactor.fingerprint  # the daemon need not again
    # Events without a natural id (Stop, SessionStart, ...) get one here, so a delivery over
    # HTTP and a fallback write of the same event are recognised as one.
    payload.setdefault("memq_event_id", os.urandom(12).hex())
    payload, body = fit(payload, settings.body_limit)
    route = route_event(payload)
    deadline = time.monotonic() + HOOK_BUDGET_SECONDS
    try:
        answer = deliver(settings, body, deadline=deadline - DATABASE_SHARE_SECONDS)
    except DaemonUnavailableError as why:
        result = fall_back(
            settings, route, body, str(why), cwd=payload.get("cwd"), deadline=deadline
        )
        if route.event == HookEvent.SESSION_START:
            notice = damaged_database_notice(settings.home, result)
            return adapter.notice(route.event, notice) if notice else None
        return None
    return printed_context(route.event, answer.get("additionalContext"), adapter)


def printed_context(event: str, context: object, adapter: Adapter | None = None) -> str | None:
    """What the hook prints for the daemon's ``additionalContext``, in the reply shape of
    the assistant (Claude Code's by default: SessionStart's as it is, a prompt's recall as
    ``hookSpecificOutput.additionalContext``); None for nothing to add."""
    if not isinstance(context, str) or not context:
        return None
    return (adapter or assistants.adapter()).reply(event, context)


def deliver(settings: HookSettings, body: bytes, *, deadline: float) -> dict[str, Any]:
    """POST the event, giving up at ``deadline`` (``time.monotonic()``); the daemon's
    answer, or ``DaemonUnavailableError`` for anything else."""
    status, answer = post_json(
        settings.port,
        "/api/events",
        read_token(settings.home),
        body,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        deadline=deadline,
    )
    if status not in (200, 202) or not isinstance(answer, dict):
        raise DaemonUnavailableError(f"HTTP {status}: {answer}")
    return answer


class Handover:
    """Where an event the daemon did not take went (``fall_back``'s answer)."""

    DATABASE: Final = "database"  # the pending table, as the daemon would have written it
    SPOOL: Final = "spool"  # a file in MEMQ_HOME/spool, for the daemon to take in
    LOST: Final = "lost"  # neither could be written (hook.log says why, if it can be written)


class FallbackResult:
    """What ``fall_back`` did: where the event went, and why the database did not take it."""

    __slots__ = ("damaged", "database_error", "handover")

    def __init__(
        self, handover: str, database_error: str | None = None, *, damaged: bool = False
    ) -> None:
        self.handover = handover  # a Handover value
        self.database_error = database_error
        self.damaged = damaged  # the database's error says the file is damaged


def damaged_database_notice(home: str, result: FallbackResult) -> str | None:
    """SessionStart's context while the database is damaged (its direct write said so, or
    the daemon's check at its last start did): one line saying so and naming memq repair,
    so that the person sees it in the assistant. None otherwise."""
    from memq import startup_error
    from memq.storage import integrity

    database = os.path.join(home, memq_env.DATABASE_FILE)
    if not result.damaged and not startup_error.says_damaged(startup_error.read(home), database):
        return None
    return integrity.session_notice(database)


def fall_back(
    settings: HookSettings,
    route: Route,
    body: bytes,
    reason: str,
    *,
    cwd: object = None,
    deadline: float | None = None,
) -> FallbackResult:
    """Store the event (its JSON ``body``, as it would have been posted) directly, a fork's
    first event after linking the fork as the daemon would; when the database cannot take it
    before ``deadline`` (``time.monotonic()``), or is a server's (``shared_database``: only
    the daemons write it), put it in the spool. Then start the daemon and log why."""
    # Imported here: sqlite3 and the schema code are needed only when the daemon is away.
    from memq.hooks import fallback, fork_link
    from memq.hooks.spool import write_event

    if deadline is None:
        deadline = time.monotonic() + HOOK_BUDGET_SECONDS
    from memq.storage import repairing

    fields: dict[str, Any] = {"reason": reason, "session_id": route.session_key}
    # memq repair is replacing the database's files: leave them alone, spool the event.
    repair_pid = repairing.repairing_pid(settings.home)
    shared = settings.shared_database
    try:
        parent = (
            fork_link.link_before_storing(
                settings.home,
                route,
                cwd,
                fallback.busy_timeout_left(HOOK_BUDGET_SECONDS, deadline),
            )
            if repair_pid is None and not shared
            else None
        )
        if parent is not None:
            fields["forked_from"] = parent
    except Exception as exc:
        # Only the link is lost: the event itself is stored below (or spooled, and the daemon
        # links it when it takes it in).
        fields["fork_link_error"] = f"{type(exc).__name__}: {exc}"
    database_error: str | None = None
    damaged = False
    if shared:
        # Only the daemons write a server's database; a file here would never be read.
        fields["shared_database"] = True
    else:
        database_error, damaged = _store_directly(
            settings, route, body, fields, repair_pid=repair_pid, deadline=deadline
        )
    if "message_id" in fields:
        result = FallbackResult(Handover.DATABASE)
        event = "hook.fallback"
    else:
        try:
            fields["spool_file"] = write_event(
                settings.home, route, body, now_ms=time.time_ns() // 1_000_000
            )
            result = FallbackResult(Handover.SPOOL, database_error, damaged=damaged)
            event = "hook.spooled"
        except Exception as spool_exc:
            fields["spool_error"] = f"{type(spool_exc).__name__}: {spool_exc}"
            result = FallbackResult(Handover.LOST, database_error, damaged=damaged)
            event = "hook.lost"
    try:
        fields["daemon_started"] = fallback.start_daemon(settings.home)
    except Exception as exc:
        fields["daemon_start_error"] = f"{type(exc).__name__}: {exc}"
    log_problem(settings.home, event, **fields)
    return result


def _store_directly(
    settings: HookSettings,
    route: Route,
    body: bytes,
    fields: dict[str, Any],
    *,
    repair_pid: int | None,
    deadline: float,
) -> tuple[str | None, bool]:
    """``fall_back``'s write into the home's database: the message id goes in ``fields``;
    else why not (the error, and whether it says the file is damaged)."""
    from memq.hooks import fallback
    from memq.storage import integrity

    try:
        if repair_pid is not None:
            fields["repair_pid"] = repair_pid
            raise_repairing(repair_pid)
        fields["message_id"] = fallback.store_directly(
            settings.home, route, body, HOOK_BUDGET_SECONDS, deadline=deadline
        )
    except Exception as exc:
        database_error = f"{type(exc).__name__}: {exc}"
        fields["database_error"] = database_error
        damaged = integrity.is_damage(exc)
        if damaged:
            fields["problem"] = integrity.damage_message(
                os.path.join(settings.home, memq_env.DATABASE_FILE), str(exc)
            )
        else:
            home_problem = _home_write_problem(settings.home)
            if home_problem is not None:
                fields["problem"] = home_problem
        return database_error, damaged
    return None, False


def read_token(home: str) -> str:
    """The daemon's bearer token; ``DaemonUnavailableError`` when there is none yet (the daemon
    never ran) or the file is not one memq wrote for this user (a symlink, someone else's,
    not a token: ``memq.private_files``), which is then neither sent nor quoted."""
    try:
        return private_files.read_token(os.path.join(home, memq_env.TOKEN_FILE))
    except FileNotFoundError:
        raise DaemonUnavailableError("no token: the daemon has not run yet") from None
    except UnsafeFileError as exc:
        raise DaemonUnavailableError(f"token refused: {exc}") from None
    except OSError as exc:
        raise DaemonUnavailableError(f"no token: {exc.strerror}") from None


def log_problem(home: str, event: str, **fields: Any) -> None:
    """Append one JSON line to ``MEMQ_HOME/logs/hook.log``; never raises."""
    try:
        logs = os.path.join(home, memq_env.LOGS_DIR)
        path = os.path.join(logs, memq_env.HOOK_LOG_FILE)
        os.makedirs(logs, mode=0o700, exist_ok=True)
        try:
            if os.stat(path).st_size > MAX_HOOK_LOG_BYTES:
                os.replace(path, path + ".1")
        except FileNotFoundError:
            pass
        line = {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "event": event}
        line.update(fields)
        # An error's text may quote the event: no secret in the log either (memq.redact).
        text, _ = BUILT_IN.redact_text(json.dumps(line, default=str))
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(text + "\n")
    except Exception:  # noqa: S110 - a hook that cannot log must still stay silent
        pass
