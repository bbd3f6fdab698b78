"""The bounds memq keeps on what it is given, and the defaults of the API's reads, each
defined once.

The daemon's API checks them, and the CLI checks them again as it parses its arguments, so that
a direct read of the database (no daemon) refuses what the daemon would, naming the flag.
Standard library only and cheap to import: the hook and the CLI's parser import it.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported: the hook pays for every import
if TYPE_CHECKING:
    from typing import Final

# SQLite's INTEGER: the range of every id, number and count memq stores.
MIN_INTEGER: Final = -(2**63)
MAX_INTEGER: Final = 2**63 - 1

# An assistant's own session id, as a hook payload or a person gives it (also the bound of
# the payload's other id, ``hook_event_name``).
MAX_SESSION_ID_CHARS: Final = 256
# A key the queue stores: a session key (``claude-code:<session id>``) or a dedupe key.
MAX_KEY_CHARS: Final = 512

# The API's reads: what each gives unless asked for another number, and the most it gives
# (the CLI's flags for them share both).
DEFAULT_SEARCH_RESULTS: Final = 20  # GET /api/search?limit=
MAX_SEARCH_RESULTS: Final = 1000
DEFAULT_TIMELINE_SIDE: Final = 5  # GET /api/timeline?before=&after=
MAX_TIMELINE_SIDE: Final = 100
MAX_PAGE: Final = 10_000  # ?limit= of a page of sessions, records or failed messages
DEFAULT_CONTEXT_BUDGET: Final = 2000  # tokens of a context (GET /api/context?budget=)
MAX_CONTEXT_BUDGET: Final = 100_000
DEFAULT_HISTORY_ITEMS: Final = 50  # entries of a session's history (GET .../history?max=)
MAX_HISTORY_ITEMS: Final = 1000
# Per-prompt recall (settings recall_min_score, recall_budget): the least search score of a
# hit shown, and the most tokens it adds to a prompt.
DEFAULT_RECALL_MIN_SCORE: Final = 8.0
DEFAULT_RECALL_BUDGET: Final = 300
# Records read by reference (GET /api/records?ids=, memq show, the MCP tool get_observations):
# the most references one call takes.
MAX_RECORD_REFS: Final = 100
# ... of them the team server's records (team#12: a laptop asks its team server for them).
MAX_TEAM_REFS: Final = 20
# The most an MCP tool answers, in tokens (characters / 4): longer answers are cut at a line,
# saying how to page or narrow, so that one call never floods the model's context.
MCP_ANSWER_BUDGET: Final = 6000

# What the offline processor (extract) keeps of a tool call's text (memq.processors.extract):
# a long output keeps its first and last lines with the cut marked; a line this long keeps
# its start and end; an edit becomes a unified diff with a few lines of context, cut alike;
# a new file keeps its first lines.
EXTRACT_OUTPUT_HEAD_LINES: Final = 8
EXTRACT_OUTPUT_TAIL_LINES: Final = 12
EXTRACT_OUTPUT_CHARS: Final = 1600
EXTRACT_LINE_CHARS: Final = 240
EXTRACT_DIFF_CONTEXT_LINES: Final = 3
EXTRACT_DIFF_LINES: Final = 60
EXTRACT_DIFF_CHARS: Final = 3200
EXTRACT_NEW_FILE_LINES: Final = 20
# A tool call's turn as a processor sees it: at most this many of the observations since the
# session's last prompt (MemoryStore.turn_for), enough to tell a fix or a repeated read.
TURN_ITEMS: Final = 40
