"""Reading memory: search, timeline, context and records by reference (show). Each asks the
daemon, or reads the database file directly when no daemon answers (``memq.memory.direct``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any
from urllib.parse import urlencode

from memq.cli.arguments import (
    LateChoices,
    add_utc_option,
    iso_time,
    number,
    whole_number,
)
from memq.cli.command import EXIT_ERROR, EXIT_OK, EXIT_USAGE, Command, Subcommands
from memq.cli.formats import WHEN_WIDTH, score_text, when
from memq.client.daemon_api import Answer, api
from memq.config import Settings
from memq.limits import (
    DEFAULT_CONTEXT_BUDGET,
    DEFAULT_SEARCH_RESULTS,
    DEFAULT_TIMELINE_SIDE,
    MAX_CONTEXT_BUDGET,
    MAX_INTEGER,
    MAX_SEARCH_RESULTS,
    MAX_TIMELINE_SIDE,
)


def _record_types() -> list[str]:
    from memq.memory.records import RecordType

    return [record_type.value for record_type in RecordType]


def _observation_kinds() -> list[str]:
    from memq.memory.records import ObservationKind

    return [kind.value for kind in ObservationKind]


# What `memq search --type` and `--kind` accept: memory's own names, read when first needed.
RECORD_TYPES = LateChoices(_record_types)
OBSERVATION_KINDS = LateChoices(_observation_kinds)
ASSISTANT_WIDTH = 11  # the longest assistant name, claude-code


def add_assistant_filter(parser: argparse.ArgumentParser, what: str) -> None:
    """``--assistant NAME`` (repeatable): only ``what`` of that assistant."""
    from memq.assistants import NAMES

    parser.add_argument(
        "--assistant",
        action="append",
        metavar="NAME",
        type=assistant_name,
        help=f"only {what} of this assistant: {', '.join(NAMES)} (repeatable)",
    )


def add_author_filter(parser: argparse.ArgumentParser, what: str) -> None:
    """``--author NAME`` (repeatable): only ``what`` of that person (a team key's name)."""
    parser.add_argument(
        "--author",
        action="append",
        metavar="NAME",
        help=f"only {what} of this person, as a team server names them (repeatable)",
    )


def author_params(names: list[str] | None) -> list[tuple[str, str]]:
    """``--author`` values as the API's query parameters."""
    return [("author", name) for name in dict.fromkeys(names or ())]


def assistant_name(text: str) -> str:
    """An argparse type: an assistant's name as memq keys sessions by it (``claude`` is
    ``claude-code``)."""
    from memq.assistants import canonical_name
    from memq.exceptions import UnknownAssistantError

    try:
        return canonical_name(text)
    except UnknownAssistantError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def assistant_params(names: list[str] | None) -> list[tuple[str, str]]:
    """``--assistant`` values as the API's query parameters."""
    return [("assistant", name) for name in dict.fromkeys(names or ())]


def _add_search_parser(commands: Subcommands) -> None:
    search = commands.add_parser(
        "search",
        help="search memory: observations, summaries and prompts, best first",
        description="Words are searched as typed (punctuation is ignored): records with every "
        "word first, else records with any of them. --fts takes SQLite FTS5 syntax instead "
        '("exact phrase", a AND NOT b, title: word, prefix*).',
    )
    search.add_argument("query", nargs="+", help="what to look for")
    search.add_argument("--project", help="only this project (a directory; '.' for this one)")
    search.add_argument("--session", help="only this session (id or claude-code:<id>)")
    add_assistant_filter(search, "the records")
    add_author_filter(search, "the records")
    search.add_argument(
        "--type",
        action="append",
        choices=RECORD_TYPES,
        metavar="TYPE",
        help="only this record type: %(choices)s (repeatable)",
    )
    search.add_argument(
        "--kind",
        action="append",
        choices=OBSERVATION_KINDS,
        metavar="KIND",
        help="only observations of this kind: %(choices)s (repeatable)",
    )
    search.add_argument("--file", help="only records that read or changed a path containing this")
    search.add_argument(
        "--since",
        metavar="ISO",
        type=iso_time,
        help="only records from this time on (UTC unless it names a zone)",
    )
    search.add_argument(
        "--until", metavar="ISO", type=iso_time, help="only records before this time"
    )
    search.add_argument(
        "--limit",
        type=whole_number(1, MAX_SEARCH_RESULTS),
        default=DEFAULT_SEARCH_RESULTS,
        help=f"at most this many ({DEFAULT_SEARCH_RESULTS}, max {MAX_SEARCH_RESULTS})",
    )
    search.add_argument(
        "--min-score",
        type=number,
        metavar="SCORE",
        help="only records scoring at least this (scores compare within one search)",
    )
    search.add_argument("--fts", action="store_true", help="QUERY is SQLite FTS5 query syntax")
    search.add_argument("--json", action="store_true", help="print JSON")
    add_utc_option(search)


def add_parsers(commands: Subcommands) -> None:
    """Add memq search, memq timeline, memq context and memq show to ``memq``'s parser."""
    _add_search_parser(commands)
    timeline = commands.add_parser(
        "timeline", help="a record and the records of its session just before and after it"
    )
    timeline.add_argument(
        "id", type=whole_number(1, MAX_INTEGER), help="the message id of a record (see memq search)"
    )
    side = whole_number(0, MAX_TIMELINE_SIDE)
    default_side = DEFAULT_TIMELINE_SIDE
    timeline.add_argument(
        "--before", type=side, default=default_side, help=f"records before it ({default_side})"
    )
    timeline.add_argument(
        "--after", type=side, default=default_side, help=f"records after it ({default_side})"
    )
    timeline.add_argument("--json", action="store_true", help="print JSON")
    add_utc_option(timeline)

    context = commands.add_parser(
        "context", help="print the context memq gives a session starting in a directory"
    )
    context.add_argument(
        "--cwd", metavar="DIR", help="the session's working directory (default: this one)"
    )
    context.add_argument(
        "--budget",
        type=whole_number(1, MAX_CONTEXT_BUDGET),
        metavar="N",
        help=f"at most N tokens (default: MEMQ_CONTEXT_BUDGET, {DEFAULT_CONTEXT_BUDGET})",
    )
    add_assistant_filter(context, "the work")
    add_author_filter(context, "the work")
    context.add_argument("--json", action="store_true", help="print JSON")
    _add_show_parser(commands)


def _add_show_parser(commands: Subcommands) -> None:
    show = commands.add_parser(
        "show",
        help="print records in full by reference (#12 observation, #S3 summary, #P7 prompt)",
        description="References are what memq search, the SessionStart context and the MCP "
        "tools print: #12 is observation 12, #S3 summary 3, #P7 prompt 7 (the # is optional; "
        "quote it in a shell). team#12 is record #12 of the team server (MEMQ_UPSTREAM), "
        "read through the daemon.",
    )
    show.add_argument(
        "refs", nargs="+", type=record_reference, metavar="REF", help="a record reference"
    )
    show.add_argument("--json", action="store_true", help="print JSON")
    add_utc_option(show)


def record_reference(text: str) -> list[str]:
    """An argparse type: one reference, or several separated by commas, each checked (a
    team one, ``team#12``, too)."""
    from memq.exceptions import InvalidRequestError
    from memq.memory.refs import parse_any_ref

    try:
        return [str(parse_any_ref(part)) for part in text.split(",") if part.strip()]
    except InvalidRequestError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    refs = list(dict.fromkeys(ref for refs in args.refs for ref in refs))
    if not refs:
        print("memq: give at least one record reference (#12, #S3, #P7)", file=sys.stderr)
        return EXIT_USAGE

    def read_directly() -> Answer:
        from memq.memory import direct
        from memq.memory.refs import is_team_ref, parse_refs

        team = [ref for ref in refs if is_team_ref(ref)]
        if team:
            # The daemon reads the team server (its address, key and time limits): without
            # it, a team record cannot be read, and its id must not read a local record.
            error = (
                f"{', '.join(team)}: team records are read through the memq daemon, "
                "which is not running (memq start)"
            )
            return 503, json.dumps({"error": error}).encode()
        return direct.records(direct.database_of(settings), parse_refs(tuple(refs)))

    body = api(
        settings, "GET", "/api/records?" + urlencode({"ids": ",".join(refs)}), direct=read_directly
    )
    if body is None:
        return EXIT_ERROR
    if args.json:
        print(json.dumps(body, indent=2))
    else:
        from memq.client.record_text import records_text

        print(records_text(body["items"], lambda iso: when(iso, utc=args.utc)))
    unread = body.get("unavailable") or []
    if unread:  # the team server did not answer: the local records are shown all the same
        print(f"memq: {', '.join(unread)} not read: {body.get('team_note')}", file=sys.stderr)
    if body["missing"]:
        from memq.memory.refs import is_team_ref

        missing = [str(ref) for ref in body["missing"]]
        team = any(map(is_team_ref, missing))
        scope = ", or of a project your team key may not read" if team else ""
        print(
            f"memq: memory holds no record {', '.join(missing)} (deleted, or never there{scope})",
            file=sys.stderr,
        )
        return EXIT_ERROR
    return EXIT_ERROR if unread else EXIT_OK


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    query = " ".join(args.query)
    from memq.memory.projects import project_named

    project = project_named(args.project) if args.project else None
    params: list[tuple[str, str]] = [("q", query), ("limit", str(args.limit))]
    if project:
        params.append(("project", project))
    for name in ("session", "file", "since", "until"):
        if getattr(args, name):
            params.append((name, getattr(args, name)))
    params += [("type", value) for value in args.type or ()]
    params += [("kind", value) for value in args.kind or ()]
    params += assistant_params(args.assistant)
    params += author_params(args.author)
    if args.min_score is not None:
        params.append(("min_score", repr(args.min_score)))
    if args.fts:
        params.append(("syntax", "fts"))
    if not project:
        params.append(("cwd", os.getcwd()))  # the team's hits: this repository's

    def read_directly() -> Answer:
        from memq.memory import direct
        from memq.memory.answers import parse_time
        from memq.team.team_search import with_team_hits

        local = direct.search(
            direct.database_of(settings),
            query,
            project=project,
            session=args.session or None,
            types=args.type,
            kinds=args.kind,
            file=args.file or None,
            since=parse_time(args.since) if args.since else None,
            until=parse_time(args.until) if args.until else None,
            limit=args.limit,
            min_score=args.min_score,
            syntax="fts" if args.fts else "words",
            assistants=args.assistant,
            authors=args.author,
        )
        where = project or os.getcwd()  # as the daemon's route reads project, else cwd
        return with_team_hits(
            local,
            settings,
            where=where,
            params=params,
            query=query,
            limit=args.limit,
            authors=args.author,
        )

    body = api(settings, "GET", "/api/search?" + urlencode(params), direct=read_directly)
    if body is None:
        return EXIT_ERROR
    if args.json:
        print(json.dumps(body, indent=2))
        return EXIT_OK
    print(
        f"{'MESSAGE':>8} {'SCORE':>6}  {'WHEN':<{WHEN_WIDTH}}  {'TYPE':<21} "
        f"{'ASSISTANT':<{ASSISTANT_WIDTH}} TITLE"
    )
    for item in body["items"]:
        print(
            f"{_message_cell(item):>8} {score_text(item['score']):>6}  "
            f"{when(item['created_at'], utc=args.utc):<{WHEN_WIDTH}}  "
            f"{_record_type(item):<21} {item.get('assistant', ''):<{ASSISTANT_WIDTH}} "
            f"{_whose(item)}{item['title']}"
        )
        if item["snippet"] and item["snippet"] != item["title"]:
            print(f"{'':>8} {'':>6}  {item['snippet']}")
    print(f"({body['total']} results)")
    if body.get("team_note"):
        print(body["team_note"], file=sys.stderr)
    return EXIT_OK


def _message_cell(item: dict[str, Any]) -> str:
    """A hit's MESSAGE column: this database's message id, or, for a team hit, its
    reference (``team#12``): the server's ids would read as local messages."""
    return str(item["ref"]) if item.get("team") else str(item["message_id"])


def _whose(item: dict[str, Any]) -> str:
    """``[alice] `` before the title of someone else's record (a team's)."""
    return f"[{item['author']}] " if item.get("author") else ""


def cmd_timeline(args: argparse.Namespace, settings: Settings) -> int:
    params = {"around": args.id, "before": args.before, "after": args.after}

    def read_directly() -> Answer:
        from memq.memory import direct

        return direct.timeline(
            direct.database_of(settings), args.id, before=args.before, after=args.after
        )

    body = api(settings, "GET", "/api/timeline?" + urlencode(params), direct=read_directly)
    if body is None:
        return EXIT_ERROR
    if args.json:
        print(json.dumps(body, indent=2))
        return EXIT_OK
    anchor = body["anchor"]
    print(f"session {body['session_key']}")
    print(f"  {'MESSAGE':>8}  {'WHEN':<{WHEN_WIDTH}}  {'TYPE':<21} TITLE")
    for item in body["items"]:
        is_anchor = (item["record_type"], item["id"]) == (anchor["record_type"], anchor["id"])
        print(
            f"{'>' if is_anchor else ' '} {item['message_id']:>8}  "
            f"{when(item['created_at'], utc=args.utc):<{WHEN_WIDTH}}  "
            f"{_record_type(item):<21} {item['title']}"
        )
    return EXIT_OK


def cmd_context(args: argparse.Namespace, settings: Settings) -> int:
    cwd = os.path.abspath(args.cwd or os.getcwd())
    budget = args.budget or settings.context_budget  # what a SessionStart here is given
    query = urlencode(
        [
            ("cwd", cwd),
            ("budget", str(budget)),
            *assistant_params(args.assistant),
            *author_params(args.author),
        ]
    )

    def read_directly() -> Answer:
        from memq.memory import direct

        return direct.context(
            direct.database_of(settings),
            cwd,
            budget_tokens=budget,
            assistants=args.assistant,
            authors=args.author,
        )

    body = api(settings, "GET", f"/api/context?{query}", direct=read_directly)
    if body is None:
        return EXIT_ERROR
    if args.json:
        print(json.dumps(body, indent=2))
    elif body["context"]:
        print(body["context"])
    elif body.get("has_memory"):
        print(
            f"memq: {budget} token(s) are too few to show any of memq's memory of "
            f"{body['project']}; give a larger --budget",
            file=sys.stderr,
        )
    else:
        print(f"memq has no memory of {body['project']}", file=sys.stderr)
    return EXIT_OK


def _record_type(item: dict[str, Any]) -> str:
    kind = item.get("kind")
    return f"{item['record_type']}/{kind}" if kind else str(item["record_type"])


COMMANDS: dict[str, Command] = {
    "search": cmd_search,
    "timeline": cmd_timeline,
    "context": cmd_context,
    "show": cmd_show,
}
