"""Cutting a hook event down to memq's body limit, as JSON text, in one pass.

A tool can answer with 50 MB. Parsing that into Python objects costs several times its size
in memory, so an event over the limit is cut as text: one scan finds where each value ends
(the extents of large containers are remembered, so no part is scanned twice), then the
limit is shared out from the top by water-filling: every part that fits an equal share is
kept whole, and only the largest are cut, down to the same size. A string keeps its start; a
list or object with more parts than its share can hold keeps its first parts. Each cut says
how much was left out (``… [memq: N more bytes not kept]``). The routing fields of the event
(its name, session and ids) are never cut.

What is cut away is checked only for its structure (brackets and strings); what is kept is
copied as it came and parsed strictly afterwards (``memq.events.parse_event_body``).

Standard library only: ``memq hook`` runs this.
"""

from __future__ import annotations

import json
import re

from memq.exceptions import MalformedEventError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final

# The smallest limit this can meet (MEMQ_BODY_LIMIT is at least 1024).
MIN_LIMIT: Final = 256
# A part whose share would be smaller than this is dropped (a list's later items, an
# object's later fields) rather than cut into something too short to mean anything.
MIN_PART: Final = 256
# In a list or object that keeps only its first parts, one part takes at most this share.
PREFIX_SHARE: Final = 8
# The event's routing fields, kept whole when they are this short (ids are at most 256).
PINNED_FIELDS: Final = frozenset(
    f'"{name}"'.encode()
    for name in (
        "hook_event_name",
        "session_id",
        "tool_use_id",
        "prompt_id",
        "memq_event_id",
        "memq_redacted",
        "tool_name",
        "cwd",
        "transcript_path",
        "permission_mode",
    )
)
PINNED_MAX: Final = 1024
# Only the first this many parts of one list or object are looked at one by one; the rest is
# skipped in bulk (a million short lines must not cost a million steps in Python).
MAX_PARTS: Final = 50_000
# Containers at least this long have their extent remembered. Scaled with the input, so the
# memo stays small however the input nests.
MEMO_MIN: Final = 4096
MEMO_ENTRIES: Final = 4096
# memq.events.MAX_DEPTH (100) and a little: the strict parse afterwards refuses exactly.
MAX_DEPTH: Final = 102
# Room kept for the note that says what a list or object left out.
NOTE_ROOM: Final = 96
NOTE_KEY: Final = b'"memq_not_kept"'

_QUOTE: Final = ord('"')
_BACKSLASH: Final = ord("\\")
_COMMA: Final = ord(",")
_COLON: Final = ord(":")
_OPENERS: Final = frozenset(b"[{")
_CLOSERS: Final = {ord("]"): ord("["), ord("}"): ord("{")}

_BRACKETS: Final = (b"[", b"]", b"{", b"}")
# A run of short values this long is passed by _next_bracket instead, in stretches that
# start at FLAT_CHUNK and double up to MAX_FLAT_CHUNK.
STRETCH: Final = 1 << 16
FLAT_CHUNK: Final = 4096
MAX_FLAT_CHUNK: Final = 1 << 20
# Containers nested up to this deep are skipped inside one regular-expression match.
NESTING: Final = 4


def _around(inner: bytes, times: str) -> bytes:
    """A list or an object of up to ``times`` of ``inner``."""
    count = times.encode()
    return rb"\[(?:" + inner + rb")" + count + rb"\]|\{(?:" + inner + rb")" + count + rb"\}"


class _Patterns:
    """The regular expressions, compiled when an event first needs cutting: compiling them
    costs more than a whole ``memq hook`` run that fits."""

    def __init__(self) -> None:
        other = rb'[^"\\\[\]{}]'  # outside strings and brackets: numbers, literals, , : spaces
        string = rb'"[^"\\]*+(?:\\[\x00-\xff][^"\\]*+)*+"'
        # Short strings and small containers are skipped inside one match; anything longer
        # stops it and is handled on its own (a long string by memchr).
        atom = other + rb"{1,4096}+|" + rb'"[^"\\]{0,4096}+(?:\\[\x00-\xff][^"\\]{0,4096}+){0,64}+"'
        nested = atom
        for _ in range(NESTING):
            nested = atom + b"|" + _around(nested, "{0,64}+")
        self.run = re.compile(rb"(?:" + nested + rb")*+")
        # The inside of a container with no other in it, up to a bracket.
        self.flat_body = re.compile(rb"(?:" + other + rb"++|" + string + rb")*+")
        self.flat_body_plain = re.compile(rb'(?:[^"\[\]{}]++|"[^"]*+")*+')  # no backslash
        # A list's first items, each short and followed by a comma: a list of a million
        # lines keeps its first ones in one match.
        small_string = rb'"[^"\\]{0,256}+(?:\\[\x00-\xff][^"\\]{0,64}+){0,16}+"'
        record = _around(other + rb"{1,256}+|" + small_string, "{0,32}+")
        scalar = rb"[-+.0-9eEtruefalsn]{1,64}+"
        self.small_items = re.compile(
            rb"(?:[ \t\n\r]*+(?:"
            + small_string
            + b"|"
            + record
            + b"|"
            + scalar
            + rb")[ \t\n\r]*+,)*+"
        )
        self.string = re.compile(string)
        self.space = re.compile(rb"[ \t\n\r]*+")
        self.scalar = re.compile(
            rb"-?(?:0|[1-9][0-9]*+)(?:\.[0-9]++)?(?:[eE][-+]?[0-9]++)?|true|false|null"
        )
        self.high_surrogate = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}")


_patterns: list[_Patterns] = []


def _compiled() -> _Patterns:
    if not _patterns:
        _patterns.append(_Patterns())
    return _patterns[0]


def fit(payload: dict[str, Any], limit: int) -> tuple[dict[str, Any], bytes]:
    """The payload and its compact JSON body, cut (see the module) to at most ``limit``
    bytes; unchanged when it fits."""
    body = encode(payload)
    if len(body) <= limit:
        return payload, body
    body = fit_body(body, limit)
    fitted: dict[str, Any] = json.loads(body)
    return fitted, body


def encode(payload: Any) -> bytes:
    """Compact JSON in UTF-8: the text the hook sends and the queue stores."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def fit_body(raw: bytes, limit: int) -> bytes:
    """The JSON text ``raw`` cut to at most ``limit`` bytes; ``raw`` itself when it fits.

    Raises ``MalformedEventError`` when ``raw`` over the limit is not JSON in its structure,
    and ``ValueError`` for a limit below ``MIN_LIMIT``.
    """
    if len(raw) <= limit:
        return raw
    if limit < MIN_LIMIT:
        raise ValueError(f"a body limit of {limit} bytes is below the least, {MIN_LIMIT}")
    return _Cutter(raw).cut(limit)


def note(dropped: int) -> bytes:
    """What a cut string ends with."""
    return f"… [memq: {dropped} more bytes not kept]".encode()


class _Cutter:
    """One cut of one JSON text: the extents found so far and the pieces written."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.rx = _compiled()
        self.memo: dict[int, int] = {}
        self.memo_min = max(MEMO_MIN, len(raw) // MEMO_ENTRIES)
        self.out: list[bytes] = []

    def cut(self, limit: int) -> bytes:
        start = self._space(0)
        if start >= len(self.raw):
            raise MalformedEventError("body is empty")
        end = self.end_of(start, 0)
        if self._space(end) != len(self.raw):
            raise MalformedEventError(f"body is not valid JSON: extra data at byte {end}")
        self.fit_value(start, end, limit, 0, root=True)
        return b"".join(self.out)

    # -- finding where values end -----------------------------------------------------------

    def _space(self, i: int) -> int:
        match = self.rx.space.match(self.raw, i)
        assert match is not None  # matches the empty string
        return match.end()

    def end_of(self, i: int, depth: int) -> int:
        """Where the value that starts at byte ``i`` ends (one past its last byte)."""
        raw = self.raw
        if i >= len(raw):
            raise MalformedEventError("body is not valid JSON: it ends early")
        byte = raw[i]
        if byte == _QUOTE:
            return self._string_end(i)
        if byte in _OPENERS:
            known = self.memo.get(i)
            return known if known is not None else self._container_end(i, depth)
        scalar = self.rx.scalar.match(raw, i)
        if scalar is None:
            raise MalformedEventError(f"body is not valid JSON: unexpected byte at {i}")
        return scalar.end()

    def _string_end(self, i: int) -> int:
        raw = self.raw
        close = raw.find(b'"', i + 1)
        if close < 0:
            raise MalformedEventError(f"body is not valid JSON: unterminated string at byte {i}")
        if raw[close - 1] != _BACKSLASH:
            return close + 1
        match = self.rx.string.match(raw, i)  # escapes: the careful way
        if match is None:
            raise MalformedEventError(f"body is not valid JSON: unterminated string at byte {i}")
        return match.end()

    def _container_end(self, start: int, depth: int) -> int:
        raw = self.raw
        memo = self.memo
        size = len(raw)
        stack = [start]
        i = start + 1
        while True:
            i = self._skip_run(i)
            if i >= size:
                raise MalformedEventError(
                    f"body is not valid JSON: the bracket at byte {stack[-1]} is never closed"
                )
            byte = raw[i]
            if byte == _QUOTE:
                i = self._string_end(i)
            elif byte in _OPENERS:
                known = memo.get(i)
                if known is not None:
                    i = known
                    continue
                if depth + len(stack) >= MAX_DEPTH:
                    raise MalformedEventError(f"body nests deeper than {MAX_DEPTH} levels")
                stack.append(i)
                i += 1
            elif byte in _CLOSERS:
                opened = stack.pop()
                if raw[opened] != _CLOSERS[byte]:
                    raise MalformedEventError(
                        f"body is not valid JSON: mismatched bracket at byte {i}"
                    )
                i += 1
                if i - opened >= self.memo_min:
                    memo[opened] = i
                if not stack:
                    return i
            else:
                raise MalformedEventError(f"body is not valid JSON: unexpected byte at {i}")

    def _skip_run(self, i: int) -> int:
        """Past the short values and small containers at ``i`` (outside a string)."""
        run = self.rx.run.match(self.raw, i, min(i + STRETCH, len(self.raw)))
        assert run is not None  # matches the empty string
        if run.end() - i >= STRETCH // 2:  # a long run: pass the rest of it faster
            return self._next_bracket(run.end())
        return run.end()

    def _next_bracket(self, i: int) -> int:
        """The next bracket (or stray backslash) at or after ``i``, outside strings; ``i`` is
        outside a string. Stretches without a backslash or a bracket are passed at the speed
        of memchr, counting quotes; the rest by regular expression."""
        raw = self.raw
        size = len(raw)
        chunk = FLAT_CHUNK
        while i < size:
            stop = min(i + chunk, size)
            chunk = min(chunk * 2, MAX_FLAT_CHUNK)
            escapes = raw.find(b"\\", i, stop) >= 0
            if not escapes and not any(raw.find(mark, i, stop) >= 0 for mark in _BRACKETS):
                if raw.count(b'"', i, stop) % 2:
                    i = self._string_end(raw.rfind(b'"', i, stop))
                else:
                    i = stop
                continue
            flat = self.rx.flat_body if escapes else self.rx.flat_body_plain
            body = flat.match(raw, i, stop)
            assert body is not None  # matches the empty string
            i = body.end()
            if i == stop:
                continue
            if raw[i] != _QUOTE:
                return i
            i = self._string_end(i)  # a string running past the stretch
        return size

    # -- writing the cut value --------------------------------------------------------------

    def fit_value(
        self, start: int, end: int, budget: int, depth: int, *, root: bool = False
    ) -> None:
        """Write the value at ``[start, end)`` in at most ``budget`` bytes."""
        raw = self.raw
        if end - start <= budget:
            self.out.append(raw[start:end])
        elif raw[start] == _QUOTE:
            self._cut_string(start, end, budget)
        elif raw[start] in _OPENERS:
            self._cut_container(start, end, budget, depth, root=root)
        else:  # a number longer than its share
            text = json.dumps(f"[memq: a number of {end - start} digits not kept]").encode()
            self.out.append(text if len(text) <= budget else b"0")

    def _cut_string(self, start: int, end: int, budget: int) -> None:
        raw = self.raw
        keep = budget - 2 - len(note(end - start))
        if keep <= 0:
            text = json.dumps(f"[memq: {end - start} bytes not kept]").encode()
            self.out.append(text if len(text) <= budget else b'""')
            return
        cut = safe_cut(raw, start + 1, start + 1 + keep)
        self.out.append(raw[start:cut] + note(end - 1 - cut) + b'"')

    def _cut_container(self, start: int, end: int, budget: int, depth: int, *, root: bool) -> None:
        if (
            not root
            and self.raw[start] == ord("[")
            and self._cut_list_of_small_items(start, end, budget)
        ):
            return
        parts, tail = self._parts(start, end, budget, depth, root=root)
        pinned = [part for part in parts if part.pinned]
        fixed = 2 + sum(part.whole_cost for part in pinned)
        if fixed > budget // 2:  # routing fields this long are not what they should be
            for part in pinned:
                part.pinned = False
            pinned, fixed = [], 2
        free = [part for part in parts if not part.pinned]
        room = budget - fixed - sum(part.frame for part in free)
        level = water_level([part.size for part in free], room)
        if tail is None and level >= MIN_PART:
            for part in free:
                part.share = min(part.size, level)
        else:
            self._share_first_parts(free, budget - fixed - NOTE_ROOM)
        self._write_parts(parts, start, end, tail, depth=depth)

    def _cut_list_of_small_items(self, start: int, end: int, budget: int) -> bool:
        """Write the list at ``[start, end)`` as its first items and a note, when short items
        fill its budget (one match, however many); False when they do not."""
        raw = self.raw
        room = budget - 2 - NOTE_ROOM
        if room < MIN_PART:
            return False
        items = self.rx.small_items.match(raw, start + 1, min(start + 1 + room, end - 1))
        assert items is not None  # matches the empty string
        kept = items.end()  # just past a comma
        if kept < start + 1 + room - MIN_PART:
            return False  # a long item before the budget is full: share it out
        self.out.append(raw[start:kept])
        text = f"[memq: {end - 1 - kept} more bytes of this list not kept]"
        self.out.append(json.dumps(text).encode() + b"]")
        return True

    def _parts(
        self, start: int, end: int, budget: int, depth: int, *, root: bool
    ) -> tuple[list[_Part], int | None]:
        """The container's parts, as far as its budget could hold them at ``MIN_PART`` each,
        and where the unread rest begins (None: all read)."""
        raw = self.raw
        is_object = raw[start] != ord("[")
        closer = end - 1
        parts: list[_Part] = []
        weight = 0
        i = self._space(start + 1)
        if i == closer:
            return parts, None
        while True:
            member = key_end = i
            if is_object:
                if raw[i] != _QUOTE:
                    raise MalformedEventError(
                        f"body is not valid JSON: expected a field name at byte {i}"
                    )
                key_end = self._string_end(i)
                i = self._space(key_end)
                if raw[i] != _COLON:
                    raise MalformedEventError(f"body is not valid JSON: expected ':' at byte {i}")
                i = self._space(i + 1)
            value_end = self.end_of(i, depth + 1)
            part = _Part(member, key_end, i, value_end)
            part.pinned = (
                root
                and is_object
                and part.size <= PINNED_MAX
                and raw[member:key_end] in PINNED_FIELDS
            )
            parts.append(part)
            if not part.pinned:
                weight += part.frame + min(part.size, MIN_PART)
            i = self._space(value_end)
            if i < closer and raw[i] == _COMMA:
                i = self._space(i + 1)
                if not root and (weight >= budget or len(parts) >= MAX_PARTS):
                    return parts, i
                continue
            if i == closer:
                return parts, None
            raise MalformedEventError(f"body is not valid JSON: expected ',' at byte {i}")

    def _share_first_parts(self, free: list[_Part], room: int) -> None:
        """Keep the first parts, each cut to at most a share of the room, while they fit."""
        cap = max(MIN_PART, room // PREFIX_SHARE)
        for part in free:
            share = min(part.size, cap)
            if part.frame + share > room:
                return  # this part and every later one are left out
            part.share = share
            room -= part.frame + share

    def _write_parts(
        self, parts: list[_Part], start: int, end: int, tail: int | None, *, depth: int
    ) -> None:
        is_object = self.raw[start] != ord("[")
        raw = self.raw
        out = self.out
        out.append(raw[start : start + 1])
        written = 0
        dropped = 0 if tail is None else end - 1 - tail
        for part in parts:
            if part.share is None and not part.pinned:
                dropped += part.value_end - part.member  # its frame aside: close enough
                continue
            if written:
                out.append(b",")
            written += 1
            if is_object:
                out.append(raw[part.member : part.key_end] + b":")
            share = part.size if part.pinned or part.share is None else part.share
            self.fit_value(part.value_start, part.value_end, share, depth + 1)
        if dropped:
            text = (
                f"[memq: {dropped} more bytes of this {'object' if is_object else 'list'} not kept]"
            )
            if written:
                out.append(b",")
            if is_object:
                out.append(NOTE_KEY + b":")
            out.append(json.dumps(text).encode())
        out.append(raw[end - 1 : end])


class _Part:
    """One item of a list, or one field of an object, and the bytes it is given."""

    __slots__ = ("key_end", "member", "pinned", "share", "value_end", "value_start")

    def __init__(self, member: int, key_end: int, value_start: int, value_end: int) -> None:
        self.member = member  # where the field's name starts (a list item: its value)
        self.key_end = key_end
        self.value_start = value_start
        self.value_end = value_end
        self.pinned = False  # a routing field: kept whole
        self.share: int | None = None  # bytes its value may take; None: left out

    @property
    def size(self) -> int:
        return self.value_end - self.value_start

    @property
    def frame(self) -> int:
        """The bytes around the value: the field's name and colon, and a comma."""
        return self.value_start - self.member + 1

    @property
    def whole_cost(self) -> int:
        return self.value_end - self.member + 1


def water_level(sizes: list[int], room: int) -> int:
    """The largest share ``c`` such that the parts, each cut to at most ``c``, fit ``room``:
    every part smaller than ``c`` is kept whole (water-filling)."""
    if sum(sizes) <= room:
        return max(sizes, default=0)
    left = len(sizes)
    for size in sorted(sizes):
        if size * left > room:
            return room // left
        room -= size
        left -= 1
    return room  # not reached: the sum exceeded the room


def safe_cut(raw: bytes, low: int, cut: int) -> int:
    """The last position at or before ``cut`` where the JSON string content that starts at
    ``low`` can end: not inside a UTF-8 character, an escape, or a surrogate pair."""
    while cut > low and 0x80 <= raw[cut] < 0xC0:  # raw[cut] is the first byte left out
        cut -= 1
    for at in range(max(low, cut - 5), cut):
        if raw[at] == _BACKSLASH and _escape_starts(raw, low, at):
            length = 6 if raw[at + 1] == ord("u") else 2
            if at + length > cut:
                cut = at  # not inside the escape
                break
    if (
        cut - 6 >= low
        and _compiled().high_surrogate.match(raw, cut - 6, cut)
        and _escape_starts(raw, low, cut - 6)
    ):
        cut -= 6  # the low half of the pair is left out: so is the high half
    return cut


def _escape_starts(raw: bytes, low: int, at: int) -> bool:
    """Whether the backslash at ``at`` begins an escape (an even number precede it)."""
    if at == low or raw[at - 1] != _BACKSLASH:
        return True
    before = raw[low:at]
    return (len(before) - len(before.rstrip(b"\\"))) % 2 == 0
