"""memq in OpenCode: a plugin file (and its MCP server in ``opencode.json``).

OpenCode loads every ``{plugin,plugins}/*.{ts,js}`` of its config directories
(https://opencode.ai/docs/plugins): the user's ``$XDG_CONFIG_HOME/opencode/`` (``~/.config``
by default) and the project's ``.opencode/``. memq writes ``plugins/memq.js`` there, made from
``memq/assistants/opencode_plugin.js`` with the hook command filled in; the file's first line
marks it as memq's, and uninstall removes a file only when it carries that line.

MCP servers are the ``mcp`` object of ``opencode.json`` (https://opencode.ai/docs/mcp-servers),
the user's beside the plugin directory, the project's at its root:
``{"memq": {"type": "local", "command": [...], "environment": {...}, "enabled": true}}``.
"""

from __future__ import annotations

import copy
import json
import os
from importlib import resources
from pathlib import Path
from typing import Final

from memq.env import MCP_SERVER_NAME
from memq.events import json_type
from memq.exceptions import InstallError
from memq.hooks import jsonfile
from memq.hooks.install import is_memq_command
from memq.hooks.installers import AssistantInstaller, ConfigChange, Json
from memq.hooks.mcp_config import describe

PLUGIN_FILE: Final = "memq.js"
PLUGIN_DIR: Final = "plugins"
PROJECT_DIR: Final = ".opencode"
CONFIG_FILE: Final = "opencode.json"
MARKER: Final = "// memq plugin for OpenCode:"
PLACEHOLDER: Final = '"__MEMQ_HOOK_COMMAND__"'
MCP_KEY: Final = "mcp"


def user_config_dir() -> Path:
    """OpenCode's configuration directory: ``$XDG_CONFIG_HOME/opencode``, else
    ``~/.config/opencode``."""
    configured = os.environ.get("XDG_CONFIG_HOME", "").strip()
    base = Path(configured) if configured else Path.home() / ".config"
    return base / "opencode"


def plugin_text(command: str) -> str:
    """The plugin file that runs ``command`` for every event memq takes."""
    if not is_memq_command(command):
        raise InstallError(f"{command!r} does not run `memq hook`")
    template = resources.files("memq.assistants").joinpath("opencode_plugin.js").read_text()
    if not template.startswith(MARKER) or template.count(PLACEHOLDER) != 1:
        raise InstallError("memq's OpenCode plugin template is damaged; reinstall memq")
    return template.replace(PLACEHOLDER, json.dumps(command))


def is_memq_plugin(path: Path) -> bool:
    """Whether the file at ``path`` is a plugin memq wrote (its first line says so)."""
    try:
        with path.open("rb") as file:
            first = file.readline(4096)
    except OSError:
        return False
    return first.decode("utf-8", "replace").startswith(MARKER)


def server_entry(server: Json) -> Json:
    """memq's MCP server (``{"command", "args", "env"}``) as OpenCode's local server."""
    entry: Json = {"type": "local", "command": [server["command"], *server.get("args", [])]}
    if server.get("env"):
        entry["environment"] = dict(server["env"])
    entry["enabled"] = True
    return entry


def is_memq_server(entry: object) -> bool:
    """Whether an ``mcp`` entry runs ``memq mcp``: ``<path>/memq mcp`` or
    ``<python> -m memq mcp``, locally."""
    if not isinstance(entry, dict) or entry.get("type") != "local":
        return False
    command = entry.get("command")
    if not isinstance(command, list) or not all(isinstance(w, str) for w in command):
        return False
    if len(command) == 2:
        return bool(os.path.basename(command[0]) == "memq" and command[1] == "mcp")
    return len(command) == 4 and bool(command[0]) and command[1:] == ["-m", "memq", "mcp"]


def _servers(config: object) -> Json | None:
    if not isinstance(config, dict):
        raise InstallError(f"the file holds {json_type(config)}, not a JSON object")
    servers = config.get(MCP_KEY)
    if servers is None:
        return None
    if not isinstance(servers, dict):
        raise InstallError(f'"{MCP_KEY}" is {json_type(servers)}, not an object')
    return servers


def merge_server(config: Json, entry: Json) -> Json:
    """``config`` with memq's ``mcp`` entry set to ``entry`` (in place of the old one);
    refuses a server named memq that runs something else."""
    result = copy.deepcopy(config)
    servers = _servers(result)
    if servers is None:
        servers = result[MCP_KEY] = {}
    current = servers.get(MCP_SERVER_NAME)
    if current is not None and not is_memq_server(current):
        words = current.get("command") if isinstance(current, dict) else None
        shown = " ".join(map(str, words)) if isinstance(words, list) else describe(current)
        raise InstallError(
            f'"{MCP_KEY}"."{MCP_SERVER_NAME}" is another server ({shown}); memq will not '
            "replace it: remove or rename it, then install again"
        )
    servers[MCP_SERVER_NAME] = copy.deepcopy(entry)
    return result


def remove_server(config: Json) -> tuple[Json, bool]:
    """``config`` without memq's ``mcp`` entry (``mcp`` too when that empties it)."""
    result = copy.deepcopy(config)
    servers = _servers(result)
    if servers is None or not is_memq_server(servers.get(MCP_SERVER_NAME)):
        return result, False
    del servers[MCP_SERVER_NAME]
    if not servers:
        del result[MCP_KEY]
    return result, True


class OpenCodeInstaller(AssistantInstaller):
    name = "opencode"
    label = "OpenCode"

    def config_path(self, *, project: bool, cwd: Path) -> Path:
        base = cwd / PROJECT_DIR if project else user_config_dir()
        return base / PLUGIN_DIR / PLUGIN_FILE

    def mcp_path(self, plugin: Path, *, project: bool) -> Path:
        """``opencode.json``: the project's at its root (beside ``.opencode``), the user's in
        the config directory."""
        config_dir = plugin.parent.parent
        if project and config_dir.name == PROJECT_DIR:
            return config_dir.parent / CONFIG_FILE
        return config_dir / CONFIG_FILE

    def fragment(self, command: str, server: Json | None) -> Json:
        fragment: Json = {"plugin": PLUGIN_FILE, "hook command": command}
        if server is not None:
            fragment[MCP_KEY] = {MCP_SERVER_NAME: server_entry(server)}
        return fragment

    def install(
        self,
        path: Path,
        command: str,
        server: Json | None,
        *,
        project: bool,
        now: float | None = None,
    ) -> list[ConfigChange]:
        text = plugin_text(command)
        target = jsonfile.real_path(path)
        mcp_path = self.mcp_path(path, project=project)
        entry = server_entry(server) if server is not None else None
        if entry is not None:
            jsonfile.preview(mcp_path, lambda data: merge_server(data, entry))
        existed = target.exists()
        if existed and not is_memq_plugin(target):
            raise InstallError(f"{target}: a plugin memq did not write; left unchanged")
        changed = not existed or target.read_text(encoding="utf-8") != text
        if changed:
            jsonfile.write_new(target, text)
        # The plugin is memq's own file, rewritten whole: no backup of it is kept.
        changes = [ConfigChange(target, "plugin", changed, existed, None)]
        if entry is not None:
            done = jsonfile.update(mcp_path, lambda data: merge_server(data, entry), now=now)
            changes.append(
                ConfigChange(done.path, "MCP server", done.changed, done.existed, done.backup)
            )
        return changes

    def uninstall(
        self, path: Path, *, project: bool, mcp: bool, now: float | None = None
    ) -> list[ConfigChange]:
        target = jsonfile.real_path(path)
        mcp_path = self.mcp_path(path, project=project)
        if mcp:
            jsonfile.preview(mcp_path, lambda data: remove_server(data)[0])
        existed = target.exists()
        ours = existed and is_memq_plugin(target)
        if ours:
            try:
                target.unlink()
            except OSError as exc:
                raise InstallError(f"{target}: cannot remove it ({exc.strerror})") from None
        changes = [ConfigChange(target, "plugin", ours, existed, None, 1 if ours else 0)]
        if mcp:
            removed = False

            def change(data: Json) -> Json:
                nonlocal removed
                cleaned, removed = remove_server(data)
                return cleaned

            done = jsonfile.update(mcp_path, change, now=now)
            changes.append(
                ConfigChange(
                    done.path,
                    "MCP server",
                    done.changed,
                    done.existed,
                    done.backup,
                    1 if done.changed and removed else 0,
                )
            )
        return changes

    def notes(self) -> list[str]:
        return ["OpenCode loads plugins when it starts: restart it to start recording."]


INSTALLER: Final = OpenCodeInstaller()
