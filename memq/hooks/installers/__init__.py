"""``memq install --assistant NAME``: memq's hooks (and MCP server) in another assistant's
configuration. Claude Code's own installer is ``memq.hooks.install`` (with
``memq.hooks.mcp_config``); each other assistant has a module here exposing ``INSTALLER``.

Every installer keeps the promises of Claude Code's: everything not memq's stays as it was,
a changed file is backed up first and replaced atomically (``memq.hooks.jsonfile``), a second
install changes nothing, and uninstall removes exactly what install wrote.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from memq.assistants import CLAUDE_CODE, canonical_name
from memq.exceptions import InstallError

if TYPE_CHECKING:
    from pathlib import Path

Json: TypeAlias = dict[str, Any]

_MODULES: Final = {
    "codex": "memq.hooks.installers.codex",
    "gemini-cli": "memq.hooks.installers.gemini_cli",
    "cursor": "memq.hooks.installers.cursor",
    "opencode": "memq.hooks.installers.opencode",
}


@dataclass(frozen=True, slots=True)
class ConfigChange:
    """What installing or uninstalling did to one file of the assistant's."""

    path: Path  # the file (symlinks followed)
    what: str  # what of memq's is in it: "hooks", "MCP server", "plugin", ...
    changed: bool  # False: it was already as it would be written (or held nothing of memq's)
    existed: bool  # the file was there before
    backup: Path | None  # a copy of the previous file, when there was one and it changed
    removed: int = 0  # uninstall: how many of memq's entries went


class AssistantInstaller:
    """One assistant's configuration: where its files are and how memq goes in and out."""

    name: str = ""  # memq.assistants name, e.g. "codex"
    label: str = ""  # e.g. "Codex CLI"

    def config_path(self, *, project: bool, cwd: Path) -> Path:
        """The file holding the hooks: the user's, or the project's under ``cwd``."""
        raise NotImplementedError

    def fragment(self, command: str, server: Json | None) -> Json:
        """What ``install`` would merge, for ``memq install --print``."""
        raise NotImplementedError

    def install(
        self,
        path: Path,
        command: str,
        server: Json | None,
        *,
        project: bool,
        now: float | None = None,
    ) -> list[ConfigChange]:
        """Merge memq's hooks running ``command`` into ``path`` (and the MCP server entry
        ``server``, when given, where this assistant reads MCP servers).

        Raises ``InstallError`` with every file unchanged when one cannot be changed."""
        raise NotImplementedError

    def uninstall(
        self, path: Path, *, project: bool, mcp: bool, now: float | None = None
    ) -> list[ConfigChange]:
        """Remove what ``install`` wrote (the MCP server entry too, when ``mcp``)."""
        raise NotImplementedError

    def notes(self) -> list[str]:
        """Lines printed after a change: what the person must still do (trust, a flag)."""
        return []


def installer(name: str) -> AssistantInstaller:
    """The installer for ``name`` (not Claude Code, whose is ``memq.hooks.install``).

    Raises ``UnknownAssistantError`` for a name memq has no adapter for."""
    found = canonical_name(name)
    if found == CLAUDE_CODE:
        raise InstallError("Claude Code's installer is memq.hooks.install")
    module = importlib.import_module(_MODULES[found])
    result: AssistantInstaller = module.INSTALLER
    return result


__all__ = ["AssistantInstaller", "ConfigChange", "Json", "installer"]
