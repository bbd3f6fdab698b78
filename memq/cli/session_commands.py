"""A session's commands: list sessions, show a session's history, title it, fork it, revert
it, move it to another id, delete it. Each talks to the running daemon."""

from __future__ import annotations

import argparse
import json
import sys
from urllib.parse import urlencode

from memq.cli.arguments import add_utc_option, whole_number
from memq.cli.command import EXIT_ERROR, EXIT_OK, EXIT_USAGE, Command, Subcommands
from memq.cli.formats import WHEN_WIDTH, when
from memq.cli.memory_commands import (
    ASSISTANT_WIDTH,
    add_assistant_filter,
    add_author_filter,
    assistant_params,
    author_params,
)
from memq.client.daemon_api import Answer, api, request, session_path, session_url
from memq.config import Settings
from memq.limits import DEFAULT_HISTORY_ITEMS, MAX_HISTORY_ITEMS, MAX_INTEGER, MAX_PAGE


def add_parsers(commands: Subcommands) -> None:
    """Add the session commands to ``memq``'s parser."""
    sessions = commands.add_parser("sessions", help="list sessions, newest first")
    sessions.add_argument("--json", action="store_true", help="print JSON")
    sessions.add_argument(
        "--limit", type=whole_number(1, MAX_PAGE), default=50, help="at most this many (50)"
    )
    add_assistant_filter(sessions, "the sessions")
    add_author_filter(sessions, "the sessions holding records")
    add_utc_option(sessions)
    title = commands.add_parser("title", help="show or set a session's title")
    title.add_argument("session", help="the session (id or claude-code:<id>)")
    title.add_argument("title", nargs="?", help="the new title")
    title.add_argument(
        "--reset", action="store_true", help="give it back the title from its first prompt"
    )
    _add_delete_parser(commands)
    _add_revert_parser(commands)
    _add_history_parser(commands)
    _add_fork_parser(commands)
    transfer = commands.add_parser(
        "transfer", help="move a session's memory to another session id (merging into it)"
    )
    transfer.add_argument("source", help="the session to move (id or claude-code:<id>)")
    transfer.add_argument("target", help="the session that receives it")


def _add_delete_parser(commands: Subcommands) -> None:
    delete = commands.add_parser(
        "delete",
        help="delete a session: its memory, queue rows and settings",
        description="Deletes everything memq holds of the session; its forks keep their "
        "copies as their own. Asks first on a terminal; without one, --yes is required.",
    )
    delete.add_argument("session", help="the session (id or claude-code:<id>)")
    delete.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")


def _add_revert_parser(commands: Subcommands) -> None:
    revert = commands.add_parser(
        "revert",
        help="forget what a session learned after a point (after rewinding a conversation)",
    )
    revert.add_argument("session", help="the session (id or claude-code:<id>)")
    cut = revert.add_mutually_exclusive_group(required=True)
    cut.add_argument(
        "--after",
        type=whole_number(1, MAX_INTEGER),
        metavar="MESSAGE_ID",
        help="keep this message and all before it (memq history shows the ids)",
    )
    cut.add_argument(
        "--last",
        type=whole_number(1, MAX_INTEGER),
        metavar="N",
        help="forget the N newest messages that left memory",
    )


def _add_history_parser(commands: Subcommands) -> None:
    history = commands.add_parser(
        "history",
        help="a session's newest prompts and tool calls since its last summary",
        description="What memq's model-based processors are shown of a session: its newest "
        "prompts and observations since its last summary, oldest first, starting at a prompt.",
    )
    history.add_argument("session", help="the session (id or claude-code:<id>)")
    history.add_argument(
        "--max",
        type=int,
        default=DEFAULT_HISTORY_ITEMS,
        metavar="N",
        help=f"at most N entries ({DEFAULT_HISTORY_ITEMS}, up to {MAX_HISTORY_ITEMS})",
    )
    history.add_argument("--json", action="store_true", help="print JSON")
    add_utc_option(history)


def _add_fork_parser(commands: Subcommands) -> None:
    fork = commands.add_parser(
        "fork",
        help="start a new session with a copy of a session's memory",
        description="The new session records SESSION as its parent and inherits its prompts, "
        "observations and summaries (searches across sessions show them once, as the "
        "parent's). Claude Code's --fork-session is linked this way by itself.",
    )
    fork.add_argument("session", help="the session to fork (id or claude-code:<id>)")
    fork.add_argument(
        "--to", metavar="NEW_ID", help="the new session's id (default: a new random id)"
    )
    fork.add_argument("--json", action="store_true", help="print JSON")


def cmd_sessions(args: argparse.Namespace, settings: Settings) -> int:
    def read_directly() -> Answer:
        from memq.memory import direct

        return direct.sessions(
            direct.database_of(settings),
            limit=args.limit,
            assistants=args.assistant,
            authors=args.author,
        )

    query = urlencode(
        [("limit", str(args.limit)), *assistant_params(args.assistant), *author_params(args.author)]
    )
    body = api(settings, "GET", f"/api/sessions?{query}", direct=read_directly)
    if body is None:
        return EXIT_ERROR
    if args.json:
        print(json.dumps(body, indent=2))
        return EXIT_OK
    print(
        f"{'SESSION':<48} {'ASSISTANT':<{ASSISTANT_WIDTH}} {'PROMPTS':>7} {'OBS':>5} {'SUMS':>4}  "
        f"{'UPDATED':<{WHEN_WIDTH}}  TITLE"
    )
    for item in body["items"]:
        parent = f"  (fork of {item['parent_key']})" if item.get("parent_key") else ""
        print(
            f"{item['key']:<48} {item['assistant']:<{ASSISTANT_WIDTH}} "
            f"{item['prompt_count']:>7} {item['observation_count']:>5} "
            f"{item['summary_count']:>4}  {when(item['updated_at'], utc=args.utc):<{WHEN_WIDTH}}  "
            f"{item.get('title') or ''}{parent}"
        )
    print(f"({body['total']} sessions)")
    return EXIT_OK


def cmd_title(args: argparse.Namespace, settings: Settings) -> int:
    if args.title is not None and args.reset:
        print("memq title: give a TITLE or --reset, not both", file=sys.stderr)
        return EXIT_USAGE
    if args.title is None and not args.reset:
        detail = api(settings, "GET", session_url(args.session))
        if detail is None:
            return EXIT_ERROR
        print(detail.get("title") or "(no title)")
        return EXIT_OK
    new_title = None if args.reset else args.title
    body = api(settings, "PUT", session_path(args.session, "title"), {"title": new_title})
    if body is None:
        return EXIT_ERROR
    print(f"{body['session_id']}: {body['title'] or '(no title)'}")
    return EXIT_OK


def cmd_history(args: argparse.Namespace, settings: Settings) -> int:
    body = api(settings, "GET", f"{session_path(args.session, 'history')}?max={args.max}")
    if body is None:
        return EXIT_ERROR
    if args.json:
        print(json.dumps(body, indent=2))
        return EXIT_OK
    after = body["after_summary"]
    since = f"since summary {after}" if after is not None else "since it started"
    print(f"session {body['session_id']}, {since}")
    omitted = body["omitted"]
    if omitted:
        print(f"  ({omitted} earlier {'entry' if omitted == 1 else 'entries'} left out)")
    for item in body["items"]:
        if item["type"] == "prompt":
            text = " ".join(item["text"].split())
            text = text if len(text) <= 120 else text[:119] + "…"
            entry = f"> prompt {item['number']}: {text}"
        else:
            entry = f"  {item['title']}"
        print(f"  {item['message_id']:>8}  {when(item['created_at'], utc=args.utc)}  {entry}")
    if not body["items"]:
        print("  (nothing since the last summary)")
    return EXIT_OK


def cmd_fork(args: argparse.Namespace, settings: Settings) -> int:
    # An empty object, not null, when no id is given: the route takes a JSON object.
    body = api(
        settings, "POST", session_path(args.session, "fork"), {"to": args.to} if args.to else {}
    )
    if body is None:
        return EXIT_ERROR
    if args.json:
        print(json.dumps(body, indent=2))
        return EXIT_OK
    print(f"forked {body['parent']} into {body['child']}")
    print(
        f"  inherited {body['prompts']} prompt(s), {body['observations']} observation(s) "
        f"and {body['summaries']} summary(ies)"
    )
    return EXIT_OK


def cmd_revert(args: argparse.Namespace, settings: Settings) -> int:
    cut = {"after": args.after} if args.after is not None else {"last": args.last}
    body = api(settings, "POST", session_path(args.session, "revert"), cut)
    if body is None:
        return EXIT_ERROR
    if body["from_message_id"] is None:
        print(f"{body['session_id']} has no memory to revert")
        return EXIT_OK
    if args.after is not None and not body["memory_rows"] and not body["queue_rows"]:
        print(f"{body['session_id']} has nothing after message {args.after} to forget")
        return EXIT_OK
    print(
        f"reverted {body['session_id']} from message {body['from_message_id']} on: "
        f"{body['memory_rows']} record(s) and {body['queue_rows']} queue row(s) forgotten"
    )
    return EXIT_OK


def cmd_transfer(args: argparse.Namespace, settings: Settings) -> int:
    body = api(settings, "POST", session_path(args.source, "transfer"), {"to": args.target})
    if body is None:
        return EXIT_ERROR
    print(
        f"moved {body['records']} record(s) and {body['queue_rows']} queue row(s) "
        f"from {body['from']} to {body['to']}"
    )
    return EXIT_OK


def cmd_delete(args: argparse.Namespace, settings: Settings) -> int:
    if not args.yes:
        if not sys.stdin.isatty():
            print(
                f"memq delete: not deleting {args.session} without confirmation; "
                "pass --yes to delete without being asked",
                file=sys.stderr,
            )
            return EXIT_USAGE
        if not _confirm_delete(settings, args.session):
            print("nothing deleted", file=sys.stderr)
            return EXIT_ERROR
    body = api(settings, "DELETE", session_url(args.session))
    if body is None:
        return EXIT_ERROR
    print(
        f"deleted {body['deleted']}: {body['memory_rows']} memory row(s) and "
        f"{body['queue_rows']} queue row(s)"
    )
    return EXIT_OK


def _confirm_delete(settings: Settings, session: str) -> bool:
    """Ask on the terminal; True only for a yes."""
    what = session
    try:
        found = request(settings, "GET", session_url(session))
    except OSError:
        found = None  # the delete itself will say that the daemon is not answering
    if found is not None and found.status == 200 and isinstance(found.body, dict):
        detail = found.body
        what = (
            f"{detail['key']} ({detail['prompt_count']} prompt(s), "
            f"{detail['observation_count']} observation(s), "
            f"{detail['summary_count']} summary(ies))"
        )
    print(f"delete {what} and everything memq holds of it? [y/N] ", end="", file=sys.stderr)
    sys.stderr.flush()
    answer = sys.stdin.readline()
    return answer.strip().lower() in {"y", "yes"}


COMMANDS: dict[str, Command] = {
    "sessions": cmd_sessions,
    "title": cmd_title,
    "history": cmd_history,
    "fork": cmd_fork,
    "revert": cmd_revert,
    "transfer": cmd_transfer,
    "delete": cmd_delete,
}
