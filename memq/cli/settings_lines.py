"""memq's settings as a person reads them: each with its value and where it came from
(``memq status``, ``memq config --global``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def settings_lines(
    report: Mapping[str, Mapping[str, Any]], file: str, *, every: bool = False, note: str = ""
) -> list[str]:
    """The settings part of ``memq status`` (``memq.config.settings_report``): each setting
    someone set, or that is wrong, with where it came from; ``every`` lists defaults too.
    ``note`` follows the file's name on the first line."""
    shown = {
        key: entry
        for key, entry in report.items()
        if every or entry["source"] != "default" or "error" in entry
    }
    lines = [f"settings  {file}{f'  ({note})' if note else ''}"]
    width = max((len(key) for key in shown), default=0)
    for key, entry in shown.items():
        source = entry["source"]
        if source == "environment":
            source = f"environment ({entry['variable']})"
        lines.append(f"  {key:<{width}}  {setting_text(entry['value']):<24}  {source}")
        if "error" in entry:
            lines.append(f"  {'':<{width}}  not usable: {entry['error']}")
    hidden = len(report) - len(shown)
    if hidden:
        lines.append(f"  ({hidden} more at their defaults: memq config --global lists them)")
    return lines


def setting_text(value: Any) -> str:
    """A setting's value (as ``memq status --json`` has it) for a person to read."""
    if value is None:
        return "(the processor's own)"
    if isinstance(value, list):
        return ",".join(str(item) for item in value) if value else "(none)"
    return str(value)
