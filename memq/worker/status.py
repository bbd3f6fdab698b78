"""The queue's part of ``memq status``, in one shape whether the daemon answers it
(``GET /api/status``) or the database file is read because none does
(``memq.worker.control.offline_status``). Standard library only: the CLI imports it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def queue_status(
    counts: Mapping[str, int], sessions: Mapping[str, Mapping[str, int]]
) -> dict[str, Any]:
    """The status keys that follow from the counts by status, overall and per session."""
    return {
        "counts": dict(counts),
        "failed": counts["failed"],
        # The anchor's session manager reported these; tools built for it read them.
        "has_pending_work": counts["pending"] > 0,
        "queue_depth": counts["pending"],
        "active_work": counts["pending"] + counts["processing"],
        "sessions": [
            {"session_id": key, "counts": dict(per_status)} for key, per_status in sessions.items()
        ],
    }
