"""memq in Cursor's ``hooks.json`` (and its MCP server in Cursor's ``mcp.json``).

Cursor reads hooks from ``~/.cursor/hooks.json`` (user) and ``<project>/.cursor/hooks.json``,
shaped ``{"version": 1, "hooks": {"<event>": [{"command": "...", "timeout": N}, ...]}}``
(https://cursor.com/docs/hooks); MCP servers from ``mcpServers`` in ``~/.cursor/mcp.json`` or
``<project>/.cursor/mcp.json`` (https://cursor.com/docs/mcp). memq's entries are recognised by
their command (``memq.hooks.install.is_memq_command``): installing again replaces them where
they stood, uninstalling removes exactly them, and everything else keeps its place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from memq.assistants.cursor import SUBSCRIBED
from memq.exceptions import InstallError
from memq.hooks import jsonfile, mcp_config
from memq.hooks.install import (
    MCP_SERVERS,
    TIMEOUT_SECONDS,
    is_memq_command,
    merge_hooks,
    remove_memq_hooks,
)
from memq.hooks.installers import AssistantInstaller, ConfigChange, Json

CONFIG_DIR: Final = ".cursor"
HOOKS_FILE: Final = "hooks.json"
MCP_FILE: Final = "mcp.json"
VERSION: Final = 1


def hooks_fragment(command: str) -> Json:
    """``{"version": 1, "hooks": {...}}`` running ``command`` on every event memq takes."""
    if not is_memq_command(command):
        raise InstallError(f"{command!r} does not run `memq hook`")
    entry = {"command": command, "timeout": TIMEOUT_SECONDS}
    return {"version": VERSION, "hooks": {event: [dict(entry)] for event in SUBSCRIBED}}


def merge(config: Json, fragment: Json) -> Json:
    """``config`` with memq's entries replaced by the fragment's: an existing one where it
    stood, a new one after the event's others. ``config`` itself is not modified."""
    if isinstance(config, dict) and "hooks" not in config:
        config = {**config}
        config.setdefault("version", VERSION)  # before the hooks, as Cursor writes it
    return merge_hooks(config, fragment, strip=_strip)


def remove(config: Json) -> tuple[Json, int]:
    """``config`` without memq's entries, and how many went. An event list (or ``hooks``)
    that this empties goes too; one that was empty already stays."""
    return remove_memq_hooks(config, strip=_strip)


def _is_memq(entry: object) -> bool:
    if not isinstance(entry, dict) or entry.get("type", "command") != "command":
        return False
    command = entry.get("command")
    return isinstance(command, str) and is_memq_command(command)


def _strip(entries: list[Any]) -> tuple[list[Any], int, int | None]:
    """The entries without memq's, how many went, and where the first one stood."""
    kept: list[Any] = []
    first: int | None = None
    for entry in entries:
        if _is_memq(entry):
            if first is None:
                first = len(kept)
            continue
        kept.append(entry)
    return kept, len(entries) - len(kept), first


def server_entry(server: Json) -> Json:
    """memq's MCP entry as Cursor's ``mcp.json`` documents a stdio server: ``command``,
    ``args``, ``env`` (no ``type``)."""
    return {key: value for key, value in server.items() if key != "type"}


class CursorInstaller(AssistantInstaller):
    name = "cursor"
    label = "Cursor"

    def config_path(self, *, project: bool, cwd: Path) -> Path:
        base = cwd if project else Path.home()
        return base / CONFIG_DIR / HOOKS_FILE

    def fragment(self, command: str, server: Json | None) -> Json:
        fragment = hooks_fragment(command)
        if server is None:
            return fragment
        entry = server_entry(server)
        return {**fragment, MCP_SERVERS: {mcp_config.SERVER_NAME: entry}}

    def install(
        self,
        path: Path,
        command: str,
        server: Json | None,
        *,
        project: bool,
        now: float | None = None,
    ) -> list[ConfigChange]:
        fragment = hooks_fragment(command)
        mcp_path = path.with_name(MCP_FILE)
        if server is not None:
            # Checked before anything is written: both files change, or neither.
            entry = server_entry(server)
            jsonfile.preview(mcp_path, lambda data: mcp_config.merge_server(data, entry))
        done = jsonfile.update(path, lambda data: merge(data, fragment), now=now)
        changes = [ConfigChange(done.path, "hooks", done.changed, done.existed, done.backup)]
        if server is not None:
            entry = server_entry(server)
            mcp = jsonfile.update(
                mcp_path, lambda data: mcp_config.merge_server(data, entry), now=now
            )
            changes.append(
                ConfigChange(mcp.path, "MCP server", mcp.changed, mcp.existed, mcp.backup)
            )
        return changes

    def uninstall(
        self, path: Path, *, project: bool, mcp: bool, now: float | None = None
    ) -> list[ConfigChange]:
        removed = 0

        def change(data: Json) -> Json:
            nonlocal removed
            cleaned, removed = remove(data)
            return cleaned

        mcp_path = path.with_name(MCP_FILE)
        if mcp:
            jsonfile.preview(mcp_path, lambda data: mcp_config.remove_server(data)[0])
        done = jsonfile.update(path, change, now=now)
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
        if mcp:
            gone = jsonfile.update(
                mcp_path, lambda data: mcp_config.remove_server(data)[0], now=now
            )
            changes.append(
                ConfigChange(
                    gone.path,
                    "MCP server",
                    gone.changed,
                    gone.existed,
                    gone.backup,
                    1 if gone.changed else 0,
                )
            )
        return changes

    def notes(self) -> list[str]:
        return [
            "Cursor reloads hooks.json by itself; open a new Agent chat to start recording. "
            "Project hooks run only in a trusted workspace."
        ]


INSTALLER: Final = CursorInstaller()
