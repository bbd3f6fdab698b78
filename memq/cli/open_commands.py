"""``memq open``: the viewer in the user's browser, logged in by a one-time code the running
daemon gives for the bearer token (``--print`` prints the URL instead)."""

from __future__ import annotations

import argparse
import json
import sys

from memq.cli.command import EXIT_ERROR, EXIT_OK, Command, Subcommands
from memq.client.daemon_api import request_bytes
from memq.config import Settings


def add_parsers(commands: Subcommands) -> None:
    """Add memq open to ``memq``'s parser."""
    opener = commands.add_parser(
        "open",
        help="open the viewer in your browser, logged in (needs the daemon)",
        description="Asks the running daemon for a one-time login code (good once, for 60 "
        "seconds) and opens http://127.0.0.1:PORT/login?code=... in your browser, which "
        "exchanges it for a session cookie.",
    )
    opener.add_argument(
        "--print", action="store_true", help="print the URL instead of opening a browser"
    )


def login_url(settings: Settings) -> str | None:
    """The one-time login URL, or None after printing why there is none."""
    try:
        status, raw = request_bytes(settings, "POST", "/api/login-codes", b"{}")
    except OSError:
        print(
            f"memq: the daemon is not answering on port {settings.port}; "
            "start it with `memq start`",
            file=sys.stderr,
        )
        return None
    try:
        body = json.loads(raw)
    except ValueError:
        body = {"error": raw.decode("utf-8", "replace")}
    if status != 201 or not isinstance(body, dict) or not isinstance(body.get("path"), str):
        error = body.get("error", body) if isinstance(body, dict) else body
        print(f"memq: the daemon gave no login code ({status}): {error}", file=sys.stderr)
        return None
    return f"http://127.0.0.1:{settings.port}{body['path']}"


def cmd_open(args: argparse.Namespace, settings: Settings) -> int:
    url = login_url(settings)
    if url is None:
        return EXIT_ERROR
    if args.print:
        print(url)
        return EXIT_OK
    import webbrowser

    if webbrowser.open(url):
        print("memq: opened the viewer in your browser (the login link works once, for 60 s)")
        return EXIT_OK
    print("memq: found no browser to open; open this link within 60 s:", file=sys.stderr)
    print(url)
    return EXIT_OK


COMMANDS: dict[str, Command] = {"open": cmd_open}
