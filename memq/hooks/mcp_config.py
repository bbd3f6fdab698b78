"""Register memq's MCP server (``memq mcp``) where Claude Code looks, or take it out again.

Claude Code reads MCP servers from the ``"mcpServers"`` object of several files, each entry a
server by name::

    {"mcpServers": {"memq": {"type": "stdio", "command": "/venv/bin/memq", "args": ["mcp"],
                             "env": {}}}}

- user scope: ``~/.claude.json`` (``$CLAUDE_CONFIG_DIR/.claude.json`` when that is set), at
  the top level. Claude Code keeps much else of its own in that file and rewrites it itself.
- project scope: ``.mcp.json`` at the project's root (meant to be committed).
- a plugin: ``.mcp.json`` at the plugin's root (:func:`memq.hooks.install.write_plugin`).

The entry is named ``memq``, so the model sees the tools as ``mcp__memq__search`` and so on.
Its command is memq's absolute path, as the hook's is, so Claude Code can start it from any
environment; a data directory other than the default goes in the entry's ``env`` as
``MEMQ_HOME``. memq's entry is recognised by its command (:func:`is_memq_server`): installing
again replaces it in place, uninstalling removes exactly it, and a server named ``memq`` that
runs something else is never replaced or removed.

Standard library only, like :mod:`memq.hooks.install`.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeAlias

from memq.env import MCP_SERVER_NAME, MCP_TOOLS, Variable
from memq.events import json_type
from memq.exceptions import InstallError
from memq.hooks import jsonfile
from memq.hooks.install import (
    CONFIG_DIR_VARIABLE,
    MCP_SERVERS,
    absolute_home,
    memq_program,
)

SERVER_NAME: Final = MCP_SERVER_NAME
USER_CONFIG: Final = ".claude.json"
PROJECT_CONFIG: Final = ".mcp.json"
# ~/.claude.json holds the user's account details: a file memq creates there is theirs alone,
# as Claude Code creates it.
USER_CONFIG_MODE: Final = 0o600

Json: TypeAlias = dict[str, Any]


@dataclass(frozen=True, slots=True)
class RegisterResult:
    """What :func:`register` did."""

    path: Path  # the file written (symlinks followed)
    entry: Json  # memq's entry now in the file
    changed: bool  # False: the entry was already there exactly as it would be written
    created: bool  # the file did not exist before
    backup: Path | None  # a copy of the previous file, when there was one and it changed


@dataclass(frozen=True, slots=True)
class UnregisterResult:
    """What :func:`unregister` did."""

    path: Path
    existed: bool  # False: there was no such file at all
    removed: bool  # memq's entry was there and is gone
    other: Json | None  # a server named memq that is not memq's, left where it is
    backup: Path | None


def tool_names(server: str = SERVER_NAME) -> list[str]:
    """The tools' names as the model sees them when the server is registered as ``server``:
    ``mcp__memq__search`` and so on."""
    return [f"mcp__{server}__{tool}" for tool in MCP_TOOLS]


def user_config_path() -> Path:
    """The file of the user's MCP servers: ``~/.claude.json``, or ``.claude.json`` in
    ``CLAUDE_CONFIG_DIR`` when that is set (not blank)."""
    configured = os.environ.get(CONFIG_DIR_VARIABLE, "").strip()
    return Path(configured) / USER_CONFIG if configured else Path.home() / USER_CONFIG


def config_path(*, project: bool = False, config: str | os.PathLike[str] | None = None) -> Path:
    """The file to change: ``config`` if given, ``./.mcp.json`` for ``project``, else the
    user's (:func:`user_config_path`)."""
    if config is not None:
        return Path(config)
    return Path.cwd() / PROJECT_CONFIG if project else user_config_path()


def server_entry(python: str | None = None, *, home: str | None = None) -> Json:
    """memq's stdio server entry: ``memq mcp`` by absolute path (as the hook's command is).

    Args:
        python: the interpreter to start from; ``sys.executable`` by default.
        home: a data directory other than the default, passed as ``MEMQ_HOME`` in ``env``:
            Claude Code starts the server from its own environment, not this shell's.

    Raises:
        InstallError: no interpreter, or a blank ``home``.
    """
    program = memq_program(python)
    env = {} if home is None else {Variable.HOME: absolute_home(home)}
    return {"type": "stdio", "command": program[0], "args": [*program[1:], "mcp"], "env": env}


def is_memq_server(entry: object) -> bool:
    """Whether a server entry runs ``memq mcp``: ``<path>/memq`` with the one argument
    ``mcp``, or an interpreter with ``-m memq mcp``, over stdio.

    Nothing else counts: no extra arguments, no other program whose name merely contains memq.
    """
    if not isinstance(entry, dict) or entry.get("type", "stdio") != "stdio":
        return False
    command, args = entry.get("command"), entry.get("args", [])
    if not isinstance(command, str) or not command or not isinstance(args, list):
        return False
    if args == ["mcp"]:
        return os.path.basename(command) == "memq"
    return args == ["-m", "memq", "mcp"]


def merge_server(config: Json, entry: Json) -> Json:
    """``config`` with memq's server entry set to ``entry``: in place of the old one, else
    after the other servers. ``config`` itself is not modified.

    Raises:
        InstallError: ``config`` is not shaped as Claude Code expects, or holds a server
            named ``memq`` that runs something else.
    """
    if not is_memq_server(entry):
        raise InstallError(f"{entry!r} does not run `memq mcp`")
    result = copy.deepcopy(config)
    servers = _checked_servers(result)
    if servers is None:
        servers = result[MCP_SERVERS] = {}
    current = servers.get(SERVER_NAME)
    if current is not None and not is_memq_server(current):
        raise InstallError(
            f'"{MCP_SERVERS}"."{SERVER_NAME}" is another server ({describe(current)}); memq '
            "will not replace it: remove or rename it, then install again"
        )
    servers[SERVER_NAME] = copy.deepcopy(entry)
    return result


def remove_server(config: Json) -> tuple[Json, bool]:
    """``config`` without memq's server entry, and whether there was one. ``"mcpServers"``
    goes too when that leaves it empty; a server named ``memq`` that is not memq's stays.
    ``config`` itself is not modified.

    Raises:
        InstallError: ``config`` is not shaped as Claude Code expects.
    """
    result = copy.deepcopy(config)
    servers = _checked_servers(result)
    if servers is None or not is_memq_server(servers.get(SERVER_NAME)):
        return result, False
    del servers[SERVER_NAME]
    if not servers:
        del result[MCP_SERVERS]
    return result, True


def register(
    path: str | os.PathLike[str], entry: Json | None = None, *, now: float | None = None
) -> RegisterResult:
    """Put memq's server entry into the file at ``path``, creating it if missing; every other
    key stays as it was. A changed file is backed up beside it first, then replaced
    atomically (:func:`memq.hooks.jsonfile.update`).

    Args:
        path: the file (``~/.claude.json``, a ``.mcp.json``).
        entry: the server entry; :func:`server_entry` by default.
        now: the time stamped on the backup's name; the current time by default.

    Raises:
        InstallError: the file cannot be read, is not valid JSON or not shaped as Claude Code
            expects, has another server named ``memq``, or cannot be written. It is then
            unchanged.
    """
    entry = entry or server_entry()
    done = jsonfile.update(
        path, lambda data: merge_server(data, entry), now=now, new_mode=_new_mode(path)
    )
    created = done.changed and not done.existed
    return RegisterResult(done.path, entry, done.changed, created, done.backup)


def unregister(path: str | os.PathLike[str], *, now: float | None = None) -> UnregisterResult:
    """Take memq's server entry out of the file at ``path``; nothing else changes. A missing
    file, or one without memq's entry, is left alone.

    Raises:
        InstallError: as for :func:`register`, but for another server named ``memq``, which
            is left where it is (and reported in ``other``).
    """
    other: Json | None = None

    def change(data: Json) -> Json:
        nonlocal other
        cleaned, removed = remove_server(data)
        servers = cleaned.get(MCP_SERVERS)
        named = servers.get(SERVER_NAME) if isinstance(servers, dict) else None
        other = named if not removed and isinstance(named, dict) else None
        return cleaned

    done = jsonfile.update(path, change, now=now)
    return UnregisterResult(done.path, done.existed, done.changed, other, done.backup)


def preview_register(path: str | os.PathLike[str], entry: Json) -> None:
    """Check that :func:`register` could change the file at ``path``; writes nothing.

    Raises:
        InstallError: as for :func:`register`, but for the file's writing.
    """
    jsonfile.preview(path, lambda data: merge_server(data, entry))


def preview_unregister(path: str | os.PathLike[str]) -> None:
    """Check that :func:`unregister` could change the file at ``path``; writes nothing.

    Raises:
        InstallError: the file is not valid JSON or not shaped as Claude Code expects.
    """
    jsonfile.preview(path, lambda data: remove_server(data)[0])


# -- the shape of the file ---------------------------------------------------------------------


def _checked_servers(config: object) -> Json | None:
    """The ``"mcpServers"`` object of ``config`` (None if absent), once its shape is known."""
    if not isinstance(config, dict):
        raise InstallError(f"the file holds {json_type(config)}, not a JSON object")
    if MCP_SERVERS not in config:
        return None
    servers = config[MCP_SERVERS]
    if not isinstance(servers, dict):
        raise InstallError(f'"{MCP_SERVERS}" is {json_type(servers)}, not an object')
    return servers


def describe(entry: object) -> str:
    """A server entry's command line (or URL), as a person would read it."""
    if not isinstance(entry, dict):
        return json_type(entry)
    words = [entry.get("command") or entry.get("url") or "?", *(entry.get("args") or [])]
    return " ".join(str(word) for word in words)


def _new_mode(path: str | os.PathLike[str]) -> int | None:
    """The permissions of a file :func:`register` creates: private for the user's
    ``.claude.json``, the usual ones for a ``.mcp.json``."""
    return USER_CONFIG_MODE if Path(path).name == USER_CONFIG else None
