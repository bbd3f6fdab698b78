"""Who produced a record, and on which machine (issue 17, team memory).

The team server's intake stamps each event it takes in with ``memq_origin`` in its payload
(``memq.team.intake``: the API key's name, the laptop's machine name, ...). The store copies
the name and the machine onto every record the event produced (``author``, ``machine``;
migration 0018). A record without them (both None) was made on this machine by its own user.

Only well-formed values are taken: a string of 1 to ``MAX_ORIGIN_CHARS`` printable
characters; anything else (a payload from an older or foreign writer) is ignored, so a record
is never refused for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from memq.events import ORIGIN_FIELD

MAX_ORIGIN_CHARS: Final = 200  # a key name is at most 100 (memq.team.keys), a machine 200


def record_origin(payload: object) -> tuple[str | None, str | None]:
    """``(author, machine)`` from an event payload's ``memq_origin``; None for each that is
    missing or not a name."""
    if not isinstance(payload, Mapping):
        return None, None
    origin = payload.get(ORIGIN_FIELD)
    if not isinstance(origin, Mapping):
        return None, None
    return _name(origin.get("key")), _name(origin.get("machine"))


def origin_project(payload: object) -> str | None:
    """The repository identity the team server's intake stamped on an event (``memq_origin``'s
    ``project``, ``github.com/o/r``); None for an event taken in on this machine. A team
    server files a laptop's session under it: the laptop's working directory names no
    directory of the server's, and two clones of one repository are one project."""
    if not isinstance(payload, Mapping):
        return None
    origin = payload.get(ORIGIN_FIELD)
    return _name(origin.get("project")) if isinstance(origin, Mapping) else None


def _name(value: object) -> str | None:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ORIGIN_CHARS:
        return None
    # Printable only: the name goes on context lines ([alice]) an assistant reads.
    return value if value.isprintable() and value.strip() == value else None
