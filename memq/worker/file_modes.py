"""The daemon's check of its home at start: the user's alone, and every file in it 0600.

The database and its WAL, the logs and the spool hold prompts and code. memq creates them
0600 (``memq.cli`` sets the umask); files an earlier memq left readable by others are
repaired here, before the database is opened.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from memq.env import LOGS_DIR
from memq.hooks.spool import REJECTED_DIR, SPOOL_DIR
from memq.private_files import check_home, make_tree_private

PRIVATE_SUBDIRECTORIES: Final = (LOGS_DIR, SPOOL_DIR, os.path.join(SPOOL_DIR, REJECTED_DIR))


def secure_home(home: Path) -> list[str]:
    """Refuse a home others can write to (``UnsafeFileError``, with the fix); make memq's
    files in it 0600 and its directories 0700. Returns the paths whose mode changed.

    Runs before any database connection of this process: see ``make_tree_private``.
    """
    check_home(str(home))
    return make_tree_private(str(home), PRIVATE_SUBDIRECTORIES)
