"""``memq keys create|list|revoke``: the team server's API keys (``memq.team.keys``).

They work on the configured database itself (``MEMQ_DATABASE_URL``'s PostgreSQL schema,
else ``MEMQ_HOME/memq.db``), on the team server's host, whether a daemon runs or not
(``memq.team.direct``). A new key's token is printed once; nothing prints it again.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from memq.cli.command import EXIT_ERROR, EXIT_OK, EXIT_USAGE, Command, Subcommands
from memq.cli.formats import when
from memq.config import Settings
from memq.exceptions import (
    ApiKeyError,
    InvalidRequestError,
    QueueLockedError,
    SchemaError,
    SettingError,
    StorageError,
)

if TYPE_CHECKING:
    from memq.team.direct import PgDatabase, SqliteDatabase
    from memq.team.keys import ApiKey

# memq.team.keys' RECENT_HOURS (tests/integration/test_team_keys.py checks): the parser is
# built for every command, so this module does not import the queue's stack until it runs.
RECENT_HOURS: Final = 24


def add_parsers(commands: Subcommands) -> None:
    """Add memq keys to ``memq``'s parser."""
    parser = commands.add_parser(
        "keys",
        help="API keys of the team server: create, list, revoke",
        description="API keys for the team server (memq serve --team), kept in the "
        "configured database (MEMQ_DATABASE_URL, else MEMQ_HOME/memq.db); run on the "
        "server's host, daemon running or not.",
    )
    actions = parser.add_subparsers(dest="keys_action", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create",
        help="make a key and print its token once",
        description="Make an API key for a person or a machine and print its token, once: "
        "memq stores only a hash of it. The key may use the projects named (repository "
        "identities such as github.com/owner/repo, or a git remote URL), or all of them.",
    )
    create.add_argument("name", metavar="NAME", help="who or what the key is for")
    scope = create.add_mutually_exclusive_group(required=True)
    scope.add_argument(
        "--project",
        dest="projects",
        metavar="P",
        action="append",
        help="a project the key may read and write (repeat for several)",
    )
    scope.add_argument("--all-projects", action="store_true", help="the key may use every project")
    create.add_argument("--json", action="store_true", help="print JSON")
    listing = actions.add_parser(
        "list",
        help="list the keys (never their secrets)",
        description="Every key, revoked ones too: id, name, projects, when made, last "
        f"used and revoked, and its requests in the last {RECENT_HOURS} hours.",
    )
    listing.add_argument("--json", action="store_true", help="print JSON")
    revoke = actions.add_parser(
        "revoke",
        help="revoke a key by name or id (at once)",
        description="Revoke a key: the server refuses it from its next request on.",
    )
    revoke.add_argument("key", metavar="NAME_OR_ID", help="the key's name or key id")
    revoke.add_argument("--json", action="store_true", help="print JSON")


def cmd_keys(args: argparse.Namespace, settings: Settings) -> int:
    """``memq keys ACTION ...``."""
    action: Callable[[argparse.Namespace, SqliteDatabase | PgDatabase], Awaitable[int]] = {
        "create": _create,
        "list": _list,
        "revoke": _revoke,
    }[args.keys_action]

    import anyio  # here: the parser is built for every command, which need not load it

    from memq.team.direct import open_database

    async def run() -> int:
        async with open_database(settings) as database:
            return await action(args, database)

    try:
        return anyio.run(run)
    except SettingError as exc:  # the postgres extra is not installed
        print(f"memq: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except InvalidRequestError as exc:
        print(f"memq keys: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ApiKeyError, StorageError, SchemaError, QueueLockedError) as exc:
        print(f"memq keys: {exc}", file=sys.stderr)
        return EXIT_ERROR


async def _create(args: argparse.Namespace, database: SqliteDatabase | PgDatabase) -> int:
    from memq.team import keys

    created = await keys.create_key(
        database, args.name, projects=args.projects or (), all_projects=args.all_projects
    )
    if args.json:
        print(json.dumps({**created.key.to_dict(), "token": created.token}, indent=2))
        return EXIT_OK
    key = created.key
    print(f"created key {key.key_id} ({key.name}) for {_scope(key)}")
    print(created.token)
    print("This token is not shown again: memq keeps only its hash. Store it now.")
    return EXIT_OK


async def _list(args: argparse.Namespace, database: SqliteDatabase | PgDatabase) -> int:
    from memq.team import keys

    found = await keys.list_keys(database)
    if args.json:
        print(json.dumps([key.to_dict() for key in found], indent=2))
        return EXIT_OK
    if not found:
        print("no keys: memq keys create NAME --project P makes one")
        return EXIT_OK
    width = max(len(key.name) for key in found)
    states = [
        f"revoked {_at(k.revoked_at)}" if k.revoked_at is not None else "active" for k in found
    ]
    state_width = max(len(state) for state in states)
    for key, state in zip(found, states, strict=True):
        used = _at(key.last_used_at) if key.last_used_at is not None else "never"
        print(
            f"{key.key_id}  {key.name.ljust(width)}  {state.ljust(state_width)}"
            f"  made {_at(key.created_at)}"
            f"  last used {used}  {key.recent_requests} requests/{RECENT_HOURS}h"
            f"  {_scope(key)}"
        )
    return EXIT_OK


async def _revoke(args: argparse.Namespace, database: SqliteDatabase | PgDatabase) -> int:
    from memq.team import keys

    key = await keys.revoke_key(database, args.key)
    if args.json:
        print(json.dumps(key.to_dict(), indent=2))
    else:
        print(f"revoked key {key.key_id} ({key.name}): refused from its next request on")
    return EXIT_OK


def _scope(key: ApiKey) -> str:
    return "all projects" if key.all_projects else ", ".join(key.projects)


def _at(epoch_ms: int) -> str:
    return when(datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat())


COMMANDS: dict[str, Command] = {"keys": cmd_keys}
