"""Full records as readable text: what ``memq show`` prints for people and the MCP tool
``get_observations`` answers the model.

Works on the records as the API sends them (``GET /api/records`` items, timeline items):
plain dicts, so that the CLI needs nothing but the standard library to print them. Empty
fields are left out; every record starts with its reference, type and time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final

# The one-letter mark of each record type in a reference (as memq.memory.refs writes it),
# read here from the API's record_type without importing memory.
_REF_LETTERS: Final = {"observation": "", "summary": "S", "prompt": "P"}

# A time the API sent (ISO-8601) as the reader wants it.
TimeFormat = Callable[[str], str]


def record_ref(item: dict[str, Any]) -> str:
    """The reference of a record the API sent: its ``ref``, or made from its type and id."""
    ref = item.get("ref")
    if isinstance(ref, str):
        return ref
    return f"#{_REF_LETTERS.get(str(item['record_type']), '?')}{item['id']}"


def record_files(item: dict[str, Any]) -> list[str]:
    """Every file the record read or changed, each once, in the order the record lists them."""
    names = [
        *item.get("files_read", ()),
        *item.get("files_modified", ()),
        *item.get("files_edited", ()),
    ]
    return list(dict.fromkeys(str(name) for name in names))


def record_text(item: dict[str, Any], when: TimeFormat) -> str:
    """One record in full: a head line (reference, type, time), where it came from, then
    its fields, empty ones left out."""
    record_type = str(item["record_type"])
    kind = item.get("kind")
    label = f"{record_type}/{kind}" if kind else record_type
    head = f"{record_ref(item)}  {label}  {when(str(item['created_at']))}"
    origin = [f"session {item['session_key']}"]
    if item.get("author"):  # someone's record on a team server: whose, from which machine
        machine = f" on {item['machine']}" if item.get("machine") else ""
        origin.insert(0, f"by {item['author']}{machine}")
    if item.get("team"):  # read from the team server (``team#12``): not in local memory
        origin.insert(0, "team memory")
    if item.get("project"):
        origin.append(f"project {item['project']}")
    origin.append(f"message {item['message_id']}")
    if item.get("inherited"):
        origin.append("inherited from the session it was forked from")
    lines = [head, "  ".join(origin)]
    body = {
        "observation": _observation,
        "summary": _summary,
        "prompt": _prompt,
    }.get(record_type, _unknown)(item)
    return "\n".join([*lines, *body])


def records_text(items: Iterable[dict[str, Any]], when: TimeFormat) -> str:
    """Several records in full, a blank line between them."""
    return "\n\n".join(record_text(item, when) for item in items)


def _observation(item: dict[str, Any]) -> list[str]:
    lines = [f"Title: {item.get('title', '')}"]
    if item.get("subtitle"):
        lines.append(f"Subtitle: {item['subtitle']}")
    command = item.get("command")
    if command:
        exit_code = item.get("exit_code")
        outcome = "" if exit_code is None else f" (exit {exit_code})"
        lines.append(f"Command: {command}{outcome}")
    elif item.get("exit_code") is not None:
        lines.append(f"Exit code: {item['exit_code']}")
    if item.get("tool_name"):
        lines.append(f"Tool: {item['tool_name']}")
    lines += _files("Files read", item.get("files_read"))
    lines += _files("Files modified", item.get("files_modified"))
    lines += _paragraph("Narrative", item.get("narrative"))
    lines += _bullets("Facts", item.get("facts"))
    if item.get("concepts"):
        lines.append("Concepts: " + ", ".join(str(c) for c in item["concepts"]))
    lines += _paragraph("Output", item.get("excerpt"))
    return lines


def _summary(item: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for name, label in (
        ("request", "Request"),
        ("investigated", "Investigated"),
        ("learned", "Learned"),
        ("completed", "Completed"),
        ("next_steps", "Next steps"),
    ):
        lines += _paragraph(label, item.get(name))
    lines += _files("Files read", item.get("files_read"))
    lines += _files("Files edited", item.get("files_edited"))
    lines += _paragraph("Notes", item.get("notes"))
    return lines


def _prompt(item: dict[str, Any]) -> list[str]:
    return [f"Prompt {item.get('number', '?')} of its session:", *_indented(item.get("text"))]


def _unknown(item: dict[str, Any]) -> list[str]:
    return [f"Title: {item.get('title', '')}"]


def _files(label: str, files: Any) -> list[str]:
    return [f"{label}: " + ", ".join(str(name) for name in files)] if files else []


def _paragraph(label: str, text: Any) -> list[str]:
    if not text or not str(text).strip():
        return []
    return [f"{label}:", *_indented(text)]


def _bullets(label: str, values: Any) -> list[str]:
    return [f"{label}:", *(f"  - {value}" for value in values)] if values else []


def _indented(text: Any) -> list[str]:
    return ["  " + line if line else "" for line in str(text or "").strip("\n").splitlines()]
