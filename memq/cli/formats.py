"""How the CLI's tables show the daemon's values: times and search scores in fixed columns."""

from __future__ import annotations

import math
from datetime import UTC, datetime, tzinfo
from typing import Final

# ``when``'s text is at most this wide: "2025-01-31 13:00 +01:00".
WHEN_WIDTH: Final = 23


def when(iso: str, *, utc: bool = False, zone: tzinfo | None = None) -> str:
    """A time the daemon sent (ISO-8601, ``2025-01-31T12:00:00.250Z``) as a table shows it:
    local time with its offset from UTC, ``2025-01-31 13:00 +01:00``, or with ``utc``
    ``2025-01-31 12:00 UTC``. ``zone`` stands in for the local time zone (tests)."""
    at = datetime.fromisoformat(iso)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)  # memq sends UTC; a time without a zone is one too
    if utc:
        return f"{at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    local = at.astimezone(zone)  # None: the system's local zone at that time (DST included)
    offset = local.utcoffset()
    minutes = 0 if offset is None else round(offset.total_seconds() / 60)
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return f"{local:%Y-%m-%d %H:%M} {sign}{hours:02d}:{mins:02d}"


def score_text(score: float) -> str:
    """A search score in at most 6 characters, for a table column: two decimals while they
    fit (``12.34``), whole numbers above (``12345``); a score too small for two decimals is
    ``<0.01`` rather than ``2.01e-06``. Scores compare within one search only."""
    if math.isnan(score) or score <= 0:  # nothing matched well at all
        return "0.00"
    if math.isinf(score):
        return "inf"
    if score < 0.005:
        return "<0.01"
    if round(score, 2) < 1000:
        return f"{score:.2f}"
    if round(score) < 1_000_000:
        return f"{score:.0f}"
    return f"{score:.0e}"
