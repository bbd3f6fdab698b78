"""The CLI's session commands: list, settings, titles, forks, history, revert, transfer,
export and import. Each talks to the running daemon (``memq.cli_client``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any, TypeAlias
from urllib.parse import quote

from memq.cli_args import MAX_ID, MAX_PAGE, add_utc_option, whole_number
from memq.cli_client import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    WHEN_WIDTH,
    Answer,
    api,
    api_raw,
    session_path,
    session_url,
    when,
)
from memq.config import Settings

# A string: argparse's class cannot be subscripted at run time.
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def add_session_commands(commands: Commands) -> None:
    """Add every session command to ``memq``'s parser."""
    sessions = commands.add_parser("sessions", help="list sessions, newest first")
    sessions.add_argument("--json", action="store_true", help="print JSON")
    sessions.add_argument(
        "--limit", type=whole_number(1, MAX_PAGE), default=50, help="at most this many (50)"
    )
    add_utc_option(sessions)
    _add_settings_commands(commands)
    _add_delete_command(commands)
    _add_revert_command(commands)
    _add_history_command(commands)
    _add_fork_command(commands)
    _add_transfer_commands(commands)


def _add_settings_commands(commands: Commands) -> None:
    """memq config and memq title."""
    config = commands.add_parser(
        "config",
        help="show or change a session's settings (processor, model, paused)",
        description="memq config SESSION shows every setting; memq config SESSION KEY shows "
        "one; memq config SESSION KEY VALUE sets it; --unset gives it back its default. "
        "The worker applies a change from the session's next message. Only a session memq "
        "knows can be configured; --create configures a new one ahead of its first event. "
        "memq config --global [KEY [VALUE]] [--unset] does the same for memq's own settings "
        "(MEMQ_HOME/settings.toml).",
    )
    config.add_argument(
        "session", nargs="?", help="the session (id or claude-code:<id>); with --global, KEY"
    )
    config.add_argument("key", nargs="?", help="processor, model or paused")
    config.add_argument("value", nargs="?", help="the new value (paused: true or false)")
    config.add_argument("--unset", action="store_true", help="give KEY back its default")
    config.add_argument(
        "--create",
        action="store_true",
        help="set KEY VALUE even for a session memq has not seen yet (else an error)",
    )
    config.add_argument(
        "--global",
        dest="global_settings",
        action="store_true",
        help="memq's own settings (port, linger, ...) in MEMQ_HOME/settings.toml",
    )
    config.add_argument("--json", action="store_true", help="print JSON")
    title = commands.add_parser("title", help="show or set a session's title")
    title.add_argument("session", help="the session (id or claude-code:<id>)")
    title.add_argument("title", nargs="?", help="the new title")
    title.add_argument(
        "--reset", action="store_true", help="give it back the title from its first prompt"
    )


def cmd_sessions(args: argparse.Namespace, settings: Settings) -> int:
    def read_directly() -> Answer:
        from memq.memory import direct

        return direct.sessions(settings.paths.database, limit=args.limit)

    body = api(settings, "GET", f"/api/sessions?limit={args.limit}", direct=read_directly)
    if body is None:
        return EXIT_ERROR
    if args.json:
        print(json.dumps(body, indent=2))
        return EXIT_OK
    print(
        f"{'SESSION':<48} {'PROMPTS':>7} {'OBS':>5} {'SUMS':>4}  {'UPDATED':<{WHEN_WIDTH}}  TITLE"
    )
    for item in body["items"]:
        parent = f"  (fork of {item['parent_key']})" if item.get("parent_key") else ""
        print(
            f"{item['key']:<48} {item['prompt_count']:>7} {item['observation_count']:>5} "
            f"{item['summary_count']:>4}  {when(item['updated_at'], utc=args.utc):<{WHEN_WIDTH}}  "
            f"{item.get('title') or ''}{parent}"
        )
    print(f"({body['total']} sessions)")
    return EXIT_OK


def _add_revert_command(commands: Commands) -> None:
    """memq revert."""
    revert = commands.add_parser(
        "revert",
        help="forget what a session learned after a point (after rewinding a conversation)",
    )
    revert.add_argument("session", help="the session (id or claude-code:<id>)")
    cut = revert.add_mutually_exclusive_group(required=True)
    cut.add_argument(
        "--after",
        type=whole_number(1, MAX_ID),
        metavar="MESSAGE_ID",
        help="keep this message and all before it (memq history shows the ids)",
    )
    cut.add_argument(
        "--last",
        type=whole_number(1, MAX_ID),
        metavar="N",
        help="forget the N newest messages that left memory",
    )


def _add_transfer_commands(commands: Commands) -> None:
    """memq transfer, memq export and memq import."""
    transfer = commands.add_parser(
        "transfer", help="move a session's memory to another session id (merging into it)"
    )
    transfer.add_argument("source", help="the session to move (id or claude-code:<id>)")
    transfer.add_argument("target", help="the session that receives it")
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


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    def read_directly() -> Answer:
        from memq.memory import direct

        return direct.export(settings.paths.database, args.session)

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


def cmd_config(args: argparse.Namespace, settings: Settings) -> int:
    if args.key is None and (args.value is not None or args.unset):
        print("memq config: name the setting (processor, model or paused)", file=sys.stderr)
        return EXIT_USAGE
    if args.unset and args.value is not None:
        print("memq config: give a VALUE or --unset, not both", file=sys.stderr)
        return EXIT_USAGE
    if args.create and args.value is None:
        print("memq config: --create goes with a KEY and a VALUE to set", file=sys.stderr)
        return EXIT_USAGE
    path = session_path(args.session, "config")
    if args.key is None:
        body = api(settings, "GET", path)
        show: Callable[[dict[str, Any]], None] = _print_config
    else:
        path = f"{path}/{quote(args.key, safe='')}"
        if args.unset:
            body = api(settings, "DELETE", path)
        elif args.value is not None:
            request: dict[str, Any] = {"value": args.value}
            if args.create:
                request["create"] = True
            body = api(settings, "PUT", path, request)
        else:
            body = api(settings, "GET", path)
        show = _print_setting
    if body is None:
        return EXIT_ERROR
    if args.json:
        print(json.dumps(body, indent=2))
    else:
        show(body)
    return EXIT_OK


def _print_config(body: dict[str, Any]) -> None:
    explicit = set(body["set"])
    print(body["session_id"])
    for name, value in body["config"].items():
        origin = "" if name in explicit else "  (default)"
        print(f"  {name:<10} {_setting_text(value)}{origin}")
    effective = body["effective"]
    model = f" with {effective['model']}" if effective.get("model") else ""
    pause = body.get("pause")
    if pause is None:
        print(f"  next message: {effective['processor']}{model}")
        return
    print(f"  next message: {effective['processor']}{model}, once the session resumes")
    print(f"  PAUSED     {pause['reason']}")
    if pause["cause"] == "processor":
        print(
            "             restart memq with it set, or choose another processor: "
            f"memq config {body['session_id']} processor NAME"
        )


def _print_setting(body: dict[str, Any]) -> None:
    print(f"{body['name']} = {_setting_text(body['value'])}")
    if body.get("known") is False:
        print(f"  (memory has no session {body['session_id']} yet)")


def _setting_text(value: object) -> str:
    if value is None:
        return "-"
    return json.dumps(value) if isinstance(value, bool) else str(value)


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


def _add_history_command(commands: Commands) -> None:
    """memq history."""
    history = commands.add_parser(
        "history",
        help="a session's newest prompts and tool calls since its last summary",
        description="What memq's model-based processors are shown of a session: its newest "
        "prompts and observations since its last summary, oldest first, starting at a prompt.",
    )
    history.add_argument("session", help="the session (id or claude-code:<id>)")
    history.add_argument(
        "--max", type=int, default=50, metavar="N", help="at most N entries (50, up to 1000)"
    )
    history.add_argument("--json", action="store_true", help="print JSON")
    add_utc_option(history)


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


def _add_fork_command(commands: Commands) -> None:
    """memq fork."""
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


def _add_delete_command(commands: Commands) -> None:
    """memq delete."""
    delete = commands.add_parser(
        "delete",
        help="delete a session: its memory, queue rows and settings",
        description="Deletes everything memq holds of the session; its forks keep their "
        "copies as their own. Asks first on a terminal; without one, --yes is required.",
    )
    delete.add_argument("session", help="the session (id or claude-code:<id>)")
    delete.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")


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
    from memq.worker import control

    what = session
    try:
        found = control.request(settings, "GET", session_url(session))
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


SESSION_COMMANDS: dict[str, Callable[[argparse.Namespace, Settings], int]] = {
    "sessions": cmd_sessions,
    "delete": cmd_delete,
    "config": cmd_config,
    "title": cmd_title,
    "history": cmd_history,
    "fork": cmd_fork,
    "revert": cmd_revert,
    "transfer": cmd_transfer,
    "export": cmd_export,
    "import": cmd_import,
}
