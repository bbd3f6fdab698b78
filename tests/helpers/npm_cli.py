"""The assistants' CLIs that ``scripts/_npm.sh`` installs from npm, for the end-to-end tests.

Each lives in ``.cache/npm/<name>``; where one could not be installed, ``unavailable.txt``
there says why, and the test skips with that reason (one clear line).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers.processes import PROJECT_ROOT

NPM_ROOT = PROJECT_ROOT / ".cache" / "npm"


def cli_binary(name: str, program: str, variable: str, label: str) -> Path:
    """The CLI ``program`` installed for ``name`` (or the one ``variable`` points at), once
    it answers ``--version``; skips the test, saying why, when there is none."""
    configured = os.environ.get(variable, "").strip()
    prefix = NPM_ROOT / name
    binary = Path(configured) if configured else prefix / "node_modules" / ".bin" / program
    if not binary.exists():
        reason_file = prefix / "unavailable.txt"
        reason = (
            reason_file.read_text().strip()
            if reason_file.exists()
            else "scripts/test installs it from npm (scripts/_npm.sh); it has not run here"
        )
        pytest.skip(f"the {label} CLI is not at {binary}: {reason}")
    try:
        version = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"the {label} CLI at {binary} does not run: {exc}")
    if version.returncode != 0:
        pytest.skip(f"the {label} CLI at {binary} does not run: {version.stderr.strip()[:200]}")
    return binary
