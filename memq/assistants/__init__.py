"""The coding assistants memq serves, one adapter module each (``memq.assistants.base``).

An adapter is imported only when its assistant is named: ``memq hook --assistant codex``
loads the Codex adapter and nothing else. Standard library only.
"""

from __future__ import annotations

import importlib

from memq.exceptions import UnknownAssistantError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

    from memq.assistants.base import Adapter

CLAUDE_CODE: Final = "claude-code"
# How a hook command names its assistant: ``memq hook --assistant codex`` (memq.hooks.run
# reads it, memq.hooks.install writes and recognises it).
ASSISTANT_OPTION: Final = "--assistant"
# Each assistant's name (its sessions' key prefix) and the module of its adapter.
_MODULES: Final = {
    CLAUDE_CODE: "memq.assistants.claude_code",
    "codex": "memq.assistants.codex",
    "gemini-cli": "memq.assistants.gemini_cli",
    "cursor": "memq.assistants.cursor",
    "opencode": "memq.assistants.opencode",
}
NAMES: Final = tuple(_MODULES)
# Other spellings people type for them.
_ALIASES: Final = {"claude": CLAUDE_CODE, "gemini": "gemini-cli"}


def canonical_name(name: str) -> str:
    """The assistant's name as memq keys sessions by it (``gemini`` -> ``gemini-cli``).

    Raises ``UnknownAssistantError`` for a name memq has no adapter for."""
    folded = name.strip().lower()
    folded = _ALIASES.get(folded, folded)
    if folded not in _MODULES:
        known = ", ".join(NAMES)
        raise UnknownAssistantError(f"unknown assistant {name!r}: memq knows {known}")
    return folded


def adapter(name: str = CLAUDE_CODE) -> Adapter:
    """The adapter for the assistant ``name`` (see ``canonical_name``)."""
    module = importlib.import_module(_MODULES[canonical_name(name)])
    found: Adapter = module.ADAPTER
    return found


__all__ = ["ASSISTANT_OPTION", "CLAUDE_CODE", "NAMES", "adapter", "canonical_name"]
