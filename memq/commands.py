"""memq: a crash-safe memory worker for AI coding assistants.

Settings come from the environment: MEMQ_HOME (data directory, default ~/.memq), MEMQ_PORT
(default 37778), MEMQ_PROCESSOR (default extract), MEMQ_CAPACITY, MEMQ_LINGER, MEMQ_LEASE,
MEMQ_MAX_ATTEMPTS, MEMQ_BODY_LIMIT, MEMQ_SYNCHRONOUS (FULL or NORMAL), MEMQ_LOG_LEVEL; or from
MEMQ_HOME/settings.toml (port = 40000, ...), which memq config --global edits.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlencode

from memq import __version__
from memq import env as memq_env
from memq.cli_args import (
    MAX_CONTEXT_BUDGET,
    MAX_ID,
    MAX_SEARCH_RESULTS,
    MAX_TIMELINE_SIDE,
    add_utc_option,
    command_list,
    fill_paragraphs,
    help_width,
    iso_time,
    number,
    subcommand_helps,
    whole_number,
)
from memq.cli_client import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    WHEN_WIDTH,
    Answer,
    api,
    score_text,
    when,
)
from memq.config import SettingError, Settings
from memq.exceptions import ControlError, InstallError, UnsafeFileError
from memq.private_files import check_home
from memq.session_commands import SESSION_COMMANDS, add_session_commands
from memq.settings_command import cmd_config_global, command_settings, is_global_config

# The record types `memq search --type` accepts (memq.memory.search.RecordType, spelled out
# so that parsing arguments does not import the search machinery) and the observation kinds
# `--kind` accepts (memq.memory.records.ObservationKind, likewise).
RECORD_TYPES = ("observation", "summary", "prompt")
OBSERVATION_KINDS = (
    "change",
    "discovery",
    "command",
    "search",
    "web",
    "decision",
    "bugfix",
    "feature",
    "refactor",
    "other",
)
# Commands that neither read nor write MEMQ_HOME (they edit Claude Code's settings), so a
# home others can write to does not stop them.
HOME_FREE_COMMANDS = frozenset({"install", "uninstall"})
# The top-level help lists the commands in these groups; a command added without a group
# is listed under "more".
COMMAND_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("daemon", ("serve", "start", "stop", "status", "resume", "repair")),
    ("memory", ("search", "timeline", "context", "sessions", "history", "export", "import")),
    ("sessions", ("title", "config", "fork", "revert", "transfer", "delete")),
    ("queue", ("failed", "retry")),
    ("setup", ("install", "uninstall", "hook")),
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every ``memq`` command."""
    width = help_width()
    parser = argparse.ArgumentParser(
        prog="memq",
        usage="memq [-h] [--version] COMMAND [ARGS ...]",
        description=fill_paragraphs(__doc__ or "", width),
        epilog="Run memq COMMAND --help for a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"memq {__version__}")
    # Listed by the epilog, grouped (argparse's own list has no groups and wraps badly).
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", prog="memq", help=argparse.SUPPRESS
    )

    serve = commands.add_parser("serve", help="run the daemon in the foreground")
    serve.add_argument("--quiet", action="store_true", help="log only to MEMQ_HOME/logs")
    serve.add_argument(
        "--ephemeral",
        action="store_true",
        help="keep the database in memory and delete it at exit (for tests and demos)",
    )
    commands.add_parser("start", help="start the daemon in the background; returns once healthy")
    commands.add_parser("stop", help="stop the daemon gracefully; returns once it has exited")

    status = commands.add_parser("status", help="daemon state and queue counts")
    status.add_argument("--json", action="store_true", help="print the status as JSON")

    context = commands.add_parser(
        "context", help="print the context memq gives a session starting in a directory"
    )
    context.add_argument(
        "--cwd", metavar="DIR", help="the session's working directory (default: this one)"
    )
    context.add_argument(
        "--budget",
        type=whole_number(1, MAX_CONTEXT_BUDGET),
        default=2000,
        metavar="N",
        help="at most N tokens (2000)",
    )
    context.add_argument("--json", action="store_true", help="print JSON")

    _add_memory_commands(commands)
    add_session_commands(commands)
    failed = commands.add_parser("failed", help="messages that ran out of attempts")
    failed.add_argument("--json", action="store_true", help="print JSON")
    failed.add_argument("--session", help="only this session")

    commands.add_parser("resume", help="resume processing after a pause (API key fixed)")

    repair = commands.add_parser(
        "repair",
        help="rebuild a damaged database from every row that can still be read",
        description="Keeps the damaged file aside (renamed memq.db.damaged-<UTC time>, with its "
        "-wal and -shm; never deleted), builds a new database from every row that can still be "
        "read, prints how many rows of each kind were saved and lost, and takes in the events "
        "hooks spooled meanwhile. Refuses while the daemon runs. A database that passes "
        "SQLite's integrity_check is left alone unless --force is given.",
    )
    repair.add_argument(
        "--force", action="store_true", help="rebuild even a database that passes the check"
    )
    repair.add_argument("--json", action="store_true", help="print the report as JSON")

    hook = commands.add_parser(
        "hook",
        help="hand one hook event (JSON on stdin) to memq; what the assistant's hooks run",
        description="Reads one hook payload on stdin and delivers it to the daemon, or "
        "straight into the queue when the daemon does not answer. Always exits 0; prints "
        "only SessionStart's context. MEMQ_DISABLED=1 makes it a no-op.",
    )
    hook.add_argument("event", nargs="?", help="the hook event (default: hook_event_name)")

    retry = commands.add_parser("retry", help="send failed messages through again")
    retry.add_argument("ids", nargs="*", type=int, help="message ids (see memq failed)")
    retry.add_argument("--all", action="store_true", help="every failed message")

    install = commands.add_parser("install", help="add memq's hooks to Claude Code's settings")
    _add_settings_target(install)
    output = install.add_mutually_exclusive_group()
    output.add_argument(
        "--print",
        dest="print_only",
        action="store_true",
        help="print the hooks JSON that would be merged and change nothing",
    )
    output.add_argument(
        "--plugin",
        metavar="DIR",
        help="write a Claude Code plugin folder carrying the hooks instead of changing settings",
    )
    uninstall = commands.add_parser(
        "uninstall", help="remove memq's hooks from Claude Code's settings"
    )
    _add_settings_target(uninstall)
    listing = command_list(subcommand_helps(commands), COMMAND_GROUPS, width)
    parser.epilog = f"{listing}\n\n{parser.epilog}"
    return parser


def run(args: Sequence[str]) -> int:
    """Parse ``args`` (without the program name) and run that command."""
    parser = build_parser()
    parsed = parser.parse_args(args)
    if parsed.command is None:
        parser.print_help()
        return EXIT_OK
    if parsed.command == "config" and parsed.session is None and not is_global_config(parsed):
        parser.error("config needs a SESSION (or --global for memq's own settings)")
    try:
        return run_command(parsed)
    except UnsafeFileError as exc:  # a home others can write to, a planted token: never quoted
        print(f"memq: {exc}", file=sys.stderr)
        return EXIT_ERROR


def run_command(parsed: argparse.Namespace) -> int:
    """Run the parsed command with its settings. Raises ``UnsafeFileError`` for a home (or
    a file in it) memq must not trust."""
    if parsed.command not in HOME_FREE_COMMANDS:
        # Before anything is read from the home (settings.toml, the token) or written to it.
        check_home(memq_env.home_dir(os.environ))
    try:
        # The environment over MEMQ_HOME/settings.toml, checked as far as the command uses it.
        settings = command_settings(parsed, os.environ)
    except SettingError as exc:
        print(f"memq: {exc}", file=sys.stderr)
        return EXIT_USAGE
    command: Callable[[argparse.Namespace, Settings], int] = COMMANDS[parsed.command]
    if is_global_config(parsed):
        command = cmd_config_global  # memq config --global: memq's settings, not a session's
    try:
        return command(parsed, settings)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `memq status | head`: the reader left; exit quietly, as other tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import contextlib
    import dataclasses

    import anyio

    from memq.exceptions import QueueLockedError
    from memq.logs import configure_logging
    from memq.worker import startup_error
    from memq.worker.daemon import Daemon
    from memq.worker.ephemeral import ephemeral_database
    from memq.worker.pidfile import running_daemon

    # Before anything is set up or logged: a second daemon must not look like one that ran.
    running = running_daemon(settings.paths.pidfile, settings.paths.database)
    if running is not None:
        print(
            f"memq: a daemon is already running for {settings.home} "
            f"(pid {running.pid}, port {running.port}); memq stop stops it",
            file=sys.stderr,
        )
        return EXIT_ERROR
    try:
        settings.paths.create_home()
        configure_logging(
            log_file=settings.paths.log_file, console=not args.quiet, level=settings.log_level
        )
    except OSError as exc:
        # Nothing can be logged or recorded in a home memq cannot write: stderr says it.
        home = str(settings.paths.home)
        reason = startup_error.home_write_problem(home) or startup_error.describe(exc)
        startup_error.record(home, reason, kind=startup_error.Kind.HOME_NOT_WRITABLE)
        print(f"memq: cannot start: {reason}", file=sys.stderr)
        return EXIT_ERROR
    with contextlib.ExitStack() as stack:
        if args.ephemeral:
            database = stack.enter_context(ephemeral_database())
            # Loudly, whatever the log settings: a user must not mistake this for real memory.
            print(database.banner(), file=sys.stderr, flush=True)
            settings = dataclasses.replace(settings, database=database.path, ephemeral=True)
        daemon = Daemon(settings)
        try:
            anyio.run(daemon.run)
        except QueueLockedError as exc:
            # Not recorded: the daemon that holds the lock runs, and its start was good.
            print(f"memq: already running: {exc}", file=sys.stderr)
            return EXIT_ERROR
        except Exception as exc:  # an ExceptionGroup too: told as its leaf exceptions
            print(f"memq: {daemon.failed(exc)}", file=sys.stderr)
            return EXIT_ERROR
    return EXIT_OK


def cmd_start(args: argparse.Namespace, settings: Settings) -> int:
    from memq.worker import control

    try:
        record, started = control.start(settings)
    except ControlError as exc:
        print(f"memq: {exc}", file=sys.stderr)
        return EXIT_ERROR
    verb = "started" if started else "already running"
    print(f"memq {verb} (pid {record.pid}, http://127.0.0.1:{record.port})")
    return EXIT_OK


def cmd_stop(args: argparse.Namespace, settings: Settings) -> int:
    from memq.worker import control

    try:
        record = control.stop(settings)
    except ControlError as exc:
        print(f"memq: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print("memq was not running" if record is None else f"memq stopped (pid {record.pid})")
    return EXIT_OK


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from memq.settings_command import add_settings
    from memq.worker import control
    from memq.worker.startup_error import home_write_problem
    from memq.worker.status import (
        database_check,
        disk_lines,
        offline_disk,
        problem_lines,
        settings_lines,
        spool_counts,
        spool_lines,
        startup_failure,
        status_problems,
    )

    status = control.status(settings)
    home = str(settings.paths.home)
    # A daemon counts its spool itself; without one (or from an older one) count it here.
    status.setdefault("spool", spool_counts(home))
    status.setdefault("disk", offline_disk(home, settings.reserve_bytes))
    # The file itself, read-only, whether or not a daemon answered (it checked at its start).
    status.setdefault("database_check", database_check(str(settings.paths.database), home))
    status.setdefault("startup_error", startup_failure(home, status.get("state")))
    status.setdefault("home_problem", home_write_problem(home))
    add_settings(status, settings)
    problems = status_problems(status)
    if args.json:
        print(json.dumps(status, indent=2))
        return EXIT_ERROR if problems else EXIT_OK
    counts = status["counts"]
    head = f"memq {status['state']}"
    if status.get("pid"):
        head += f"  pid {status['pid']}  port {status['port']}"
        head += f"  up {_duration(status.get('uptime_seconds', 0))}"
        head += f"  processor {status.get('processor', '?')}"
    print(head)
    for line in problem_lines(status):
        print(line)
    print("messages  " + "  ".join(f"{name} {counts[name]}" for name in control.STATUSES))
    print(f"sessions  {len(status['sessions'])} known, {status['active_generators']} active")
    if status.get("paused"):
        print(f"PAUSED    {status.get('pause_reason')}  (fix it, then: memq resume)")
    if status.get("paused_sessions"):
        paused = ", ".join(status["paused_sessions"])
        print(f"paused    {paused}  (memq config SESSION paused false)")
    for stopped in status.get("paused_processors", []):
        waiting = ", ".join(stopped["sessions"])
        print(f"PAUSED    {waiting}: {stopped['reason']}")
        print("          (restart memq with it set, or: memq config SESSION processor NAME)")
    if status.get("ephemeral"):
        print("EPHEMERAL the database is in memory: everything is lost when the daemon stops")
    for line in disk_lines(status):
        print(line)
    print(f"database  {_size(status['database_bytes'])} (WAL {_size(status['wal_bytes'])})")
    for line in spool_lines(status, home):
        print(line)
    view = "as the daemon runs with them" if status["settings_view"] == "daemon" else ""
    for line in settings_lines(status["settings"], status["settings_file"], note=view):
        print(line)
    if status["sessions"]:
        print()
        print(f"{'SESSION':<48} {'PENDING':>8} {'PROCESSING':>10} {'PROCESSED':>10} {'FAILED':>7}")
        for item in status["sessions"]:
            c = item["counts"]
            print(
                f"{item['session_id']:<48} {c['pending']:>8} {c['processing']:>10} "
                f"{c['processed']:>10} {c['failed']:>7}"
            )
    return EXIT_ERROR if problems else EXIT_OK


def cmd_repair(args: argparse.Namespace, settings: Settings) -> int:
    from memq.exceptions import RepairError
    from memq.logs import configure_logging
    from memq.storage.repair import repair as rebuild
    from memq.storage.repair import report_lines, spool_intake

    paths = settings.paths
    if paths.home.is_dir():
        # What the repair and the spool intake log goes to the daemon's log, not the screen.
        configure_logging(log_file=paths.log_file, console=False, level=settings.log_level)
    try:
        report = rebuild(
            paths.home, force=args.force, take_in_spool=spool_intake(settings.body_limit)
        )
    except RepairError as exc:
        print(f"memq repair: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        for line in report_lines(report):
            print(line)
    return EXIT_OK


def cmd_context(args: argparse.Namespace, settings: Settings) -> int:
    cwd = os.path.abspath(args.cwd or os.getcwd())
    query = urlencode({"cwd": cwd, "budget": args.budget})

    def read_directly() -> Answer:
        from memq.memory import direct

        return direct.context(settings.paths.database, cwd, budget_tokens=args.budget)

    body = api(settings, "GET", f"/api/context?{query}", direct=read_directly)
    if body is None:
        return EXIT_ERROR
    if args.json:
        print(json.dumps(body, indent=2))
    elif body["context"]:
        print(body["context"])
    elif body.get("has_memory"):
        print(
            f"memq: {args.budget} token(s) are too few to show any of memq's memory of "
            f"{body['project']}; give a larger --budget (the default is 2000)",
            file=sys.stderr,
        )
    else:
        print(f"memq has no memory of {body['project']}", file=sys.stderr)
    return EXIT_OK


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


def cmd_resume(args: argparse.Namespace, settings: Settings) -> int:
    body = api(settings, "POST", "/api/resume", {})
    if body is None:
        return EXIT_ERROR
    print("processing resumed" if body["resumed"] else "processing was not paused")
    return EXIT_OK


def cmd_hook(args: argparse.Namespace, settings: Settings) -> int:
    from memq.hooks.run import main as hook_main

    return hook_main([args.event] if args.event else [])


def cmd_install(args: argparse.Namespace, settings: Settings) -> int:
    from memq.hooks import install as hooks
    from memq.settings_command import hook_home, record_environment, recorded_lines

    try:
        # The hook runs from the assistant's environment, not this shell's: the command
        # carries MEMQ_HOME, the home's settings file the rest.
        command = hooks.memq_hook_command(home=hook_home(settings))
        if args.print_only:
            print(json.dumps(hooks.hooks_fragment(command), indent=2))
            return EXIT_OK
        recorded = recorded_lines(record_environment(settings, os.environ))
        if args.plugin:
            written = hooks.write_plugin(args.plugin, command)
            print(f"memq plugin written to {args.plugin} (hook command: {command})")
            for path in written:
                print(f"  {path}")
            for line in recorded:
                print(line)
            print(f"load it with: claude --plugin-dir {args.plugin}")
            return EXIT_OK
        path = hooks.settings_path(project=args.project, settings=args.settings)
        result = hooks.install(path, command)
    except InstallError as exc:
        print(f"memq install: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except SettingError as exc:
        print(f"memq install: {exc}; nothing changed", file=sys.stderr)
        return EXIT_USAGE
    if not result.changed:
        print(f"memq hooks already installed in {result.path}; nothing changed")
        for line in recorded:
            print(line)
        return EXIT_OK
    print(f"memq hooks installed in {result.path}{' (new file)' if result.created else ''}")
    print(f"  events: {', '.join(hooks.EVENTS)}")
    print(f"  command: {result.command}")
    if result.backup is not None:
        print(f"  backup of the previous file: {result.backup}")
    for line in recorded:
        print(line)
    print("They take effect in Claude Code sessions started from now on.")
    return EXIT_OK


def cmd_uninstall(args: argparse.Namespace, settings: Settings) -> int:
    from memq.hooks import install as hooks

    path = hooks.settings_path(project=args.project, settings=args.settings)
    try:
        result = hooks.uninstall(path)
    except InstallError as exc:
        print(f"memq uninstall: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if not result.existed:
        print(f"no settings file at {result.path}; nothing to remove")
    elif not result.removed:
        print(f"no memq hooks in {result.path}; nothing changed")
    else:
        print(f"removed {result.removed} memq hook(s) from {result.path}")
        print(f"  backup of the previous file: {result.backup}")
    return EXIT_OK


def _add_settings_target(parser: argparse.ArgumentParser) -> None:
    """The --project / --settings choice of which Claude Code settings file to change."""
    target = parser.add_mutually_exclusive_group()
    target.add_argument(
        "--project",
        action="store_true",
        help="./.claude/settings.json instead of the user's ~/.claude/settings.json",
    )
    target.add_argument("--settings", metavar="PATH", help="this settings file instead")


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    query = " ".join(args.query)
    project = _project(args.project) if args.project else None
    params: list[tuple[str, str]] = [("q", query), ("limit", str(args.limit))]
    if project:
        params.append(("project", project))
    for name in ("session", "file", "since", "until"):
        if getattr(args, name):
            params.append((name, getattr(args, name)))
    params += [("type", value) for value in args.type or ()]
    params += [("kind", value) for value in args.kind or ()]
    if args.min_score is not None:
        params.append(("min_score", repr(args.min_score)))
    if args.fts:
        params.append(("syntax", "fts"))

    def read_directly() -> Answer:
        from memq.memory import direct
        from memq.memory.answers import parse_time

        return direct.search(
            settings.paths.database,
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
        )

    body = api(settings, "GET", "/api/search?" + urlencode(params), direct=read_directly)
    if body is None:
        return EXIT_ERROR
    if args.json:
        print(json.dumps(body, indent=2))
        return EXIT_OK
    print(f"{'MESSAGE':>8} {'SCORE':>6}  {'WHEN':<{WHEN_WIDTH}}  {'TYPE':<21} TITLE")
    for item in body["items"]:
        print(
            f"{item['message_id']:>8} {score_text(item['score']):>6}  "
            f"{when(item['created_at'], utc=args.utc):<{WHEN_WIDTH}}  "
            f"{_record_type(item):<21} {item['title']}"
        )
        if item["snippet"] and item["snippet"] != item["title"]:
            print(f"{'':>8} {'':>6}  {item['snippet']}")
    print(f"({body['total']} results)")
    return EXIT_OK


def cmd_timeline(args: argparse.Namespace, settings: Settings) -> int:
    params = {"around": args.id, "before": args.before, "after": args.after}

    def read_directly() -> Answer:
        from memq.memory import direct

        return direct.timeline(
            settings.paths.database, args.id, before=args.before, after=args.after
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


def _project(value: str) -> str:
    """A directory given as --project names its project as the daemon does (its git root);
    anything else is passed as written."""
    if not os.path.isdir(value):
        return value
    from memq.worker.projects import project_for

    return project_for(os.path.abspath(value)) or value


def _record_type(item: dict[str, Any]) -> str:
    kind = item.get("kind")
    return f"{item['record_type']}/{kind}" if kind else str(item["record_type"])


def _add_memory_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """memq search and memq timeline."""
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
    search.add_argument(
        "--type", action="append", choices=RECORD_TYPES, help="only this record type (repeatable)"
    )
    search.add_argument(
        "--kind",
        action="append",
        choices=OBSERVATION_KINDS,
        metavar="KIND",
        help=f"only observations of this kind: {', '.join(OBSERVATION_KINDS)} (repeatable)",
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
        default=20,
        help=f"at most this many (20, max {MAX_SEARCH_RESULTS})",
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

    timeline = commands.add_parser(
        "timeline", help="a record and the records of its session just before and after it"
    )
    timeline.add_argument(
        "id", type=whole_number(1, MAX_ID), help="the message id of a record (see memq search)"
    )
    side = whole_number(0, MAX_TIMELINE_SIDE)
    timeline.add_argument("--before", type=side, default=5, help="records before it (5)")
    timeline.add_argument("--after", type=side, default=5, help="records after it (5)")
    timeline.add_argument("--json", action="store_true", help="print JSON")
    add_utc_option(timeline)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KB", "MB", "GB"):
        value /= 1024
        if value < 1024 or unit == "GB":
            break
    return f"{value:.1f} {unit}"


COMMANDS: dict[str, Callable[[argparse.Namespace, Settings], int]] = {
    **SESSION_COMMANDS,
    "serve": cmd_serve,
    "start": cmd_start,
    "stop": cmd_stop,
    "status": cmd_status,
    "context": cmd_context,
    "failed": cmd_failed,
    "retry": cmd_retry,
    "hook": cmd_hook,
    "search": cmd_search,
    "timeline": cmd_timeline,
    "resume": cmd_resume,
    "repair": cmd_repair,
    "install": cmd_install,
    "uninstall": cmd_uninstall,
}
