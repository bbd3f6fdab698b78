"""Acceptance tests run the real ``memq`` daemon and CLI as subprocesses."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.daemon import Daemon, running_daemon

FIXTURES = Path(__file__).parents[1] / "fixtures" / "claude-code"


def sample(name: str) -> dict[str, Any]:
    """One captured Claude Code hook payload."""
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def sequence() -> list[dict[str, Any]]:
    """Every hook payload of the captured runs, in order."""
    lines = (FIXTURES / "hooks.sequence.jsonl").read_text().splitlines()
    return [json.loads(line)["payload"] for line in lines if line.strip()]


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    """A running daemon with its own MEMQ_HOME and port."""
    with running_daemon(tmp_path / "home") as running:
        yield running
