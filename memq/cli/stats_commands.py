"""``memq stats``: whether the model uses memory. Asks the daemon, or reads the database file
directly when no daemon answers (``memq.memory.direct``)."""

from __future__ import annotations

import argparse
import json
from typing import Any, Final
from urllib.parse import urlencode

from memq.cli.arguments import add_utc_option, whole_number
from memq.cli.command import EXIT_ERROR, EXIT_OK, Command, Subcommands
from memq.cli.formats import WHEN_WIDTH, when
from memq.cli.help_layout import fill_paragraphs, help_width
from memq.cli.model_cost_lines import model_cost_lines
from memq.client.daemon_api import Answer, api
from memq.config import Settings

DEFAULT_SESSIONS: Final = 10  # as memq.memory.usage_figures, without importing it here
MAX_SESSIONS: Final = 1000
EXPLANATION: Final = (
    "contexts: contexts memq gave sessions (at start, after compaction or /clear, on resume, "
    "per-prompt recall); fetches: the model's calls of memq's MCP tools; records: records it "
    "fetched by id after a context. hit rate: the share of contexts after which the model "
    "used search, timeline or get_observations in that session before its next context; "
    "ref hits: the share after which it fetched a record the context showed."
)


def add_parsers(commands: Subcommands) -> None:
    """Add memq stats to ``memq``'s parser."""
    stats = commands.add_parser(
        "stats",
        help="whether the model uses memory: contexts given, records fetched, hit rate",
        description=EXPLANATION,
    )
    stats.add_argument("--project", help="only this project (a directory; '.' for this one)")
    stats.add_argument(
        "--sessions",
        type=whole_number(0, MAX_SESSIONS),
        default=DEFAULT_SESSIONS,
        metavar="N",
        help=f"show the N newest sessions ({DEFAULT_SESSIONS})",
    )
    stats.add_argument("--json", action="store_true", help="print JSON")
    add_utc_option(stats)


def cmd_stats(args: argparse.Namespace, settings: Settings) -> int:
    from memq.memory.projects import project_named

    project = project_named(args.project) if args.project else None
    params: dict[str, Any] = {"sessions": args.sessions}
    if project is not None:
        params["project"] = project

    def read_directly() -> Answer:
        from memq.memory import direct

        return direct.stats(
            direct.database_of(settings),
            project=project,
            sessions=args.sessions,
            prices=settings.model_prices,
        )

    body = api(settings, "GET", "/api/stats?" + urlencode(params), direct=read_directly)
    if body is None:
        return EXIT_ERROR
    if args.json:
        print(json.dumps(body, indent=2))
        return EXIT_OK
    print("\n".join([*stats_lines(body, utc=args.utc), *model_cost_lines(body.get("models"))]))
    return EXIT_OK


def stats_lines(body: dict[str, Any], *, utc: bool = False) -> list[str]:
    """The figures as ``memq stats`` prints them."""
    since = body.get("since")
    scope = f"project {body['project']}" if body.get("project") else "all projects"
    if since is None:
        return [f"memq has recorded no use of memory yet ({scope})"]
    lines = [f"memory use since {when(since, utc=utc)} ({scope})", ""]
    header = f"{'CONTEXTS':>8} {'TOKENS':>8} {'FETCHES':>7} {'SEARCHES':>8} {'RECORDS':>7}"
    header += f" {'HIT RATE':>8} {'REF HITS':>8}"
    lines.append(f"{header}  PROJECT")
    for row in body["projects"]:
        lines.append(f"{_figures(row)}  {row['project'] or '(no project)'}")
    if len(body["projects"]) != 1:
        lines.append(f"{_figures(body['overall'])}  (all)")
    if body["sessions"]:
        lines += ["", "newest sessions", f"{header}  {'LAST CONTEXT':<{WHEN_WIDTH}}  SESSION"]
        for row in body["sessions"]:
            last = when(row["last_injected_at"], utc=utc)
            lines.append(f"{_figures(row)}  {last:<{WHEN_WIDTH}}  {row['session_key']}")
    lines += ["", fill_paragraphs(EXPLANATION, help_width())]
    return lines


def _figures(row: dict[str, Any]) -> str:
    return (
        f"{row['injections']:>8} {row['tokens']:>8} {row['fetches']:>7} {row['searches']:>8}"
        f" {row['records_fetched']:>7} {_percent(row['hit_rate']):>8}"
        f" {_percent(row['ref_hit_rate']):>8}"
    )


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


COMMANDS: dict[str, Command] = {"stats": cmd_stats}
