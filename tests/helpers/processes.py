"""Running ``tests.helpers.queue_child`` as a real second process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def spawn_child(*args: str) -> subprocess.Popen[str]:
    """Start the helper process; its stdout is a pipe of text lines."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.queue_child", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
    )


def read_line(child: subprocess.Popen[str]) -> str:
    """The child's next line of output ('' if it exited first)."""
    assert child.stdout is not None
    return child.stdout.readline().strip()


def kill_hard(child: subprocess.Popen[str]) -> None:
    """SIGKILL the child and reap it."""
    if child.poll() is None:
        child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    if child.stdout is not None:
        child.stdout.close()


def run_child(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run the helper to completion."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "tests.helpers.queue_child", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
        timeout=timeout,
        check=False,
    )
