"""Put memq's hook into Claude Code, or take it out again.

Claude Code reads command hooks from a settings file (``~/.claude/settings.json`` for the user,
``.claude/settings.json`` for a project) in this shape::

    {"hooks": {"PostToolUse": [{"matcher": "*",
                                "hooks": [{"type": "command", "command": "...", "timeout": 10}]}]}}

The tool events (PostToolUse, PostToolUseFailure) get the match-all matcher ``"*"``; the other
events leave ``matcher`` out, which matches everything too. A plugin carries the same events in
``hooks/hooks.json`` under a ``"hooks"`` key, beside ``.claude-plugin/plugin.json``.

memq's entries are recognised by their command alone (:func:`is_memq_command`): installing again
replaces them in place, uninstalling removes exactly them, and everything else in the file stays
as it was, in the same order. A file that is not what Claude Code expects is refused untouched.

The MCP server's registration is in :mod:`memq.hooks.mcp_config`; both change files through
:mod:`memq.hooks.jsonfile`. Standard library only (it imports nothing from memq but
``__version__``, ``memq.env``, ``memq.events``, ``memq.hooks.jsonfile`` and its error).
"""

from __future__ import annotations

import copy
import os
import shlex
import sys
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeAlias

from memq import __version__
from memq.assistants import ASSISTANT_OPTION, CLAUDE_CODE, NAMES
from memq.env import Variable
from memq.events import SUBSCRIBED_EVENTS, TOOL_RESULT_EVENTS, json_type
from memq.exceptions import InstallError
from memq.hooks import jsonfile

MATCH_ALL: Final = "*"
TIMEOUT_SECONDS: Final = 10  # the hook answers in milliseconds; this only bounds a stuck one
PLUGIN_NAME: Final = "memq"
PLUGIN_DESCRIPTION: Final = (
    "Sends every Claude Code hook event to the local memq daemon, which keeps it in a durable "
    "queue and turns it into memory."
)
BACKUP_INFIX: Final = jsonfile.BACKUP_INFIX
CONFIG_DIR_VARIABLE: Final = "CLAUDE_CONFIG_DIR"  # Claude Code's, when the user moved it
MCP_SERVERS: Final = "mcpServers"  # the key of MCP servers in every file Claude Code reads

Json: TypeAlias = dict[str, Any]


@dataclass(frozen=True, slots=True)
class InstallResult:
    """What :func:`install` did."""

    path: Path  # the file written (symlinks followed)
    command: str  # the hook command now in the file
    changed: bool  # False: memq's hooks were already there exactly as they would be written
    created: bool  # the file did not exist before
    backup: Path | None  # a copy of the previous file, when there was one and it changed


@dataclass(frozen=True, slots=True)
class UninstallResult:
    """What :func:`uninstall` did."""

    path: Path
    existed: bool  # False: there was no settings file at all
    removed: int  # memq hook entries taken out (0: nothing was written)
    backup: Path | None


def claude_config_dir() -> Path:
    """Where Claude Code keeps the user's configuration: ``CLAUDE_CONFIG_DIR`` when it is set
    (not blank), else ``~/.claude`` (``HOME`` decides where ``~`` is)."""
    configured = os.environ.get(CONFIG_DIR_VARIABLE, "").strip()
    return Path(configured) if configured else Path.home() / ".claude"


def settings_path(*, project: bool = False, settings: str | os.PathLike[str] | None = None) -> Path:
    """The settings file to change: ``settings`` if given, ``./.claude/settings.json`` for
    ``project``, else the user's (``settings.json`` in :func:`claude_config_dir`)."""
    if settings is not None:
        return Path(settings)
    if project:
        return Path.cwd() / ".claude" / "settings.json"
    return claude_config_dir() / "settings.json"


def memq_program(python: str | None = None) -> list[str]:
    """The words that start this installation's ``memq``, by absolute path: the ``memq``
    console script beside the interpreter (a virtualenv's ``bin/``) when there is one, else
    ``<interpreter> -m memq``.

    Args:
        python: the interpreter to start from; ``sys.executable`` by default.

    Raises:
        InstallError: there is no interpreter to start from.
    """
    interpreter = python or sys.executable
    if not interpreter:
        raise InstallError("cannot tell which Python runs memq (sys.executable is empty)")
    interpreter = os.path.abspath(interpreter)
    script = os.path.join(os.path.dirname(interpreter), "memq")
    if os.path.isfile(script) and os.access(script, os.X_OK):
        return [script]
    return [interpreter, "-m", "memq"]


def absolute_home(home: str) -> str:
    """A data directory to record for a program the assistant starts, made absolute.

    Raises:
        InstallError: ``home`` is blank.
    """
    if not home.strip():
        raise InstallError("the data directory to record is empty")
    return os.path.abspath(home)


def memq_hook_command(
    python: str | None = None, *, home: str | None = None, assistant: str | None = None
) -> str:
    """The shell command that runs this installation's ``memq hook``, by absolute path
    (:func:`memq_program`); paths are quoted for the shell when they need it.

    Args:
        python: the interpreter to start from; ``sys.executable`` by default.
        home: a data directory other than the default: the command sets ``MEMQ_HOME`` to it
            (``MEMQ_HOME=/path /venv/bin/memq hook``), because the assistant starts hooks
            from its own environment, not the shell that ran ``memq install``. Claude Code
            runs a hook command through ``sh -c``, which understands the assignment.
        assistant: the assistant whose hooks run it, other than Claude Code: the command
            says so (``memq hook --assistant codex``), so that its adapter reads the events.
    """
    words = [*memq_program(python), "hook"]
    if assistant is not None and assistant != CLAUDE_CODE:
        words += [ASSISTANT_OPTION, assistant]
    command = shlex.join(words)
    if home is None:
        return command
    return f"{Variable.HOME}={shlex.quote(absolute_home(home))} {command}"


def is_memq_command(command: str) -> bool:
    """Whether a hook command runs ``memq hook``: ``<path>/memq hook`` or ``<python> -m memq
    hook``, perhaps after ``MEMQ_HOME=<dir>``, perhaps followed by ``--assistant NAME``.

    Nothing else counts: no extra words, no other program whose name merely contains memq.
    """
    try:
        words = shlex.split(command)
    except ValueError:
        return False
    if words and words[0].startswith(f"{Variable.HOME}="):
        if not words[0].partition("=")[2]:
            return False
        words = words[1:]
    if len(words) >= 2 and words[-2] == ASSISTANT_OPTION and words[-1] in NAMES:
        words = words[:-2]
    if len(words) == 2:
        program, verb = words
        return verb == "hook" and os.path.basename(program) == "memq"
    if len(words) == 4:
        return bool(words[0]) and words[1:] == ["-m", "memq", "hook"]
    return False


def hooks_fragment(
    command: str,
    *,
    timeout: int = TIMEOUT_SECONDS,
    events: Sequence[str] = SUBSCRIBED_EVENTS,
    tool_events: Collection[str] = TOOL_RESULT_EVENTS,
    extra: Json | None = None,
) -> Json:
    """The ``{"hooks": {...}}`` object that runs ``command`` on every event memq listens to.

    The shape is Claude Code's, which Codex CLI and Gemini CLI share: they pass their own
    ``events`` (and ``tool_events``, which get the match-all matcher), their timeout in
    their unit, and ``extra`` keys for each hook entry (Gemini's ``name``).

    Raises:
        InstallError: ``command`` is not one :func:`is_memq_command` recognises, so it could
            be neither replaced nor uninstalled later.
    """
    if not is_memq_command(command):
        raise InstallError(f"{command!r} does not run `memq hook`")
    return {
        "hooks": {
            event: [_group(command, timeout, matcher=event in tool_events, extra=extra)]
            for event in events
        }
    }


# How an event's list loses memq's entries: (what is kept, how many went, where the first
# one stood). Claude Code's lists hold groups of entries; Cursor's hold entries.
Strip: TypeAlias = Callable[[list[Any]], tuple[list[Any], int, int | None]]


def merge_hooks(settings: Json, fragment: Json, *, strip: Strip | None = None) -> Json:
    """``settings`` with memq's entries replaced by those of ``fragment``.

    Everything else keeps its place. An existing memq entry is replaced where it stood; a new
    one goes after the event's other entries. ``settings`` itself is not modified. ``strip``
    reads an event's list (Claude Code's groups by default).

    Raises:
        InstallError: ``settings`` is not shaped like Claude Code settings.
    """
    strip = strip or _strip_groups
    result = copy.deepcopy(settings)
    hooks = _checked_hooks(result)
    if hooks is None:
        hooks = result["hooks"] = {}
    new: Json = fragment["hooks"]
    for event in list(hooks):
        kept, removed, first = strip(hooks[event])
        if event in new:
            at = len(kept) if first is None else first
            kept[at:at] = copy.deepcopy(new[event])
        if removed and not kept:
            del hooks[event]
        else:
            hooks[event] = kept
    for event, groups in new.items():
        if event not in hooks:
            hooks[event] = copy.deepcopy(groups)
    return result


def remove_memq_hooks(settings: Json, *, strip: Strip | None = None) -> tuple[Json, int]:
    """``settings`` without memq's entries, and how many entries were removed.

    A group, an event list or ``"hooks"`` itself that becomes empty goes too; one that was
    already empty stays. ``settings`` itself is not modified. ``strip`` as for
    :func:`merge_hooks`.

    Raises:
        InstallError: ``settings`` is not shaped like Claude Code settings.
    """
    strip = strip or _strip_groups
    result = copy.deepcopy(settings)
    hooks = _checked_hooks(result)
    if hooks is None:
        return result, 0
    total = 0
    for event in list(hooks):
        kept, removed, _ = strip(hooks[event])
        total += removed
        if removed and not kept:
            del hooks[event]
        else:
            hooks[event] = kept
    if total and not hooks:
        del result["hooks"]
    return result, total


def install(
    path: str | os.PathLike[str], command: str | None = None, *, now: float | None = None
) -> InstallResult:
    """Merge memq's hooks into the settings file at ``path``, creating it if missing.

    A changed file is first copied to ``<name>.memq-backup-YYYYmmddHHMMSS`` beside it, then
    replaced atomically (:func:`memq.hooks.jsonfile.update`). Nothing is written when memq's
    hooks are already there as they are.

    Args:
        path: the settings file.
        command: the hook command; :func:`memq_hook_command` by default.
        now: the time stamped on the backup's name; the current time by default.

    Raises:
        InstallError: the file cannot be read, is not a JSON object shaped like Claude Code
            settings, or cannot be written. The file is unchanged and no backup is made.
    """
    command = command or memq_hook_command()
    fragment = hooks_fragment(command)
    done = jsonfile.update(path, lambda data: merge_hooks(data, fragment), now=now)
    created = done.changed and not done.existed
    return InstallResult(done.path, command, done.changed, created, done.backup)


def uninstall(path: str | os.PathLike[str], *, now: float | None = None) -> UninstallResult:
    """Remove memq's hooks from the settings file at ``path``.

    A missing file, or one without memq entries, is left alone. Otherwise the file is first
    copied to ``<name>.memq-backup-YYYYmmddHHMMSS`` beside it, then replaced atomically.

    Raises:
        InstallError: as for :func:`install`.
    """
    removed = 0

    def change(data: Json) -> Json:
        nonlocal removed
        cleaned, removed = remove_memq_hooks(data)
        return cleaned

    done = jsonfile.update(path, change, now=now)
    return UninstallResult(done.path, done.existed, removed if done.changed else 0, done.backup)


def write_plugin(
    directory: str | os.PathLike[str], command: str | None = None, *, server: Json | None = None
) -> list[Path]:
    """Write a Claude Code plugin folder that carries memq's hooks (and its MCP server, when
    ``server`` is given); returns the files written.

    ``.claude-plugin/plugin.json`` is the manifest, ``hooks/hooks.json`` the hooks and
    ``.mcp.json`` the MCP server (``{"mcpServers": {"memq": server}}``, the shape of a
    project's ``.mcp.json``). Commands are memq's absolute path, not
    ``${CLAUDE_PLUGIN_ROOT}``: memq is installed on its own, the plugin folder only points at
    it. A plugin's MCP tools get the plugin's name in theirs (``mcp__plugin_memq_memq__search``).

    Raises:
        InstallError: a file cannot be written.
    """
    command = command or memq_hook_command()
    root = Path(directory)
    manifest: Json = {
        "name": PLUGIN_NAME,
        "version": __version__,
        "description": PLUGIN_DESCRIPTION,
    }
    hooks: Json = {"description": "memq: remember every session", **hooks_fragment(command)}
    files = [
        (root / ".claude-plugin" / "plugin.json", manifest),
        (root / "hooks" / "hooks.json", hooks),
    ]
    if server is not None:
        files.append((root / ".mcp.json", {MCP_SERVERS: {PLUGIN_NAME: server}}))
    for file, content in files:
        jsonfile.write_new(file, jsonfile.dump(content))
    return [file for file, _ in files]


# -- the shape of settings --------------------------------------------------------------------


def _group(command: str, timeout: int, *, matcher: bool, extra: Json | None) -> Json:
    group: Json = {"matcher": MATCH_ALL} if matcher else {}
    entry: Json = {**(extra or {}), "type": "command", "command": command, "timeout": timeout}
    group["hooks"] = [entry]
    return group


def _is_memq_entry(entry: object) -> bool:
    if not isinstance(entry, dict) or entry.get("type") != "command":
        return False
    command = entry.get("command")
    return isinstance(command, str) and is_memq_command(command)


def _checked_hooks(settings: object) -> Json | None:
    """The ``"hooks"`` object of ``settings`` (None if absent), once its shape is known good."""
    if not isinstance(settings, dict):
        raise InstallError(f"the settings are {json_type(settings)}, not a JSON object")
    if "hooks" not in settings:
        return None
    hooks = settings["hooks"]
    if not isinstance(hooks, dict):
        raise InstallError(f'"hooks" is {json_type(hooks)}, not an object')
    for event, groups in hooks.items():
        if not isinstance(groups, list):
            raise InstallError(f'"hooks"."{event}" is {json_type(groups)}, not a list')
    return hooks


def _strip_groups(groups: list[Any]) -> tuple[list[Any], int, int | None]:
    """The groups without memq's entries, how many entries went, and where the first one was.

    A group left with no entries goes; other groups, and anything not shaped like a group,
    stay as they are.
    """
    kept: list[Any] = []
    removed = 0
    first: int | None = None
    for group in groups:
        entries = group.get("hooks") if isinstance(group, dict) else None
        if not isinstance(group, dict) or not isinstance(entries, list):
            kept.append(group)
            continue
        rest = [entry for entry in entries if not _is_memq_entry(entry)]
        if len(rest) == len(entries):
            kept.append(group)
            continue
        if first is None:
            first = len(kept)
        removed += len(entries) - len(rest)
        if rest:
            kept.append({**group, "hooks": rest})
    return kept, removed, first
