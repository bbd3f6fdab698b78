"""Running Python modules (``memq``, ``tests.helpers.queue_child``) as real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def project_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment with the project importable, plus ``extra``."""
    return {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), **(extra or {})}


def run_module(
    module: str,
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m MODULE ARGS`` to completion with ``project_env(env)``; its output as
    text, whatever its exit status."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env=project_env(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def spawn_child(*args: str) -> subprocess.Popen[str]:
    """Start the helper process; its stdout is a pipe of text lines."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.queue_child", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=project_env(),
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
    return run_module("tests.helpers.queue_child", *args, cwd=PROJECT_ROOT, timeout=timeout)
