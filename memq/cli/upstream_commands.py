"""``memq upstream list|retry|drop``: the events on their way to the team server
(``memq.team.outbox_admin``).

Through the running daemon's API (which wakes its forwarder after a retry); with no daemon,
on the configured database itself (``memq.team.direct``: the home's SQLite file or
``MEMQ_DATABASE_URL``'s schema), and the next daemon to start sends what was retried.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from memq.cli.arguments import whole_number
from memq.cli.command import EXIT_ERROR, EXIT_OK, EXIT_USAGE, Command, Subcommands
from memq.client.daemon_api import Answer, api
from memq.config import Settings
from memq.env import Variable
from memq.limits import MAX_INTEGER, MAX_PAGE

if TYPE_CHECKING:
    from memq.team.direct import PgDatabase, SqliteDatabase

STATES = ("waiting", "refused", "local_only")
_UNAVAILABLE = 503


def add_parsers(commands: Subcommands) -> None:
    """Add memq upstream to ``memq``'s parser."""
    parser = commands.add_parser(
        "upstream",
        help="events on their way to the team server: list, retry, drop",
        description="The outbox of events this machine forwards to the team server "
        "(MEMQ_UPSTREAM). memq status shows its counts; these commands show and act on its "
        "events, with the daemon running or not.",
    )
    actions = parser.add_subparsers(dest="upstream_action", metavar="ACTION", required=True)
    listing = actions.add_parser(
        "list",
        help="the events waiting or refused, with their error, age and session",
        description="Events in id order (the order they are sent in). A refused event does "
        "not hold back the later events of its session: retried, it reaches the server "
        "after those.",
    )
    listing.add_argument(
        "--state",
        action="append",
        choices=STATES,
        help="only events in this state (repeatable; default: waiting and refused)",
    )
    listing.add_argument(
        "--limit", type=whole_number(1, MAX_PAGE), default=100, help="at most this many (100)"
    )
    listing.add_argument("--json", action="store_true", help="print JSON")
    retry = actions.add_parser(
        "retry",
        help="send refused events again (after the key's scope or the event was fixed)",
        description="Refused events wait again and are sent next, lowest id first; each "
        "keeps its id, so the server counts it once.",
    )
    retry.add_argument(
        "ids", nargs="*", type=whole_number(1, MAX_INTEGER), help="event ids (memq upstream list)"
    )
    retry.add_argument("--all", action="store_true", help="every refused event")
    drop = actions.add_parser(
        "drop",
        help="forget events that will not be sent (refused or kept local), by id",
        description="Removes the events from the outbox for good: they are never sent. "
        "They stay in this machine's memory. Each drop is logged (upstream.dropped).",
    )
    drop.add_argument(
        "ids", nargs="+", type=whole_number(1, MAX_INTEGER), help="event ids (memq upstream list)"
    )


def cmd_upstream(args: argparse.Namespace, settings: Settings) -> int:
    """``memq upstream ACTION ...``."""
    action: Callable[[argparse.Namespace, Settings], int] = {
        "list": _list,
        "retry": _retry,
        "drop": _drop,
    }[args.upstream_action]
    return action(args, settings)


def _list(args: argparse.Namespace, settings: Settings) -> int:
    states = args.state or ["waiting", "refused"]
    params = [("limit", str(args.limit)), *(("state", state) for state in states)]

    async def read(database: SqliteDatabase | PgDatabase) -> dict[str, Any]:
        from memq.team import outbox_admin

        body = await outbox_admin.held_events(
            database, outbox_admin.parse_states(states), args.limit
        )
        return {**body, "upstream": settings.upstream or None}

    body = api(
        settings,
        "GET",
        f"/api/upstream/events?{urlencode(params)}",
        direct=lambda: _direct(settings, read, create=False),
    )
    if body is None:
        return EXIT_ERROR
    if args.json:
        print(json.dumps(body, indent=2))
        return EXIT_OK
    for line in _list_lines(body):
        print(line)
    return EXIT_OK


def _list_lines(body: dict[str, Any]) -> list[str]:
    lines = []
    if not body.get("upstream"):
        lines.append(f"{Variable.UPSTREAM} is not set: nothing is forwarded (these events wait)")
    items = body["items"]
    if items:
        lines.append(f"{'ID':>8}  {'STATE':<10} {'AGE':>8} {'TRIES':>5}  {'KIND':<14} SESSION")
    for item in items:
        lines.append(
            f"{item['message_id']:>8}  {item['state']:<10} {_age(item['age_seconds']):>8} "
            f"{item['attempts']:>5}  {item['kind']:<14} {item['session_id']}"
        )
        if item.get("last_error"):
            lines.append(f"{'':>10}error: {item['last_error']}")
    counts = body["counts"]
    lines.append(
        f"({counts['waiting']} waiting, {counts['refused']} refused, "
        f"{counts['local_only']} kept local)"
    )
    if counts["refused"]:
        lines.append("memq upstream retry ID... (or --all) sends refused events again")
    return lines


def _age(seconds: float) -> str:
    """``45s``, ``12m05s``, ``3h07m``, ``2d04h``."""
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _retry(args: argparse.Namespace, settings: Settings) -> int:
    if args.all == bool(args.ids):
        print("memq upstream retry: give event ids or --all (not both)", file=sys.stderr)
        return EXIT_USAGE
    request: dict[str, Any] = {"all": True} if args.all else {"ids": args.ids}

    async def write(database: SqliteDatabase | PgDatabase) -> dict[str, Any]:
        from memq.team import outbox_admin

        ids = outbox_admin.ids_or_all(request)
        return {"retried": await outbox_admin.retry_refused(database, ids)}

    body = api(
        settings,
        "POST",
        "/api/upstream/retry",
        request,
        direct=lambda: _direct(settings, write, create=True),
    )
    if body is None:
        return EXIT_ERROR
    retried = body["retried"]
    if not retried:
        print("no refused events to retry")
    else:
        ids = ", ".join(str(message_id) for message_id in retried)
        print(f"retried {len(retried)} event(s): {ids}; they are sent next")
    return EXIT_OK


def _drop(args: argparse.Namespace, settings: Settings) -> int:
    request = {"ids": args.ids}

    async def write(database: SqliteDatabase | PgDatabase) -> dict[str, Any]:
        from memq.team import outbox_admin

        return {"dropped": await outbox_admin.drop_unsent(database, outbox_admin.ids_only(request))}

    body = api(
        settings,
        "POST",
        "/api/upstream/drop",
        request,
        direct=lambda: _direct(settings, write, create=True),
    )
    if body is None:
        return EXIT_ERROR
    for item in body["dropped"]:
        print(
            f"dropped event {item['message_id']} ({item['state']}, {item['kind']}, "
            f"{item['session_id']}): never sent"
        )
    return EXIT_OK


def _direct(
    settings: Settings,
    fn: Callable[[SqliteDatabase | PgDatabase], Awaitable[dict[str, Any]]],
    *,
    create: bool,
) -> Answer:
    """``fn`` on the configured database with no daemon, answered as the API would: the
    status and the JSON body (an error's status is its exception's). A read of a home
    that has no database yet answers an empty outbox rather than create one."""
    import anyio

    from memq.exceptions import MemqError
    from memq.team.direct import open_database

    if not settings.database_url and not settings.database_path.exists() and not create:
        empty: dict[str, Any] = {"items": [], "counts": dict.fromkeys(STATES, 0), "machine": None}
        return 200, json.dumps({**empty, "upstream": settings.upstream or None}).encode()
    if create and settings.paths.home.is_dir():
        from memq.logs import configure_logging

        # What is retried or dropped goes to the daemon's log, as if it had done it.
        configure_logging(log_file=settings.paths.log_file, console=False, level=settings.log_level)

    async def run() -> dict[str, Any]:
        async with open_database(settings) as database:
            return await fn(database)

    try:
        body = anyio.run(run)
    except MemqError as exc:
        status = exc.http_status or _UNAVAILABLE
        return status, json.dumps({"error": str(exc)}).encode()
    return 200, json.dumps(body).encode()


COMMANDS: dict[str, Command] = {"upstream": cmd_upstream}
