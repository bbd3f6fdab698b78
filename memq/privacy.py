"""What memq never stores: ``<private>`` text, and events of the tools it skips.

Standard library only; both the hook and the daemon apply it, so text marked private is gone
before it is written anywhere, whichever way the event arrives.
"""

from __future__ import annotations

import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any, Final

# An unclosed tag hides everything after it: failing closed is the point.
_PRIVATE: Final = re.compile(r"<private>.*?(?:</private>|\Z)", re.DOTALL | re.IGNORECASE)


def strip_private(value: Any) -> Any:
    """``value`` with every ``<private>...</private>`` span removed from every string in it,
    keys too (a tool's structured input or answer may have keys made of a person's text)."""
    if isinstance(value, str):
        return _PRIVATE.sub("", value) if "<" in value else value
    if isinstance(value, dict):
        return {strip_private(key): strip_private(item) for key, item in value.items()}
    if isinstance(value, list):
        return [strip_private(item) for item in value]
    return value


def is_skipped(payload: dict[str, Any], skip_tools: Iterable[str]) -> bool:
    """Whether the event is a call of a tool memq does not record."""
    tool = payload.get("tool_name")
    return isinstance(tool, str) and tool in skip_tools
