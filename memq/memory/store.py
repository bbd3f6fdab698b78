"""The memory store: sessions, prompts, observations and summaries in the queue's database,
the SQLite ``MemoryBackend`` (``memq.memory.backend``).

Writes are ``Effect`` functions that the queue's writer runs inside the transaction that marks
the message processed (``claim.ack(store.effect(...))``), so memory and the processed mark
commit together or not at all. Reads use the store's own connection.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import aiosqlite

from memq.events import HookEvent
from memq.exceptions import InvalidRequestError, SameSessionError, SessionNotFoundError
from memq.limits import DEFAULT_HISTORY_ITEMS, TURN_ITEMS
from memq.memory.backend import CONTEXT_ITEMS, MemoryWrite, TransferResult
from memq.memory.feed import append_feed
from memq.memory.history import History, HistoryEntry, shape_history
from memq.memory.origin import record_origin
from memq.memory.reader import ReadsMemory
from memq.memory.records import (
    ObservationRecord,
    Page,
    ProcessResult,
    SessionContext,
    SessionDetail,
    SessionInfo,
    SummaryRecord,
    from_epoch_ms,
    to_epoch_ms,
)
from memq.memory.rows import (
    first_column,
    observation_from_row,
    prompt_from_row,
    summary_from_row,
)
from memq.queue import Effect, Message, MessageKind, Transaction
from memq.storage.sqlfile import load_queries

QUERIES: Final = load_queries("memory")
HISTORY_QUERIES: Final = load_queries("history")
TURN_QUERIES: Final = load_queries("turn")
TITLE_CHARS: Final = 80
# What marks a fork's title taken from its parent, or from a prompt it inherited: a list of
# sessions shows a fork apart from its parent. fork_insert_session (queries/fork.sql, shared
# with the hook's standard-library fallback) spells it out too.
FORK_TITLE_MARKER: Final = "[fork] "
UNKNOWN_ASSISTANT: Final = "unknown"
RECORD_TABLES: Final = ("prompts", "observations", "summaries")
_SESSION_CREATING_KINDS: Final = frozenset(
    {MessageKind.PROMPT, MessageKind.OBSERVATION, MessageKind.SUMMARIZE}
)


class MemoryStore(ReadsMemory):
    """Reads memory on its own connection and builds the effects that write it: the SQLite
    ``MemoryBackend``.

    Open it with ``await MemoryStore.open(path)`` on a database that ``Queue.open`` has
    already migrated.
    """

    TABLES = ("sessions", "prompts", "observations", "summaries")

    # -- writing ---------------------------------------------------------------------------

    def effect(self, message: Message, result: ProcessResult, *, project: str | None) -> Effect:
        """The write that stores ``message``'s memory; pass it to ``claim.ack``.

        It records the session (a prompt, a tool call or a summary creates it; a
        ``session_end`` message ends it, a SessionStart event opens it again; see
        ``_session_write``), numbers and stores a prompt, and stores the result's observation
        and summary, each stamped with the message's id and time (and, for an event the team
        server took in, who made it on which machine: ``memq.memory.origin``), and appends
        their rows to the live feed (``memq.memory.feed``). A second write for the same
        message fails with ``StorageError`` (UNIQUE message_id).
        """
        session_write = _session_write(message, result)
        session = _session_params(message, project)
        prompt = {"text": _prompt_text(message)} if message.kind is MessageKind.PROMPT else None
        # A team server's record names who made it (memq.memory.origin); a local one nothing.
        # The insert stores them itself: one statement a record.
        author, machine = record_origin(message.payload)
        origin = {
            "message_id": message.id,
            "session_key": message.session_id,
            "created_at": to_epoch_ms(message.created_at),
            "author": author,
            "machine": machine,
        }
        observation = (
            None if result.observation is None else _observation_params(result.observation)
        )
        summary = None if result.summary is None else _summary_params(result.summary)

        async def write(tx: Transaction) -> None:
            if session_write is not None:
                await tx.execute(QUERIES[session_write], {**session, "now": tx.now_ms})
            for record_type, params in (
                ("prompt", prompt),
                ("observation", observation),
                ("summary", summary),
            ):
                if params is not None:
                    await tx.execute(QUERIES[f"insert_{record_type}"], {**params, **origin})
            if prompt is not None or observation is not None or summary is not None:
                await append_feed(tx, message_id=message.id, session_key=message.session_id)

        return write

    def forget_effect(self, session_key: str) -> MemoryWrite[int]:
        """A write that deletes the session and all its memory; it returns how many rows it
        deleted. Run it with ``queue.run_in_transaction``.

        Its forks keep their copies: of each of its own records, one copy becomes its
        fork's own (``_hand_on``); and they take its place below its parent, or stand on
        their own when it had none (no ``parent_key`` names a deleted session)."""
        params = {"session_key": session_key}

        async def forget(tx: Transaction) -> int:
            deleted = 0
            await _hand_on(tx, session_key, from_message_id=0)
            await tx.execute(QUERIES["reparent_forks"], params)
            for name in (
                "delete_session_prompts",
                "delete_session_observations",
                "delete_session_summaries",
                "delete_session",
            ):
                deleted += await tx.execute(QUERIES[name], params)
            return deleted

        return forget

    def revert_effect(self, session_key: str, from_message_id: int) -> MemoryWrite[int]:
        """A write that forgets what the session learned from ``from_message_id`` on (its
        prompts, observations and summaries) and recounts the session; it returns how many
        records it deleted. Remove the queue rows first (``Queue.forget_session_from``), so
        nothing after the cut is processed again.

        Forks made earlier keep their copies of what it forgets (``_hand_on``). The session's
        ``updated_at`` moves to the revert's time, never back."""
        params = {"session_key": session_key, "from_id": from_message_id}

        async def revert(tx: Transaction) -> int:
            deleted = 0
            await _hand_on(tx, session_key, from_message_id=from_message_id)
            for name in ("revert_prompts", "revert_observations", "revert_summaries"):
                deleted += await tx.execute(QUERIES[name], params)
            await tx.execute(
                QUERIES["recount_session"], {"session_key": session_key, "now": tx.now_ms}
            )
            return deleted

        return revert

    def transfer_effect(self, from_key: str, to_key: str) -> MemoryWrite[TransferResult]:
        """A write that moves the session's memory to ``to_key`` (created if new, merged
        into if it exists: its prompts numbered after the target's) and deletes the source.
        Move the queue rows first (``Queue.move_session``).

        The two may be of one fork family. A record both hold (an original and a fork's
        copy of it, or two copies of one original) ends up once: as the original if either
        had it, in the place of the target's copy. ``parent_key`` stays a forest
        (``transfer_parent``); the source's forks descend from the target, but for one the
        target descends from, which takes the source's place.
        """
        if from_key == to_key:
            raise SameSessionError(f"a session cannot be transferred to itself: {from_key}")
        assistant, external_id = split_session_key(to_key)
        params = {"from_key": from_key, "to_key": to_key}

        async def transfer(tx: Transaction) -> TransferResult:
            rows = await tx.fetchall(QUERIES["transfer_links"], params)
            if not rows:
                return TransferResult(records=0, merged=0)
            links = rows[0]
            parent_key, forked_at = transfer_parent(
                source=(links["source_parent"], links["source_forked_at"]),
                target=(links["target_parent"], links["target_forked_at"])
                if links["target_exists"]
                else None,
                source_key=from_key,
                source_below_target=bool(links["source_below_target"]),
            )
            # The target row first and the source row last: records reference their session.
            await tx.execute(
                QUERIES["transfer_session_row"],
                {
                    **params,
                    "assistant": assistant,
                    "external_id": external_id,
                    "parent_key": parent_key,
                    "forked_at": forked_at,
                    "now": tx.now_ms,
                },
            )
            merged = moved = 0
            for table in RECORD_TABLES:
                merged += await tx.execute(QUERIES[f"transfer_drop_held_{table}"], params)
                taken = await tx.fetchall(QUERIES[f"transfer_take_originals_{table}"], params)
                originals = json.dumps([int(row["message_id"]) for row in taken])
                moved += await tx.execute(
                    QUERIES[f"transfer_restore_{table}"], {**params, "originals": originals}
                )
                moved += await tx.execute(QUERIES[f"transfer_{table}"], params)
            await tx.execute(QUERIES["transfer_recount"], params)
            await tx.execute(
                QUERIES["transfer_forks"],
                {
                    **params,
                    "target_line": links["target_line"],
                    "source_parent": links["source_parent"],
                    "source_forked_at": links["source_forked_at"],
                },
            )
            await tx.execute(QUERIES["delete_session"], {"session_key": from_key})
            return TransferResult(records=moved, merged=merged)

        return transfer

    def title_effect(self, session_key: str, title: str | None) -> MemoryWrite[str | None]:
        """A write that sets the session's title (kept by a revert), or with None gives it
        back the one from its first prompt (marked as a fork's, ``fork_title``, when the
        session inherited that prompt). It returns the title, or raises
        ``SessionNotFoundError`` when memory has no such session. Either is a change:
        ``updated_at`` moves to now."""
        params = {"session_key": session_key}

        async def set_title(tx: Transaction) -> str | None:
            new_title = title
            if new_title is None:
                first = await tx.fetchall(QUERIES["first_prompt_text"], params)
                new_title = title_from_prompt(str(first[0]["text"])) if first else None
                if first and first[0]["inherited"]:
                    new_title = fork_title(new_title)
            # No row updated: no such session (and nothing written).
            if not await tx.execute(
                QUERIES["set_title"],
                {
                    **params,
                    "title": new_title,
                    "edited": int(title is not None),
                    "now": tx.now_ms,
                },
            ):
                raise SessionNotFoundError(f"no session {session_key}")
            return new_title

        return set_title

    async def revert_cutoff(self, session_key: str, last: int) -> int | None:
        """The first message id of the session's ``last`` newest messages that left memory;
        None when it has none."""
        async with self._reader.reading() as conn:
            rows = list(
                await conn.execute_fetchall(
                    QUERIES["revert_cutoff"], {"session_key": session_key, "last": last}
                )
            )
        cutoff = rows[0]["cutoff"] if rows else None
        return None if cutoff is None else int(cutoff)

    # -- reading ---------------------------------------------------------------------------

    async def has_session(self, session_key: str) -> bool:
        """Whether memory has the session (one index probe, unlike ``get_session``)."""
        async with self._reader.reading() as conn:
            rows = await conn.execute_fetchall(
                QUERIES["session_exists"], {"session_key": session_key}
            )
        return bool(list(rows))

    async def has_message(self, session_key: str, message_id: int) -> bool:
        """Whether message ``message_id`` is the session's: a record of the session came
        from it, or the queue still holds it for the session."""
        params = {"session_key": session_key, "message_id": message_id}
        async with self._reader.reading() as conn:
            rows = list(await conn.execute_fetchall(QUERIES["session_has_message"], params))
        return bool(rows[0]["found"])

    async def context_for(
        self, session_key: str, *, max_items: int = CONTEXT_ITEMS
    ) -> SessionContext:
        """What a processor may know about the session: its project, and its history (at
        most ``max_items`` prompts and observations since its last summary, oldest first,
        starting at a prompt; see ``memq.memory.history``)."""
        found = await self._read_history(session_key, max_items)
        if found is None:
            return SessionContext(session_key=session_key, project=None)
        project, history = found
        left_out = 0
        if history.prompts:  # counted over the last prompt's turn only: a bounded span
            after = {"session_key": session_key, "after": history.prompts[-1].message_id}
            async with self._reader.reading() as conn:
                left_out = await _count(conn, TURN_QUERIES["turn_left_out"], after)
        return SessionContext(
            session_key=session_key,
            project=project,
            prompts=history.prompts,
            observations=history.observations,
            omitted=history.omitted,
            left_out=left_out,
        )

    async def turn_for(self, session_key: str, *, max_items: int = TURN_ITEMS) -> SessionContext:
        """What a processor may know about a tool call's turn: the session's last prompt and
        at most ``max_items`` of the newest observations after it, oldest first (two index
        probes, however long the session). No project: a tool call needs none."""
        if max_items < 1:
            raise InvalidRequestError(f"max_items must be at least 1 (got {max_items})")
        key = {"session_key": session_key}
        # No common snapshot needed: a session's messages are processed one at a time, so
        # its turn does not change under this read (and BEGIN/COMMIT would double its cost).
        async with self._reader.reading() as conn:
            prompts = list(await conn.execute_fetchall(TURN_QUERIES["turn_prompt"], key))
            after = prompts[0]["message_id"] if prompts else 0
            params = {**key, "after": after, "limit": max_items}
            rows = list(await conn.execute_fetchall(TURN_QUERIES["turn_observations"], params))
        return SessionContext(
            session_key=session_key,
            project=None,
            prompts=tuple(prompt_from_row(row) for row in prompts),
            observations=tuple(observation_from_row(row) for row in reversed(rows)),
        )

    async def history(
        self, session_key: str, max_items: int = DEFAULT_HISTORY_ITEMS
    ) -> History | None:
        """The session's history for prompting (``memq.memory.history``); None when memory
        has no such session."""
        found = await self._read_history(session_key, max_items)
        return None if found is None else found[1]

    async def _read_history(
        self, session_key: str, max_items: int
    ) -> tuple[str | None, History] | None:
        """The session's project and history, read in one snapshot; None for an unknown
        session. At most ``max_items`` prompts and as many observations are read, whatever
        the session's length: that is all ``shape_history`` can use."""
        if max_items < 1:
            raise InvalidRequestError(f"max_items must be at least 1 (got {max_items})")
        key = {"session_key": session_key}
        async with self._reader.snapshot() as conn:
            heads = list(await conn.execute_fetchall(HISTORY_QUERIES["history_start"], key))
            if not heads:
                return None
            after_summary = heads[0]["after_summary"]
            params = {**key, "after": after_summary or 0, "limit": max_items}
            prompts = list(await conn.execute_fetchall(HISTORY_QUERIES["history_prompts"], params))
            observations = list(
                await conn.execute_fetchall(HISTORY_QUERIES["history_observations"], params)
            )
            # Fewer rows than the limit of both kinds are the whole span: nothing to count
            # (shape_history's total then defaults to the entries given).
            whole = len(prompts) < max_items and len(observations) < max_items
            total = None if whole else await _count(conn, HISTORY_QUERIES["history_total"], params)
        entries: list[HistoryEntry] = [prompt_from_row(row) for row in prompts]
        entries += [observation_from_row(row) for row in observations]
        # Message ids are the order the queue accepted the events; each is one record.
        entries.sort(key=lambda entry: entry.message_id or 0)
        history = shape_history(
            entries,
            max_items,
            total=total,
            after_summary=None if after_summary is None else int(after_summary),
        )
        return heads[0]["project"], history

    async def list_sessions(
        self,
        limit: int = 100,
        offset: int = 0,
        *,
        assistants: Sequence[str] | None = None,
        authors: Sequence[str] | None = None,
    ) -> Page[SessionInfo]:
        """Sessions, most recently active first; only ``assistants``' when given, and only
        those holding records of their own by ``authors`` (``memq.memory.origin``)."""
        params: dict[str, Any] = dict(_page_params(limit, offset))
        name = "sessions"
        if authors is not None:  # from the author indexes; assistants filter those
            name, params["authors"] = "sessions_by_author", json.dumps(list(authors))
            params["assistants"] = None if assistants is None else json.dumps(list(assistants))
        elif assistants is not None and len(set(assistants)) == 1:  # an index search, no sort
            name, params["assistant"] = "sessions_of_assistant", assistants[0]
        elif assistants is not None:
            name, params["assistants"] = "sessions_by_assistant", json.dumps(list(assistants))
        rows, total = await self._page(name, params)
        return Page(tuple(SessionInfo(**_session_fields(row)) for row in rows), total)

    async def get_session(self, session_key: str) -> SessionDetail | None:
        """The session with its prompts in order, or None when memory has no such session."""
        params = {"session_key": session_key}
        async with self._reader.snapshot() as conn:
            rows = list(await conn.execute_fetchall(QUERIES["get_session"], params))
            if not rows:
                return None
            prompts = await conn.execute_fetchall(QUERIES["session_prompts"], params)
        return SessionDetail(
            **_session_fields(rows[0]), prompts=tuple(prompt_from_row(row) for row in prompts)
        )

    async def observations(
        self, session_key: str, limit: int = 100, offset: int = 0
    ) -> Page[ObservationRecord]:
        """A page of the session's observations, oldest first, with their total."""
        params = {"session_key": session_key, **_page_params(limit, offset)}
        rows, total = await self._page("observations", params)
        return Page(tuple(observation_from_row(row) for row in rows), total)

    async def summaries(
        self, session_key: str, limit: int = 100, offset: int = 0
    ) -> Page[SummaryRecord]:
        """A page of the session's summaries, oldest first, with their total."""
        params = {"session_key": session_key, **_page_params(limit, offset)}
        rows, total = await self._page("summaries", params)
        return Page(tuple(summary_from_row(row) for row in rows), total)

    async def _page(self, name: str, params: Mapping[str, Any]) -> tuple[list[sqlite3.Row], int]:
        """The rows of ``list_<name>`` and the total of ``count_<name>``, in one snapshot."""
        async with self._reader.snapshot() as conn:
            rows = list(await conn.execute_fetchall(QUERIES[f"list_{name}"], params))
            total = await _count(conn, QUERIES[f"count_{name}"], params)
        return rows, total


async def _hand_on(tx: Transaction, session_key: str, *, from_message_id: int) -> None:
    """Before the session's own records from ``from_message_id`` on leave memory: one copy
    of each (the oldest fork's) becomes its fork's own, and the others name that one."""
    params = {"session_key": session_key, "from_id": from_message_id}
    for table in RECORD_TABLES:
        await tx.execute(QUERIES[f"hand_on_{table}_name_heir"], params)
        await tx.execute(QUERIES[f"hand_on_{table}_to_heir"], params)


# -- statement parameters --------------------------------------------------------------------


def split_session_key(session_key: str) -> tuple[str, str]:
    """``(assistant, external id)`` of a ``<assistant>:<id>`` key; a key without an
    assistant part belongs to an ``unknown`` assistant."""
    assistant, colon, external_id = session_key.partition(":")
    if not colon or not assistant or not external_id:
        return UNKNOWN_ASSISTANT, session_key
    return assistant, external_id


def transfer_parent(
    *,
    source: tuple[str | None, int | None],
    target: tuple[str | None, int | None] | None,
    source_key: str,
    source_below_target: bool,
) -> tuple[str | None, int | None]:
    """The target's ``(parent_key, forked_at)`` after a transfer from ``source_key``: given
    each one's before (``target`` None: a new session) and whether the source's parent is the
    target or below it.

    A new target takes the source's place (a rename). A fork of the source takes the source's
    place too: its parent is gone. A target with another parent keeps it. A target without
    one takes the source's, unless that would close a cycle (the source descends from it).
    """
    if target is None or target[0] == source_key:
        return source
    if target[0] is not None:
        return target
    if source[0] is not None and not source_below_target:
        return source
    return None, None


def fork_title(title: str | None) -> str | None:
    """``title`` marked as a fork's, once however deep the fork."""
    if title is None or title.startswith(FORK_TITLE_MARKER):
        return title
    return FORK_TITLE_MARKER + title


def title_from_prompt(text: str) -> str | None:
    """A session title: the prompt's first non-blank line, at most 80 characters."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    title = " ".join(first.split())
    if not title:
        return None
    return title if len(title) <= TITLE_CHARS else title[: TITLE_CHARS - 1].rstrip() + "…"


def _session_write(message: Message, result: ProcessResult) -> str | None:
    """The statement that records ``message`` in its session, if any.

    A session starts, for memory, with its first prompt, tool call or summary (or any record
    a processor made, which needs its session's row). A SessionStart or a session end alone
    only updates a session memory knows: Claude Code's setup run and sessions closed before
    their first prompt would otherwise list as empty sessions. An event memq's hooks do not
    subscribe to touches no session: InstructionsLoaded comes with throw-away session ids.
    """
    if (
        message.kind in _SESSION_CREATING_KINDS
        or result.observation is not None
        or result.summary is not None
    ):
        return "upsert_session"
    if message.kind is MessageKind.UNSUBSCRIBED:
        return None
    return "update_session"


def _session_params(message: Message, project: str | None) -> dict[str, Any]:
    payload = message.payload if isinstance(message.payload, Mapping) else {}
    cwd = payload.get("cwd")
    at = to_epoch_ms(message.created_at)
    assistant, external_id = split_session_key(message.session_id)
    is_prompt = message.kind is MessageKind.PROMPT
    starts = (
        message.kind is MessageKind.EVENT
        and payload.get("hook_event_name") == HookEvent.SESSION_START
    )
    return {
        "key": message.session_id,
        "assistant": assistant,
        "external_id": external_id,
        "project": project,
        "cwd": cwd if isinstance(cwd, str) and cwd else None,
        "title": title_from_prompt(_prompt_text(message)) if is_prompt else None,
        "prompts": int(is_prompt),
        "at": at,
        "ended_at": at if message.kind is MessageKind.SESSION_END else None,
        "reopen": int(starts),
    }


def _prompt_text(message: Message) -> str:
    payload = message.payload if isinstance(message.payload, Mapping) else {}
    text = payload.get("prompt")
    return text if isinstance(text, str) else ""


def _json_list(items: tuple[str, ...]) -> str:
    return json.dumps(list(items), ensure_ascii=False)


def _observation_params(record: ObservationRecord) -> dict[str, Any]:
    return {
        "kind": str(record.kind),
        "title": record.title,
        "subtitle": record.subtitle,
        "narrative": record.narrative,
        "facts": _json_list(record.facts),
        "concepts": _json_list(record.concepts),
        "files_read": _json_list(record.files_read),
        "files_modified": _json_list(record.files_modified),
        "tool_name": record.tool_name,
        "command": record.command,
        "exit_code": record.exit_code,
        "excerpt": record.excerpt,
    }


def _summary_params(record: SummaryRecord) -> dict[str, Any]:
    return {
        "request": record.request,
        "investigated": record.investigated,
        "learned": record.learned,
        "completed": record.completed,
        "next_steps": record.next_steps,
        "files_read": _json_list(record.files_read),
        "files_edited": _json_list(record.files_edited),
        "notes": record.notes,
    }


def _page_params(limit: int, offset: int) -> dict[str, int]:
    if limit < 0 or offset < 0:
        raise InvalidRequestError(f"limit and offset must not be negative (got {limit}, {offset})")
    return {"limit": limit, "offset": offset}


# -- rows to records -------------------------------------------------------------------------


async def _count(conn: aiosqlite.Connection, sql: str, params: Mapping[str, Any]) -> int:
    rows = list(await conn.execute_fetchall(sql, params))
    return int(first_column(rows[0]))


def _session_fields(row: sqlite3.Row) -> dict[str, Any]:
    """The ``SessionInfo`` fields of a ``list_sessions`` / ``get_session`` row."""
    return {
        "key": row["key"],
        "assistant": row["assistant"],
        "external_id": row["external_id"],
        "project": row["project"],
        "cwd": row["cwd"],
        "title": row["title"],
        "title_edited": bool(row["title_edited"]),
        "prompt_count": int(row["prompt_count"]),
        "observation_count": int(row["observation_count"]),
        "summary_count": int(row["summary_count"]),
        "parent_key": row["parent_key"],
        "forked_at": _optional_time(row["forked_at"]),
        "started_at": from_epoch_ms(row["started_at"]),
        "ended_at": _optional_time(row["ended_at"]),
        "updated_at": from_epoch_ms(row["updated_at"]),
        "last_access_at": _optional_time(row["last_access_at"]),
    }


def _optional_time(ms: int | None) -> datetime | None:
    return None if ms is None else from_epoch_ms(ms)
