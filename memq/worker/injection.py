"""What a hook event gets back besides its acknowledgement: the context memq injects.

``POST /api/events`` stores the event first, always; only then does it ask this module for
the text the assistant adds to the model's context, so a slow or failing read costs the
event nothing:

* SessionStart (``source`` startup, clear or anything else): the project's context
  (``memq.memory.context``); with ``source`` compact or resume, the recap of the session at
  hand and then the project's context (``memq.memory.recap``). A ``clear`` gets the
  project's context: the person left the old conversation on purpose, and the project's
  context leads with it anyway (its latest summary, its newest observations).
* UserPromptSubmit, when the setting ``recall_on_prompt`` is on: the few best matches of the
  prompt in the project's memory (``memq.memory.recall``), within a small budget and a hard
  time limit (``RecallSettings.time_limit``): a search that takes longer is abandoned and
  the prompt gets nothing.
* With a team server (MEMQ_UPSTREAM), a SessionStart's text ends with the team's context of
  the project, from the daemon's cache (``memq.team.team_reads``): never a network wait.
  Both share one budget (``MEMQ_CONTEXT_BUDGET``, ``Services.context_budget``; 2,000
  tokens by default): the team's block takes at most its share, local memory the rest
  (``memq.team.context_share``).
* Every other event: nothing (``answers`` is False, and the intake answers its plain 202).

A read that fails (``StorageError``) is logged and gives nothing: no event fails for its
context.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import anyio
import structlog

from memq.events import HookEvent, Route
from memq.exceptions import StorageError
from memq.memory.context import NOTHING_SHOWN, ContextShown, estimate_tokens
from memq.memory.projects import project_for
from memq.memory.recall import recall
from memq.memory.recap import RECAP_ITEMS, RECAP_SOURCES, build_recap
from memq.team.context_share import joined, share

if TYPE_CHECKING:
    from memq.worker.services import Services

log = structlog.get_logger("memq.injection")

STARTUP: Final = "startup"  # a SessionStart that names no source of its own
PROMPT: Final = "prompt"  # the source of a per-prompt recall


@dataclass(frozen=True, slots=True)
class Injected:
    """What one event was given: where it came from (the SessionStart's ``source``, or
    ``prompt``), the project it was about, and what the text showed."""

    source: str
    project: str | None
    shown: ContextShown


def answers(services: Services, event: str) -> bool:
    """Whether events named ``event`` get a context back (else the plain acknowledgement)."""
    if event == HookEvent.SESSION_START:
        return True
    return event == HookEvent.USER_PROMPT_SUBMIT and services.recall.enabled


async def injected(services: Services, route: Route, payload: dict[str, Any]) -> Injected:
    """The context for the event ``route`` (already stored) with ``payload``; nothing shown
    for an event that gets none."""
    if route.event == HookEvent.SESSION_START:
        given = await _session_start(services, route.session_key, payload)
    elif route.event == HookEvent.USER_PROMPT_SUBMIT and services.recall.enabled:
        given = await _prompt_recall(services, route.session_key, payload)
    else:
        return Injected(STARTUP, None, NOTHING_SHOWN)
    # What the session was shown is known here, once per event, for memq stats.
    services.usage.record_injection(
        route.session_key, given.project, given.source, given.shown.refs, given.shown.tokens
    )
    return given


async def additional_context(services: Services, route: Route, payload: dict[str, Any]) -> str:
    """The text of :func:`injected`, as the event's answer carries it."""
    return (await injected(services, route, payload)).shown.text


async def _session_start(services: Services, session_key: str, payload: dict[str, Any]) -> Injected:
    source = payload.get("source")
    source = source if isinstance(source, str) and source else STARTUP
    project = await _project(payload)
    # One budget for the whole text: the team's block (from the cache) first, local memory
    # gets what it leaves (memq.team.context_share).
    shares = share(services.context_budget, await _team_text(services, payload))
    try:
        if source in RECAP_SOURCES:
            history = await services.store.history(session_key, RECAP_ITEMS)
            shown = await build_recap(
                services.context,
                session_key,
                history,
                project=project,
                budget_tokens=shares.local_tokens,
            )
        else:
            shown = await services.context.build_shown(project, budget_tokens=shares.local_tokens)
    except StorageError as exc:
        log.warning("context.unavailable", project=project, source=source, error=str(exc))
        shown = NOTHING_SHOWN
    return Injected(source, project, _with_team(shown, shares.team))


async def _team_text(services: Services, payload: dict[str, Any]) -> str:
    """The team's cached context of the session's repository ("" without a team server,
    or none cached yet); asks for a refresh when one is due, never waits for it."""
    if services.team is None:
        return ""
    cwd = payload.get("cwd")
    identity = await anyio.to_thread.run_sync(
        services.team.identity, cwd if isinstance(cwd, str) else None
    )
    return services.team.context(identity)


def _with_team(shown: ContextShown, team: str) -> ContextShown:
    """``shown`` followed by the team's block (its own fence; its references are the
    server's, so none is counted as shown here)."""
    if not team:
        return shown
    text = joined(shown.text, team)
    return ContextShown(text, shown.refs, estimate_tokens(text))


async def _prompt_recall(services: Services, session_key: str, payload: dict[str, Any]) -> Injected:
    settings = services.recall
    project: str | None = None
    shown = NOTHING_SHOWN
    with anyio.move_on_after(settings.time_limit) as scope:
        try:
            project = await _project(payload)
            shown = await recall(
                services.search,
                payload.get("prompt"),
                project=project,
                session_key=session_key,
                settings=settings,
            )
        except StorageError as exc:
            log.warning("recall.unavailable", project=project, error=str(exc))
    if scope.cancelled_caught:
        log.info("recall.too_slow", session_id=session_key, limit_s=settings.time_limit)
    return Injected(PROMPT, project, shown)


async def _project(payload: dict[str, Any]) -> str | None:
    """The project of the event's ``cwd`` (its git root: a look at the disk, off the loop)."""
    cwd = payload.get("cwd")
    return await anyio.to_thread.run_sync(project_for, cwd if isinstance(cwd, str) else None)
