"""The queue's commands: the messages that ran out of attempts, and sending them again."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any
from urllib.parse import urlencode

from memq.cli.command import EXIT_ERROR, EXIT_OK, EXIT_USAGE, Command, Subcommands
from memq.client.daemon_api import api
from memq.config import Settings


def add_parsers(commands: Subcommands) -> None:
    """Add memq failed and memq retry to ``memq``'s parser."""
    failed = commands.add_parser("failed", help="messages that ran out of attempts")
    failed.add_argument("--json", action="store_true", help="print JSON")
    failed.add_argument("--session", help="only this session")
    retry = commands.add_parser("retry", help="send failed messages through again")
    retry.add_argument("ids", nargs="*", type=int, help="message ids (see memq failed)")
    retry.add_argument("--all", action="store_true", help="every failed message")


def cmd_failed(args: argparse.Namespace, settings: Settings) -> int:
    query = f"?{urlencode({'session': args.session})}" if args.session else ""
    body = api(settings, "GET", f"/api/failed{query}")
    if body is None:
        return EXIT_ERROR
    if args.json:
        print(json.dumps(body, indent=2))
        return EXIT_OK
    for item in body["items"]:
        print(
            f"{item['message_id']:>8}  {item['session_id']}  {item['kind']}  "
            f"attempts {item['attempts']}  {item['last_error']}"
        )
    print(f"({body['total']} failed)")
    return EXIT_OK


def cmd_retry(args: argparse.Namespace, settings: Settings) -> int:
    if args.all == bool(args.ids):
        print("memq retry: give message ids or --all (not both)", file=sys.stderr)
        return EXIT_USAGE
    request: dict[str, Any] = {"all": True} if args.all else {"ids": args.ids}
    body = api(settings, "POST", "/api/failed/retry", request)
    if body is None:
        return EXIT_ERROR
    retried = body["retried"]
    if not retried:
        print("no failed messages to retry")
    else:
        ids = ", ".join(str(message_id) for message_id in retried)
        print(f"retried {len(retried)} message(s): {ids}")
    return EXIT_OK


COMMANDS: dict[str, Command] = {"failed": cmd_failed, "retry": cmd_retry}
