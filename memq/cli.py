"""The ``memq`` console script's entry point.

It imports nothing but ``os`` and ``sys`` before it knows the command: ``memq hook`` runs on
every tool call of the user's assistant and goes straight to ``memq.hooks.run``; everything
else goes to ``memq.commands``.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Final

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
    from memq.commands import run

    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
