"""The daemon's commands: serve, start, stop, status, resume and repair."""

from __future__ import annotations

import argparse
import json
import sys

from memq.cli.command import EXIT_ERROR, EXIT_OK, Command, Subcommands
from memq.client.daemon_api import api
from memq.config import Settings
from memq.exceptions import ControlError


def add_parsers(commands: Subcommands) -> None:
    """Add the daemon's commands to ``memq``'s parser."""
    serve = commands.add_parser("serve", help="run the daemon in the foreground")
    serve.add_argument("--quiet", action="store_true", help="log only to MEMQ_HOME/logs")
    serve.add_argument(
        "--ephemeral",
        action="store_true",
        help="keep the database in memory and delete it at exit (for tests and demos)",
    )
    serve.add_argument(
        "--team",
        action="store_true",
        help="also serve the team API to laptops on MEMQ_TEAM_LISTEN (needs MEMQ_DATABASE_URL; "
        "beyond loopback, MEMQ_TLS_CERT and MEMQ_TLS_KEY, or MEMQ_TLS_PROXY=1)",
    )
    commands.add_parser("start", help="start the daemon in the background; returns once healthy")
    commands.add_parser("stop", help="stop the daemon gracefully; returns once it has exited")
    status = commands.add_parser("status", help="daemon state and queue counts")
    status.add_argument("--json", action="store_true", help="print the status as JSON")
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


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import contextlib
    import dataclasses

    import anyio

    from memq import startup_error
    from memq.exceptions import QueueLockedError
    from memq.logs import configure_logging
    from memq.redact import redactor
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
            log_file=settings.paths.log_file,
            console=not args.quiet,
            level=settings.log_level,
            redactor=redactor(settings.redact, settings.redact_patterns),
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
        daemon = Daemon(settings, team=args.team)
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
    from memq.cli import daemon_process

    try:
        record, started = daemon_process.start(settings)
    except ControlError as exc:
        print(f"memq: {exc}", file=sys.stderr)
        return EXIT_ERROR
    verb = "started" if started else "already running"
    print(f"memq {verb} (pid {record.pid}, http://127.0.0.1:{record.port})")
    return EXIT_OK


def cmd_stop(args: argparse.Namespace, settings: Settings) -> int:
    from memq.cli import daemon_process

    try:
        record = daemon_process.stop(settings)
    except ControlError as exc:
        print(f"memq: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print("memq was not running" if record is None else f"memq stopped (pid {record.pid})")
    return EXIT_OK


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from memq.cli.status_gather import gather_status
    from memq.cli.status_lines import status_lines, status_problems

    status = gather_status(settings)
    problems = status_problems(status)
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        for line in status_lines(status, str(settings.paths.home)):
            print(line)
    return EXIT_ERROR if problems else EXIT_OK


def cmd_resume(args: argparse.Namespace, settings: Settings) -> int:
    body = api(settings, "POST", "/api/resume", {})
    if body is None:
        return EXIT_ERROR
    print("processing resumed" if body["resumed"] else "processing was not paused")
    return EXIT_OK


def cmd_repair(args: argparse.Namespace, settings: Settings) -> int:
    from memq.exceptions import RepairError
    from memq.logs import configure_logging
    from memq.repair import repair as rebuild
    from memq.repair import report_lines, spool_intake

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


COMMANDS: dict[str, Command] = {
    "serve": cmd_serve,
    "start": cmd_start,
    "stop": cmd_stop,
    "status": cmd_status,
    "resume": cmd_resume,
    "repair": cmd_repair,
}
