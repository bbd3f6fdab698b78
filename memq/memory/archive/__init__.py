"""One session's memory to a file and back: export to JSON Lines, import from it.

    from memq.memory.archive import SessionExporter, import_effect

    async with await SessionExporter.open(path) as exporter:    # after Queue.open(path)
        lines = await exporter.export(session_key)              # None: no such session
    result = await queue.run_in_transaction(import_effect(lines))   # InvalidArchiveError: bad file

The file's format is described once (``_format``: each kind of line, its fields and their
types), and both the exporter (``_export``) and the reader (``_parse``) work from that
description; ``_restore`` writes a checked file into memory. Not to be confused with
``memq transfer``, which moves a session to another id within one database.
"""

from __future__ import annotations

from memq.memory.archive._export import SessionExporter
from memq.memory.archive._format import FORMAT
from memq.memory.archive._parse import (
    ExportDocument,
    ExportedRecord,
    ExportedSession,
    ExportSource,
    parse_export,
)
from memq.memory.archive._restore import ImportResult, import_effect, number_prompts

__all__ = [
    "FORMAT",
    "ExportDocument",
    "ExportSource",
    "ExportedRecord",
    "ExportedSession",
    "ImportResult",
    "SessionExporter",
    "import_effect",
    "number_prompts",
    "parse_export",
]
