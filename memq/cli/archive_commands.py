"""Export and import: a session's memory as a JSON Lines file, and such a file added to
memory (``memq.memory.archive`` reads and writes the format)."""

from __future__ import annotations

import argparse
import json
import sys

from memq.cli.command import EXIT_ERROR, EXIT_OK, Command, Subcommands
from memq.client.daemon_api import Answer, api_raw, session_path
from memq.config import Settings


def add_parsers(commands: Subcommands) -> None:
    """Add memq export and memq import to ``memq``'s parser."""
    export = commands.add_parser(
        "export", help="write a session's memory as JSON Lines (to standard output)"
    )
    export.add_argument("session", help="the session (id or claude-code:<id>)")
    export.add_argument(
        "-o", "--output", metavar="FILE", help="write to FILE instead of standard output"
    )
    import_ = commands.add_parser(
        "import",
        help="add a session written by memq export to memory",
        description="Records already in memory are skipped, so importing a file twice adds "
        "nothing. Message ids and prompt numbers taken here are given new ones.",
    )
    import_.add_argument("file", help="the file memq export wrote ('-' for standard input)")


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    def read_directly() -> Answer:
        from memq.memory import direct

        return direct.export(direct.database_of(settings), args.session)

    body = api_raw(settings, "GET", session_path(args.session, "export"), direct=read_directly)
    if body is None:
        return EXIT_ERROR
    if not args.output:
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
        return EXIT_OK
    try:
        with open(args.output, "wb") as handle:
            handle.write(body)
    except OSError as exc:
        print(f"memq export: cannot write {args.output}: {exc.strerror}", file=sys.stderr)
        return EXIT_ERROR
    records = body.count(b"\n") - 1  # every line ends in "\n"; the first is the metadata
    print(f"exported {records} record(s) to {args.output}")
    return EXIT_OK


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    try:
        if args.file == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(args.file, "rb") as handle:
                data = handle.read()
    except OSError as exc:
        print(f"memq import: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return EXIT_ERROR
    raw = api_raw(settings, "POST", "/api/import", data, content_type="application/x-ndjson")
    if raw is None:
        return EXIT_ERROR
    body = json.loads(raw)
    counts = body["imported"]
    print(
        f"imported {counts['prompt']} prompt(s), {counts['observation']} observation(s) and "
        f"{counts['summary']} summary(ies) into {body['session_key']}"
        + (" (a new session)" if body["session_created"] else "")
    )
    if body["skipped"]:
        print(f"  skipped {body['skipped']} record(s) already in memory")
    if body["remapped"]:
        print(f"  {body['remapped']} message id(s) were taken here: given new ones")
    if body["renumbered"]:
        print(f"  {body['renumbered']} prompt number(s) were taken in the session: renumbered")
    return EXIT_OK


COMMANDS: dict[str, Command] = {"export": cmd_export, "import": cmd_import}
