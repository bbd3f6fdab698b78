"""memq in Gemini CLI's ``settings.json``: its hooks and its MCP server, in one file.

Gemini CLI reads ``~/.gemini/settings.json`` (the user's; ``$GEMINI_CLI_HOME/.gemini`` when
that is set) and ``<project>/.gemini/settings.json``. Hooks sit in its ``"hooks"`` object in
Claude Code's shape, one list of groups per event, each entry
``{"name", "type": "command", "command", "timeout"}`` with the timeout in MILLISECONDS; tool
events take a matcher, ``"*"`` matching every tool
(https://geminicli.com/docs/hooks/reference). MCP servers sit in ``"mcpServers"`` of the same
file. Gemini reads the file as JSON with comments; memq rewrites it as plain JSON, so a file
holding comments is refused untouched rather than stripped of them.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Final

from memq.assistants import gemini_cli
from memq.exceptions import InstallError
from memq.hooks import jsonfile, mcp_config
from memq.hooks.install import MCP_SERVERS, hooks_fragment, merge_hooks, remove_memq_hooks
from memq.hooks.installers import AssistantInstaller, ConfigChange, Json

CONFIG_DIR: Final = ".gemini"
SETTINGS_FILE: Final = "settings.json"
HOME_VARIABLE: Final = "GEMINI_CLI_HOME"  # Gemini's own: where its ~ is
HOOK_NAME: Final = "memq"
TIMEOUT_MS: Final = (
    10_000  # Gemini's unit; the hook answers in milliseconds, this bounds a stuck one
)
EVENTS: Final = gemini_cli.SUBSCRIBED  # Gemini's names of memq's events, in the order written
TOOL_EVENTS: Final = gemini_cli.TOOL_EVENTS
# JSON's strings, then // and /* */ comments outside them.
_TOKENS: Final = re.compile(r'"(?:[^"\\]|\\.)*"|//[^\n]*|/\*.*?\*/', re.DOTALL)


def fragment(command: str, server: Json | None = None) -> Json:
    """The hooks (and MCP server) memq merges into the settings."""
    result = hooks_fragment(
        command,
        timeout=TIMEOUT_MS,
        events=EVENTS,
        tool_events=TOOL_EVENTS,
        extra={"name": HOOK_NAME},
    )
    if server is not None:
        result[MCP_SERVERS] = {mcp_config.SERVER_NAME: server}
    return result


def has_comments(text: str) -> bool:
    """Whether JSON ``text`` holds ``//`` or ``/* */`` comments (outside strings)."""
    return any(token.group(0)[0] == "/" for token in _TOKENS.finditer(text))


def refuse_comments(path: Path) -> None:
    """``InstallError`` when the settings hold comments, which a rewrite would drop."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return  # jsonfile says what is wrong with it
    try:
        json.loads(text)
    except ValueError:
        if has_comments(text):
            raise InstallError(
                f"{path}: holds comments (Gemini CLI reads JSON with comments, memq writes plain "
                "JSON and would drop them); left unchanged. Remove the comments, or add memq's "
                "entries by hand (`memq install --assistant gemini-cli --print` shows them)"
            ) from None


class GeminiCliInstaller(AssistantInstaller):
    name = "gemini-cli"
    label = "Gemini CLI"

    def config_path(self, *, project: bool, cwd: Path) -> Path:
        if project:
            return cwd / CONFIG_DIR / SETTINGS_FILE
        home = os.environ.get(HOME_VARIABLE, "").strip()
        return (Path(home) if home else Path.home()) / CONFIG_DIR / SETTINGS_FILE

    def fragment(self, command: str, server: Json | None) -> Json:
        return fragment(command, server)

    def install(
        self,
        path: Path,
        command: str,
        server: Json | None,
        *,
        project: bool,
        now: float | None = None,
    ) -> list[ConfigChange]:
        hooks = fragment(command)

        def change(data: Json) -> Json:
            merged = merge_hooks(data, hooks)
            return merged if server is None else mcp_config.merge_server(merged, server)

        refuse_comments(jsonfile.real_path(path))
        done = jsonfile.update(path, change, now=now)
        what = "hooks" if server is None else "hooks and MCP server"
        return [ConfigChange(done.path, what, done.changed, done.existed, done.backup)]

    def uninstall(
        self, path: Path, *, project: bool, mcp: bool, now: float | None = None
    ) -> list[ConfigChange]:
        removed = 0

        def change(data: Json) -> Json:
            nonlocal removed
            cleaned, removed = remove_memq_hooks(data)
            if mcp:
                cleaned, gone = mcp_config.remove_server(cleaned)
                removed += int(gone)
            return cleaned

        refuse_comments(jsonfile.real_path(path))
        done = jsonfile.update(path, change, now=now)
        what = "hooks and MCP server" if mcp else "hooks"
        count = removed if done.changed else 0
        return [ConfigChange(done.path, what, done.changed, done.existed, done.backup, count)]

    def notes(self) -> list[str]:
        return [
            "Gemini CLI runs these hooks unless hooksConfig.enabled is false in its settings; "
            "with folder trust on, a project's settings apply only in a trusted folder."
        ]


INSTALLER: Final = GeminiCliInstaller()
