"""Which project a working directory belongs to: its git root, else the directory itself."""

from __future__ import annotations

import functools
import os
from pathlib import Path


@functools.lru_cache(maxsize=1024)
def project_for(cwd: str | None) -> str | None:
    """The nearest ancestor of ``cwd`` (itself included) holding ``.git``, else ``cwd``.

    A directory that no longer exists still names its project: its own path.
    """
    if not cwd:
        return None
    start = Path(cwd)
    for directory in (start, *start.parents):
        try:
            if (directory / ".git").exists():
                return str(directory)
        except OSError:
            break
    return str(start)


def project_named(value: str) -> str:
    """The project a person or a model names with ``value`` (``--project``, a tool's
    ``project``): a directory's project (its git root, as the hook records it; ``~``
    expanded), anything else as written."""
    path = os.path.expanduser(value)
    if os.path.isdir(path):
        return project_for(os.path.abspath(path)) or value
    return value
