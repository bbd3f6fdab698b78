"""``memq hook [EVENT]``: hand one hook event from the assistant to memq, fast and silently.

Claude Code runs this as a fresh process on every prompt, tool call and stop, and shows the
user anything it prints to stderr or any non-zero exit. So it imports only the standard
library, exits 0 whatever happens, prints nothing but SessionStart's context, and loses
nothing: when the daemon does not answer in time the event goes straight into the pending
table and the daemon is started in the background. Problems go to ``MEMQ_HOME/logs/hook.log``.
"""

from __future__ import annotations

import json
import os
import sys
import time

from memq import env as memq_env
from memq.events import Route, parse_event_body, route_event
from memq.exceptions import SettingError
from memq.hooks.client import DaemonUnavailable, post_json
from memq.privacy import is_skipped, strip_private

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import IO, Any, Final

DEFAULT_CONNECT_TIMEOUT: Final = 0.2
DEFAULT_READ_TIMEOUT: Final = 0.5
FALLBACK_BUSY_TIMEOUT: Final = 2.0
MAX_HOOK_LOG_BYTES: Final = 5 * 1024 * 1024
# Strings are cut to this many characters, then to a quarter of it, ..., until the event fits
# the daemon's body limit: a 5 MB tool output must not cost the whole event.
FIRST_STRING_CAP: Final = 64 * 1024


class HookSettings:
    """What the hook reads from the environment (see ``memq.env``)."""

    __slots__ = ("body_limit", "connect_timeout", "home", "port", "read_timeout", "skip_tools")

    def __init__(self, env: Mapping[str, str]) -> None:
        self.home = memq_env.home_dir(env)
        self.port = memq_env.port(env)
        self.connect_timeout = memq_env.env_float(
            env, "MEMQ_HOOK_CONNECT_TIMEOUT", DEFAULT_CONNECT_TIMEOUT, positive=True
        )
        self.read_timeout = memq_env.env_float(
            env, "MEMQ_HOOK_TIMEOUT", DEFAULT_READ_TIMEOUT, positive=True
        )
        self.body_limit = memq_env.body_limit(env)
        self.skip_tools = memq_env.skip_tools(env)


def main(argv: list[str], stdin: IO[bytes] | None = None, stdout: IO[str] | None = None) -> int:
    """Run the hook; always returns 0."""
    env: Mapping[str, str] = os.environ
    try:
        env = memq_env.environment(env)  # the environment laid over MEMQ_HOME/settings.toml
    except SettingError as exc:
        # The event still goes out, by the environment alone: not lost over a broken file.
        log_problem(memq_env.home_dir(env), "hook.settings_file", error=str(exc))
    try:
        if memq_env.env_flag(env, "MEMQ_DISABLED"):
            return 0
        raw = (stdin if stdin is not None else sys.stdin.buffer).read()
        context = handle(raw, argv[0] if argv else None, HookSettings(env))
        if context:
            out = stdout if stdout is not None else sys.stdout
            out.write(context)
            out.flush()
    except BaseException as exc:
        log_problem(memq_env.home_dir(env), "hook.failed", error=f"{type(exc).__name__}: {exc}")
    return 0


def handle(raw: bytes, event: str | None, settings: HookSettings) -> str | None:
    """Deliver one event; return the text to print (SessionStart's context) or None."""
    payload = parse_event_body(raw)
    if event:
        payload["hook_event_name"] = event  # the daemon must route it as we do
    if is_skipped(payload, settings.skip_tools):
        return None
    if payload.get("hook_event_name") == "Stop":
        add_last_exchange(payload)
    payload = strip_private(payload)
    # Events without a natural id (Stop, SessionStart, ...) get one here, so a delivery over
    # HTTP and a fallback write of the same event are recognised as one.
    payload.setdefault("memq_event_id", os.urandom(12).hex())
    payload, body = fit(payload, settings.body_limit)
    route = route_event(payload)
    try:
        answer = deliver(settings, body)
    except DaemonUnavailable as why:
        fall_back(settings, route, body, str(why), cwd=payload.get("cwd"))
        return None
    if route.event == "SessionStart":
        context = answer.get("additionalContext")
        return context if isinstance(context, str) and context else None
    return None


def deliver(settings: HookSettings, body: bytes) -> dict[str, Any]:
    """POST the event; the daemon's answer, or ``DaemonUnavailable`` for anything else."""
    status, answer = post_json(
        settings.port,
        "/api/events",
        read_token(settings.home),
        body,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
    )
    if status not in (200, 202) or not isinstance(answer, dict):
        raise DaemonUnavailable(f"HTTP {status}: {answer}")
    return answer


def fall_back(
    settings: HookSettings, route: Route, body: bytes, reason: str, *, cwd: object = None
) -> None:
    """Store the event (its JSON ``body``, as it would have been posted) directly, a fork's
    first event after linking the fork as the daemon would, and start the daemon; log why."""
    # Imported here: sqlite3 and the schema code are needed only when the daemon is away.
    from memq.hooks import fallback, fork_link

    linked: dict[str, Any] = {}
    try:
        parent = fork_link.link_before_storing(settings.home, route, cwd, FALLBACK_BUSY_TIMEOUT)
        if parent is not None:
            linked["forked_from"] = parent
    except Exception as exc:
        # Only the link is lost: the event itself is stored below.
        linked["fork_link_error"] = f"{type(exc).__name__}: {exc}"
    message_id = fallback.store_directly(settings.home, route, body, FALLBACK_BUSY_TIMEOUT)
    started = fallback.start_daemon(settings.home)
    log_problem(
        settings.home,
        "hook.fallback",
        reason=reason,
        session_id=route.session_key,
        message_id=message_id,
        daemon_started=started,
        **linked,
    )


def read_token(home: str) -> str:
    """The daemon's bearer token; its absence means the daemon never ran."""
    try:
        with open(os.path.join(home, memq_env.TOKEN_FILE), encoding="ascii") as handle:
            token = handle.read().strip()
    except OSError as exc:
        raise DaemonUnavailable(f"no token: {exc.strerror}") from None
    if not token:
        raise DaemonUnavailable("empty token file")
    return token


def add_last_exchange(payload: dict[str, Any]) -> None:
    """Give a Stop event the turn's last user prompt and last assistant message: the
    payload's own ``last_assistant_message`` when present, else the transcript's tail."""
    path = payload.get("transcript_path")
    if not isinstance(path, str) or not path:
        return
    has_reply = isinstance(payload.get("last_assistant_message"), str)
    if "last_user_prompt" in payload and has_reply:
        return
    from memq.hooks.transcript import last_exchange

    exchange = last_exchange(path)
    if "last_user_prompt" not in payload and exchange.user_prompt:
        payload["last_user_prompt"] = exchange.user_prompt
    if not has_reply and exchange.assistant_message:
        payload["last_assistant_message"] = exchange.assistant_message


def fit(payload: dict[str, Any], limit: int) -> tuple[dict[str, Any], bytes]:
    """The payload and its JSON body, long strings cut until the body fits ``limit``."""
    body = _encode(payload)
    cap = FIRST_STRING_CAP
    while len(body) > limit and cap >= 64:
        payload = _cap_strings(payload, cap)
        body = _encode(payload)
        cap //= 4
    return payload, body


def _encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _cap_strings(value: Any, cap: int) -> Any:
    if isinstance(value, str):
        if len(value) <= cap:
            return value
        return f"{value[:cap]}… [memq: {len(value) - cap} more characters not kept]"
    if isinstance(value, dict):
        return {key: _cap_strings(item, cap) for key, item in value.items()}
    if isinstance(value, list):
        return [_cap_strings(item, cap) for item in value]
    return value


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
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(line, default=str) + "\n")
    except Exception:  # noqa: S110 - a hook that cannot log must still stay silent
        pass
