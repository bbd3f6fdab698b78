"""``memq status`` as a person reads it, and what in a status counts as a problem (the
command exits 0 only without one)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from memq.cli.model_cost_lines import status_model_lines
from memq.cli.settings_lines import settings_lines
from memq.queue import MessageStatus
from memq.storage import integrity


def status_lines(status: Mapping[str, Any], home: str) -> list[str]:
    """The whole of ``memq status`` without ``--json``."""
    counts = status["counts"]
    head = f"memq {status['state']}"
    if status.get("pid"):
        head += f"  pid {status['pid']}  port {status['port']}"
        head += f"  up {_duration(status.get('uptime_seconds', 0))}"
        head += f"  processor {status.get('processor', '?')}"
    lines = [head, *problem_lines(status)]
    lines.append("messages  " + "  ".join(f"{name} {counts[name]}" for name in MessageStatus))
    lines.append(f"sessions  {len(status['sessions'])} known, {status['active_generators']} active")
    lines += processing_lines(status.get("processing_messages") or [])
    if status.get("paused"):
        lines.append(f"PAUSED    {status.get('pause_reason')}  (fix it, then: memq resume)")
    if status.get("paused_sessions"):
        paused = ", ".join(status["paused_sessions"])
        lines.append(f"paused    {paused}  (memq config SESSION paused false)")
    for stopped in status.get("paused_processors", []):
        waiting = ", ".join(stopped["sessions"])
        lines.append(f"PAUSED    {waiting}: {stopped['reason']}")
        lines.append("          (restart memq with it set, or: memq config SESSION processor NAME)")
    if status.get("ephemeral"):
        lines.append(
            "EPHEMERAL the database is in memory: everything is lost when the daemon stops"
        )
    lines += status_model_lines(status.get("models"))
    lines += disk_lines(status)
    if status.get("postgres"):
        lines += postgres_lines(status["postgres"], status["database_bytes"])
    else:
        lines.append(
            f"database  {_size(status['database_bytes'])} (WAL {_size(status['wal_bytes'])})"
        )
    lines += spool_lines(status, home)
    if status.get("upstream"):
        lines += upstream_lines(status["upstream"])
    if status.get("team_server"):
        lines += team_server_lines(status["team_server"])
    view = "as the daemon runs with them" if status["settings_view"] == "daemon" else ""
    lines += settings_lines(status["settings"], status["settings_file"], note=view)
    if status["sessions"]:
        lines.append("")
        lines.append(
            f"{'SESSION':<48} {'PENDING':>8} {'PROCESSING':>10} {'PROCESSED':>10} {'FAILED':>7}"
        )
        for item in status["sessions"]:
            c = item["counts"]
            lines.append(
                f"{item['session_id']:<48} {c['pending']:>8} {c['processing']:>10} "
                f"{c['processed']:>10} {c['failed']:>7}"
            )
    return lines


def postgres_lines(postgres: Mapping[str, Any], size: int) -> list[str]:
    """The PostgreSQL database and every live daemon on it."""
    lines = [f"database  {postgres['database']} ({_size(size)})"]
    if postgres.get("problem"):
        lines.append(f"DATABASE  {postgres['problem']}")
    for daemon in postgres.get("daemons") or []:
        lines.append(
            f"daemon    {daemon['host']} pid {daemon['pid']} port {daemon['port']}: "
            f"{daemon['sessions']} sessions in hand, "
            f"heartbeat {daemon['heartbeat_age_seconds']:.1f} s ago"
        )
    return lines


def upstream_lines(upstream: Mapping[str, Any]) -> list[str]:
    """Forwarding to the team server: where, whether it answers, what waits, what failed."""
    reachable = {True: "reachable", False: "UNREACHABLE", None: "not tried yet"}
    state = reachable[upstream["reachable"]]
    if upstream.get("offline"):
        state = "nothing is sent while the daemon is stopped"
    head = f"upstream  {upstream['url']} ({upstream['mode']}): {state}"
    waiting = f"{_events(upstream['waiting'])} waiting"
    if upstream.get("oldest_waiting_seconds") is not None:
        waiting += f", the oldest for {_duration(upstream['oldest_waiting_seconds'])}"
    if upstream.get("forwarded") is not None:
        waiting += f"; {upstream['forwarded']} forwarded since start"
    lines = [head, f"          {waiting}"]
    if upstream.get("paused"):
        lines.append(f"PAUSED    forwarding: {upstream['paused_reason']}")
    elif upstream.get("retry_in_seconds"):
        lines.append(f"          next attempt in {_duration(upstream['retry_in_seconds'])}")
    if upstream.get("last_error"):
        ago = upstream.get("last_error_seconds_ago")
        when = "" if ago is None else f" ({_duration(ago)} ago)"
        lines.append(f"          last error{when}: {upstream['last_error']}")
    if upstream.get("refused"):
        lines.append(f"          {_events(upstream['refused'])} refused by the server")
    wanted = upstream.get("machine_setting")
    if upstream.get("machine") and wanted and wanted != upstream["machine"]:
        lines.append(
            f"          sent as machine {upstream['machine']}: the new name {wanted} holds"
            " once nothing waits"
        )
    if upstream.get("local_only"):
        lines.append(
            f"          {_events(upstream['local_only'])} kept local: no git remote for their"
            " directory"
        )
    team = upstream.get("team_context") or {}
    if team.get("failing"):  # memq.team.team_reads: the cached text stays
        lines.append(
            f"          team context: {team['failing']} of {team['projects']} projects not "
            f"refreshed: {team['last_error']}"
        )
    return lines


def team_server_lines(team: Mapping[str, Any]) -> list[str]:
    """``memq serve --team``: where the team API listens and how, its keys, its traffic."""
    if team["tls"]:
        how = "TLS"
    elif team["proxy"]:
        how = "plain HTTP behind a TLS-terminating proxy"
    else:
        how = "plain HTTP, this machine only"
    revoked = f" ({team['keys_revoked']} revoked)" if team["keys_revoked"] else ""
    hours = team["recent_hours"]
    return [
        f"team      listening on {team['address']} ({how})",
        f"          {_count(team['keys_active'], 'key')} active{revoked}; requests: "
        f"{team['requests_this_hour']} this hour, {team['requests_recent']} in {hours} h; "
        f"{team['refused_recent']} refused in {hours} h",
    ]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def processing_lines(items: Sequence[Mapping[str, Any]], shown: int = 5) -> list[str]:
    """What is processing now and for how long: the ``shown`` longest running."""
    lines = [
        f"working   message {item['message_id']} ({item['kind']}, attempt {item['attempts']}) "
        f"of {item['session_id']} for {_duration(item['running_seconds'])}"
        for item in items[:shown]
    ]
    if len(items) > shown:
        lines.append(f"          and {len(items) - shown} more")
    return lines


def status_problems(status: Mapping[str, Any]) -> list[str]:
    """What is wrong, by the status: ``memq status`` exits 0 only when this is empty."""
    problems = []
    check = status.get("database_check") or {}
    if check.get("state") == integrity.Verdict.DAMAGED:
        problems.append(integrity.damage_message(check["path"], check.get("detail") or ""))
    failure = status.get("startup_error")
    if failure:
        problems.append(_failure_text(failure))
    if status.get("home_problem"):
        problems.append(str(status["home_problem"]))
    waiting = (status.get("spool") or {}).get("waiting", 0)
    if waiting and status.get("state") != "running":
        problems.append(f"{_events(waiting)} waiting in the spool with no daemon to take them in")
    if (status.get("postgres") or {}).get("problem"):
        problems.append(str(status["postgres"]["problem"]))
    disk = status.get("disk") or {}
    if disk.get("full"):
        problems.append(str(disk.get("message") or "disk full"))
    return problems


def problem_lines(status: Mapping[str, Any]) -> list[str]:
    """What ``memq status`` says about a damaged database, a daemon that could not start
    and a home memq cannot write in: nothing when all is well."""
    lines = []
    check = status.get("database_check") or {}
    if check.get("state") == integrity.Verdict.DAMAGED:
        lines.append(
            f"DAMAGED   {integrity.damage_message(check['path'], check.get('detail') or '')}"
        )
    elif check.get("state") == integrity.Verdict.UNCHECKED:
        lines.append(f"database  {check.get('detail')} (the daemon checks all of it at start)")
    failure = status.get("startup_error")
    if failure:
        lines.append(f"FAILED    {_failure_text(failure)}")
    if status.get("home_problem"):
        lines.append(f"HOME      {status['home_problem']}")
    return lines


def _failure_text(failure: Mapping[str, Any]) -> str:
    what = "stopped on an error" if failure.get("phase") == "run" else "could not start"
    return f"the daemon {what} at {failure.get('time')}: {failure.get('reason')}"


def spool_lines(status: Mapping[str, Any], home: str) -> list[str]:
    """What ``memq status`` says about the spool: nothing when it is empty."""
    counts = status.get("spool") or {}
    waiting, rejected = counts.get("waiting", 0), counts.get("rejected", 0)
    lines = []
    if waiting:
        head = f"{_events(waiting)} waiting in {home}/spool"
        state = status.get("state")
        if state == "running":
            lines.append(f"spool     {head}; the daemon takes them in")
        elif state == "starting":
            lines.append(
                f"SPOOL     {head}: the daemon does not answer; it takes them in once it does"
            )
        else:
            lines.append(f"SPOOL     {head}: memq start takes them in")
    if rejected:
        lines.append(
            f"spool     {rejected} file(s) could not be taken in; kept in {home}/spool/rejected "
            "(the daemon log says why: spool.rejected)"
        )
    return lines


def disk_lines(status: Mapping[str, Any]) -> list[str]:
    """What ``memq status`` says about a full disk (``memq.worker.disk``, or
    ``memq.cli.status_gather.offline_disk`` with no daemon): nothing when the disk is fine."""
    disk = status.get("disk") or {}
    if not disk.get("full"):
        return []
    lines = [f"DISK      {disk.get('message') or 'disk full'}"]
    free = disk.get("free_bytes")
    if isinstance(free, int):
        reserve = "in place" if disk.get("reserve_present") else "released"
        lines.append(f"          {free // 1024} KiB free; the reserve is {reserve}")
    return lines


def _events(n: int) -> str:
    return f"{n} event{'' if n == 1 else 's'}"


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
