"""memq in the Codex CLI: its hooks in ``hooks.json``, their trust and its MCP server in
``config.toml``.

- Hooks: ``$CODEX_HOME/hooks.json`` (``~/.codex`` when ``CODEX_HOME`` is unset) for the user,
  ``<project>/.codex/hooks.json`` for a project (Codex loads a project's only once the project
  is trusted), in Claude Code's shape (``memq.hooks.install.hooks_fragment``). SessionEnd's and
  Interrupt's timeout is written as 3 s, the most Codex allows them.
- Trust: Codex runs a hook of the user's or a project's file only once it is trusted, recorded
  in the user's ``config.toml`` (the only layer Codex reads it from) as
  ``[hooks.state."<hooks.json>:<event_snake>:<group>:<handler>"] trusted_hash = "sha256:..."``.
  The hash is Codex's: SHA-256 of the canonical JSON (sorted keys, no spaces) of
  ``{"event_name", "matcher"?, "hooks": [{"type": "command", "command", "timeout", "async"}]}``,
  the matcher only for the events that take one, the timeout as Codex clamps it. memq writes
  the entries of its own handlers, so they run without a review.
- MCP server: ``[mcp_servers.memq]`` (``command``, ``args``, ``env``) in the ``config.toml``
  beside the hooks.

``config.toml`` is the user's file: memq appends or replaces only its own tables (found by
their headers), leaves every other byte as it was, and checks with ``tomllib`` that the result
holds exactly the old content with memq's tables changed; a file it cannot edit that way is
refused untouched. Changed files are backed up and replaced atomically (``memq.hooks.jsonfile``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from memq.assistants.codex import SUBSCRIBED
from memq.events import HookEvent, json_type
from memq.exceptions import InstallError
from memq.hooks import jsonfile, mcp_config
from memq.hooks.install import (
    hooks_fragment,
    is_memq_command,
    merge_hooks,
    remove_memq_hooks,
)
from memq.hooks.installers import AssistantInstaller, ConfigChange, Json

HOME_VARIABLE: Final = "CODEX_HOME"
CONFIG_DIR: Final = ".codex"
HOOKS_FILE: Final = "hooks.json"
CONFIG_FILE: Final = "config.toml"
# Codex caps these events' hook timeout at 3 s (and hashes the capped value).
SHORT_EVENTS: Final = frozenset({"SessionEnd", "Interrupt"})
SHORT_TIMEOUT: Final = 3
DEFAULT_TIMEOUT: Final = 600  # Codex's when a handler names none
# The events whose matcher Codex keeps (and hashes); it ignores the others' matchers.
MATCHER_EVENTS: Final = frozenset(
    {"PreToolUse", "PermissionRequest", "PostToolUse", "SessionStart"}
)
MCP_TABLE: Final = ("mcp_servers", mcp_config.SERVER_NAME)
STATE_TABLE: Final = ("hooks", "state")
_BARE_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")


def codex_home() -> Path:
    """Codex's home: ``CODEX_HOME`` when set (not blank), else ``~/.codex``."""
    configured = os.environ.get(HOME_VARIABLE, "").strip()
    return Path(configured) if configured else Path.home() / CONFIG_DIR


# -- hooks.json ----------------------------------------------------------------------------------


def codex_hooks_fragment(command: str) -> Json:
    """``{"hooks": {...}}`` running ``command`` on the Codex events memq takes."""
    long = hooks_fragment(
        command,
        events=[e for e in SUBSCRIBED if e not in SHORT_EVENTS],
        tool_events={HookEvent.POST_TOOL_USE},
    )["hooks"]
    short = hooks_fragment(
        command, events=[e for e in SUBSCRIBED if e in SHORT_EVENTS], timeout=SHORT_TIMEOUT
    )["hooks"]
    return {"hooks": {event: (long.get(event) or short[event]) for event in SUBSCRIBED}}


@dataclass(frozen=True, slots=True)
class Handler:
    """One command handler of a hooks.json, where Codex keys its trust."""

    event: str
    group: int
    index: int
    command: str
    trust_hash: str

    def key(self, hooks_path: Path) -> str:
        return f"{hooks_path}:{snake_case(self.event)}:{self.group}:{self.index}"


def snake_case(event: str) -> str:
    """Codex's label of an event in trust keys: ``PostToolUse`` -> ``post_tool_use``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", event).lower()


def trust_hash(event: str, entry: Json, matcher: object) -> str:
    """The ``trusted_hash`` Codex expects for the command handler ``entry`` of ``event``."""
    timeout = entry.get("timeout")
    seconds = timeout if isinstance(timeout, int) and not isinstance(timeout, bool) else None
    seconds = max(DEFAULT_TIMEOUT if seconds is None else seconds, 1)
    if event in SHORT_EVENTS:
        seconds = min(seconds, SHORT_TIMEOUT)
    handler: Json = {
        "type": "command",
        "command": entry.get("command"),
        "timeout": seconds,
        "async": entry.get("async") is True,
    }
    if isinstance(entry.get("statusMessage"), str):
        handler["statusMessage"] = entry["statusMessage"]
    identity: Json = {"event_name": snake_case(event), "hooks": [handler]}
    if event in MATCHER_EVENTS and isinstance(matcher, str):
        identity["matcher"] = matcher
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def memq_handlers(config: Json) -> list[Handler]:
    """memq's command handlers in a hooks.json's content, with their places."""
    hooks = config.get("hooks")
    found: list[Handler] = []
    if not isinstance(hooks, dict):
        return found
    for event, groups in hooks.items():
        for g, group in enumerate(groups if isinstance(groups, list) else []):
            entries = group.get("hooks") if isinstance(group, dict) else None
            for h, entry in enumerate(entries if isinstance(entries, list) else []):
                if not isinstance(entry, dict) or entry.get("type") != "command":
                    continue
                command = entry.get("command")
                if isinstance(command, str) and is_memq_command(command):
                    matcher = group.get("matcher")
                    found.append(Handler(event, g, h, command, trust_hash(event, entry, matcher)))
    return found


# -- config.toml ---------------------------------------------------------------------------------


def toml_string(text: str) -> str:
    """``text`` as a TOML basic string (JSON's escapes are TOML's, but for DEL)."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else toml_string(key)


def toml_value(value: Any) -> str:
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        pairs = ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items())
        return "{ " + pairs + " }" if pairs else "{}"
    raise InstallError(f"cannot write {json_type(value)} into config.toml")


def table_text(path: tuple[str, ...], values: Json) -> str:
    """``[a.b."c"]`` and its ``key = value`` lines."""
    header = "[" + ".".join(toml_key(part) for part in path) + "]\n"
    return header + "".join(f"{toml_key(k)} = {toml_value(v)}\n" for k, v in values.items())


def codex_server(server: Json) -> Json:
    """memq's MCP entry as Codex reads a stdio server: ``command``, ``args``, ``env`` (when
    it sets something; no ``type``)."""
    entry: Json = {"command": server["command"], "args": list(server.get("args") or [])}
    if server.get("env"):
        entry["env"] = dict(server["env"])
    return entry


def _headers(lines: list[str]) -> Iterator[tuple[int, tuple[str, ...] | None]]:
    """(line number, table path) of every table header line; the path is None for an array
    of tables, whose entries memq never writes."""
    for number, line in enumerate(lines):
        stripped = line.strip()
        if not stripped.startswith("["):
            continue
        try:
            parsed: Any = tomllib.loads(stripped)
        except tomllib.TOMLDecodeError:
            continue  # inside a multi-line string, or not a header: the final check decides
        path: list[str] = []
        while isinstance(parsed, dict) and len(parsed) == 1:
            key, parsed = next(iter(parsed.items()))
            path.append(key)
        yield number, (tuple(path) if parsed == {} else None)


def edit_tables(text: str, tables: dict[tuple[str, ...], Json | None]) -> str:
    """``text`` (a config.toml) with each table of ``tables`` set to its values (replaced
    where its header stands, else appended) or removed (None), its subtables with it.

    Raises:
        InstallError: the text is not TOML, or defines one of the tables in a way other than
            its own header (a dotted key, an inline table), so that editing the lines would
            not give the intended content.
    """
    try:
        before = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InstallError(f"not valid TOML ({exc})") from None
    lines = text.splitlines(keepends=True)
    headers = list(_headers(lines))
    starts = [number for number, _ in headers] + [len(lines)]
    replaced: dict[int, str] = {}
    dropped: set[int] = set()
    placed: set[tuple[str, ...]] = set()
    for (number, path), end in zip(headers, starts[1:], strict=True):
        owner = next((t for t in tables if path is not None and path[: len(t)] == t), None)
        if owner is None:
            continue
        body_end = end
        while body_end > number + 1 and _loose(lines[body_end - 1]):
            body_end -= 1  # blank lines and comments after a table belong to what follows
        dropped.update(range(number, body_end))
        values = tables[owner]
        if values is not None and path == owner and owner not in placed:
            replaced[number] = table_text(owner, values)
            placed.add(owner)
        elif values is None and number > 0 and not lines[number - 1].strip():
            dropped.add(number - 1)  # the blank line memq put before it
    out = [
        replaced.get(n, line) for n, line in enumerate(lines) if n not in dropped or n in replaced
    ]
    result = "".join(out)
    for path, values in tables.items():
        if values is not None and path not in placed:
            if result and not result.endswith("\n"):
                result += "\n"
            result += ("\n" if result.strip() else "") + table_text(path, values)
    _check(before, result, tables)
    return result


def _loose(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


def _check(before: Json, result: str, tables: dict[tuple[str, ...], Json | None]) -> None:
    """The edited text must hold ``before`` with exactly ``tables`` changed (tables the
    removals left empty count as absent, as they are in the text)."""
    expected = copy.deepcopy(before)
    for path, values in tables.items():
        parent: Any = expected
        for part in path[:-1]:
            parent = parent.setdefault(part, {}) if isinstance(parent, dict) else None
        if not isinstance(parent, dict):
            continue
        if values is None:
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = copy.deepcopy(values)
    try:
        after: Json | None = tomllib.loads(result)
    except tomllib.TOMLDecodeError:
        after = None
    if after is not None:
        _prune(after, before)
    _prune(expected, before)
    if after != expected:
        names = ", ".join(".".join(path) for path in tables)
        raise InstallError(
            f"defines {names} in a way memq cannot edit line by line (a dotted key or an "
            "inline table); change it by hand"
        )


def _prune(data: Json, before: Any) -> None:
    """Drop the tables that are empty now but were not empty tables before."""
    for key in list(data):
        value = data[key]
        if isinstance(value, dict):
            was = before.get(key) if isinstance(before, dict) else None
            _prune(value, was)
            if not value and was != {}:
                del data[key]


def _state_tables(config: Json) -> dict[str, Any]:
    hooks = config.get("hooks")
    state = hooks.get("state") if isinstance(hooks, dict) else None
    return state if isinstance(state, dict) else {}


def trust_changes(
    config: Json, hooks_path: Path, old: list[Handler], new: list[Handler]
) -> dict[tuple[str, ...], Json | None]:
    """The ``hooks.state`` tables to write for memq's handlers ``new`` (none to uninstall)
    and to remove: memq's old places, and entries of this file trusting one of memq's
    handlers at a place that is no longer memq's."""
    wanted = {handler.key(hooks_path): handler.trust_hash for handler in new}
    memq_hashes = {handler.trust_hash for handler in [*old, *new]}
    changes: dict[tuple[str, ...], Json | None] = {}
    for key, state in _state_tables(config).items():
        if key in wanted or not key.startswith(f"{hooks_path}:"):
            continue
        trusted = state.get("trusted_hash") if isinstance(state, dict) else None
        if trusted in memq_hashes or key in {handler.key(hooks_path) for handler in old}:
            changes[(*STATE_TABLE, key)] = None
    for key, digest in wanted.items():
        current = _state_tables(config).get(key)
        if isinstance(current, dict) and current == {"trusted_hash": digest}:
            continue
        changes[(*STATE_TABLE, key)] = {"trusted_hash": digest}
    return changes


# -- reading and writing config.toml -------------------------------------------------------------


def read_toml(path: Path) -> tuple[str, bytes | None]:
    """The file's text and exact bytes (None: no file)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return "", None
    except OSError as exc:
        raise InstallError(f"{path}: cannot read it ({exc.strerror})") from None
    try:
        return raw.decode("utf-8"), raw
    except UnicodeDecodeError:
        raise InstallError(f"{path}: not UTF-8 text; left unchanged") from None


def parse_toml(path: Path, text: str) -> Json:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InstallError(f"{path}: not valid TOML ({exc}); left unchanged") from None


def write_toml(path: Path, raw: bytes | None, text: str, now: float | None) -> ConfigChange:
    """Put ``text`` in place of ``raw`` (the bytes read), backed up first."""
    existed = raw is not None
    if raw is not None and raw.decode("utf-8") == text:
        return ConfigChange(path, "", changed=False, existed=existed, backup=None)
    if raw is None:
        if not jsonfile._write(path, text, mode=None, expected=None):
            raise InstallError(f"{path}: created by another program meanwhile; try again")
        return ConfigChange(path, "", changed=True, existed=False, backup=None)
    backup = jsonfile._replace(path, raw, text, now)
    if backup is None:
        raise InstallError(f"{path}: changed by another program meanwhile; try again")
    return ConfigChange(path, "", changed=True, existed=True, backup=backup)


@dataclass
class _TomlEdit:
    """One config.toml and memq's changes to it, computed before anything is written."""

    path: Path
    raw: bytes | None
    text: str
    what: str
    removed: int = 0

    def write(self, now: float | None) -> ConfigChange:
        done = write_toml(self.path, self.raw, self.text, now)
        removed = self.removed if done.changed else 0
        return ConfigChange(done.path, self.what, done.changed, done.existed, done.backup, removed)


# -- the installer -------------------------------------------------------------------------------


class CodexInstaller(AssistantInstaller):
    name = "codex"
    label = "Codex CLI"

    def config_path(self, *, project: bool, cwd: Path) -> Path:
        return (cwd / CONFIG_DIR if project else codex_home()) / HOOKS_FILE

    def fragment(self, command: str, server: Json | None) -> Json:
        result: Json = {HOOKS_FILE: codex_hooks_fragment(command)}
        if server is not None:
            result[CONFIG_FILE] = {MCP_TABLE[0]: {MCP_TABLE[1]: codex_server(server)}}
        return result

    def install(
        self,
        path: Path,
        command: str,
        server: Json | None,
        *,
        project: bool,
        now: float | None = None,
    ) -> list[ConfigChange]:
        fragment = codex_hooks_fragment(command)
        hooks_path = jsonfile.real_path(path)
        loaded = jsonfile.read_object(hooks_path)
        current = {} if loaded is None else loaded[0]
        merged = jsonfile.naming(hooks_path, lambda: merge_hooks(current, fragment))
        # Every file's new text is made (and checked) before any is written.
        edits = self._toml_edits(hooks_path, current, merged, server, uninstall=False)
        done = jsonfile.update(hooks_path, lambda data: merge_hooks(data, fragment), now=now)
        changes = [ConfigChange(done.path, "hooks", done.changed, done.existed, done.backup)]
        return changes + [edit.write(now) for edit in edits]

    def uninstall(
        self, path: Path, *, project: bool, mcp: bool, now: float | None = None
    ) -> list[ConfigChange]:
        hooks_path = jsonfile.real_path(path)
        loaded = jsonfile.read_object(hooks_path)
        current = {} if loaded is None else loaded[0]
        cleaned, _ = jsonfile.naming(hooks_path, lambda: remove_memq_hooks(current))
        edits = self._toml_edits(hooks_path, current, cleaned, None, uninstall=True, mcp=mcp)
        removed = 0

        def change(data: Json) -> Json:
            nonlocal removed
            result, removed = remove_memq_hooks(data)
            return result

        done = jsonfile.update(hooks_path, change, now=now)
        changes = [
            ConfigChange(
                done.path,
                "hooks",
                done.changed,
                done.existed,
                done.backup,
                removed if done.changed else 0,
            )
        ]
        return changes + [edit.write(now) for edit in edits]

    def _toml_edits(
        self,
        hooks_path: Path,
        current: Json,
        merged: Json,
        server: Json | None,
        *,
        uninstall: bool,
        mcp: bool = False,
    ) -> list[_TomlEdit]:
        user_config = jsonfile.real_path(codex_home() / CONFIG_FILE)
        local_config = hooks_path.with_name(CONFIG_FILE)
        user_text, user_raw = read_toml(user_config)
        user = parse_toml(user_config, user_text)
        trust = trust_changes(user, hooks_path, memq_handlers(current), memq_handlers(merged))
        mcp_tables: dict[tuple[str, ...], Json | None] = {}
        if local_config == user_config:
            local_text, local_raw, local = user_text, user_raw, user
        else:
            local_text, local_raw = read_toml(local_config)
            local = parse_toml(local_config, local_text)
        servers = local.get(MCP_TABLE[0])
        existing = servers.get(MCP_TABLE[1]) if isinstance(servers, dict) else None
        if server is not None:
            if existing is not None and not mcp_config.is_memq_server(existing):
                raise InstallError(
                    f"{local_config}: [mcp_servers.memq] is another server "
                    f"({mcp_config.describe(existing)}); memq will not replace it: remove or "
                    "rename it, then install again"
                )
            entry = codex_server(server)
            if existing != entry:
                mcp_tables[MCP_TABLE] = entry
        elif uninstall and mcp and mcp_config.is_memq_server(existing):
            mcp_tables[MCP_TABLE] = None
        edits: list[_TomlEdit] = []
        with_mcp = server is not None or (uninstall and mcp)
        if local_config == user_config:
            tables = {**trust, **mcp_tables}
            if tables or user_raw is not None:
                text = jsonfile.naming(user_config, lambda: edit_tables(user_text, tables))
                removed = sum(1 for v in tables.values() if v is None)
                what = "hook trust and MCP server" if with_mcp else "hook trust"
                edits.append(_TomlEdit(user_config, user_raw, text, what, removed))
            return edits
        if trust or user_raw is not None:
            text = jsonfile.naming(user_config, lambda: edit_tables(user_text, trust))
            removed = sum(1 for v in trust.values() if v is None)
            edits.append(_TomlEdit(user_config, user_raw, text, "hook trust", removed))
        if mcp_tables or (local_raw is not None and with_mcp):
            text = jsonfile.naming(local_config, lambda: edit_tables(local_text, mcp_tables))
            removed = sum(1 for v in mcp_tables.values() if v is None)
            edits.append(_TomlEdit(local_config, local_raw, text, "MCP server", removed))
        return edits

    def notes(self) -> list[str]:
        return [
            "Codex runs them without asking: memq recorded their trust in "
            f"{codex_home() / CONFIG_FILE} ([hooks.state]). If Codex still lists them as "
            "untrusted (/hooks), trust them there.",
            "A project's .codex/hooks.json (--project) is read only in a project Codex trusts.",
        ]


INSTALLER: Final = CodexInstaller()
