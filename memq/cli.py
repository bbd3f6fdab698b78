"""The ``memq`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from memq import __version__


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every ``memq`` command."""
    parser = argparse.ArgumentParser(prog="memq", description=__doc__)
    parser.add_argument("--version", action="version", version=f"memq {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("serve", help="run the daemon in the foreground")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``memq`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        print(
            "memq serve: the daemon is not built yet (the queue is; see README.md).",
            file=sys.stderr,
        )
        return 2
    parser.print_help()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
