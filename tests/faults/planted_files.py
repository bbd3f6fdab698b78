"""Files that are not memq's own in MEMQ_HOME: a planted token, a home others can write to.

    planted_token_symlink   MEMQ_HOME/token replaced by a symlink to another file of the
                            user's (a token-shaped one: the worst case, it would pass as a
                            token), whatever listens on MEMQ_PORT recording every request;
                            events go through the real ``memq hook``, then the link is
                            removed and a real daemon started
    world_writable_home     MEMQ_HOME mode 0777: every hook refuses its event and writes
                            nothing there (so nothing is acknowledged, and nothing lost)

Seen before: the daemon chmodded the link's target, ``memq status`` printed its contents in a
traceback, and ``memq hook`` sent them in its Authorization header to the listener.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.faults import FaultReport
from tests.faults.kit import queue_counts, ran_home, run_hook, tool_call
from tests.helpers.listener import recording_listener

EVENTS_PER_SCENARIO = 6
SESSION_ID = "planted-files"
# 43 characters of the token's alphabet: it would pass for a token if memq followed the link.
TOKEN_SHAPED_SECRET = "Secret0Secret1Secret2Secret3Secret4Secret5X"
SECRET_MODE = 0o644


@dataclass(frozen=True, slots=True)
class PlantedFileReport(FaultReport):
    """A ``FaultReport`` with what a planted file could have cost besides events.

    Args:
        requests: requests the stand-in on MEMQ_PORT received during the fault.
        leaks: of those, requests carrying the planted file's contents.
        target_changed: whether the link's target changed (mode or contents).
        written: files the hooks created or changed in a home memq must not use.
    """

    requests: int = 0
    leaks: int = 0
    target_changed: bool = False
    written: tuple[str, ...] = ()


def event(scenario: str, index: int) -> dict[str, Any]:
    """One tool call's hook payload; its dedupe key is ``tool:<scenario>-<index>``."""
    return tool_call(SESSION_ID, f"{scenario}-{index}", cwd="/tmp/planted-files", echo=str(index))


def plant_token_link(home: Path, target: Path, contents: str) -> None:
    """Replace MEMQ_HOME/token by a symlink to ``target``, a file of the user's."""
    target.write_text(contents)
    target.chmod(SECRET_MODE)
    (home / "token").unlink()
    (home / "token").symlink_to(target)


def target_unchanged(target: Path, contents: str) -> bool:
    return stat.S_IMODE(target.stat().st_mode) == SECRET_MODE and target.read_text() == contents


def planted_token_symlink(scratch: Path) -> PlantedFileReport:
    """Hooks with a planted token link and a stranger on the port; then recovery."""
    daemon = ran_home(scratch)
    home = daemon.home
    target = scratch / "elsewhere" / "secret"
    target.parent.mkdir()
    plant_token_link(home, target, TOKEN_SHAPED_SECRET)
    keys: list[str] = []
    acknowledged = 0
    with recording_listener(daemon.port) as listener:
        for index in range(EVENTS_PER_SCENARIO):
            acknowledged += run_hook(home, daemon.port, event("token", index)).returncode == 0
            keys.append(f"tool:token-{index}")
        received = list(listener.requests)
    changed = not target_unchanged(target, TOKEN_SHAPED_SECRET)
    started = time.monotonic()
    (home / "token").unlink()  # the person's fix: memq writes a new token at start
    daemon.start()
    try:
        daemon.wait_idle()
        recovery = time.monotonic() - started
    finally:
        daemon.kill()
    return PlantedFileReport(
        scenario="token a symlink to another file",
        sent=EVENTS_PER_SCENARIO,
        acknowledged=acknowledged,
        kept=sum(n == 1 for n in queue_counts(home / "memq.db", SESSION_ID, keys).values()),
        recovery_seconds=recovery,
        requests=len(received),
        leaks=sum(TOKEN_SHAPED_SECRET.encode() in request for request in received),
        target_changed=changed,
    )


def snapshot(home: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under ``home`` with its mode, size and modification time."""
    found: dict[str, tuple[int, int, int]] = {}
    for folder, dirs, files in os.walk(home):
        for name in dirs + files:
            path = Path(folder) / name
            info = path.lstat()
            found[str(path.relative_to(home))] = (info.st_mode, info.st_size, info.st_mtime_ns)
    return found


def world_writable_home(scratch: Path) -> PlantedFileReport:
    """Hooks in a home mode 0777: each refuses and writes nothing there."""
    daemon = ran_home(scratch)
    home = daemon.home
    home.chmod(0o777)
    before = snapshot(home)
    failed = 0
    try:
        with recording_listener(daemon.port) as listener:
            for index in range(EVENTS_PER_SCENARIO):
                # Free to spawn: no stamp of the test's own in a home that must stay as it is.
                done = run_hook(home, daemon.port, event("home", index), spawning=True)
                failed += done.returncode != 0
            received = list(listener.requests)
        after = snapshot(home)
    finally:
        home.chmod(0o700)
    if failed:
        raise RuntimeError(f"{failed} hooks exited non-zero: the assistant would show it")
    written = tuple(sorted(path for path in after if after[path] != before.get(path)))
    return PlantedFileReport(
        scenario="MEMQ_HOME writable by others",
        sent=EVENTS_PER_SCENARIO,
        acknowledged=0,  # refused, by design: nothing was taken, so nothing can be lost
        kept=0,
        recovery_seconds=0.0,
        requests=len(received),
        written=written,
    )


SCENARIOS = (planted_token_symlink, world_writable_home)
