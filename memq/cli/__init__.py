"""The ``memq`` command line.

``main`` is the entry point (the ``memq`` script, ``python -m memq``). It imports nothing but
``os`` and ``sys`` before it knows the command: ``memq hook`` runs on every tool call of the
user's assistant and goes straight to ``memq.hooks.run``; every other command goes to
``memq.cli.dispatch``, which parses it (``parser``) and runs it.

The commands, by topic: ``daemon_commands`` (serve, start, stop, status, resume, repair),
``memory_commands`` (search, timeline, context), ``session_commands`` (sessions, history,
title, fork, revert, transfer, delete), ``archive_commands`` (export, import),
``settings_commands`` (config), ``queue_commands`` (failed, retry), ``storage_commands``
(migrate) and ``setup_commands`` (install, uninstall, hook; ``assistant_setup`` for the
assistants other than Claude Code). They call the daemon through ``client``, the only one.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing is not imported: the hook pays for every import
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Final

__all__ = ["main"]

PRIVATE_UMASK: Final = 0o077


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``memq`` command."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] not in (["install"], ["uninstall"]):
        # Everything memq creates (the database and its WAL, the logs, the spool) holds
        # prompts and code: only the user may read it. Claude Code's own settings file,
        # which install writes, keeps the user's usual mode.
        os.umask(PRIVATE_UMASK)
    if args[:1] == ["hook"] and not {"-h", "--help"} & set(args):
        from memq.hooks.run import main as hook_main

        return hook_main(args[1:])
    from memq.cli.dispatch import run

    return run(args)
