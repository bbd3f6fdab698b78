"""The projects a laptop worked in lately, whose team context the daemon reads at start.

Without them the team's context of a repository would wait for its first SessionStart to ask
for it, and that session would get local memory alone (``memq.team.team_reads``). The
projects are those of the local sessions active in the last ``WARM_DAYS`` days, the
``WARM_PROJECTS`` most recent: enough for the repositories a person switches between, few
enough that a start asks the team server for a handful of contexts, not for every project
ever seen. They come from local memory's sessions, so in mode ``forward`` (nothing processed
here) there are none, and each repository waits for its first SessionStart.
"""

from __future__ import annotations

from typing import Final

from memq.queue import QueueBase
from memq.storage.sqlfile import load_queries

WARM_DAYS: Final = 14  # a project idle longer is not asked for at start
WARM_PROJECTS: Final = 16  # the most projects asked for at start
DAY_MS: Final = 86_400_000

QUERIES: Final = load_queries("projects")


async def recent_projects(
    queue: QueueBase, *, days: int = WARM_DAYS, limit: int = WARM_PROJECTS
) -> list[str]:
    """The directories of the projects of sessions active in the last ``days`` days, the
    most recent first, at most ``limit`` (times on the queue's clock)."""
    rows = await queue.read(QUERIES["list_projects"], {"limit": limit, "offset": 0})
    since = queue.clock.now() - days * DAY_MS
    return [str(row["project"]) for row in rows if int(row["last_activity_at"]) >= since]
